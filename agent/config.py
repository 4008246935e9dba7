"""Load and validate the admin configuration (``config/agent.toml``).

``load_config`` reads the file once, checks everything, and returns a frozen ``Config``;
a user mistake raises ``ConfigError`` listing every problem as ``FILE:LINE: message``.
The schema (dataclasses and their defaults) is in ``agent.config_schema`` and is
re-exported here: import from ``agent.config``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import string
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from agent.config_locate import KeyLocator, KeyPath, ProblemLog, describe, show
from agent.config_schema import (
    ESCALATION_REASONS,
    AdminSettings,
    AgentSettings,
    AsrSettings,
    Config,
    DatabaseSettings,
    EscalationRoute,
    EscalationSettings,
    KannelSettings,
    Locale,
    NluSettings,
    PaylinkSettings,
    PaymentCollectionSettings,
    PaymentSettings,
    PortalSettings,
    Range,
    Secret,
    SipSettings,
    SmsSettings,
    StripeSettings,
    TtsSettings,
    TwilioSettings,
    WebSettings,
)
from agent.errors import ConfigError, Problem
from agent.sip.registration import parse_registrar
from agent.sms.segments import MAX_SEGMENTS, count_segments, longest_payment_text, token_chars
from agent.urls import redact as redact_url

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_PATH",
    "ESCALATION_REASONS",
    "AgentSettings",
    "AsrSettings",
    "Config",
    "DatabaseSettings",
    "EscalationRoute",
    "EscalationSettings",
    "KannelSettings",
    "Locale",
    "NluSettings",
    "PaylinkSettings",
    "PaymentCollectionSettings",
    "PaymentSettings",
    "PortalSettings",
    "Secret",
    "SipSettings",
    "WebSettings",
    "AdminSettings",
    "SmsSettings",
    "StripeSettings",
    "TtsSettings",
    "TwilioSettings",
    "load_config",
    "parse_config",
    "resolve_config_path",
]

CONFIG_ENV_VAR = "VOICE_AGENT_CONFIG"
"""Environment variable naming the config file when no ``--config`` flag is given."""

DEFAULT_CONFIG_PATH = Path("config/agent.toml")
MAX_INSTANCE_CHARS = 64
"""``[agent] instance``: stored in ``call.instance`` and shown in logs; a host name fits."""
"""Used when nothing names a file; relative to the working directory; may be absent."""

_TOP_LEVEL = (
    "agent", "agents", "escalation", "database", "nlu", "sms", "paylinks", "web", "admin",
    "payments", "sip", "asr", "tts",
)  # fmt: skip
_DATABASE_SCHEMES = ("sqlite", "postgres", "postgresql", "postgresext", "cockroachdb")
_SMS_PLACEHOLDERS = ("company", "invoice", "amount", "url")
_PORTAL_PLACEHOLDERS = ("invoice", "amount", "currency")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_AT_LINE = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
_MAX_TLS_CA_CERTIFICATES = 40
"""pjsip sends every CA name in the handshake; 40 worked, 80 stalled (see agent.sip.transport)."""
MIN_CALLBACK_SECRET_CHARS = 16
"""The shortest ``[sms.kannel] callback_secret`` accepted."""
_INVALID: Any = object()
"""Sentinel: the value had a problem (already reported); keep the field's default."""


def resolve_config_path(cli_value: str | None) -> tuple[Path, bool]:
    """The config file to read, and whether the user named it (flag or environment)."""
    if cli_value:
        return Path(cli_value), True
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env), True
    return DEFAULT_CONFIG_PATH, False


def load_config(path: Path | None = None, explicit: bool = True) -> Config:
    """Read and validate the config; ``path=None`` resolves it as the CLI does.

    A missing file is an error when it was named explicitly; the default file may be
    absent, and then the embedded defaults are used. ``load_config(*resolve_config_path(x))``
    is the CLI's call.
    """
    if path is None:
        path, explicit = resolve_config_path(None)
    text = _read(path, explicit)
    return Config() if text is None else parse_config(text, path)


