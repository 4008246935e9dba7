"""The admin configuration: loading, defaults, and the exact problems users see."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent.config import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_PATH,
    Config,
    EscalationRoute,
    Secret,
    load_config,
    resolve_config_path,
)
from agent.config_locate import KeyLocator
from agent.config_schema import ESCALATION_REASONS
from agent.errors import ConfigError

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "agent.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(problem) for problem in caught.value.problems]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (CONFIG_ENV_VAR, "KANNEL_PASSWORD", "TWILIO_AUTH_TOKEN", "SIP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


# -- files and defaults ----------------------------------------------------------------


def test_shipped_file_is_exactly_the_embedded_defaults() -> None:
    """All but ``[payments] processor``: "demo" for scripts/run's demo company, where the
    built-in default stays "none" (a real business never gets test payments by default)."""
    config = load_config(SHIPPED)
    assert config.payments.processor == "demo" and Config().payments.processor == "none"
    payments = dataclasses.replace(config.payments, processor="none")
    config = dataclasses.replace(config, payments=payments)
    assert config == Config()
    for field in dataclasses.fields(Config):
        if field.compare:
            assert getattr(config, field.name) == getattr(Config(), field.name), field.name
    assert config.source == SHIPPED


def test_shipped_file_writes_out_every_key() -> None:
    locator = KeyLocator(SHIPPED.read_text(encoding="utf-8"))
    tables = {
        "payment_collection": ("agents", "default", "skills", "payment_collection"),
        "kannel": ("sms", "kannel"),
        "twilio": ("sms", "twilio"),
    }

    def missing(settings: object, path: tuple[str, ...]) -> list[str]:
        found = []
        for field in dataclasses.fields(settings):  # type: ignore[arg-type]
            value = getattr(settings, field.name)
            key = tables.get(field.name, (*path, field.name))
            if dataclasses.is_dataclass(value) and not isinstance(value, Secret):
                found += missing(value, key)
            elif field.name not in ("reasons", "source") and locator.exact(key) is None:
                found.append(".".join(key))
        return found

    assert missing(Config(), ()) == []


def test_shipped_examples_load_when_uncommented(tmp_path: Path) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    text = text.replace("# [escalation.reasons.no-invoices]", "[escalation.reasons.no-invoices]")
    text = text.replace('# target = "+1 416', 'target = "+1 416')
    text = text.replace("# message = \"I don't", "message = \"I don't")
    config = load_config(write(tmp_path, text))
    assert config.escalation.route("no-invoices").target == "+14165550199"


def test_missing_default_file_gives_embedded_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config == Config()
    assert config.source is None
    assert config.summary().startswith("embedded defaults: OK — Maple Leaf Home Services")


def test_default_file_in_working_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "agent.toml").write_text('[agent]\ncompany_name = "Acme"\n')
    assert load_config().agent.company_name == "Acme"


def test_resolve_config_path(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_config_path(None) == (DEFAULT_CONFIG_PATH, False)
    monkeypatch.setenv(CONFIG_ENV_VAR, "/etc/voice-agent.toml")
    assert resolve_config_path(None) == (Path("/etc/voice-agent.toml"), True)
    assert resolve_config_path("my.toml") == (Path("my.toml"), True)


def test_explicitly_named_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert problems(missing) == [f"{missing}: file not found"]


def test_missing_file_named_by_environment_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv(CONFIG_ENV_VAR, str(missing))
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert str(caught.value) == f"{missing}: file not found"


def test_toml_syntax_error_gives_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\ncompany_name = "Acme"\ntime_zone = \n')
    assert problems(path) == [f"{path}:3: TOML syntax error: Invalid value (column 13)"]


def test_summary_names_the_file_and_hides_a_database_password(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[database]\nurl = "postgresql://agent:hunter2@db.local/billing"\n'
        "[agents.default.skills.payment_collection]\nmax_invoices_read = 1\n"
        "require_mobile = false\n[nlu]\nmanage = false\n",
    )
    assert load_config(path).summary() == (
        f"{path}: OK — Maple Leaf Home Services, payment collection on "
        "(max 1 invoice, any phone), SMS driver log, NLU http://127.0.0.1:5005 (external), "
        "database postgresql://agent:***@db.local/billing"
    )


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.agent.company_name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.escalation.reasons["unverified"] = EscalationRoute("sip:a@b", "hi")  # type: ignore[index]


# -- unknown keys, types, ranges, enums --------------------------------------------------


def test_unknown_key_suggests_the_close_one_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\ncompany_name = "Acme"\ncompnay_phone = "+14165550100"\n')
    assert problems(path) == [
        f"{path}:3: agent.compnay_phone: unknown key; did you mean 'company_phone'?"
    ]


def test_unknown_section_agent_and_skill(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[agnet]\n[agents.sales.skills.payment_collection]\n[agents.default.skills.booking]\n",
    )
    assert problems(path) == [
        f"{path}:1: agnet: unknown section; did you mean 'agent'?",
        f"{path}:2: agents.sales: unknown agent; allowed: default",
        f"{path}:3: agents.default.skills.booking: unknown skill; allowed: payment_collection",
    ]


def test_wrong_type_says_expected_and_got(tmp_path: Path) -> None:
    path = write(tmp_path, '[asr]\nmodel = "base"\nbeam_size = "2"\n')
    assert problems(path) == [f'{path}:3: asr.beam_size: expected an integer, got a string ("2")']


def test_bool_is_not_an_integer(tmp_path: Path) -> None:
    path = write(tmp_path, "[sip]\nport = true\n")
    assert problems(path) == [f"{path}:2: sip.port: expected an integer, got a boolean (true)"]


def test_integer_is_accepted_where_a_number_is_expected(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[nlu]\ntimeout_seconds = 5\n"))
    assert config.nlu.timeout_seconds == 5.0
    assert isinstance(config.nlu.timeout_seconds, float)


def test_out_of_range(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[agents.default.skills.payment_collection]\nmax_invoices_read = 11\n"
        "[nlu]\ntimeout_seconds = 0\n",
    )
    assert problems(path) == [
        f"{path}:2: agents.default.skills.payment_collection.max_invoices_read: "
        "11 is out of range; expected 1 to 10",
        f"{path}:4: nlu.timeout_seconds: 0 is out of range; expected more than 0 and at most 30",
    ]


def test_max_calls_above_what_one_process_holds(tmp_path: Path) -> None:
    path = write(tmp_path, "[sip]\nmax_calls = 8\n")
    assert problems(path) == [f"{path}:2: sip.max_calls: 8 is out of range; expected 1 to 4"]


def test_bad_enum_lists_the_allowed_values(tmp_path: Path) -> None:
    path = write(tmp_path, '[sms]\ndriver = "smpp"\n[agent]\ndefault_region = "UK"\n')
    assert problems(path) == [
        f'{path}:2: sms.driver: expected one of "log", "kannel", "twilio"; got "smpp"',
        f'{path}:4: agent.default_region: expected one of "US", "CA"; got "UK"',
    ]


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, 'tts = "loud"\n')
    assert problems(path) == [f'{path}:1: tts: expected a table, got a string ("loud")']


# -- values checked by meaning -------------------------------------------------------


def test_bad_time_zone(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\ntime_zone = "Canada/Toronto"\n')
    assert problems(path) == [
        f'{path}:2: agent.time_zone: unknown time zone "Canada/Toronto"; '
        "use an IANA name such as America/Toronto"
    ]


def test_bad_phone_number(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\ncompany_phone = "555-0100"\n')
    assert problems(path) == [
        f'{path}:2: agent.company_phone: "555-0100" is not a valid phone number'
    ]


def test_phone_numbers_are_stored_as_e164(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[agent]\ndefault_region = "CA"\ncompany_phone = "(604) 555-0123"\n'
        '[escalation]\ntarget = "416 555 0199"\n',
    )
    config = load_config(path)
    assert config.agent.company_phone == "+16045550123"
    assert config.escalation.target == "+14165550199"


def test_greeting_with_unknown_placeholder(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\ngreeting = "Hi {caller}, this is {company}."\n')
    assert problems(path) == [
        f"{path}:2: agent.greeting: unknown placeholder {{caller}}; allowed: {{company}}"
    ]


def test_greeting_with_a_stray_brace(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\ngreeting = "Welcome to {company"\n')
    assert problems(path) == [
        f"{path}:2: agent.greeting: not a valid template (expected '}}' before end of "
        "string); write {{ or }} for a brace"
    ]


def test_sms_template_without_url(tmp_path: Path) -> None:
    path = write(tmp_path, '[sms]\ntemplate = "{company}: invoice {invoice} is due"\n')
    assert problems(path) == [f"{path}:2: sms.template: must contain {{url}}"]


def test_urls_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[nlu]\nurl = "127.0.0.1:5005"\n'
        '[paylinks]\nbase_url = "https://pay.example.com/p?x=1"\n'
        '[database]\nurl = "mysql://localhost/agent"\n',
    )
    assert problems(path) == [
        f'{path}:2: nlu.url: expected an http:// or https:// URL, got "127.0.0.1:5005"',
        f"{path}:4: paylinks.base_url: must not contain a query string ('?...')",
        f'{path}:6: database.url: "mysql://localhost/agent" is not a database URL; use '
        "sqlite://, postgres://, postgresql://, postgresext://, cockroachdb://",
    ]


def test_sip_addresses_and_register_mode(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[sip]\nlisten_address = "localhost"\n'
        'allowed_networks = ["10.0.0.1/8", 7]\n'
        'mode = "register"\npassword = "pw"\n',
    )
    assert problems(path) == [
        f'{path}:2: sip.listen_address: "localhost" is not an IP address',
        f"{path}:3: sip.allowed_networks: item 2: expected a string, got an integer (7)",
        f'{path}:4: sip.registrar: required when sip.mode is "register"',
        f'{path}:4: sip.username: required when sip.mode is "register"',
    ]
    path = write(tmp_path, '[sip]\nallowed_networks = ["10.0.0.1/8"]\n')
    assert problems(path) == [
        f'{path}:2: sip.allowed_networks: "10.0.0.1/8" has host bits set; '
        'did you mean "10.0.0.0/8"?'
    ]
    path = write(tmp_path, '[sip]\ntrusted_identity_networks = ["192.0.2.10/33"]\n')
    [problem] = problems(path)
    assert problem.startswith(f"{path}:2: sip.trusted_identity_networks: ")


# -- SMS drivers and secrets ---------------------------------------------------------


def test_twilio_driver_needs_account_sid(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[sms]\ndriver = "twilio"\n'
        '[sms.twilio]\nfrom_number = "+14165550100"\nauth_token = "tok"\n',
    )
    assert problems(path) == [
        f'{path}:2: sms.twilio.account_sid: required when sms.driver is "twilio"'
    ]


def test_secret_from_environment_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PW", "hunter2")
    path = write(
        tmp_path,
        '[sms]\ndriver = "kannel"\n[sms.kannel]\npassword = { env = "GATEWAY_PW" }\n'
        'callback_secret = "a-callback-secret-of-32-characters"\n',
    )
    secret = load_config(path).sms.kannel.password
    assert secret == Secret(env="GATEWAY_PW")
    assert secret.reveal() == "hunter2"
    assert repr(secret) == str(secret) == "Secret(env=GATEWAY_PW)"


def test_secret_from_environment_when_unset(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[sms]\ndriver = "kannel"\n[sms.kannel]\npassword = { env = "GATEWAY_PW" }\n'
        'callback_secret = "a-callback-secret-of-32-characters"\n',
    )
    assert problems(path) == [
        f"{path}:4: sms.kannel.password: environment variable GATEWAY_PW (named here) is not set"
    ]


def test_default_secret_unset_is_reported_at_the_driver(tmp_path: Path) -> None:
    path = write(tmp_path, '[sms]\ndriver = "kannel"\n')
    assert problems(path) == [
        f"{path}:2: sms.kannel.password: environment variable KANNEL_PASSWORD "
        "(the default) is not set",
        f"{path}:2: sms.kannel.callback_secret: environment variable KANNEL_CALLBACK_SECRET "
        "(the default) is not set",
    ]


def test_unset_secret_is_fine_when_its_section_is_unused(tmp_path: Path) -> None:
    path = write(tmp_path, '[sms.kannel]\npassword = { env = "GATEWAY_PW" }\n')
    secret = load_config(path).sms.kannel.password
    with pytest.raises(ConfigError) as caught:
        secret.reveal()
    assert str(caught.value) == "environment: environment variable GATEWAY_PW is not set"


def test_literal_secret_is_never_printed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[sip]\npassword = "hunter2"\n'))
    assert config.sip.password.reveal() == "hunter2"
    assert "hunter2" not in repr(config)
    assert str(config.sip.password) == "Secret(***)"


def test_secret_of_the_wrong_shape(tmp_path: Path) -> None:
    path = write(tmp_path, '[sip]\npassword = 1234\n[sms.twilio]\nauth_token = { name = "X" }\n')
    assert problems(path) == [
        f'{path}:2: sip.password: expected a string or {{ env = "NAME" }}, got an integer (1234)',
        f"{path}:4: sms.twilio.auth_token.name: unknown key; allowed: env",
        f"{path}:4: sms.twilio.auth_token.env: expected an environment variable name, got nothing",
    ]


# -- several problems, escalation ------------------------------------------------------


def test_every_problem_is_reported_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[tts]\n"
        "length_scale = 3\n"
        "[agent]\n"
        'company_phone = "12"\n'
        'locale = "fr-CA"\n'
        "[asr]\n"
        "beam = 2\n",
    )
    assert problems(path) == [
        f"{path}:2: tts.length_scale: 3 is out of range; expected 0.5 to 2",
        f'{path}:4: agent.company_phone: "12" is not a valid phone number',
        f'{path}:5: agent.locale: expected one of "en-US", "en-CA"; got "fr-CA"',
        f"{path}:7: asr.beam: unknown key; did you mean 'beam_size'?",
    ]


def test_escalation_override_inherits_the_rest(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[escalation]\n"
        'target = "sip:desk@10.0.0.5"\n'
        'message = "One moment."\n'
        "[escalation.reasons.no-invoices]\n"
        'target = "+1 (416) 555-0199"\n'
        '[escalation.reasons."caller-request"]\n'
        'message = "Sure, transferring you now."\n',
    )
    escalation = load_config(path).escalation
    assert escalation.route("no-invoices") == EscalationRoute("+14165550199", "One moment.")
    assert escalation.route("caller-request") == EscalationRoute(
        "sip:desk@10.0.0.5", "Sure, transferring you now."
    )
    assert escalation.route("unverified") == EscalationRoute("sip:desk@10.0.0.5", "One moment.")
    with pytest.raises(ValueError):
        escalation.route("bored")


def test_unknown_escalation_reason(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[escalation.reasons.no-invoice]\n"
        'message = "x"\n'
        "[escalation.reasons.weather]\n"
        'target = "not a target"\n',
    )
    assert problems(path) == [
        f"{path}:1: escalation.reasons.no-invoice: unknown escalation reason; "
        "did you mean 'no-invoices'?",
        f"{path}:3: escalation.reasons.weather: unknown escalation reason; allowed: "
        + ", ".join(ESCALATION_REASONS),
    ]


def test_bad_escalation_route_target(tmp_path: Path) -> None:
    path = write(tmp_path, '[escalation.reasons.ambiguous]\ntarget = "the front desk"\n')
    assert problems(path) == [
        f'{path}:2: escalation.reasons.ambiguous.target: "the front desk" is neither '
        "a sip:/sips: URI nor a valid phone number"
    ]


# -- the line locator ----------------------------------------------------------------


def test_locator_handles_dotted_quoted_and_inline_keys() -> None:
    text = (
        "# comment = 1\n"
        "top = 1\n"
        '[escalation.reasons."no-match"]\n'
        'message = """two\n'
        'lines = "not a key"\n'
        '"""\n'
        "nested.key = [\n"
        '  "a = b",\n'
        "]\n"
        "inline = { a = 1, b = { c = 'x' } }\n"
    )
    locator = KeyLocator(text)
    assert locator.exact(("top",)) == 2
    assert locator.exact(("escalation", "reasons", "no-match")) == 3
    assert locator.exact(("escalation",)) == 3
    assert locator.exact(("escalation", "reasons", "no-match", "message")) == 4
    assert locator.exact(("escalation", "reasons", "no-match", "lines")) is None
    assert locator.exact(("escalation", "reasons", "no-match", "nested", "key")) == 7
    assert locator.exact(("escalation", "reasons", "no-match", "inline", "b", "c")) == 10
    assert locator.line_of(("escalation", "reasons", "no-match", "missing")) == 3
    assert locator.line_of(("elsewhere",)) is None


