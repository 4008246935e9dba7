"""``RequestGate``: a pjsip module that answers some requests before pjsua sees them.

Why one is needed. pjsua gives every new INVITE a call and an RTP/RTCP socket pair *before*
``onIncomingCall`` lets the agent refuse it; pjlib's socket queue has 64 slots, and a closed
socket's slot is freed only 500 ms later. So a flood of INVITEs, even refused ones, aborted
the agent (``pj_ioqueue_register_sock2: Assertion `!pj_list_empty(&ioqueue->free_list)'``)
above about 60 a second (``scripts/sip-flood``). And pjsua answers OPTIONS itself (200 OK),
with no hook in pjsua2, while a draining agent must say 503 so that a trunk or proxy fails
over (Kamailio's dispatcher and OpenSIPS count only a 2xx as up; a 4xx such as pjsua's own
shutdown answer, 480, is handed back to the caller instead).

What it does, statelessly and before any call or socket exists:

* a new INVITE from a source outside ``allowed_networks``: 403 (the same policy and the same
  rate-limited log line as before: ``agent.sip.policy``, ``agent.sip.refusals``);
* a new INVITE from an allowed source while the agent cannot take it (``max_calls`` calls
  up, or draining): 503 with Retry-After (``agent.sip.policy.capacity_refusal``), logged the
  same way. Answered here rather than in ``onIncomingCall`` so that two INVITEs arriving
  together while full both get the 503 a proxy fails over on: pjsua itself answers 486 to
  an INVITE beyond its ``maxCalls``;
* a new INVITE beyond ``MAX_NEW_CALLS_PER_SECOND`` from anywhere (an allowed source can be
  forged on UDP): 503, logged the same way;
* OPTIONS: 503 with Retry-After whenever a new INVITE would get it (full or draining), so a
  load balancer's keep-alive (Kamailio's dispatcher, OpenSIPS's load balancer) stops
  sending calls to this box until a line is free; otherwise pjsua's 200.

Both 503 questions go to ``unavailable`` (the endpoint's), on this same thread: it counts the
calls that ``onIncomingCall`` announced and ``onCallState`` ended, both on the pjsua2 thread
too, so the count needs no lock and the gate and the INVITE policy never disagree about it.

Everything else passes on. In-dialog requests never reach it (pjsip's dialog layer, priority
32, takes them first); retransmitted INVITEs are absorbed by the transaction layer.

The source address is read from ``pjsip_rx_data.pkt_info`` (pjsip/sip_transport.h, pjproject
2.15). Its offset depends on a build setting (``PJSIP_MAX_PKT_LEN``), so it is found from the
first request and checked against what it must hold (the request line at ``packet``, its
length and terminator, an IPv4/IPv6 family whose text form and port match ``src_name`` and
``src_port``); if that check fails, the gate still limits the rate and answers OPTIONS, and
sources are refused later, by ``onIncomingCall``, as before (one WARNING says so); full and
draining INVITEs then too.

Retry-After is added with ``pjsip_retry_after_hdr_create`` from the request's own pool
(``rdata->tp_info.pool``, the struct's first field), in a one-header list that
``pjsip_endpt_respond_stateless`` copies into its answer.

The pjsua2 rules (``agent.sip.endpoint``) hold: ``register`` runs on the pjsua2 thread, the
callback runs there (inside ``libHandleEvents``), and ``libDestroy`` unregisters the module;
this object keeps the C struct and the callback alive, so it must outlive ``libDestroy``.
"""

from __future__ import annotations

import collections
import ctypes
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from pjsua2 import _pjsua2

from agent.sip.policy import Refusal

log = logging.getLogger(__name__)

FORBIDDEN, SERVICE_UNAVAILABLE = 403, 503
PRIORITY = 63
"""``PJSIP_MOD_PRIORITY_APPLICATION - 1``: called before pjsua's call and OPTIONS handlers."""

