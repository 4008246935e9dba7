"""Pure decisions on an incoming INVITE: accept or refuse, and who is calling.

No pjsua2 here: the endpoint passes the INVITE's source address and raw text in and
applies the answer.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from agent.config_schema import SipSettings
from agent.phones import caller_id_e164

FORBIDDEN = 403
BUSY_HERE = 486
VERSTAT_PASSED = "TN-Validation-Passed"

_HEADER_NAMES = {
    "p-asserted-identity": "pai",
    "from": "from",
    "f": "from",  # compact form
}
_VERSTAT = re.compile(r";\s*verstat=([^;>@?\s,]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Refusal:
    """Refuse the INVITE with ``status`` (403 or 486); ``reason`` is for the log."""

    status: int
    reason: str


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
    """Whether the number may be trusted (always True unless ``require_verstat``)."""


def host_of(address: str) -> str:
    """The IP part of pjsua2's ``srcAddress`` ("1.2.3.4:5060", "[::1]:5060", or bare)."""
    text = address.strip()
    if text.startswith("["):
        return text[1 : text.index("]")]
    if text.count(":") == 1:
        return text.split(":", 1)[0]
    return text


def check_incoming(settings: SipSettings, source: str, active_calls: int) -> Refusal | None:
    """None to accept an INVITE from ``source`` with ``active_calls`` already up.

    Both modes accept only sources in ``allowed_networks``; in register mode the endpoint
    adds the registrar's addresses to them (``agent.sip.registration.trusting``).
    """
    if not source_allowed(source, settings.allowed_networks):
        which = "neither the registrar nor" if settings.mode == "register" else "not"
        return Refusal(FORBIDDEN, f"source {host_of(source)} is {which} in allowed_networks")
    if active_calls >= settings.max_calls:
        return Refusal(BUSY_HERE, f"{active_calls} calls up, max_calls is {settings.max_calls}")
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


def sip_headers(message: str) -> dict[str, str]:
    """First value of each header we care about, keyed "pai"/"from" (folded lines joined)."""
    found: dict[str, str] = {}
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
        if sep and key and key not in found:
            found[key] = value.strip()
    return found


def caller_identity(message: str, region: str, *, require_verstat: bool = False) -> CallerIdentity:
    """Caller ID from P-Asserted-Identity, else From, of the raw INVITE ``message``."""
    headers = sip_headers(message)
    raw = headers.get("pai") or headers.get("from")
    if raw is not None and "," in raw and "<" in raw:
        raw = raw.split(">", 1)[0] + ">"  # several identities: the first one
    e164 = caller_id_e164(_uri_of(raw), region) if raw is not None else None
    match = _VERSTAT.search(_uri_of(raw)) if raw is not None else None
    verstat = match.group(1) if match else None
    verified = e164 is not None and (not require_verstat or verstat == VERSTAT_PASSED)
    return CallerIdentity(raw=raw, e164=e164, verstat=verstat, verified=verified)


def _uri_of(value: str) -> str:
    """The URI of a name-addr, or the value itself (header params after ``>`` dropped)."""
    if "<" in value and ">" in value:
        return value[value.index("<") + 1 : value.index(">")]
    return value.split(";tag=", 1)[0]