def parse_config(text: str, source: Path) -> Config:
    """Validate TOML ``text``; ``source`` names the file in problems and ``Config.source``."""
    file = str(source)
    text = text.removeprefix("\ufeff")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([_syntax_problem(file, text, err)]) from err
    validator = _Validator(file, KeyLocator(text))
    config = validator.build(data, source)
    if validator.problems:
        raise ConfigError(sorted(validator.problems, key=lambda p: p.line or 0))
    return config


def _read(path: Path, explicit: bool) -> str | None:
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        if not explicit:
            return None
        raise ConfigError([Problem(file, None, "file not found")]) from err
    except OSError as err:
        raise ConfigError([Problem(file, None, f"cannot read: {err.strerror or err}")]) from err
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise ConfigError([Problem(file, line, "not UTF-8 text")]) from err


def _syntax_problem(file: str, text: str, err: tomllib.TOMLDecodeError) -> Problem:
    message = str(err)
    match = _AT_LINE.search(message)
    if match:
        detail = f"{message[: match.start()]} (column {match[2]})"
        return Problem(file, int(match[1]), f"TOML syntax error: {detail}")
    detail = message.replace(" (at end of document)", " at end of file")
    line = max(len(text.splitlines()), 1) if "end of document" in message else None
    return Problem(file, line, f"TOML syntax error: {detail}")