MAX_NEW_CALLS_PER_SECOND = 10
"""New INVITEs let through to pjsua per second: each may hold two of pjlib's 64 socket slots
for 500 ms after it ends, so this keeps well clear of the limit (a 4-line agent never needs
more; a trunk told 503 tries again or elsewhere)."""

_ON_RX_REQUEST = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
_UNUSED = ctypes.c_void_p  # the module's other callbacks: NULL
_POINTER = ctypes.sizeof(ctypes.c_void_p)
_PACKET = 38 * _POINTER + 16
"""Offset of ``pkt_info.packet``: ``tp_info`` (pool, transport, tp_data, then the op key:
pjlib's 34-pointer ``pj_ioqueue_op_key_t`` and the rdata pointer), then the timestamp."""
_PACKET_SIZES = (4000, 8000, 16000, 32000, 65536, 2000, 4096, 8192, 16384, 32768, 65535)
"""Values of ``PJSIP_MAX_PKT_LEN`` tried, the default first."""

Refused = tuple[str, int, str]
"""(source IP, status, reason) of a request the gate answered: for the refusal log."""

Unavailable = Callable[[], Refusal | None]
"""The endpoint's question (pjsua2 thread): the 503 a new call gets now, or None."""


class _PjStr(ctypes.Structure):
    _fields_ = (("ptr", ctypes.c_char_p), ("slen", ctypes.c_ssize_t))


class _PjsipModule(ctypes.Structure):
    """``struct pjsip_module`` (pjsip/sip_module.h, pjproject 2.15)."""

    _fields_ = (
        ("prev", ctypes.c_void_p),
        ("next", ctypes.c_void_p),
        ("name", _PjStr),
        ("id", ctypes.c_int),
        ("priority", ctypes.c_int),
        ("load", _UNUSED),
        ("start", _UNUSED),
        ("stop", _UNUSED),
        ("unload", _UNUSED),
        ("on_rx_request", _ON_RX_REQUEST),
        ("on_rx_response", _UNUSED),
        ("on_tx_request", _UNUSED),
        ("on_tx_response", _UNUSED),
        ("on_tsx_state", _UNUSED),
    )


def _pjsip() -> Any:
    """The pjsip functions of the library pjsua2 already loaded (same handle, same state)."""
    lib = ctypes.CDLL(_pjsua2.__file__)
    lib.pjsua_get_pjsip_endpt.restype = ctypes.c_void_p
    lib.pjsua_get_pjsip_endpt.argtypes = ()
    lib.pjsip_endpt_register_module.restype = ctypes.c_int
    lib.pjsip_endpt_register_module.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
    lib.pjsua_call_get_max_count.restype = ctypes.c_uint
    lib.pjsua_call_get_max_count.argtypes = ()
    lib.pjsip_rx_data_get_info.restype = ctypes.c_char_p
    lib.pjsip_rx_data_get_info.argtypes = (ctypes.c_void_p,)
    lib.pjsip_endpt_respond_stateless.restype = ctypes.c_int
    lib.pjsip_endpt_respond_stateless.argtypes = (
        ctypes.c_void_p,  # pjsip_endpoint *
        ctypes.c_void_p,  # pjsip_rx_data *
        ctypes.c_int,  # status code
        ctypes.c_void_p,  # const pj_str_t *reason: NULL, the standard phrase
        ctypes.c_void_p,  # const pjsip_hdr *extra headers: a list head, or NULL
        ctypes.c_void_p,  # const pjsip_msg_body *: none
    )
    lib.pjsip_retry_after_hdr_create.restype = ctypes.c_void_p
    lib.pjsip_retry_after_hdr_create.argtypes = (ctypes.c_void_p, ctypes.c_int)
    lib.pj_list_insert_before.restype = None
    lib.pj_list_insert_before.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
    return lib


def call_slots() -> int:
    """Calls pjsua holds at once after ``libInit``: ``maxCalls``, lowered by pjsua itself to
    the ``PJSUA_MAX_CALLS`` the library was built with."""
    return int(_pjsip().pjsua_call_get_max_count())


