"""The one SIP URI / name-addr parser, on header shapes real trunks and PBXs send.

Each row is the INVITE's identity headers as a carrier, Asterisk, FreeSWITCH, Twilio or
Telnyx writes them (or as an attacker forges them) and what the agent must conclude:
the caller's E.164 number (None: withheld) and the verstat it believes.
"""

from __future__ import annotations

import pytest

from agent.phones import caller_id_e164
from agent.sip.policy import caller_identity
from agent.sip.uri import SipUriError, parse_uri, parse_values

N = "+14165550123"
PASSED = "TN-Validation-Passed"
FAILED = "TN-Validation-Failed"

SHAPES: list[tuple[str, tuple[str, ...], str | None, str | None]] = [
    # --- plain From shapes -------------------------------------------------------------
    ("asterisk", ('From: "Dana Smith" <sip:+14165550123@10.0.0.5>;tag=as4f1c',), N, None),
    ("freeswitch", ('From: "4165550123" <sip:4165550123@fs.example.com>;tag=Kp9',), N, None),
    ("token-display", ("From: Dana Smith <sip:+14165550123@pbx>;tag=1",), N, None),
    ("no-display", ("From: <sip:+14165550123@pbx;user=phone>;tag=1",), N, None),
    ("addr-spec", ("From: sip:+14165550123@pbx;tag=1",), N, None),
    ("compact", ("f: <sip:4165550123@pbx>;tag=7",), N, None),
    ("sips", ('From: "D" <sips:+14165550123@trunk.example.net:5061>;tag=2',), N, None),
    ("ipv6-host", ("From: <sip:+14165550123@[2001:db8::10]:5060;transport=udp>;tag=3",), N, None),
    ("percent-user", ("From: <sip:%2B14165550123@pbx>;tag=4",), N, None),
    ("visual-sep", ("From: <sip:+1-416-555-0123@pbx;user=phone>;tag=5",), N, None),
    ("tel-from", ("From: <tel:+1-416-555-0123>;tag=6",), N, None),
    ("tel-context", ("From: <tel:5550123;phone-context=+1416>;tag=7",), N, None),
    ("escaped-quote", (r'From: "Dana \"D\" Smith" <sip:+14165550123@pbx>;tag=8',), N, None),
    ("display-with-comma", ('From: "Smith, Dana" <sip:+14165550123@pbx>;tag=9',), N, None),
    # --- withheld ----------------------------------------------------------------------
    ("anonymous", ('From: "Anonymous" <sip:anonymous@anonymous.invalid>;tag=1',), None, None),
    ("restricted", ("From: <sip:restricted@pbx>;tag=1",), None, None),
    ("no-user", ("From: <sip:pbx.example.com>;tag=1",), None, None),
    ("alpha-user", ('From: "Alice" <sip:alice@example.com>;tag=1',), None, None),
    ("malformed-no-gt", ('From: "Dana" <sip:+14165550123@pbx;tag=1',), None, None),
    ("unterminated-quote", ('From: "Dana <sip:+14165550123@pbx>;tag=1',), None, None),
    ("garbage", ("From: <<<>>>",), None, None),
    # --- forged display names ----------------------------------------------------------
    (
        "uri-in-display",
        ('From: "<sip:+14165550123@x>" <sip:anonymous@anonymous.invalid>;tag=1',),
        None,
        None,
    ),
    (
        "verstat-in-display",
        ('From: ";verstat=TN-Validation-Passed" <sip:+14165550123@pbx>;tag=1',),
        N,
        None,
    ),
    (
        "verstat-uri-in-display",
        ('From: "<sip:+14165550123;verstat=TN-Validation-Passed@x>" <sip:+14165550123@pbx>;tag=1',),
        N,
        None,
    ),
    (
        "verstat-as-header-param",
        ("From: <sip:+14165550123@pbx>;verstat=TN-Validation-Passed;tag=1",),
        N,
        None,
    ),
    (
        "addr-spec-verstat-is-header-param",
        ("From: sip:+14165550123@pbx;verstat=TN-Validation-Passed;tag=1",),
        N,
        None,
    ),
    # --- STIR/SHAKEN verstat where carriers put it ---------------------------------------
    (
        "verstat-user-part",
        ("From: <sip:+14165550123;verstat=TN-Validation-Passed@pbx;user=phone>;tag=1",),
        N,
        PASSED,
    ),
    (
        "verstat-uri-param",
        ("From: <sip:+14165550123@pbx;verstat=TN-Validation-Passed>;tag=1",),
        N,
        PASSED,
    ),
    (
        "pai-tel-verstat",
        ("P-Asserted-Identity: <tel:+14165550123;verstat=TN-Validation-Passed>",),
        N,
        PASSED,
    ),
    (
        "pai-tel-addr-spec",
        ("P-Asserted-Identity: tel:+14165550123;verstat=TN-Validation-Passed",),
        N,
        PASSED,
    ),
    (
        "twilio-style",
        (
            'From: "+14165550123" <sip:+14165550123@example.pstn.twilio.com>;tag=1',
            'P-Asserted-Identity: "+14165550123" <sip:+14165550123;verstat=TN-Validation-Passed'
            "@example.pstn.twilio.com>",
        ),
        N,
        PASSED,
    ),
    (
        "telnyx-style",
        (
            "From: <sip:+14165550123@sip.telnyx.com>;tag=a",
            "P-Asserted-Identity: <sip:+14165550123@sip.telnyx.com;user=phone"
            ";verstat=TN-Validation-Passed>",
        ),
        N,
        PASSED,
    ),
    (
        "failed",
        ("P-Asserted-Identity: <tel:+14165550123;verstat=TN-Validation-Failed>",),
        N,
        FAILED,
    ),
    # --- several identities --------------------------------------------------------------
    (
        "two-pai-headers",
        (
            "P-Asserted-Identity: <sip:+14165550123@pbx;user=phone>",
            "P-Asserted-Identity: <tel:+14165550123;verstat=TN-Validation-Passed>",
        ),
        N,
        PASSED,
    ),
    (
        "pai-comma-list",
        ('P-Asserted-Identity: "Dana, S" <sip:+14165550123@pbx>, <tel:+1.416.555.0123>',),
        N,
        None,
    ),
    (
        "pai-disagree",
        ("P-Asserted-Identity: <sip:+14165550199@pbx>", "P-Asserted-Identity: <tel:+14165550123>"),
        None,
        None,
    ),
    (
        "pai-pass-and-fail",
        (
            "P-Asserted-Identity: <sip:+14165550123;verstat=TN-Validation-Passed@pbx>",
            "P-Asserted-Identity: <tel:+14165550123;verstat=TN-Validation-Failed>",
        ),
        N,
        FAILED,
    ),
    (
        "pai-wins-over-anonymous-from",
        (
            "From: <sip:anonymous@anonymous.invalid>;tag=1",
            "P-Asserted-Identity: <sip:+14165550123@pbx>",
        ),
        N,
        None,
    ),
    (
        "pai-anonymous-over-from",
        (
            "From: <sip:+14165550199@pbx>;tag=1",
            "P-Asserted-Identity: <sip:anonymous@anonymous.invalid>",
        ),
        None,
        None,
    ),
    (
        "folded",
        ("P-Asserted-Identity:", "  <tel:+14165550123;verstat=TN-Validation-Passed>"),
        N,
        PASSED,
    ),
]


