"""SIP header values taken apart as RFC 3261 says: the one parser for SIP/SIPS/tel URIs.

Pure (no pjsua2): ``agent.phones`` (caller ID), ``agent.sip.policy`` (From and
P-Asserted-Identity of an INVITE) and ``agent.sip.registration`` (the registrar) use it.

- ``parse_uri``: ``sip:user;user-params@host:port;params?headers``, ``sips:``, ``tel:``;
- ``parse_values``: a header value — name-addr (``"Dana \\"D\\"" <sip:...>;tag=1``) or
  addr-spec — possibly several, comma-separated;
- ``parse_host_port``: ``host``, ``host:port``, ``[v6]:port``.

Where parameters belong (RFC 3261 §20): in a name-addr, ``;x`` after ``>`` is a header
parameter (``tag``), never part of the URI. In an addr-spec (no angle brackets) of a header
that has header parameters (From, To), everything after the first ``;`` is a header
parameter too; P-Asserted-Identity (RFC 3325) has no header parameters, so there the
parameters of an addr-spec stay with the URI (``tel:+14165550123;verstat=...``).
Anything malformed raises ``SipUriError`` (a ``ValueError``); callers turn that into
"withheld", never into an exception in a pjsua2 callback.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

SCHEMES = ("sip", "sips", "tel")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?\.?")
_HOST_PORT = re.compile(r"(?P<host>\[[^\]]*\]|[^:\[\]]+)(?::(?P<port>[0-9]{1,5}))?")
_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+")
_PARAM = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]*")
_VISUAL_SEPARATORS = str.maketrans("", "", "-.() ")


class SipUriError(ValueError):
    """A URI or header value that does not follow RFC 3261 / RFC 3966."""


@dataclass(frozen=True)
class Uri:
    """A SIP, SIPS or tel URI; names of parameters are lowercased, values percent-decoded."""

    scheme: str
    """``sip``, ``sips`` or ``tel`` (lowercase)."""
    user: str
    """The user part without its parameters (``+14165550123``), or a tel URI's number;
    "" when there is none."""
    host: str = ""
    """Host name or IP address (IPv6 without brackets); "" for tel."""
    port: int | None = None
    user_params: dict[str, str] = field(default_factory=dict)
    """Parameters inside the user part: ``sip:+14165550123;verstat=...@host``."""
    params: dict[str, str] = field(default_factory=dict)
    """URI parameters (``;user=phone``, a tel URI's ``;phone-context``)."""

    def param(self, name: str) -> str | None:
        """``name`` from the user part's parameters, else from the URI's parameters."""
        key = name.lower()
        return self.user_params.get(key, self.params.get(key))


@dataclass(frozen=True)
class NameAddr:
    """One value of a From/To/P-Asserted-Identity header."""

    uri: Uri
    display_name: str | None = None
    """The display name, unquoted and unescaped; None when absent."""
    params: dict[str, str] = field(default_factory=dict)
    """Header parameters (``tag``): never the URI's."""


def parse_uri(text: str) -> Uri:
    """A ``sip:``, ``sips:`` or ``tel:`` URI; SipUriError for anything else."""
    match = _SCHEME.match(text.strip())
    if match is None or match.group(1).lower() not in SCHEMES:
        raise SipUriError("not a sip:, sips: or tel: URI")
    scheme = match.group(1).lower()
    rest = text.strip()[match.end() :]
    if scheme == "tel":
        return _tel_uri(rest)
    rest = rest.split("?", 1)[0]  # URI headers: nothing we use
    user_text, at, hostpart = rest.rpartition("@")
    if at and (not user_text or "@" in user_text or not _USER.fullmatch(user_text)):
        raise SipUriError("malformed user part")
    hostport, *params = hostpart.split(";")
    host, port = parse_host_port(hostport)
    user, *user_params = user_text.split(";") if at else [""]
    return Uri(
        scheme,
        unquote(user.split(":", 1)[0]),  # drop a password
        host,
        port,
        _uri_params(user_params),
        _uri_params(params),
    )


def parse_host_port(text: str) -> tuple[str, int | None]:
    """``host``, ``host:port`` or ``[v6]:port``; IPv6 comes back without brackets."""
    match = _HOST_PORT.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise SipUriError("expected host, host:port or [IPv6]:port")
    host = match.group("host")
    if host.startswith("["):
        host = host[1:-1]
        if not is_ip(host) or ipaddress.ip_address(host).version != 6:
            raise SipUriError(f"[{host}] is not an IPv6 address")
    elif not is_ip(host) and not _HOSTNAME.fullmatch(host):
        raise SipUriError(f"{host!r} is not a host name or IP address")
    port = int(match.group("port")) if match.group("port") else None
    if port is not None and not 1 <= port <= 65535:
        raise SipUriError(f"port {port} is not 1 to 65535")
    return host, port


def parse_values(value: str, *, header_params: bool = True) -> list[NameAddr]:
    """Every comma-separated name-addr / addr-spec of one header value.

    ``header_params=False`` for headers without header parameters (P-Asserted-Identity):
    an addr-spec's ``;params`` then stay with its URI (see the module docstring).
    """
    found: list[NameAddr] = []
    pos = 0
    while True:
        item, pos = _value_at(value, _skip_space(value, pos), header_params)
        found.append(item)
        pos = _skip_space(value, pos)
        if pos == len(value):
            return found
        if value[pos] != ",":
            raise SipUriError(f"unexpected {value[pos]!r} after a value")
        pos += 1


def telephone_number(uri: Uri) -> str | None:
    """The number a tel URI, or a sip URI's user part, holds (visual separators removed).

    A local tel number with a global ``phone-context`` (``tel:5550123;phone-context=+1416``)
    gets that prefix. None when the user part is not a number (``anonymous``, ``alice``).
    """
    number = uri.user.translate(_VISUAL_SEPARATORS)
    digits = number[1:] if number.startswith("+") else number
    if not digits.isdigit() or not 3 <= len(digits) <= 17:
        return None
    context = uri.params.get("phone-context", "")
    if not number.startswith("+") and context.startswith("+"):
        prefix = context.translate(_VISUAL_SEPARATORS)
        if prefix[1:].isdigit():
            number = prefix + number
    return number


def _tel_uri(rest: str) -> Uri:
    number, *params = rest.split(";")
    number = unquote(number)
    if not number or not re.fullmatch(r"\+?[0-9A-Fa-f*#\-.()]+", number):
        raise SipUriError("malformed tel: number")
    return Uri("tel", number, params=_uri_params(params))


def _uri_params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        name, _, val = item.partition("=")
        if not name or not _PARAM.fullmatch(name) or not _PARAM.fullmatch(val):
            raise SipUriError("malformed URI parameter")
        params.setdefault(unquote(name).lower(), unquote(val))
    return params


def _value_at(text: str, pos: int, header_params: bool) -> tuple[NameAddr, int]:
    """The name-addr or addr-spec starting at ``pos``, and where it ends."""
    display: str | None = None
    if text.startswith('"', pos):
        display, pos = _quoted(text, pos)
        pos = _skip_space(text, pos)
    elif not text.startswith("<", pos) and _SCHEME.match(text, pos) is None:
        # a token display name, up to "<"
        end = text.find("<", pos)
        words = text[pos:end].split() if end >= 0 else []
        if not words or not all(_TOKEN.fullmatch(word) for word in words):
            raise SipUriError("malformed display name")
        display, pos = " ".join(words), end
    if text.startswith("<", pos):
        end = text.find(">", pos)
        if end < 0:
            raise SipUriError("missing '>'")
        uri = parse_uri(text[pos + 1 : end])
        params, pos = _header_params(text, end + 1)
        return NameAddr(uri, display, params), pos
    if display is not None:
        raise SipUriError("a display name must be followed by '<'")
    end = _find_any(text, pos, ",;" if header_params else ",")
    uri = parse_uri(text[pos:end])
    params, pos = _header_params(text, end) if header_params else ({}, end)
    return NameAddr(uri, None, params), pos


def _header_params(text: str, pos: int) -> tuple[dict[str, str], int]:
    params: dict[str, str] = {}
    pos = _skip_space(text, pos)
    while text.startswith(";", pos):
        match = re.compile(r"\s*([A-Za-z0-9\-_.!%*+`'~]+)\s*").match(text, pos + 1)
        if match is None:
            raise SipUriError("malformed header parameter")
        name, pos, val = match.group(1).lower(), match.end(), ""
        if text.startswith("=", pos):
            pos = _skip_space(text, pos + 1)
            if text.startswith('"', pos):
                val, pos = _quoted(text, pos)
            else:
                end = _find_any(text, pos, ",; \t")
                val, pos = text[pos:end], end
        params.setdefault(name, val)
        pos = _skip_space(text, pos)
    return params, pos


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """The unescaped content of the quoted-string at ``pos`` and the index after it."""
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif char == '"':
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    raise SipUriError("unterminated quoted string")


def _find_any(text: str, pos: int, chars: str) -> int:
    for i in range(pos, len(text)):
        if text[i] in chars:
            return i
    return len(text)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def is_ip(text: str) -> bool:
    """Whether ``text`` is an IPv4 or IPv6 address (not a host name)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
