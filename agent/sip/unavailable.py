"""``OptionsRefusal``: while the agent drains, OPTIONS pings get 503 instead of pjsua's 200.

pjsua answers an out-of-dialog OPTIONS itself (its ``mod-pjsua-options``: 200 OK and its
capabilities), and pjsua2 has no hook on it. Trunks, proxies and SBCs ping with OPTIONS to
decide where calls go (Kamailio's dispatcher and OpenSIPS count only a 2xx as up), so a
draining agent must answer that it is unavailable. pjsua's own shutdown switch
(``libStopWorkerThreads``) is no help: it answers 480 Temporarily Unavailable to OPTIONS and
INVITE alike (tried with ``tests/test_drain.py``), and a proxy hands a 4xx back to the caller
instead of trying another agent, where a 5xx makes it fail over.

Hence a small pjsip module, through pjsip's C API (ctypes, the symbols ``_pjsua2`` exports):
priority 63, just above ``mod-pjsua-options`` (64, ``PJSIP_MOD_PRIORITY_APPLICATION``), it
answers OPTIONS with a stateless 503 and passes every other request on. In-dialog requests
never reach it (pjsip's dialog layer, priority 32, takes them first); INVITEs are refused by
the endpoint's policy (``agent.sip.policy``), which adds Retry-After and logs them.

The pjsua2 rules (``agent.sip.endpoint``) hold: ``register`` runs on the pjsua2 thread, the
callback runs there (inside ``libHandleEvents``), and ``libDestroy`` unregisters the module;
this object keeps the C struct and the callback alive, so it must outlive ``libDestroy``.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

from pjsua2 import _pjsua2

log = logging.getLogger(__name__)

SERVICE_UNAVAILABLE = 503
PRIORITY = 63
"""``PJSIP_MOD_PRIORITY_APPLICATION - 1``: called before pjsua's OPTIONS handler."""

_ON_RX_REQUEST = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
_UNUSED = ctypes.c_void_p  # the module's other callbacks: NULL


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
    lib.pjsip_rx_data_get_info.restype = ctypes.c_char_p
    lib.pjsip_rx_data_get_info.argtypes = (ctypes.c_void_p,)
    lib.pjsip_endpt_respond_stateless.restype = ctypes.c_int
    lib.pjsip_endpt_respond_stateless.argtypes = (
        ctypes.c_void_p,  # pjsip_endpoint *
        ctypes.c_void_p,  # pjsip_rx_data *
        ctypes.c_int,  # status code
        ctypes.c_void_p,  # const pj_str_t *reason: NULL, the standard phrase
        ctypes.c_void_p,  # const pjsip_hdr *extra headers: none
        ctypes.c_void_p,  # const pjsip_msg_body *: none
    )
    return lib


def request_method(info: bytes) -> str:
    """The method of pjsip's ``pjsip_rx_data_get_info`` text ("Request msg OPTIONS/cseq=1
    (rdata0x...)"); "" for anything else."""
    prefix = b"Request msg "
    if not info.startswith(prefix):
        return ""
    return info[len(prefix) :].split(b"/", 1)[0].decode("ascii", "replace")


class OptionsRefusal:
    """A pjsip module answering OPTIONS 503; see the module docstring."""

    def __init__(self) -> None:
        self._lib = _pjsip()
        self._callback = _ON_RX_REQUEST(self._on_rx_request)
        self._name = ctypes.create_string_buffer(b"mod-agent-draining")
        self._module = _PjsipModule()
        self._module.name = _PjStr(ctypes.cast(self._name, ctypes.c_char_p), len(self._name.value))
        self._module.id = -1
        self._module.priority = PRIORITY
        self._module.on_rx_request = self._callback
        self._endpt: int | None = None
        self.refused = 0
        """OPTIONS answered 503 so far."""

    def register(self) -> None:
        """Start answering OPTIONS 503 (pjsua2 thread, after ``libStart``)."""
        endpt = self._lib.pjsua_get_pjsip_endpt()
        status = self._lib.pjsip_endpt_register_module(endpt, ctypes.byref(self._module))
        if status != 0:
            raise OSError(f"pjsip_endpt_register_module failed (pj_status_t {status})")
        self._endpt = endpt

    def _on_rx_request(self, rdata: int) -> int:
        """pjsip's ``on_rx_request``: 1 (handled) for OPTIONS, 0 passes the request on."""
        try:
            if self._endpt is None or request_method(self._info(rdata)) != "OPTIONS":
                return 0
            self._lib.pjsip_endpt_respond_stateless(
                self._endpt, rdata, SERVICE_UNAVAILABLE, None, None, None
            )
            self.refused += 1
            return 1
        except Exception:  # never unwind into pjsip; pjsua then answers as usual
            log.exception("answering OPTIONS 503 failed")
            return 0

    def _info(self, rdata: int) -> bytes:
        info: bytes | None = self._lib.pjsip_rx_data_get_info(rdata)
        return info or b""