def invite(*headers: str) -> str:
    lines = ["INVITE sip:agent@127.0.0.1 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5070", *headers]
    return "\r\n".join(lines) + "\r\n\r\n"


@pytest.mark.parametrize(
    ("headers", "e164", "verstat"), [row[1:] for row in SHAPES], ids=[row[0] for row in SHAPES]
)
def test_header_shapes(headers: tuple[str, ...], e164: str | None, verstat: str | None) -> None:
    who = caller_identity(invite(*headers), "CA", require_verstat=True)
    assert (who.e164, who.verstat) == (e164, verstat)
    assert who.verified == (e164 is not None and verstat == PASSED)


def test_at_least_thirty_shapes() -> None:
    assert len(SHAPES) >= 30


def test_untrusted_source_ignores_pai_and_verstat() -> None:
    msg = invite(
        "From: <sip:+14165550199;verstat=TN-Validation-Passed@pbx>;tag=1",
        "P-Asserted-Identity: <tel:+14165550123;verstat=TN-Validation-Passed>",
    )
    who = caller_identity(msg, "CA", require_verstat=True, trust_pai=False)
    assert (who.e164, who.verstat, who.verified) == ("+14165550199", None, False)
    assert who.ignored == ("P-Asserted-Identity", "verstat")


def test_failed_is_never_verified() -> None:
    msg = invite("P-Asserted-Identity: <tel:+14165550123;verstat=TN-Validation-Failed>")
    assert not caller_identity(msg, "CA", require_verstat=False).verified


def test_forged_display_name_is_not_the_caller() -> None:
    forged = '"<sip:+14165550123@x>" <sip:anonymous@anonymous.invalid>'
    assert caller_id_e164(forged, "CA") is None
    (value,) = parse_values(forged)
    assert value.display_name == "<sip:+14165550123@x>"
    assert value.uri.user == "anonymous"


def test_uri_parts() -> None:
    uri = parse_uri("sip:+14165550123;verstat=TN-Validation-Passed@[2001:db8::1]:5062;user=phone")
    assert (uri.scheme, uri.user, uri.host, uri.port) == ("sip", N, "2001:db8::1", 5062)
    assert uri.user_params == {"verstat": PASSED}
    assert uri.params == {"user": "phone"}


@pytest.mark.parametrize(
    "text", ["http://x", "sip:a@b@c", "sip:+1@[10.0.0.1]", "sip:+1@host:99999", "tel:", "sip:+1@"]
)
def test_malformed_uris(text: str) -> None:
    with pytest.raises(SipUriError):
        parse_uri(text)