def test_windows_line_endings_and_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b'\xef\xbb\xbf[agent]\r\ncompany_name = "A"\r\ncompnay = 1\r\n')
    assert problems(path) == [f"{path}:3: agent.compnay: unknown key; did you mean 'company_name'?"]


def test_mistyped_database_url_does_not_print_the_password(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[database]\nurl = "postgressql://agent:Hunter2@db/agent"\n')

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    message = str(caught.value)
    assert f"{path}:2: database.url:" in message and "Hunter2" not in message


PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def test_sip_register_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[sip]\nmode = "register"\nregistrar = "alice@pbx.example.net"\nusername = "alice"\n'
        'password = "pw"\nrealm = ""\nregister_expires_seconds = 30\n',
    )
    assert problems(path) == [
        f'{path}:3: sip.registrar: "alice@pbx.example.net": write the host only; '
        "the user goes in username",
        f'{path}:6: sip.realm: must not be empty; "*" answers any realm',
        f"{path}:7: sip.register_expires_seconds: 30 is out of range; expected 60 to 3600",
    ]
    path = write(
        tmp_path,
        '[sip]\nmode = "register"\nregistrar = "sip:pbx.example.net:5070"\nusername = "alice"\n'
        'password = "pw"\nrealm = "example"\nregister_expires_seconds = 600\n',
    )
    path.write_text(path.read_text().replace("sip:pbx", "sips:pbx"))
    assert problems(path) == [f'{path}:3: sip.registrar: a sips: URI needs transport = "tls"']
    path.write_text(path.read_text().replace("sips:pbx", "sip:pbx"))
    sip = load_config(path).sip
    assert (sip.registrar, sip.realm, sip.register_expires_seconds) == (
        "sip:pbx.example.net:5070",
        "example",
        600,
    )


