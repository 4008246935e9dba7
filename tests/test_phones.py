"""Phone normalisation: one E.164 form for CSV numbers and caller IDs."""

from __future__ import annotations

import pytest

from agent.phones import caller_id_e164, last_four, normalize


@pytest.mark.parametrize(
    "raw",
    [
        "+14165550123",
        "+1 416 555 0123",
        "14165550123",
        "4165550123",
        "(416) 555-0123",
        "416.555.0123",
        " 416-555-0123 ",
        "+1-416-555-0123",
    ],
)
def test_normalize_nanp_forms(raw: str) -> None:
    assert normalize(raw, "CA") == "+14165550123"


def test_normalize_reads_national_numbers_in_region_and_keeps_foreign_ones() -> None:
    assert normalize("(212) 555-0100", "US") == "+12125550100"
    assert normalize("+44 20 7946 0958", "CA") == "+442079460958"


@pytest.mark.parametrize("raw", ["", "abc", "555-0123", "+1 555 555 0123", "911", "1"])
def test_normalize_rejects_invalid_numbers(raw: str) -> None:
    with pytest.raises(ValueError, match="phone number"):
        normalize(raw, "CA")


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "anonymous",
        "Anonymous",
        "ANONYMOUS",
        "restricted",
        "private",
        "unavailable",
        "unknown",
        "sip:anonymous@anonymous.invalid",
        '"Anonymous" <sip:anonymous@anonymous.invalid>',
        "sip:restricted@pbx.local",
        "hello",
        "sip:alice@example.com",
        "12",
    ],
)
def test_caller_id_withheld_or_unusable_is_none(raw: str | None) -> None:
    assert caller_id_e164(raw, "CA") is None


@pytest.mark.parametrize(
    "raw",
    [
        "+14165550123",
        "4165550123",
        "sip:+14165550123@pbx.example.com",
        "sip:+14165550123@10.0.0.5:5060;user=phone",
        "sips:4165550123@pbx",
        "sip:%2B14165550123@pbx",
        "tel:+1-416-555-0123",
        "tel:+14165550123;phone-context=example.com",
        '"Dana Whitfield" <sip:+14165550123@pbx>',
    ],
)
def test_caller_id_numbers_and_uris(raw: str) -> None:
    assert caller_id_e164(raw, "CA") == "+14165550123"


def test_last_four() -> None:
    assert last_four("+14165550123") == "0123"
    with pytest.raises(ValueError):
        last_four("+12")