class _Validator(ProblemLog):
    """Builds ``Config`` from parsed TOML, collecting every problem instead of stopping."""

    def build(self, data: dict[str, Any], source: Path) -> Config:
        self.unknown_keys(data, (), _TOP_LEVEL, noun="section")
        raw = {name: data.get(name, {}) for name in _TOP_LEVEL}
        agent = self._agent(raw["agent"])
        config = Config(
            agent=agent,
            payment_collection=self._payment_collection(raw["agents"]),
            escalation=self._escalation(raw["escalation"], agent.default_region),
            database=self._database(raw["database"]),
            nlu=self._nlu(raw["nlu"]),
            sms=self._sms(raw["sms"]),
            paylinks=self._paylinks(raw["paylinks"]),
            web=self._web(raw["web"]),
            admin=self._admin(raw["admin"]),
            payments=self._payments(raw["payments"]),
            sip=self._sip(raw["sip"]),
            asr=self._section(AsrSettings, raw["asr"], ("asr",)),
            tts=self._section(TtsSettings, raw["tts"], ("tts",)),
            source=source,
        )
        self._sms_length(config)
        return config

    # -- generic typed fields ----------------------------------------------------------

    def _section(self, cls: type[Any], raw: object, path: KeyPath, skip: str = "") -> Any:
        """Build dataclass ``cls`` from a table; bad values keep their defaults."""
        table = self.table(raw, path)
        fields = dataclasses.fields(cls)
        self.unknown_keys(table, path, [f.name for f in fields])
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields:
            if f.name in table and f.name != skip:
                value = self._value(table[f.name], hints[f.name], (*path, f.name), f.metadata)
                if value is not _INVALID:
                    values[f.name] = value
        return cls(**values)

    def _value(self, raw: object, hint: Any, path: KeyPath, meta: Mapping[str, Any]) -> Any:
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and hint is not Secret:
            return self._section(hint, raw, path)
        if hint is Secret:
            return self._secret(raw, path)
        if get_origin(hint) is Literal:
            return self._choice(raw, get_args(hint), path)
        if get_origin(hint) is tuple:
            return self._strings(raw, path)
        if not _is_type(raw, hint):
            self.report(path, f"expected {_EXPECTED[hint]}, got {describe(raw)}")
            return _INVALID
        value: Any = raw
        limits = meta.get("range")
        if isinstance(limits, Range) and value not in limits:
            self.report(path, f"{show(value)} is out of range; expected {limits}")
            return _INVALID
        if "choices" in meta:
            return self._choice(value, meta["choices"], path)
        return float(value) if hint is float else value

    def _choice(self, raw: object, choices: Sequence[str], path: KeyPath) -> Any:
        if isinstance(raw, str) and raw in choices:
            return raw
        shown = show(raw) if isinstance(raw, str) else describe(raw)
        allowed = ", ".join(show(c) for c in choices)
        self.report(path, f"expected one of {allowed}; got {shown}")
        return _INVALID

    def _strings(self, raw: object, path: KeyPath) -> Any:
        if not isinstance(raw, list):
            self.report(path, f"expected an array of strings, got {describe(raw)}")
            return _INVALID
        for number, item in enumerate(raw, start=1):
            if not isinstance(item, str):
                self.report(path, f"item {number}: expected a string, got {describe(item)}")
                return _INVALID
        return tuple(raw)

    def _secret(self, raw: object, path: KeyPath) -> Any:
        if isinstance(raw, str):
            return Secret(literal=raw)
        if not isinstance(raw, dict):
            self.report(path, f'expected a string or {{ env = "NAME" }}, got {describe(raw)}')
            return _INVALID
        self.unknown_keys(raw, path, ["env"])
        name = raw.get("env")
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            shown = "nothing" if name is None else show(name)
            self.report((*path, "env"), f"expected an environment variable name, got {shown}")
            return _INVALID
        return Secret(env=name) if len(raw) == 1 else _INVALID

    # -- checks shared by sections -----------------------------------------------------

    def _required(self, value: str, path: KeyPath, trigger: KeyPath, when: str) -> None:
        if not value.strip():
            self.report(path, f"required when {when}", near=trigger)

    def _secret_is_set(self, secret: Secret, path: KeyPath, trigger: KeyPath) -> None:
        if secret.env is None or secret.env in os.environ:
            return
        where = "named here" if self.locator.exact(path) else "the default"
        message = f"environment variable {secret.env} ({where}) is not set"
        self.report(path, message, near=trigger)

    def _secret_not_empty(self, secret: Secret, path: KeyPath, trigger: KeyPath) -> None:
        """Set, and not empty: an empty key would sign (or authenticate) with nothing."""
        if secret.env is not None and secret.env not in os.environ:
            self._secret_is_set(secret, path, trigger)
            return
        value = secret.literal if secret.env is None else os.environ[secret.env]
        if value is None or not value.strip():
            source = (
                "is empty" if secret.env is None else f"comes from {secret.env}, which is empty"
            )
            self.report(path, f"{source}: a secret is required here", near=trigger)

    def _http_url(self, url: str, path: KeyPath) -> None:
        try:
            parts = urlsplit(url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            valid = valid and (parts.port is None or parts.port > 0)
        except ValueError:
            valid = False
        if not valid:
            self.report(path, f"expected an http:// or https:// URL, got {show(url)}")

    def _template(
        self, text: str, path: KeyPath, allowed: Sequence[str], required: Sequence[str] = ()
    ) -> None:
        """Check a ``str.format`` template: known placeholders only, required ones present."""
        names, error = _placeholders(text)
        listed = ", ".join(f"{{{name}}}" for name in allowed)
        unknown = [name for name in dict.fromkeys(names) if name not in allowed]
        for name in unknown:
            self.report(path, f"unknown placeholder {{{name}}}; allowed: {listed}")
        if error is None and not unknown:
            try:
                text.format(**dict.fromkeys(allowed, ""))
            except (ValueError, KeyError, IndexError, AttributeError) as err:
                error = str(err)
        if error is not None and not unknown:
            self.report(path, f"not a valid template ({error}); write {{{{ or }}}} for a brace")
        for name in required:
            if name not in names:
                self.report(path, f"must contain {{{name}}}")

    def _target(self, value: str, path: KeyPath, region: str) -> str:
        """A SIP URI as given, or a phone number made E.164."""
        scheme, _, rest = value.partition(":")
        if scheme.lower() in ("sip", "sips") and rest and not re.search(r"\s", rest):
            return value
        number = _e164(value, region)
        if number is None:
            message = f"{show(value)} is neither a sip:/sips: URI nor a valid phone number"
            self.report(path, message)
            return value
        return number

    # -- sections ----------------------------------------------------------------------

    def _agent(self, raw: object) -> AgentSettings:
        path = ("agent",)
        agent: AgentSettings = self._section(AgentSettings, raw, path)
        if not agent.company_name.strip():
            self.report((*path, "company_name"), "must not be empty")
        phone = _e164(agent.company_phone, agent.default_region)
        if phone is None:
            shown = show(agent.company_phone)
            self.report((*path, "company_phone"), f"{shown} is not a valid phone number")
        self._template(agent.greeting, (*path, "greeting"), ("company",))
        self._instance(agent.instance, (*path, "instance"))
        try:
            ZoneInfo(agent.time_zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            hint = "use an IANA name such as America/Toronto"
            self.report((*path, "time_zone"), f"unknown time zone {show(agent.time_zone)}; {hint}")
        return dataclasses.replace(agent, company_phone=phone or agent.company_phone)

    def _instance(self, name: str, path: KeyPath) -> None:
        if len(name) > MAX_INSTANCE_CHARS:
            self.report(path, f"at most {MAX_INSTANCE_CHARS} characters (a host name, say)")
        elif name and (name != name.strip() or not name.isprintable()):
            self.report(path, f"{show(name)}: no leading or trailing spaces, no control characters")

    def _payment_collection(self, raw: object) -> PaymentCollectionSettings:
        path: KeyPath = ("agents",)
        node = raw
        for name, noun in (
            ("default", "agent"),
            ("skills", "key"),
            ("payment_collection", "skill"),
        ):
            table = self.table(node, path)
            self.unknown_keys(table, path, [name], noun=noun)
            node, path = table.get(name, {}), (*path, name)
        settings: PaymentCollectionSettings = self._section(PaymentCollectionSettings, node, path)
        return settings

    def _escalation(self, raw: object, region: str) -> EscalationSettings:
        path = ("escalation",)
        settings: EscalationSettings = self._section(EscalationSettings, raw, path, "reasons")
        top = dataclasses.replace(
            settings, target=self._target(settings.target, (*path, "target"), region)
        )
        if not isinstance(raw, dict) or "reasons" not in raw:
            return top
        reasons_path = (*path, "reasons")
        reasons = self.table(raw["reasons"], reasons_path)
        self.unknown_keys(reasons, reasons_path, ESCALATION_REASONS, noun="escalation reason")
        routes = {
            reason: self._route(reasons[reason], (*reasons_path, reason), top, region)
            for reason in ESCALATION_REASONS
            if reason in reasons
        }
        return dataclasses.replace(top, reasons=MappingProxyType(routes))

    def _route(
        self, raw: object, path: KeyPath, top: EscalationSettings, region: str
    ) -> EscalationRoute:
        table = self.table(raw, path)
        self.unknown_keys(table, path, ("target", "message"))
        target, message = top.target, top.message
        if "target" in table:
            value = self._value(table["target"], str, (*path, "target"), {})
            if value is not _INVALID:
                target = self._target(value, (*path, "target"), region)
        if "message" in table:
            value = self._value(table["message"], str, (*path, "message"), {})
            message = message if value is _INVALID else value
        return EscalationRoute(target=target, message=message)

    def _database(self, raw: object) -> DatabaseSettings:
        path = ("database", "url")
        settings: DatabaseSettings = self._section(DatabaseSettings, raw, path[:1])
        scheme, separator, rest = settings.url.partition("://")
        if not separator or scheme.lower() not in _DATABASE_SCHEMES:
            schemes = ", ".join(f"{s}://" for s in _DATABASE_SCHEMES)
            shown = show(redact_url(settings.url))
            self.report(path, f"{shown} is not a database URL; use {schemes}")
        elif scheme.lower() == "sqlite" and len(rest) < 2:
            self.report(path, "a sqlite URL needs a file, e.g. sqlite:///var/voice-agent.db")
        return settings

    def _nlu(self, raw: object) -> NluSettings:
        settings: NluSettings = self._section(NluSettings, raw, ("nlu",))
        self._http_url(settings.url, ("nlu", "url"))
        return settings

    def _sms(self, raw: object) -> SmsSettings:
        sms: SmsSettings = self._section(SmsSettings, raw, ("sms",))
        self._template(sms.template, ("sms", "template"), _SMS_PLACEHOLDERS, required=("url",))
        self._http_url(sms.kannel.sendsms_url, ("sms", "kannel", "sendsms_url"))
        if sms.kannel.dlr_url:
            self._http_url(sms.kannel.dlr_url, ("sms", "kannel", "dlr_url"))
            if "?" in sms.kannel.dlr_url:
                no_query = "must not contain a query string ('?...')"
                self.report(("sms", "kannel", "dlr_url"), no_query)
        for network in sms.kannel.allowed_networks:
            self._network(network, ("sms", "kannel", "allowed_networks"))
        self._http_url(sms.twilio.api_base, ("sms", "twilio", "api_base"))
        if sms.retry_max_seconds < sms.retry_first_seconds:
            self.report(
                ("sms", "retry_max_seconds"),
                f"must not be less than retry_first_seconds ({show(sms.retry_first_seconds)})",
            )
        if not sms.body_key_file.strip():
            self.report(("sms", "body_key_file"), "must name a file (the outbox key)")
        trigger = ("sms", "driver")
        if sms.driver == "kannel":
            self._secret_is_set(sms.kannel.password, ("sms", "kannel", "password"), trigger)
            self._callback_secret(sms.kannel.callback_secret, trigger)
        if sms.driver == "twilio":
            when = 'sms.driver is "twilio"'
            self._required(sms.twilio.account_sid, ("sms", "twilio", "account_sid"), trigger, when)
            self._required(sms.twilio.from_number, ("sms", "twilio", "from_number"), trigger, when)
            self._secret_is_set(sms.twilio.auth_token, ("sms", "twilio", "auth_token"), trigger)
        return sms

    def _callback_secret(self, secret: Secret, trigger: KeyPath) -> None:
        """``[sms.kannel] callback_secret``: set, and long enough not to be guessed."""
        path = ("sms", "kannel", "callback_secret")
        if secret.env is not None and secret.env not in os.environ:
            self._secret_is_set(secret, path, trigger)
            return
        if len(secret.reveal()) < MIN_CALLBACK_SECRET_CHARS:
            message = (
                f"must be at least {MIN_CALLBACK_SECRET_CHARS} characters when sms.driver is "
                '"kannel" (e.g. the output of: openssl rand -hex 32)'
            )
            self.report(path, message, near=trigger)

    def _sms_length(self, config: Config) -> None:
        """The payment text must fit two segments with the longest realistic values."""
        sms, links = config.sms, config.paylinks
        try:
            text = longest_payment_text(
                sms.template, config.agent.company_name, links.base_url,
                token_chars(links.token_bytes), config.agent.locale,
            )  # fmt: skip
        except (ValueError, KeyError, IndexError, AttributeError):
            return  # a broken template is reported by _template
        count = count_segments(text)
        if count.segments > MAX_SEGMENTS:
            limit = 153 * MAX_SEGMENTS if count.encoding == "gsm7" else 67 * MAX_SEGMENTS
            self.report(
                ("sms", "template"),
                f"with a 20-character invoice number, the largest amount and the link, the "
                f"text is {count.units} characters ({count.segments} SMS segments); at most "
                f"{limit} fit in {MAX_SEGMENTS}: shorten the template, the company name or "
                "[paylinks] base_url",
            )

    def _paylinks(self, raw: object) -> PaylinkSettings:
        settings: PaylinkSettings = self._section(PaylinkSettings, raw, ("paylinks",))
        path = ("paylinks", "base_url")
        self._http_url(settings.base_url, path)
        if "?" in settings.base_url:
            self.report(path, "must not contain a query string ('?...')")
        return settings

    def _ip_address(self, value: str, path: KeyPath) -> None:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            self.report(path, f"{show(value)} is not an IP address")

    def _web(self, raw: object) -> WebSettings:
        web: WebSettings = self._section(WebSettings, raw, ("web",))
        self._ip_address(web.listen_address, ("web", "listen_address"))
        path = ("web", "callback_base_url")
        self._http_url(web.callback_base_url, path)
        if "?" in web.callback_base_url:
            self.report(path, "must not contain a query string ('?...')")
        for network in web.trusted_proxies:
            self._network(network, ("web", "trusted_proxies"))
        return web

    def _admin(self, raw: object) -> AdminSettings:
        admin: AdminSettings = self._section(AdminSettings, raw, ("admin",))
        self._ip_address(admin.listen_address, ("admin", "listen_address"))
        return admin

    def _payments(self, raw: object) -> PaymentSettings:
        payments: PaymentSettings = self._section(PaymentSettings, raw, ("payments",))
        stripe, portal = ("payments", "stripe"), ("payments", "portal")
        self._http_url(payments.stripe.api_base, (*stripe, "api_base"))
        trigger = ("payments", "processor")
        if payments.processor == "stripe":
            keys = payments.stripe
            self._secret_not_empty(keys.secret_key, (*stripe, "secret_key"), trigger)
            self._secret_not_empty(keys.webhook_secret, (*stripe, "webhook_secret"), trigger)
        template, path = payments.portal.url_template, (*portal, "url_template")
        if payments.processor == "portal":
            self._required(template, path, trigger, 'payments.processor is "portal"')
        if template.strip():
            self._portal_template(template, path)
        return payments

    def _portal_template(self, template: str, path: KeyPath) -> None:
        self._template(template, path, _PORTAL_PLACEHOLDERS, required=("invoice",))
        try:
            sample = template.format(invoice="INV-1", amount="1.00", currency="USD")
        except (ValueError, KeyError, IndexError, AttributeError):
            return  # reported by _template
        self._http_url(sample, path)
        if "{" in urlsplit(template).netloc:
            self.report(path, "placeholders belong in the path or query, not the host name")

    def _sip(self, raw: object) -> SipSettings:
        sip: SipSettings = self._section(SipSettings, raw, ("sip",))
        try:
            ipaddress.ip_address(sip.listen_address)
        except ValueError:
            self.report(
                ("sip", "listen_address"), f"{show(sip.listen_address)} is not an IP address"
            )
        for network in sip.allowed_networks:
            self._network(network, ("sip", "allowed_networks"))
        for network in sip.trusted_identity_networks:
            self._network(network, ("sip", "trusted_identity_networks"))
        if sip.registrar.strip():
            try:
                registrar = parse_registrar(sip.registrar)
            except ValueError as err:
                self.report(("sip", "registrar"), f"{show(sip.registrar)}: {err}")
            else:
                if registrar.scheme == "sips" and sip.transport != "tls":
                    self.report(("sip", "registrar"), 'a sips: URI needs transport = "tls"')
        if not sip.realm.strip():
            self.report(("sip", "realm"), 'must not be empty; "*" answers any realm')
        if sip.mode == "register":
            trigger, when = ("sip", "mode"), 'sip.mode is "register"'
            self._required(sip.registrar, ("sip", "registrar"), trigger, when)
            self._required(sip.username, ("sip", "username"), trigger, when)
            self._secret_is_set(sip.password, ("sip", "password"), trigger)
        if sip.transport == "tls":
            self._tls_files(sip)
        return sip

    def _tls_files(self, sip: SipSettings) -> None:
        """With TLS: certificate and key required; every named PEM file readable."""
        trigger, when = ("sip", "transport"), 'sip.transport is "tls"'
        self._required(sip.tls_certificate, ("sip", "tls_certificate"), trigger, when)
        self._required(sip.tls_private_key, ("sip", "tls_private_key"), trigger, when)
        if sip.tls_verify_client:
            when = "sip.tls_verify_client is true"
            self._required(
                sip.tls_ca_file, ("sip", "tls_ca_file"), ("sip", "tls_verify_client"), when
            )
        elif sip.mode == "register":  # the registrar's certificate is checked against it
            when = 'sip.mode is "register" with TLS'
            self._required(sip.tls_ca_file, ("sip", "tls_ca_file"), trigger, when)
        for key, value, what in (
            ("tls_certificate", sip.tls_certificate, "CERTIFICATE"),
            ("tls_private_key", sip.tls_private_key, "PRIVATE KEY"),
            ("tls_ca_file", sip.tls_ca_file, "CERTIFICATE"),
        ):
            text = self._pem_file(value, ("sip", key), what) if value.strip() else None
            count = text.count("-----BEGIN CERTIFICATE-----") if text else 0
            if key == "tls_ca_file" and count > _MAX_TLS_CA_CERTIFICATES:
                self.report(
                    ("sip", key),
                    f"{show(value)} holds {count} certificates; more than "
                    f"{_MAX_TLS_CA_CERTIFICATES} make the SIP stack's TLS handshakes stall: "
                    "keep only the CAs needed",
                )

    def _pem_file(self, name: str, path: KeyPath, what: str) -> str | None:
        """The text of PEM file ``name`` holding a ``what`` (an unencrypted key); else None."""
        try:
            text = Path(name).read_text(encoding="ascii", errors="replace")
        except OSError as err:
            self.report(path, f"cannot read {show(name)}: {err.strerror or err}")
            return None
        if not re.search(rf"-----BEGIN (?:[A-Z]+ )?{what}-----", text):
            self.report(path, f"{show(name)} holds no PEM {what} (-----BEGIN {what}-----)")
            return None
        if what == "PRIVATE KEY" and "ENCRYPTED" in text:
            self.report(path, f"{show(name)} is encrypted; give an unencrypted key file")
            return None
        return text

    def _network(self, text: str, path: KeyPath) -> None:
        try:
            ipaddress.ip_network(text)
        except ValueError:
            try:
                fixed = ipaddress.ip_network(text, strict=False)
            except ValueError:
                example = "e.g. 192.168.1.0/24"
                self.report(path, f"{show(text)} is not a network in CIDR form ({example})")
                return
            hint = f"did you mean {show(str(fixed))}?"
            self.report(path, f"{show(text)} has host bits set; {hint}")


_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _is_type(raw: object, hint: Any) -> bool:
    if hint is bool or isinstance(raw, bool):
        return hint is bool and isinstance(raw, bool)
    if hint is float:
        return isinstance(raw, int | float)
    return isinstance(raw, hint)


def _placeholders(text: str) -> tuple[list[str], str | None]:
    """Placeholder names in a ``str.format`` template, and its syntax error if any."""
    try:
        names: list[str] = []
        for _, name, spec, _ in string.Formatter().parse(text):
            if name is not None:
                names.append(name)
            if spec and "{" in spec:  # nested, as in {amount:{width}}
                names += _placeholders(spec)[0]
        return names, None
    except ValueError as err:
        found = re.findall(r"\{([^{}]*)\}", text)
        return [re.split("[!:]", inner, maxsplit=1)[0] for inner in found], str(err)


def _e164(text: str, region: str) -> str | None:
    """``text`` as an E.164 number (``+14165550100``), or None if it is not valid."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
