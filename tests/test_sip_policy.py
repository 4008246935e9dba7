"""Pure decisions on incoming INVITEs: source networks, busy, caller ID, verstat."""

from __future__ import annotations

import pytest

from agent.config_schema import SipSettings
from agent.sip.policy import (
    FORBIDDEN,
    FULL_RETRY_AFTER_SECONDS,
    SERVICE_UNAVAILABLE,
    caller_identity,
    check_incoming,
    host_of,
    identity_trusted,
    sip_headers,
    source_allowed,
)
from agent.sip.registration import trusting


def invite(*headers: str) -> str:
    lines = ["INVITE sip:agent@127.0.0.1:5060 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5070", *headers]
    return "\r\n".join(lines) + "\r\n\r\nv=0\r\nFrom: sip:+19999999999@body.invalid\r\n"


@pytest.mark.parametrize(
    ("address", "host"),
    [("127.0.0.1:5060", "127.0.0.1"), ("[::1]:5060", "::1"), ("10.1.2.3", "10.1.2.3")],
)
def test_host_of(address: str, host: str) -> None:
    assert host_of(address) == host


def test_source_networks() -> None:
    nets = ("10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32")
    assert source_allowed("10.20.30.40:5060", nets)
    assert source_allowed("192.168.1.9:5060", nets)
    assert source_allowed("[2001:db8::5]:5060", nets)
    assert not source_allowed("127.0.0.1:5060", nets)
    assert not source_allowed("192.168.2.1:5060", nets)
    assert not source_allowed("garbage", nets)


def test_refused_network_is_403_before_busy() -> None:
    settings = SipSettings(allowed_networks=("10.0.0.0/8",), max_calls=1)
    refusal = check_incoming(settings, "127.0.0.1:5062", active_calls=5)
    assert refusal is not None and refusal.status == FORBIDDEN
    assert "127.0.0.1" in refusal.reason


def test_busy_at_max_calls() -> None:
    settings = SipSettings(max_calls=2)
    assert check_incoming(settings, "127.0.0.1:5062", active_calls=0) is None
    assert check_incoming(settings, "127.0.0.1:5062", active_calls=1) is None
    refusal = check_incoming(settings, "127.0.0.1:5062", active_calls=2)
    assert refusal is not None and refusal.status == SERVICE_UNAVAILABLE  # a proxy fails over
    assert refusal.retry_after == FULL_RETRY_AFTER_SECONDS


def test_register_mode_applies_networks_too() -> None:
    # The endpoint adds the registrar's addresses to allowed_networks (see registration.py).
    settings = SipSettings(mode="register", allowed_networks=("10.0.0.0/8", "192.0.2.7/32"))
    assert check_incoming(settings, "192.0.2.7:5060", active_calls=0) is None
    refusal = check_incoming(settings, "127.0.0.1:5062", active_calls=0)
    assert refusal is not None and refusal.status == FORBIDDEN
    assert refusal.reason == "source 127.0.0.1 is neither the registrar nor in allowed_networks"


def test_caller_from_from_header() -> None:
    who = caller_identity(invite('From: "Dana" <sip:+14165550123@pbx>;tag=1'), "US")
    assert who.e164 == "+14165550123"
    assert who.raw == '"Dana" <sip:+14165550123@pbx>;tag=1'
    assert who.verstat is None and who.verified


def test_caller_national_number_uses_region() -> None:
    assert caller_identity(invite("f: <sip:4165550123@pbx>;tag=1"), "CA").e164 == "+14165550123"


def test_pai_wins_over_from() -> None:
    msg = invite(
        "From: <sip:anonymous@anonymous.invalid>;tag=9",
        "P-Asserted-Identity: <sip:+14165550199;verstat=TN-Validation-Passed@pbx;user=phone>",
    )
    who = caller_identity(msg, "US", require_verstat=True)
    assert who.e164 == "+14165550199"
    assert who.verstat == "TN-Validation-Passed"
    assert who.verified


def test_identities_naming_different_numbers_are_withheld() -> None:
    msg = invite("P-Asserted-Identity: <sip:+14165550199@pbx>, <tel:+14165550100>")
    assert caller_identity(msg, "US").e164 is None
    same = invite("P-Asserted-Identity: <sip:+14165550199@pbx>, <tel:+1-416-555-0199>")
    assert caller_identity(same, "US").e164 == "+14165550199"


def test_folded_header_line() -> None:
    msg = invite("P-Asserted-Identity:", " <tel:+14165550123;verstat=TN-Validation-Failed>")
    who = caller_identity(msg, "US", require_verstat=True)
    assert who.e164 == "+14165550123"
    assert who.verstat == "TN-Validation-Failed"
    assert not who.verified


def test_require_verstat_without_verstat_is_unverified() -> None:
    msg = invite("From: <sip:+14165550123@pbx>;tag=1")
    assert not caller_identity(msg, "US", require_verstat=True).verified
    assert caller_identity(msg, "US", require_verstat=False).verified


@pytest.mark.parametrize(
    "header",
    [
        'From: "Anonymous" <sip:anonymous@anonymous.invalid>;tag=1',
        "From: <sip:restricted@pbx>;tag=1",
        "P-Asserted-Identity: <sip:unavailable@pbx>",
        "From: <sip:12@pbx>;tag=1",
    ],
)
def test_withheld_or_unusable_caller_is_none(header: str) -> None:
    who = caller_identity(invite(header), "US")
    assert who.e164 is None
    assert not who.verified


def test_headers_ignore_body() -> None:
    assert sip_headers(invite("Contact: <sip:x@y>")) == {}


def test_identity_trusted_defaults_to_allowed_networks() -> None:
    settings = SipSettings(allowed_networks=("10.0.0.0/8",))
    assert identity_trusted(settings, "10.1.2.3:5060")
    assert not identity_trusted(settings, "192.0.2.1:5060")
    narrow = SipSettings(
        allowed_networks=("10.0.0.0/8",), trusted_identity_networks=("10.0.0.5/32",)
    )
    assert identity_trusted(narrow, "10.0.0.5:5060")
    assert not identity_trusted(narrow, "10.1.2.3:5060")


def test_registrar_is_a_trusted_identity_source() -> None:
    narrow = SipSettings(
        allowed_networks=("10.0.0.0/8",), trusted_identity_networks=("10.0.0.5/32",)
    )
    settings = trusting(narrow, ("192.0.2.7:5060",))
    assert identity_trusted(settings, "192.0.2.7:5060")
    assert not identity_trusted(settings, "10.1.2.3:5060")
    assert identity_trusted(trusting(SipSettings(), ("192.0.2.7:5060",)), "192.0.2.7:5060")
