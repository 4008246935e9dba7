"""The configuration schema: frozen dataclasses, one per TOML section, with defaults.

Every field has an embedded default, so ``Config()`` is a complete, valid configuration
and the agent runs with no file at all. Ranges and allowed values live in each field's
``metadata`` (see ``between`` and ``one_of``); ``agent.config`` reads them when it
validates a file. Import these names from ``agent.config``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from agent.errors import ConfigError, Problem

Locale = Literal["en-US", "en-CA"]

CALLS_PER_PROCESS = 4
"""Calls one agent process can hold: the pinned ``pjsua2-python`` wheel is built with
``PJSUA_MAX_CALLS = 4``, and pjsua quietly lowers a larger ``maxCalls`` to it (a fifth
INVITE then gets pjsua's own 486 Busy Here). ``tests/test_sip_endpoint.py`` checks it."""

ESCALATION_REASONS: tuple[str, ...] = (
    "unverified",
    "ambiguous",
    "not-mobile",
    "skill-disabled",
    "no-match",
    "nlu-unavailable",
    "caller-request",
    "out-of-scope",
    "no-invoices",
    "internal-error",
    "sms-delayed",
    "sms-failed",
    "sms-opted-out",
    "caller-id-failed",
    "sms-limit",
    "repeat-limit",
    "asr-failed",
    "tts-failed",
    "db-unavailable",
)
"""Why a call is handed to a person; each may have its own ``[escalation.reasons.X]``."""


@dataclass(frozen=True)
class Range:
    """An allowed numeric interval; ``low_open`` excludes ``low`` itself."""

    low: float
    high: float
    low_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def __str__(self) -> str:
        if self.low_open:
            return f"more than {self.low:g} and at most {self.high:g}"
        return f"{self.low:g} to {self.high:g}"


def between(low: float, high: float, *, low_open: bool = False) -> dict[str, object]:
    """Field metadata: the value must lie in ``[low, high]`` (or ``(low, high]``)."""
    return {"range": Range(low, high, low_open)}


def one_of(*choices: str) -> dict[str, object]:
    """Field metadata: the string value must be one of ``choices``."""
    return {"choices": choices}


@dataclass(frozen=True)
class Secret:
    """A secret given literally or as {env = "NAME"} in TOML."""

    literal: str | None = None
    """The secret itself, written in the file (fine for a lab, not for production)."""

    env: str | None = None
    """Name of the environment variable holding the secret, read when it is needed."""

    def reveal(self) -> str:
        """The secret's value; raises ``ConfigError`` if its variable is not set."""
        if self.env is None:
            return self.literal or ""
        value = os.environ.get(self.env)
        if value is None:
            raise ConfigError(
                [Problem("environment", None, f"environment variable {self.env} is not set")]
            )
        return value

    def __repr__(self) -> str:
        return f"Secret(env={self.env})" if self.env is not None else "Secret(***)"

    __str__ = __repr__


@dataclass(frozen=True)
class AgentSettings:
    """``[agent]``: who the agent speaks for and how it introduces itself."""

    company_name: str = "Maple Leaf Home Services"
    """Spoken in the greeting and written in every text message."""

    company_phone: str = "+14165550100"
    """The business's public number, normalised to E.164."""

    greeting: str = "Thanks for calling {company}."
    """First thing the caller hears; may contain ``{company}``."""

    ai_disclosure: str = "I'm the company's automated assistant, and this call may be recorded."
    """Said right after the greeting: callers are told they speak with a machine."""

    time_zone: str = "America/Toronto"
    """IANA time zone for due dates and link expiry spoken to callers."""

    locale: Locale = "en-US"
    """How amounts and dates are spoken."""

    default_region: str = field(default="US", metadata=one_of("US", "CA"))
    """Region for phone numbers written without ``+1``."""

    instance: str = ""
    """This box's name among agents sharing one database, stored on each of its call rows;
    at start it closes its own calls a kill left open, never another box's live ones. Empty:
    ``<hostname>:<[sip] port>``. Unique per box and unchanged across restarts."""


@dataclass(frozen=True)
class PaymentCollectionSettings:
    """``[agents.default.skills.payment_collection]``: the invoice-payment skill."""

    enabled: bool = True
    """Off: callers asking to pay are escalated with reason ``skill-disabled``."""

    max_invoices_read: int = field(default=5, metadata=between(1, 10))
    """At most this many open invoices are read out to one caller."""

    require_mobile: bool = True
    """Only text links to numbers the billing data marks as mobile."""

    disclose_amounts: Literal["verified", "attested"] = "verified"
    """``verified``: amounts and dates are read to any caller verified by number.
    ``attested``: only when the caller ID came with STIR/SHAKEN ``verstat=TN-Validation-Passed``;
    other verified callers still get the link texted to the number on file, but hear no amount
    or date and choose among several invoices by position only."""


@dataclass(frozen=True)
class EscalationRoute:
    """Where one escalation reason transfers to, and what is said first."""

    target: str
    """A ``sip:``/``sips:`` URI or an E.164 phone number."""

    message: str
    """Spoken before the transfer."""


@dataclass(frozen=True)
class EscalationSettings:
    """``[escalation]``: handing the call to a person."""

    target: str = "sip:csr@127.0.0.1:5070"
    """Default transfer target: a ``sip:``/``sips:`` URI or a phone number (made E.164)."""

    message: str = "Let me transfer you to a member of our team. One moment, please."
    """Default words spoken before a transfer."""

    callback_message: str = (
        "I couldn't reach a team member right now. Someone will call you back shortly. Goodbye."
    )
    """Spoken when the transfer fails, before hanging up."""

    mode: Literal["warm", "blind"] = "warm"
    """``warm``: the agent calls the target itself while the caller holds, tells whoever
    answers who is calling and why, then joins them (REFER with Replaces, or the agent
    bridges the two calls when that is refused); nobody answering within ``ring_seconds``
    means the callback message. ``blind``: a plain REFER to the caller's side (a queue or
    hunt group that cannot be briefed)."""

    ring_seconds: int = field(default=20, metadata=between(5, 120))
    """Warm transfer: how long the team member's line may ring before the caller is told
    that nobody could take the call (and a callback is requested)."""

    reasons: Mapping[str, EscalationRoute] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    """Per-reason overrides, fully resolved (missing fields inherited); read-only."""

    def route(self, reason: str) -> EscalationRoute:
        """Where to transfer for ``reason`` (one of ``ESCALATION_REASONS``)."""
        if reason not in ESCALATION_REASONS:
            raise ValueError(f"unknown escalation reason {reason!r}")
        return self.reasons.get(reason, EscalationRoute(self.target, self.message))


@dataclass(frozen=True)
class DatabaseSettings:
    """``[database]``: where invoices, paylinks and the call audit live."""

    url: str = "sqlite:///var/voice-agent.db"
    """Peewee database URL; a relative SQLite path is relative to the working directory."""

    keep_call_events_days: int = field(default=400, metadata=between(30, 3650))
    """How long a call's audit trail (its events) is kept after the call ended; older events
    are deleted by ``voice-agent db prune`` and daily by ``voice-agent run``. Call records,
    texts, payment links, payments and opt-outs are never pruned."""


@dataclass(frozen=True)
class NluSettings:
    """``[nlu]``: the Rasa intent server."""

    url: str = "http://127.0.0.1:5005"
    """Base URL of the NLU HTTP server."""

    timeout_seconds: float = field(default=2.0, metadata=between(0, 30, low_open=True))
    """Per-request timeout; past it the call escalates with ``nlu-unavailable``."""

    confidence_threshold: float = field(default=0.55, metadata=between(0, 1))
    """Intents below this confidence count as not understood."""

    manage: bool = True
    """Start and stop the NLU server with the agent (False: it is run separately)."""

    model_dir: str = "var/nlu-models"
    """Where trained NLU models are kept; relative to the working directory."""

    startup_timeout_seconds: float = field(default=180.0, metadata=between(1, 1800))
    """How long a managed NLU server may take to become ready."""

    venv: str = ".venv-nlu"
    """The Python environment the managed NLU server runs from."""

    auth_token_file: str = "var/nlu-token"
    """File holding the NLU server's secret (relative to the working directory), mode 0600.

    The server runs with it as ``--auth-token`` and ``--jwt-secret``; the agent signs every
    request with it and uses a server only after it proved it knows it (``agent.nlu.proof``).
    Created with 32 random bytes by ``scripts/setup`` and by a managed server when missing."""


@dataclass(frozen=True)
class KannelSettings:
    """``[sms.kannel]``: Kannel's sendsms HTTP interface."""

    sendsms_url: str = "http://127.0.0.1:13013/cgi-bin/sendsms"
    """Kannel's sendsms endpoint."""

    username: str = "voiceagent"
    """sendsms-user username."""

    password: Secret = Secret(env="KANNEL_PASSWORD")
    """sendsms-user password."""

    sender: str = "+14165550100"
    """The ``from`` number or short code."""

    dlr_url: str = ""
    """Where Kannel sends delivery reports; empty: ``[web] callback_base_url`` +
    ``/sms/kannel/dlr``. The agent appends ``?id=...&status=%d`` itself."""

    allowed_networks: tuple[str, ...] = ("127.0.0.0/8",)
    """Networks (CIDR) Kannel's callbacks (delivery reports, inbound texts) may come from;
    anything else gets HTTP 403 (on top of ``callback_secret``)."""

    callback_secret: Secret = Secret(env="KANNEL_CALLBACK_SECRET")
    """Authenticates Kannel's callbacks: each dlr-url carries an HMAC of the outbox id keyed
    from it, and the ``sms-service`` ``get-url`` must carry it as ``key=``; at least 16
    characters, required with the kannel driver. Not the sendsms password."""


@dataclass(frozen=True)
class TwilioSettings:
    """``[sms.twilio]``: Twilio's Messages API."""

    account_sid: str = ""
    """Account SID (``AC...``); required with the twilio driver."""

    auth_token: Secret = Secret(env="TWILIO_AUTH_TOKEN")
    """Auth token."""

    from_number: str = ""
    """The sending number; required with the twilio driver."""

    api_base: str = "https://api.twilio.com"
    """API root (changed only for tests)."""


@dataclass(frozen=True)
class SmsSettings:
    """``[sms]``: how payment links are texted."""

    driver: Literal["log", "kannel", "twilio"] = "log"
    """``log`` only writes the message to the log (no text is sent)."""

    template: str = (
        "{company}: pay invoice {invoice} ({amount}) securely at {url} Reply STOP to opt out."
    )
    """Message text; placeholders ``{company}``, ``{invoice}``, ``{amount}``, ``{url}``."""

    kannel: KannelSettings = field(default_factory=KannelSettings)
    """Used when ``driver`` is ``kannel``."""

    twilio: TwilioSettings = field(default_factory=TwilioSettings)
    """Used when ``driver`` is ``twilio``."""

    send_wait_seconds: float = field(default=5.0, metadata=between(0, 60, low_open=True))
    """How long a caller waits for the gateway to accept the text before hearing that it
    is delayed (it stays queued and is sent later)."""

    send_timeout_seconds: float = field(default=10.0, metadata=between(1, 120))
    """Time limit of one request to the gateway; past it the attempt counts as failed."""

    max_attempts: int = field(default=6, metadata=between(1, 50))
    """Send attempts per text before it is marked failed."""

    retry_first_seconds: float = field(default=30.0, metadata=between(0.1, 3600))
    """Wait before the first retry; each later retry waits twice as long as the one before."""

    retry_max_seconds: float = field(default=900.0, metadata=between(0.1, 86400))
    """The longest wait between two attempts."""

    max_payment_texts_per_number_per_day: int = field(default=3, metadata=between(1, 50))
    """Payment texts one number may get from calls in any 24 hours (rolling; blocked ones
    do not count); past it the caller is offered a person (reason ``sms-limit``), so a
    spoofed caller ID cannot have the agent flood a customer with texts. ``voice-agent sms
    retry --new-link`` (an admin's decision) is not limited, but its texts count."""

    body_key_file: str = "var/outbox.key"
    """The key that seals each text in the outbox table (it carries a working payment link
    until sent): made 0600 on first use, kept outside the database and backed up apart from
    it. The systemd credential ``outbox-key`` (``$CREDENTIALS_DIRECTORY``) takes precedence."""


@dataclass(frozen=True)
class PaylinkSettings:
    """``[paylinks]``: the secure payment links that are texted."""

    base_url: str = "http://127.0.0.1:8080/pay/"
    """Links are this URL followed by the token; no query string."""

    lifetime_hours: float = field(default=72.0, metadata=between(0.25, 720))
    """How long a link stays usable."""

    token_bytes: int = field(default=32, metadata=between(32, 64))
    """Random bytes in each link's token."""


@dataclass(frozen=True)
class AdminSettings:
    """``[admin]``: the admin listener in ``voice-agent run`` (``/metrics`` for Prometheus and
    the owner's dashboard), apart from the public pay pages."""

    enabled: bool = True
    """False: no admin listener (no metrics, no dashboard)."""

    listen_address: str = "127.0.0.1"
    """The address it listens on; keep it on loopback or a management network."""

    port: int = field(default=8081, metadata=between(0, 65535))
    """The TCP port it listens on; 0: a free port the system picks (shown at start)."""

    password_hash: Secret = Secret(env="VOICE_AGENT_ADMIN_PASSWORD_HASH")
    """The dashboard password's hash (``voice-agent admin password``), in the file or as
    {env = "NAME"}. Unset: the dashboard is closed; ``/metrics`` needs no password."""


@dataclass(frozen=True)
class WebSettings:
    """``[web]``: the HTTP service in ``voice-agent run`` (pay pages, webhooks, callbacks)."""

    listen_address: str = "127.0.0.1"
    """The address it listens on; put a TLS reverse proxy in front for the internet."""

    port: int = field(default=8080, metadata=between(1, 65535))
    """The TCP port it listens on."""

    callback_base_url: str = "http://127.0.0.1:8080"
    """Where SMS gateways and the payment processor reach this service (delivery reports,
    inbound texts, webhooks); the paths are appended to it."""

    lookups_per_minute: int = field(default=20, metadata=between(1, 10000))
    """Pay-page look-ups allowed per client address per minute (then HTTP 429)."""

    trusted_proxies: tuple[str, ...] = ()
    """Networks of reverse proxies whose ``X-Forwarded-For`` names the real client."""


@dataclass(frozen=True)
class StripeSettings:
    """``[payments.stripe]``: Stripe Checkout (the hosted page takes the card)."""

    secret_key: Secret = Secret(env="STRIPE_SECRET_KEY")
    """API secret key (``sk_live_...`` or ``sk_test_...``); required with the stripe processor."""

    webhook_secret: Secret = Secret(env="STRIPE_WEBHOOK_SECRET")
    """The webhook endpoint's signing secret (``whsec_...``); required with the stripe processor."""

    api_base: str = "https://api.stripe.com"
    """API root (changed only for tests)."""

    checkout_minutes: int = field(default=30, metadata=between(30, 1440))
    """How long a checkout page stays open (Stripe allows 30 minutes to 24 hours)."""

    webhook_tolerance_seconds: int = field(default=300, metadata=between(10, 3600))
    """Webhook events signed longer ago than this are rejected (replay protection)."""


@dataclass(frozen=True)
class PortalSettings:
    """``[payments.portal]``: the business's own payment portal."""

    url_template: str = ""
    """Where "Pay now" leads; placeholders ``{invoice}`` (required), ``{amount}``,
    ``{currency}``, URL-encoded. Required with the portal processor."""


@dataclass(frozen=True)
class PaymentSettings:
    """``[payments]``: what the pay page's "Pay now" button does."""

    processor: Literal["none", "stripe", "portal", "demo"] = "none"
    """``none``: the page shows the invoice and asks the customer to call to pay. ``demo``:
    a test checkout page served by the agent itself, which never charges anything; refused
    (``config check``, ``run``) unless the database holds only the demo company's data."""

    stripe: StripeSettings = field(default_factory=StripeSettings)
    """Used when ``processor`` is ``stripe``."""

    portal: PortalSettings = field(default_factory=PortalSettings)
    """Used when ``processor`` is ``portal``."""


@dataclass(frozen=True)
class SipSettings:
    """``[sip]``: the telephony side."""

    listen_address: str = "127.0.0.1"
    """IP address to listen on."""

    port: int = field(default=5060, metadata=between(1, 65535))
    """SIP port."""

    transport: Literal["udp", "tcp", "tls"] = "udp"
    """SIP transport."""

    max_calls: int = field(default=4, metadata=between(1, CALLS_PER_PROCESS))
    """Concurrent calls; more are refused with 503 (a proxy tries another box). At most
    ``CALLS_PER_PROCESS``: for more calls on one machine, run a second agent behind the
    proxy (README "Running more than one box")."""

    max_call_seconds: int = field(default=600, metadata=between(10, 7200))
    """A call lasting this long is ended with a short goodbye (or its transfer goes ahead)."""

    drain_seconds: int = field(default=120, metadata=between(0, 3600))
    """On SIGTERM, how long calls in progress may go on while new calls and OPTIONS get 503;
    the calls still up then hear a short goodbye. 0: the goodbye at once. Keep systemd's
    ``TimeoutStopSec`` above this plus 30 s (``systemd/voice-agent.service``)."""

    mode: Literal["ip", "register"] = "ip"
    """``ip``: accept calls from ``allowed_networks``; ``register``: register to a registrar."""

    allowed_networks: tuple[str, ...] = ("127.0.0.0/8",)
    """Networks (CIDR) calls are accepted from."""

    trusted_identity_networks: tuple[str, ...] = ()
    """Networks (CIDR) whose P-Asserted-Identity and STIR/SHAKEN ``verstat`` are believed
    (the trunk's); empty means the same as ``allowed_networks``. In register mode the
    registrar's addresses are trusted too. From anywhere else both are ignored (the caller
    ID comes from From, without verstat) and the call's audit records it."""

    registrar: str = ""
    """Registrar ``host[:port]`` or ``sip:`` URI; required when ``mode`` is ``register``."""

    username: str = ""
    """Registration user; required when ``mode`` is ``register``."""

    password: Secret = Secret(env="SIP_PASSWORD")
    """Registration password."""

    realm: str = "*"
    """Digest realm the password is for; ``*`` answers whatever realm the registrar names."""

    register_expires_seconds: int = field(default=300, metadata=between(60, 3600))
    """Registration lifetime asked for; re-registered shortly before it runs out."""

    tls_certificate: str = ""
    """PEM certificate (chain) the agent presents; required when ``transport`` is ``tls``."""

    tls_private_key: str = ""
    """Unencrypted PEM key of ``tls_certificate``; required when ``transport`` is ``tls``."""

    tls_ca_file: str = ""
    """PEM CA certificates (at most 40) that callers' (``tls_verify_client``) and the
    registrar's certificates are checked against; required for either."""

    tls_verify_client: bool = False
    """Accept TLS connections only from peers with a certificate signed by ``tls_ca_file``."""

    require_verstat: bool = False
    """Only treat the caller ID as verified with a STIR/SHAKEN ``verstat=TN-Validation-Passed``."""


@dataclass(frozen=True)
class AsrSettings:
    """``[asr]``: speech recognition (faster-whisper)."""

    model: Literal["base", "tiny.en"] = "base"
    """Whisper model."""

    beam_size: int = field(default=1, metadata=between(1, 5))
    """Decoding beam width; 1 is fastest."""

    workers: int = field(default=0, metadata=between(0, 16))
    """Turns transcribed at once, each on one CPU thread; 0 = one per core, at most 4.
    Measured on 2 cores with base: a burst of four phone turns was done in 317 ms p50 by two
    single-threaded workers against 525 ms by one two-threaded worker, and one turn alone
    took 103 against 115 ms (docs/performance.md, Whisper workers)."""

    endpoint_silence_ms: int = field(default=350, metadata=between(100, 2000))
    """Silence that ends the caller's turn. 350, measured: at 250 ms, 16 of 30 Piper-voiced
    phrases with commas ("Yes, the second one, please.") were cut into two turns over a
    μ-law line; at 300 ms 2 of 30, at 350 ms none. Speculative ASR absorbs most of the
    extra wait."""

    endpoint_complete_ms: int = field(default=300, metadata=between(0, 2000))
    """Silence that ends the turn once the words so far answer the question just asked (a
    yes or a no; words that pick exactly one invoice read): the endpoint listens to meaning
    (``agent.dialog.turn_end``). At most ``endpoint_silence_ms``; set them equal to turn
    the early end off. 300, measured (``python -m agent.bench.endpoint --judged MS``, base):
    at 150 ms a 150 ms hesitation in "it's the… third one", which Whisper hears as "Yeah.",
    would end a confirmation as a yes; at 300 ms no pause is cut that the fixed endpoint
    keeps whole."""

    endpoint_incomplete_ms: int = field(default=1200, metadata=between(100, 3000))
    """Silence that ends the turn when the words so far stop mid-phrase ("the one for a
    hundred and", "March", "um"): a caller thinking inside an amount or a date is not cut
    off. At least ``endpoint_silence_ms``; set them equal to turn the longer wait off."""

    speculative_silence_ms: int = field(default=40, metadata=between(20, 2000))
    """Silence after which Whisper starts on the turn so far, before the endpoint (at most
    ``endpoint_silence_ms``). Its result is used if the caller stays silent. Measured with
    base, one call: 100 ms left the caller waiting ~125 ms for Whisper after the endpoint,
    40 ms ~40 ms, with no measurable loss of accuracy (docs/performance.md); a caller who
    speaks again only costs the thrown-away run."""

    no_input_timeout_seconds: float = field(default=8.0, metadata=between(1, 60))
    """Silence before the agent re-prompts."""

    max_utterance_seconds: float = field(default=15.0, metadata=between(2, 60))
    """A turn is cut off after this long."""

    hotwords: str = ""
    """Words to bias recognition toward (space separated)."""

    bias_to_offered: bool = False
    """While the caller chooses, give Whisper the amounts and dates just read as previous
    text ("$129.50 from March 14, ..."), to bias it toward them."""


@dataclass(frozen=True)
class TtsSettings:
    """``[tts]``: speech synthesis (Piper)."""

    voice: Literal["joe-us"] = "joe-us"
    """Piper voice."""

    length_scale: float = field(default=1.0, metadata=between(0.5, 2.0))
    """Speaking slowness: above 1 is slower."""

    barge_in: bool = True
    """Stop speaking when the caller talks (words that are not a backchannel, or
    ``barge_in_after_ms`` of speech)."""

    barge_in_after_ms: int = field(default=600, metadata=between(200, 3000))
    """Speech over the agent this long stops it before its words are known: longer than
    "uh-huh" or "okay", shorter than waiting for the caller's first pause in a sentence."""


@dataclass(frozen=True)
class Config:
    """The whole validated configuration, built once at start-up."""

    agent: AgentSettings = field(default_factory=AgentSettings)
    """``[agent]``."""

    payment_collection: PaymentCollectionSettings = field(default_factory=PaymentCollectionSettings)
    """``[agents.default.skills.payment_collection]``."""

    escalation: EscalationSettings = field(default_factory=EscalationSettings)
    """``[escalation]`` and its ``[escalation.reasons.*]``."""

    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    """``[database]``."""

    nlu: NluSettings = field(default_factory=NluSettings)
    """``[nlu]``."""

    sms: SmsSettings = field(default_factory=SmsSettings)
    """``[sms]``, ``[sms.kannel]``, ``[sms.twilio]``."""

    paylinks: PaylinkSettings = field(default_factory=PaylinkSettings)
    """``[paylinks]``."""

    web: WebSettings = field(default_factory=WebSettings)
    """``[web]``."""

    admin: AdminSettings = field(default_factory=AdminSettings)
    """``[admin]``."""

    payments: PaymentSettings = field(default_factory=PaymentSettings)
    """``[payments]``, ``[payments.stripe]``, ``[payments.portal]``."""

    sip: SipSettings = field(default_factory=SipSettings)
    """``[sip]``."""

    asr: AsrSettings = field(default_factory=AsrSettings)
    """``[asr]``."""

    tts: TtsSettings = field(default_factory=TtsSettings)
    """``[tts]``."""

    source: Path | None = field(default=None, compare=False)
    """The file this came from; None for the embedded defaults. Not part of equality."""

    def summary(self) -> str:
        """One line for humans, e.g. the output of ``voice-agent config check``."""
        where = str(self.source) if self.source is not None else "embedded defaults"
        skill = self.payment_collection
        count = skill.max_invoices_read
        if skill.enabled:
            phones = "mobile only" if skill.require_mobile else "any phone"
            plural = "invoice" if count == 1 else "invoices"
            payment = f"payment collection on (max {count} {plural}, {phones})"
        else:
            payment = "payment collection off"
        managed = "managed" if self.nlu.manage else "external"
        return (
            f"{where}: OK — {self.agent.company_name}, {payment}, "
            f"SMS driver {self.sms.driver}, NLU {self.nlu.url} ({managed}), "
            f"database {_hide_password(self.database.url)}"
        )


def _hide_password(url: str) -> str:
    """``postgresql://u:pw@host/db`` → ``postgresql://u:***@host/db``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
