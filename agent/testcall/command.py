"""``voice-agent test-call``'s command line: options checked and turned into ``CallerOptions``.

Kept free of heavy imports (pjsua2, Whisper, Piper): the CLI imports this module for every
command, and ``handle`` loads the call machinery (``agent.testcall.run``, which imports
nothing from here) only when ``test-call`` runs.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
from pathlib import Path

from agent.config import Config
from agent.errors import Problem, ProblemsError
from agent.sip.uri import SipUriError, Uri, parse_uri
from agent.testcall.options import NOISE_DBFS_RANGE, CallerOptions
from agent.testcall.prompts import PromptSettings
from agent.testcall.turns import Turn, TurnSpecError, parse_turns

CODECS = ("pcmu", "pcma", "g722")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``voice-agent test-call``."""
    add = parser.add_argument
    add("--to", metavar="SIP_URI", help="whom to call (default: the agent in the config's [sip])")
    add("--from", dest="from_user", required=True, metavar="E164",
        help="caller ID, e.g. +14165550123 (or anonymous)")  # fmt: skip
    add("--pai", metavar="VALUE", help="send this P-Asserted-Identity header")
    add("--codec", choices=CODECS, help="offer only this codec (default: PCMU, PCMA, G.722)")
    add("--say", action="append", default=[], metavar="TURN",
        help='a caller turn, in order: "text", FILE.wav, dtmf:DIGITS, dtmf-info:DIGITS, '
        "silence:SECONDS, hangup; barge:TEXT or barge:FILE.wav starts 1 s into "
        "the agent's prompt")  # fmt: skip
    add("--pace", type=float, metavar="SCALE",
        help="speaking pace of text turns: above 1.0 slower, below faster (0.5 to 2.0; "
        "default: [tts] length_scale)")  # fmt: skip
    add("--noise", type=float, metavar="DBFS",
        help="add line noise at this RMS level under everything the caller sends, silences "
        "included (-70 to -10, e.g. -45; default: none)")  # fmt: skip
    add("--record", type=Path, metavar="OUT.wav", help="write the agent's audio (16 kHz WAV)")
    add("--json", action="store_true", help="one JSON object per agent turn, then the outcome")
    add("--asr-model", choices=("tiny.en", "base"), help="Whisper model (default: [asr] model)")
    add("--no-transcript", action="store_true",
        help="do not transcribe what the agent said (only the outcome)")  # fmt: skip
    add("--bind", metavar="IP", help="local address (default: 127.0.0.1 for a loopback target)")
    add("--prompt-silence", type=float, default=1.0, metavar="SECONDS",
        help="silence that ends an agent prompt (default 1.0)")  # fmt: skip
    add("--turn-timeout", type=float, default=20.0, metavar="SECONDS",
        help="longest wait for an agent prompt to start (default 20); none by then: "
        "exit 1, the reason in the report")  # fmt: skip
    add("--answer-timeout", type=float, default=15.0, metavar="SECONDS",
        help="longest wait for the call to be answered (default 15)")  # fmt: skip
    add("--end-timeout", type=float, default=20.0, metavar="SECONDS",
        help="after the last turn, longest wait for the agent to hang up (default 20)")  # fmt: skip
    add("--transfer-linger", type=float, default=2.0, metavar="SECONDS",
        help="how long to stay on a call a transfer connected, listening (default 2)")  # fmt: skip


def handle(args: argparse.Namespace, config: Config) -> int:
    """The ``test-call`` handler: check the options, then place the call."""
    options = options_from_args(args, config)
    from agent.testcall.run import run_test_call  # noqa: PLC0415 - pjsua2, Whisper: only here

    return run_test_call(config, options)