def test_sip_tls_files(tmp_path: Path) -> None:
    (tmp_path / "agent.crt").write_text(PEM_CERT)
    (tmp_path / "agent.key").write_text(PEM_KEY)
    (tmp_path / "many.pem").write_text(PEM_CERT * 41)
    path = write(tmp_path, '[sip]\ntransport = "tls"\nmode = "register"\n')
    assert problems(path) == [
        f'{path}:2: sip.tls_certificate: required when sip.transport is "tls"',
        f'{path}:2: sip.tls_private_key: required when sip.transport is "tls"',
        f'{path}:2: sip.tls_ca_file: required when sip.mode is "register" with TLS',
        f'{path}:3: sip.registrar: required when sip.mode is "register"',
        f'{path}:3: sip.username: required when sip.mode is "register"',
        f"{path}:3: sip.password: environment variable SIP_PASSWORD (the default) is not set",
    ]
    path = write(
        tmp_path,
        f'[sip]\ntransport = "tls"\ntls_certificate = "{tmp_path}/agent.key"\n'
        f'tls_private_key = "{tmp_path}/missing.key"\ntls_ca_file = "{tmp_path}/many.pem"\n'
        "tls_verify_client = true\n",
    )
    assert problems(path) == [
        f'{path}:3: sip.tls_certificate: "{tmp_path}/agent.key" holds no PEM CERTIFICATE '
        "(-----BEGIN CERTIFICATE-----)",
        f'{path}:4: sip.tls_private_key: cannot read "{tmp_path}/missing.key": '
        "No such file or directory",
        f'{path}:5: sip.tls_ca_file: "{tmp_path}/many.pem" holds 41 certificates; more than 40 '
        "make the SIP stack's TLS handshakes stall: keep only the CAs needed",
    ]
    path = write(tmp_path, '[sip]\ntls_verify_client = true\ntls_certificate = "/nowhere"\n')
    assert load_config(path).sip.tls_certificate == "/nowhere"  # checked only with TLS
    path = write(
        tmp_path,
        f'[sip]\ntransport = "tls"\nport = 5061\ntls_certificate = "{tmp_path}/agent.crt"\n'
        f'tls_private_key = "{tmp_path}/agent.key"\ntls_verify_client = true\n',
    )
    assert problems(path) == [
        f"{path}:6: sip.tls_ca_file: required when sip.tls_verify_client is true"
    ]
    path.write_text(path.read_text() + f'tls_ca_file = "{tmp_path}/agent.crt"\n')
    sip = load_config(path).sip
    assert (sip.transport, sip.tls_verify_client) == ("tls", True)
    assert sip.tls_ca_file == f"{tmp_path}/agent.crt"
