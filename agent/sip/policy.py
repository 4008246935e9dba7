"""Pure decisions on an incoming INVITE: accept or refuse, and who is calling.

No pjsua2 here: the endpoint passes the INVITE's source address and raw text in and
applies the answer.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass

from agent.config_schema import SipSettings
from agent.phones import caller_id_e164
from agent.sip.uri import SipUriError, parse_values, telephone_number

FORBIDDEN = 403
SERVICE_UNAVAILABLE = 503
DRAINING_RETRY_AFTER_SECONDS = 60
"""Retry-After on the 503 of a draining agent, on top of the drain time left: about a
restart (models load in ~30 s)."""
FULL_RETRY_AFTER_SECONDS = 30
"""Retry-After on the 503 of an agent with ``max_calls`` calls up: well under a call's
length, so a proxy that honours it (RFC 3263) soon tries this box again, and about one
OPTIONS keep-alive interval of a dispatcher."""
VERSTAT_PASSED = "TN-Validation-Passed"
VERSTAT_FAILED = "TN-Validation-Failed"

_HEADER_NAMES = {
    "p-asserted-identity": "pai",
    "from": "from",
    "f": "from",  # compact form
}


@dataclass(frozen=True)
class Refusal:
    """Refuse the INVITE with ``status`` (403 or 503); ``reason`` is for the log."""

    status: int
    reason: str
    retry_after: int | None = None
    """Seconds for a Retry-After header (with 503), None for none."""


@dataclass(frozen=True)
class CallerIdentity:
    """Who the INVITE says is calling."""

    raw: str | None
    """Header value used: P-Asserted-Identity if present, else From."""
    e164: str | None
    """E.164 number, None when withheld/anonymous/unusable."""
    verstat: str | None
    """STIR/SHAKEN verification status parameter, when present."""
    verified: bool
    """Whether the number may be trusted: never with ``TN-Validation-Failed``; otherwise
    always, unless ``require_verstat`` asks for ``TN-Validation-Passed``."""
    ignored: tuple[str, ...] = ()
    """Headers dropped because the INVITE's source is not a trusted identity source
    ("P-Asserted-Identity", "verstat"); empty when nothing was dropped."""


def host_of(address: str) -> str:
    """The IP part of pjsua2's ``srcAddress`` ("1.2.3.4:5060", "[::1]:5060", or bare)."""
    text = address.strip()
    if text.startswith("["):
        return text[1 : text.index("]")]
    if text.count(":") == 1:
        return text.split(":", 1)[0]
    return text


def check_incoming(
    settings: SipSettings,
    source: str,
    active_calls: int,
    *,
    draining: bool = False,
    drain_left: float = 0.0,
) -> Refusal | None:
    """None to accept an INVITE from ``source`` with ``active_calls`` already up.

    Both modes accept only sources in ``allowed_networks``; in register mode the endpoint
    adds the registrar's addresses to them (``agent.sip.registration.trusting``). An allowed
    source then gets :func:`capacity_refusal`'s answer.
    """
    if not source_allowed(source, settings.allowed_networks):
        which = "neither the registrar nor" if settings.mode == "register" else "not"
        return Refusal(FORBIDDEN, f"source {host_of(source)} is {which} in allowed_networks")
    return capacity_refusal(settings, active_calls, draining=draining, drain_left=drain_left)


def capacity_refusal(
    settings: SipSettings, active_calls: int, *, draining: bool = False, drain_left: float = 0.0
) -> Refusal | None:
    """Whether the agent takes a new call now: None, or the 503 that a new INVITE and an
    OPTIONS ping both get (``agent.sip.gate``), so the two never disagree.

    While the agent drains (``draining``: stopping, its calls in progress go on for up to
    ``drain_left`` more seconds), Retry-After is that time plus a restart. With
    ``max_calls`` calls up, Retry-After is ``FULL_RETRY_AFTER_SECONDS``.

    Why 503 and not 486 Busy Here when full: 486 is an answer about *the called user*, which
    a proxy relays to the caller instead of trying elsewhere (Kamailio's dispatcher fails
    over in ``t_on_failure`` on 5xx and timeouts, the usual ``ds_next_dst`` set-up; a 486
    ends the call with a busy tone although another box has a free line). 503 says *this
    server* is temporarily unable (RFC 3261 21.5.4): a proxy tries the next box (RFC 3263
    4.3), and a trunk with no other destination treats it as congestion, which is what a
    full agent is. Retry-After tells either one for how long.
    """
    if draining:
        reason = "the agent is stopping (draining its calls)"
        retry_after = DRAINING_RETRY_AFTER_SECONDS + math.ceil(max(drain_left, 0.0))
        return Refusal(SERVICE_UNAVAILABLE, reason, retry_after)
    if active_calls >= settings.max_calls:
        reason = f"{active_calls} calls up, max_calls is {settings.max_calls}"
        return Refusal(SERVICE_UNAVAILABLE, reason, FULL_RETRY_AFTER_SECONDS)
    return None