class _HeaderList(ctypes.Structure):
    """A ``pjsip_hdr`` list head: ``prev``/``next`` (``PJ_DECL_LIST_MEMBER``), then room for
    the rest of a ``pjsip_hdr`` (type, name, sname, vptr), never read through the head."""

    _fields_ = (("prev", ctypes.c_void_p), ("next", ctypes.c_void_p), ("rest", ctypes.c_void_p * 8))


def request_method(info: bytes) -> str:
    """The method of pjsip's ``pjsip_rx_data_get_info`` text ("Request msg OPTIONS/cseq=1
    (rdata0x...)"); "" for anything else."""
    prefix = b"Request msg "
    if not info.startswith(prefix):
        return ""
    return info[len(prefix) :].split(b"/", 1)[0].decode("ascii", "replace")


def _align(offset: int, to: int) -> int:
    return (offset + to - 1) // to * to


def source_offsets(rdata: int, method: str) -> tuple[int, int] | None:
    """Offsets of ``pkt_info.src_name`` and ``src_port`` in this build's ``pjsip_rx_data``,
    found from a received request and checked (see the module docstring); None if unsure."""
    packet = ctypes.string_at(rdata + _PACKET, len(method) + 1)
    if packet != method.encode("ascii") + b" ":
        return None
    text_length = len(ctypes.string_at(rdata + _PACKET))
    for size in _PACKET_SIZES:
        length_at = _align(_PACKET + size + 4, ctypes.sizeof(ctypes.c_ssize_t))
        if ctypes.c_ssize_t.from_address(rdata + length_at).value != text_length:
            continue
        address_at = length_at + ctypes.sizeof(ctypes.c_ssize_t)
        name_at = address_at + 28 + 4  # pj_sockaddr (a union the size of sockaddr_in6), int
        port_at = _align(name_at + 46, 4)  # PJ_INET6_ADDRSTRLEN
        if _address_matches(rdata, address_at, name_at, port_at):
            return name_at, port_at
    return None


def _address_matches(rdata: int, address_at: int, name_at: int, port_at: int) -> bool:
    family = ctypes.c_uint16.from_address(rdata + address_at).value
    port = socket.ntohs(ctypes.c_uint16.from_address(rdata + address_at + 2).value)
    if family == socket.AF_INET:
        raw = ctypes.string_at(rdata + address_at + 4, 4)
    elif family == socket.AF_INET6:
        raw = ctypes.string_at(rdata + address_at + 8, 16)
    else:
        return False
    try:
        name = ctypes.string_at(rdata + name_at).decode("ascii")
        named = ipaddress.ip_address(name)
    except (UnicodeDecodeError, ValueError):
        return False
    return named.packed == raw and ctypes.c_int.from_address(rdata + port_at).value == port


