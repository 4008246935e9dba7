"""Register mode: the registering account built from ``[sip]``, and its state.

Everything here is pure except ``account_config`` (builds the pjsua2 ``AccountConfig``;
call it on the pjsua2 thread) and ``resolve`` (a blocking DNS lookup, done once at start).
``agent.config`` uses ``parse_registrar`` to validate the file, so pjsua2 is imported
inside ``account_config`` only: loading the config must not load the SIP stack.

Which INVITEs register mode accepts: those from the registrar's addresses (what its host
resolves to at start, and the source of every 200 OK to our REGISTER) plus
``allowed_networks``. ``trusting`` folds those addresses into ``allowed_networks`` of the
settings the endpoint's policy checks; everything else is refused with 403.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Literal

from agent.config_schema import SipSettings
from agent.sip.policy import host_of
from agent.sip.uri import SipUriError, is_ip, parse_host_port

RETRY_SECONDS = 60
"""After a timeout, 5xx or 6xx, pjsua2 tries again this often (randomised by up to 10 s).

Authentication failures (401, 403, 407) are final: pjsua2 does not retry them (the same
credentials would be refused again); the agent keeps serving, unregistered.
"""

REFRESH_MARGIN_SECONDS = 5
"""Re-register this long before the granted expiry (pjsip's default, and its minimum delay)."""

UNREGISTER_WAIT_SECONDS = 1.0
"""At stop, wait at most this long for the registrar to confirm the unregistration."""

_AUTH_FAILURES = frozenset({401, 403, 407})

RegistrationPhase = Literal["registering", "registered", "failed", "unregistered"]


@dataclass(frozen=True)
class Registrar:
    """Where to register: ``sip:host[:port][;params]`` once the transport is known."""

    host: str
    """Host name or IP address (IPv6 without brackets)."""
    port: int | None = None
    """Port, None for the transport's default."""
    scheme: Literal["sip", "sips"] = "sip"
    params: str = ""
    """URI parameters as written, with their leading ``;`` (``;transport=...`` kept)."""

    @property
    def domain(self) -> str:
        """The host as it appears in a URI (IPv6 in brackets)."""
        return f"[{self.host}]" if ":" in self.host else self.host

    def uri(self, transport: str) -> str:
        """The registrar URI, with ``;transport=`` added for TCP/TLS unless given."""
        port = f":{self.port}" if self.port is not None else ""
        params = self.params
        if transport != "udp" and "transport=" not in params.lower():
            params += f";transport={transport}"
        return f"{self.scheme}:{self.domain}{port}{params}"


def parse_registrar(text: str) -> Registrar:
    """``host``, ``host:port``, ``[v6]:port`` or a ``sip:``/``sips:`` URI; ValueError if not."""
    rest = text.strip()
    scheme: Literal["sip", "sips"] = "sip"
    lowered = rest.lower()
    if lowered.startswith(("sip:", "sips:")):
        scheme = "sips" if lowered.startswith("sips:") else "sip"
        rest = rest[len(scheme) + 1 :]
    rest, semicolon, params = rest.partition(";")
    if "@" in rest:
        raise ValueError("write the host only; the user goes in username")
    if not rest:
        raise ValueError("expected host, host:port or sip:host[:port]")
    try:
        host, port = parse_host_port(rest)
    except SipUriError as err:
        raise ValueError(str(err)) from err
    return Registrar(host=host, port=port, scheme=scheme, params=semicolon + params)


def account_uri(settings: SipSettings) -> str:
    """The registered identity (From/To of the REGISTER): ``sip:username@registrar-domain``."""
    return f"sip:{settings.username}@{parse_registrar(settings.registrar).domain}"


def account_config(settings: SipSettings, transport_id: int) -> Any:
    """A pjsua2 ``AccountConfig`` that registers with digest credentials (pjsua2 thread)."""
    import pjsua2 as pj  # noqa: PLC0415 - not at the top: see the module docstring

    registrar = parse_registrar(settings.registrar)
    acfg = pj.AccountConfig()
    acfg.idUri = account_uri(settings)
    acfg.sipConfig.transportId = transport_id
    reg = acfg.regConfig
    reg.registrarUri = registrar.uri(settings.transport)
    reg.timeoutSec = settings.register_expires_seconds
    reg.delayBeforeRefreshSec = REFRESH_MARGIN_SECONDS
    reg.retryIntervalSec = RETRY_SECONDS
    reg.firstRetryIntervalSec = RETRY_SECONDS
    reg.dropCallsOnFail = False  # a failed refresh must not cut the calls in progress
    credentials = pj.AuthCredInfo(
        "digest", settings.realm, settings.username, 0, settings.password.reveal()
    )
    acfg.sipConfig.authCreds.append(credentials)
    return acfg


def resolve(host: str) -> tuple[str, ...]:
    """The IP addresses of ``host`` (itself if it is one); () when it does not resolve."""
    if is_ip(host):
        return (host,)
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_UDP)
    except OSError:
        return ()
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def trusting(settings: SipSettings, addresses: tuple[str, ...]) -> SipSettings:
    """``settings`` whose ``allowed_networks`` also hold ``addresses`` (as /32 or /128).

    A non-empty ``trusted_identity_networks`` gets them too: the registrar is the trunk,
    whose P-Asserted-Identity and verstat are believed (empty already means "the same as
    ``allowed_networks``").
    """
    allowed = _with(settings.allowed_networks, addresses)
    trusted = settings.trusted_identity_networks
    if trusted:
        trusted = _with(trusted, addresses)
    if (allowed, trusted) == (settings.allowed_networks, settings.trusted_identity_networks):
        return settings
    return dataclasses.replace(
        settings, allowed_networks=allowed, trusted_identity_networks=trusted
    )


