"""The SIP transport from ``[sip]``: UDP, TCP or TLS (the pjsua2 wheel is built with TLS).

TLS secures the signalling only; the media stays plain RTP (there is no SRTP here).

pjsip sends every name in its CA list to each TLS peer, and with the pjsua2 2.15.1 wheel
a handshake whose list is too long (the system's 144-CA bundle; 80 CAs) stalls without an
error, so there is no default CA list: ``tls_ca_file`` names the few CAs needed
(``agent.config`` refuses more than 40: 40 worked, 80 stalled).
"""

from __future__ import annotations

from typing import Any

import pjsua2 as pj

from agent.config_schema import SipSettings

TRANSPORT_KINDS = {
    "udp": pj.PJSIP_TRANSPORT_UDP,
    "tcp": pj.PJSIP_TRANSPORT_TCP,
    "tls": pj.PJSIP_TRANSPORT_TLS,
}

TLS_PROTOCOLS = pj.PJ_SSL_SOCK_PROTO_TLS1_2 | pj.PJ_SSL_SOCK_PROTO_TLS1_3
"""TLS 1.2 and 1.3 only."""


def transport_config(settings: SipSettings) -> tuple[int, Any]:
    """The pjsua2 transport type and ``TransportConfig`` to create (pjsua2 thread)."""
    tcfg = pj.TransportConfig()
    tcfg.boundAddress = settings.listen_address
    tcfg.publicAddress = settings.listen_address
    tcfg.port = settings.port
    if settings.transport == "tls":
        tls = tcfg.tlsConfig
        tls.certFile = settings.tls_certificate
        tls.privKeyFile = settings.tls_private_key
        tls.proto = TLS_PROTOCOLS
        tls.CaListFile = settings.tls_ca_file
        tls.verifyClient = settings.tls_verify_client
        tls.requireClientCert = settings.tls_verify_client
        # In register mode the agent connects to the registrar: check who answers.
        tls.verifyServer = settings.mode == "register"
    return TRANSPORT_KINDS[settings.transport], tcfg
