"""The SIP edge: the only package that imports pjsua2.

- ``events``: typed events the pjsua2 thread hands to asyncio;
- ``uri``: the one RFC 3261 parser of SIP/SIPS/tel URIs and From/P-Asserted-Identity values;
- ``policy``: pure decisions on an incoming INVITE (source network, busy, caller ID, verstat,
  whose identity headers are trusted);
- ``refusals``: refused INVITEs logged once per source per minute, with a count;
- ``frames``: fast copies between pjsua2 frame buffers and ``bytes``;
- ``media``: per-call audio buffers and the conference-bridge port that feeds them;
- ``registration``: register mode's account (digest, refresh), its state, trusted registrar;
- ``transport``: the UDP/TCP/TLS transport from ``[sip]``;
- ``gate``: a pjsip module ahead of pjsua: new INVITEs from outside allowed_networks (403) or over
  a rate (503), OPTIONS while draining (503), answered before any call or socket exists;
- ``endpoint``: ``SipEndpoint``, the one thread that makes every pjsua2 call.
"""