class RateWindow:
    """At most ``limit`` events in any ``seconds``-long window (pure; the clock injected)."""

    def __init__(
        self, limit: int, seconds: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.seconds = seconds
        self._clock = clock
        self._times: collections.deque[float] = collections.deque()

    def allow(self) -> bool:
        now = self._clock()
        while self._times and now - self._times[0] >= self.seconds:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True


class RequestGate:
    """The pjsip module; see the module docstring.

    ``refuse_source(ip)`` returns the reason to refuse a new INVITE from ``ip`` with 403
    (``agent.sip.policy``), or None; ``unavailable()`` the 503 (with its Retry-After) that a
    new call gets now, or None. What the gate answered is collected in ``refused`` for the
    endpoint's pump to log (same thread).
    """

    def __init__(
        self, refuse_source: Callable[[str], str | None], unavailable: Unavailable
    ) -> None:
        self._refuse_source = refuse_source
        self._unavailable = unavailable
        self._lib = _pjsip()
        self._callback = _ON_RX_REQUEST(self._on_rx_request)
        self._name = ctypes.create_string_buffer(b"mod-agent-gate")
        self._module = _PjsipModule()
        self._module.name = _PjStr(ctypes.cast(self._name, ctypes.c_char_p), len(self._name.value))
        self._module.id = -1
        self._module.priority = PRIORITY
        self._module.on_rx_request = self._callback
        self._endpt: int | None = None
        self._offsets: tuple[int, int] | None = None
        self._located = False
        self.new_calls = RateWindow(MAX_NEW_CALLS_PER_SECOND)
        self.refused: list[Refused] = []
        self.options_refused = 0
        """OPTIONS answered 503 (full or draining) since start."""

    def register(self) -> None:
        """Start answering (pjsua2 thread, after ``libStart``)."""
        endpt = self._lib.pjsua_get_pjsip_endpt()
        status = self._lib.pjsip_endpt_register_module(endpt, ctypes.byref(self._module))
        if status != 0:
            raise OSError(f"pjsip_endpt_register_module failed (pj_status_t {status})")
        self._endpt = endpt

    def take_refused(self) -> list[Refused]:
        refused, self.refused = self.refused, []
        return refused

    def _on_rx_request(self, rdata: int) -> int:
        """pjsip's ``on_rx_request``: 1 (answered here) or 0 (passed on)."""
        try:
            if self._endpt is None:
                return 0
            method = request_method(self._lib.pjsip_rx_data_get_info(rdata) or b"")
            if method == "OPTIONS":
                busy = self._unavailable()
                if busy is None:
                    return 0  # pjsua answers 200
                self.options_refused += 1
                return self._answer(rdata, busy.status, busy.retry_after)
            if method != "INVITE":
                return 0
            return self._on_invite(rdata, self._source(rdata, method))
        except Exception:  # never unwind into pjsip; pjsua then handles it as usual
            log.exception("the SIP request gate failed on a request")
            return 0

    def _on_invite(self, rdata: int, source: str | None) -> int:
        """A new INVITE: 403, 503 (full, draining, too many) or 0 (on to pjsua).

        Without its source (unread), only the rate is limited here: ``onIncomingCall``
        applies the rest of the policy, so a stranger never learns more than a 403 says."""
        if source is not None:
            reason = self._refuse_source(source)
            if reason is not None:
                self.refused.append((source, FORBIDDEN, reason))
                return self._answer(rdata, FORBIDDEN)
            busy = self._unavailable()
            if busy is not None:
                self.refused.append((source, busy.status, busy.reason))
                return self._answer(rdata, busy.status, busy.retry_after)
        if not self.new_calls.allow():
            why = f"over {MAX_NEW_CALLS_PER_SECOND} new calls a second"
            self.refused.append((source or "an unread source", SERVICE_UNAVAILABLE, why))
            return self._answer(rdata, SERVICE_UNAVAILABLE)
        return 0

    def _answer(self, rdata: int, status: int, retry_after: int | None = None) -> int:
        """Answer statelessly; with a ``Retry-After: <retry_after>`` header when given."""
        headers = None
        if retry_after is not None:
            pool = ctypes.c_void_p.from_address(rdata).value  # rdata->tp_info.pool
            header = self._lib.pjsip_retry_after_hdr_create(pool, retry_after)
            if header:
                head = _HeaderList()
                head.prev = head.next = ctypes.addressof(head)  # pj_list_init
                self._lib.pj_list_insert_before(ctypes.addressof(head), header)
                headers = ctypes.addressof(head)
        self._lib.pjsip_endpt_respond_stateless(self._endpt, rdata, status, None, headers, None)
        return 1

    def _source(self, rdata: int, method: str) -> str | None:
        if not self._located:
            self._located = True
            self._offsets = source_offsets(rdata, method)
            if self._offsets is None:
                log.warning(
                    "cannot read request sources from this pjsip build: INVITEs from "
                    "outside allowed_networks are refused after pjsua sets up a call"
                )
        if self._offsets is None:
            return None
        name_at, _ = self._offsets
        return ctypes.string_at(rdata + name_at).decode("ascii")