def source_allowed(source: str, networks: tuple[str, ...]) -> bool:
    """Whether the IP of ``source`` lies in one of ``networks`` (CIDR strings)."""
    try:
        ip = ipaddress.ip_address(host_of(source))
    except ValueError:
        return False
    for net in networks:
        network = ipaddress.ip_network(net, strict=False)
        if ip.version == network.version and ip in network:
            return True
    return False


def identity_trusted(settings: SipSettings, source: str) -> bool:
    """Whether P-Asserted-Identity and verstat from ``source`` are believed.

    Only from ``trusted_identity_networks`` (empty: ``allowed_networks``); in register mode
    ``trusting`` has added the registrar's addresses to whichever applies.
    """
    networks = settings.trusted_identity_networks or settings.allowed_networks
    return source_allowed(source, networks)


def sip_headers(message: str) -> dict[str, list[str]]:
    """Every value of the headers we care about, keyed "pai"/"from" (folded lines joined).

    A header repeated on several lines gives several values (two P-Asserted-Identity
    headers, one ``sip:`` and one ``tel:``); comma-separated values stay in one string.
    """
    found: dict[str, list[str]] = {}
    head = re.split(r"\r?\n\r?\n", message, maxsplit=1)[0]
    lines: list[str] = []
    for line in re.split(r"\r?\n", head)[1:]:  # skip the request line
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    for line in lines:
        name, sep, value = line.partition(":")
        key = _HEADER_NAMES.get(name.strip().lower())
        if sep and key:
            found.setdefault(key, []).append(value.strip())
    return found


def caller_identity(
    message: str, region: str, *, require_verstat: bool = False, trust_pai: bool = True
) -> CallerIdentity:
    """Caller ID from P-Asserted-Identity, else From, of the raw INVITE ``message``.

    ``trust_pai=False`` (the INVITE did not come from ``trusted_identity_networks``):
    P-Asserted-Identity is ignored and no ``verstat`` is believed; the result's
    ``ignored`` names what was dropped. ``verstat`` is read only from the chosen URI's
    parameters (its user part's, as ATIS-1000074 and 3GPP TS 24.229 place it:
    ``sip:+14165550123;verstat=TN-Validation-Passed@host``, or a tel URI's), never from a
    display name or a header parameter after ``>``. ``TN-Validation-Failed`` is never
    verified, whatever ``require_verstat`` says. A malformed header gives a withheld caller.
    """
    headers = sip_headers(message)
    ignored: list[str] = []
    chosen = None
    if headers.get("pai"):
        if trust_pai:
            chosen = _asserted(headers["pai"], region)
        else:
            ignored.append("P-Asserted-Identity")
    if chosen is None:
        chosen = _first_from(headers.get("from", []), region)
    raw, e164, verstat = chosen if chosen is not None else (None, None, None)
    if verstat is not None and not trust_pai:
        ignored.append("verstat")
        verstat = None
    verified = (
        e164 is not None
        and verstat != VERSTAT_FAILED
        and (not require_verstat or verstat == VERSTAT_PASSED)
    )
    return CallerIdentity(raw, e164, verstat, verified, tuple(ignored))


def _asserted(values: list[str], region: str) -> tuple[str, str | None, str | None]:
    """The identity of the P-Asserted-Identity values (the tel URI first).

    Values naming different numbers make the caller withheld (which one would be true?);
    a ``TN-Validation-Failed`` on any of them wins over a pass on another.
    """
    try:
        parsed = [
            (value, item) for value in values for item in parse_values(value, header_params=False)
        ]
    except SipUriError:
        return (values[0], None, None)
    parsed.sort(key=lambda pair: pair[1].uri.scheme != "tel")
    numbers = {caller_id_e164(telephone_number(item.uri), region) for _, item in parsed}
    numbers.discard(None)
    if not numbers:
        return (parsed[0][0], None, None)  # the trunk asserts no number: withheld
    e164 = numbers.pop() if len(numbers) == 1 else None
    verstats = {item.uri.param("verstat") for _, item in parsed} - {None}
    verstat = VERSTAT_FAILED if VERSTAT_FAILED in verstats else _one(verstats)
    return (parsed[0][0], e164, verstat)


def _first_from(values: list[str], region: str) -> tuple[str, str | None, str | None] | None:
    if not values:
        return None
    try:
        uri = parse_values(values[0])[0].uri
    except SipUriError:
        return (values[0], None, None)
    return (values[0], caller_id_e164(telephone_number(uri), region), uri.param("verstat"))


def _one(values: set[str | None]) -> str | None:
    return values.pop() if len(values) == 1 else None