def _with(networks: tuple[str, ...], addresses: tuple[str, ...]) -> tuple[str, ...]:
    """``networks`` plus each of ``addresses`` they do not cover yet (as /32 or /128)."""
    found = list(networks)
    for address in addresses:
        try:
            ip = ipaddress.ip_address(host_of(address))
        except ValueError:
            continue
        if not any(ip in ipaddress.ip_network(net, strict=False) for net in found):
            found.append(str(ipaddress.ip_network(ip)))
    return tuple(found)


@dataclass(frozen=True)
class RegistrationState:
    """Where the registration stands; ``SipEndpoint.registration`` holds the latest one."""

    phase: RegistrationPhase
    account: str
    """The registered identity, ``sip:username@domain``."""
    registrar: str
    """The registrar URI REGISTERs go to."""
    status: int = 0
    """SIP status of the last answer (0 before any)."""
    reason: str = ""
    """Reason phrase of the last answer, or pjsip's error text."""
    expires: int = 0
    """Seconds the registrar granted (0 unless registered)."""

    @property
    def registered(self) -> bool:
        return self.phase == "registered"


def initial_state(settings: SipSettings) -> RegistrationState:
    """Before the first answer: registering."""
    registrar = parse_registrar(settings.registrar).uri(settings.transport)
    return RegistrationState("registering", account_uri(settings), registrar)


def after_answer(
    state: RegistrationState, status: int, reason: str, expires: int
) -> RegistrationState:
    """The state once the registrar answered (or pjsip gave up) with ``status``."""
    if 200 <= status < 300:
        phase: RegistrationPhase = "registered" if expires > 0 else "unregistered"
    else:
        phase, expires = "failed", 0
    return dataclasses.replace(state, phase=phase, status=status, reason=reason, expires=expires)


def describe(state: RegistrationState) -> str:
    """One log line for a state change (never any credential)."""
    where = f"{state.account} at {state.registrar}"
    if state.phase == "registered":
        return f"registered as {where}, expires {state.expires} s"
    if state.phase == "unregistered":
        return f"unregistered {where}"
    if state.phase == "failed":
        failed = f"registration of {where} failed: {state.status} {state.reason}"
        if state.status in _AUTH_FAILURES:
            return f"{failed} (check username, password and realm; not retried until restart)"
        return failed
    return f"registering {where}"