def options_from_args(args: argparse.Namespace, config: Config) -> CallerOptions:
    """``CallerOptions`` from parsed arguments; ``ProblemsError`` (exit 2) listing mistakes."""
    problems: list[Problem] = []
    to = args.to or default_target(config)
    try:
        if parse_uri(to).scheme != "sip":
            raise SipUriError("not sip:")
    except SipUriError:
        problems.append(Problem("--to", None, f"{to!r} is not a sip: URI"))
    if args.from_user != "anonymous" and not _E164.match(args.from_user):
        message = f"{args.from_user!r} is not an E.164 number (e.g. +14165550123) or anonymous"
        problems.append(Problem("--from", None, message))
    turns: list[Turn] = []
    try:
        turns = parse_turns(args.say)
    except TurnSpecError as err:
        problems.extend(Problem("--say", None, line) for line in str(err).splitlines())
    if args.record is not None and not args.record.parent.resolve().is_dir():
        problems.append(Problem("--record", None, f"no folder {args.record.parent}"))
    checks = (
        ("--answer-timeout", args.answer_timeout, 0.1, 300.0),
        ("--end-timeout", args.end_timeout, 0.0, 600.0),
        ("--transfer-linger", args.transfer_linger, 0.0, 120.0),
    )
    for name, value, low, high in checks:
        if not low <= value <= high:
            problems.append(Problem(name, None, f"must be {low:g} to {high:g} seconds"))
    if args.pace is not None and not 0.5 <= args.pace <= 2.0:
        problems.append(Problem("--pace", None, f"must be 0.5 to 2.0, got {args.pace:g}"))
    noise: float | None = args.noise
    low, high = NOISE_DBFS_RANGE
    if noise is not None and not low <= noise <= high:
        message = f"must be {low:g} to {high:g} dBFS (RMS), got {noise:g}"
        problems.append(Problem("--noise", None, message))
    prompt = PromptSettings()
    try:
        prompt = PromptSettings(
            silence_seconds=args.prompt_silence, timeout_seconds=args.turn_timeout
        )
    except ValueError as err:
        problems.append(Problem("--prompt-silence/--turn-timeout", None, str(err)))
    if problems:
        raise ProblemsError(problems)
    return CallerOptions(
        to=to,
        from_user=args.from_user,
        turns=turns,
        bind_address=args.bind or bind_address_for(to),
        transport=transport_of(to),
        pai=args.pai,
        codec=args.codec,
        record=args.record,
        as_json=args.json,
        asr_model="base" if args.asr_model == "base" else "tiny.en" if args.asr_model else None,
        transcribe=not args.no_transcript,
        pace=args.pace,
        prompt=prompt,
        answer_timeout=args.answer_timeout,
        end_timeout=args.end_timeout,
        transfer_linger=args.transfer_linger,
        noise_dbfs=noise,
    )


def default_target(config: Config) -> str:
    """``sip:agent@HOST:PORT`` of the configured listener (0.0.0.0 dialled as 127.0.0.1)."""
    sip = config.sip
    host = "127.0.0.1" if sip.listen_address in ("0.0.0.0", "") else sip.listen_address
    if ":" in host:
        host = "[::1]" if host == "::" else f"[{host}]"
    suffix = "" if sip.transport == "udp" else f";transport={sip.transport}"
    return f"sip:agent@{host}:{sip.port}{suffix}"


def transport_of(uri: str) -> str:
    """The transport a URI's ``transport`` parameter names: "udp" (default), "tcp", "tls"."""
    transport = _parse(uri).params.get("transport", "udp").lower()
    return transport if transport in ("udp", "tcp", "tls") else "udp"


def bind_address_for(uri: str) -> str:
    """127.0.0.1 for a loopback target (SDP then names loopback), else every interface."""
    host = _parse(uri).host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    return "127.0.0.1" if loopback else "0.0.0.0"


def _parse(uri: str) -> Uri:
    """``uri`` read by the agent's one SIP URI parser (an unparsable one: no host, no params)."""
    try:
        return parse_uri(uri)
    except SipUriError:
        return Uri("sip", "")
