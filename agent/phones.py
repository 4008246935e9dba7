"""Phone numbers: one canonical form (E.164, "+14165550123") used everywhere.

Numbers are normalised once at the edge — CSV import, caller ID from the SIP layer or
the chat page — and every table and comparison after that sees only E.164 strings.
"""

from __future__ import annotations

import phonenumbers

from agent.sip.uri import SipUriError, parse_values, telephone_number

# Caller-ID values that mean "the network will not tell us who this is".
_WITHHELD = frozenset(
    {
        "",
        "anonymous",
        "restricted",
        "private",
        "unavailable",
        "unknown",
        "withheld",
        "blocked",
        "invalid",
    }
)
_PARSE_REASONS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "no digits that form a number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}


def normalize(raw: str, region: str) -> str:
    """Return ``raw`` as E.164; national numbers are read as numbers of ``region``.

    ``region`` is an ISO 3166 code ("US", "CA"). Raises ``ValueError`` when the text is
    not a valid phone number (too short, impossible area code, letters, ...).
    """
    text = raw.strip()
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException as err:
        reason = _PARSE_REASONS.get(err.error_type, "not a phone number")
        raise ValueError(f"{raw!r} is not a phone number: {reason}") from err
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def caller_id_e164(raw: str | None, region: str) -> str | None:
    """Return the caller's number as E.164, or None when it is withheld or unusable.

    Accepts a bare number ("+1 416 555 0123", "4165550123"), a URI ("sip:+14165550123@pbx",
    "tel:+1-416-555-0123;phone-context=..."), or a SIP name-addr ('"Dana" <sip:...@pbx>').
    Withheld values ("anonymous", "sip:anonymous@anonymous.invalid", "restricted", ...)
    and anything that is not a valid number give None: the caller is then unverified.
    """
    if raw is None:
        return None
    user = _uri_user_part(raw)
    if user is None or user.lower() in _WITHHELD:
        return None
    try:
        return normalize(user, region)
    except ValueError:
        return None


def last_four(e164: str) -> str:
    """The last four digits of a number, as read back to a caller ("ending in 0123")."""
    digits = "".join(ch for ch in e164 if ch.isdigit())
    if len(digits) < 4:
        raise ValueError(f"{e164!r} has fewer than four digits")
    return digits[-4:]


def _uri_user_part(raw: str) -> str | None:
    """The number of a SIP/tel URI or name-addr, the text itself when it is not a URI.

    None when ``raw`` looks like a URI or name-addr but is malformed, or its user part is
    not a number: a forged display name (``"<sip:+1416...@x>" <sip:anonymous@...>``)
    must not be read as a number.
    """
    text = raw.strip()
    if not any(mark in text for mark in '<>"@:;'):
        return text
    try:
        uri = parse_values(text)[0].uri
    except SipUriError:
        return None
    number = telephone_number(uri)
    return number if number is not None else uri.user
