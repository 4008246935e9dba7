"""``scripts/bench-understanding``: how well the agent understands callers, condition by condition.

Every clip of the corpus (``scripts/make-corpus``: scripted turns in several voices through a
phone line, clean and degraded) goes through the path a call takes: the 8 kHz line audio
converted once to the internal rate (as the SIP edge does), fed in 20 ms frames to the call's
own ``TurnListener`` (WebRTC VAD → ``UtteranceSegmenter`` with the shipped ``[asr]`` timings,
speculative transcription included) with ``FasterWhisperTranscriber.from_settings``; each turn
it delivers is parsed by the project's Rasa model (started here, on a free port) through
``RasaIntentParser``, and the invoice is chosen with ``choose_invoice`` as the policy does.
Scoring is in ``agent.bench.understanding_score``. Not a test: it prints figures.

    python -m agent.bench.understanding [--models tiny.en base] [--limit N]
        [--conditions C ...] [--voices V ...] [--corpus DIR] [--misses]

``--limit N`` takes the first N turns, the turns of the scripted calls first, so that a small
run still plays a few whole calls.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from agent.asr.whisper import FasterWhisperTranscriber
from agent.audio.convert import frames, read_wav, resample
from agent.audio.format import FRAME_MS, SAMPLE_RATE, TELEPHONE_RATE
from agent.audio.vad import WebRtcVad
from agent.bench.corpus import CORPUS_DIR, MANIFEST, TRAIL_MS
from agent.bench.machine import describe
from agent.bench.turns import Script, ScriptError, load_script
from agent.bench.understanding_score import Heard, Tally, score_call, score_clip
from agent.config import Config, NluSettings, load_config
from agent.dialog.session import make_policy
from agent.dialog.turn_end import Expectation, judge_turn, offered_hint
from agent.dialog.types import Step, Utterance
from agent.errors import AgentError
from agent.nlu.client import IntentParser, RasaIntentParser
from agent.nlu.server import ManagedNluServer
from agent.paths import PROJECT_ROOT
from agent.voice.listener import (
    CallerTurn,
    HearingFailed,
    ListenerEvent,
    SpeechStarted,
    TurnListener,
)
from agent.voice.services import segmenter_settings
from agent.voice.workers import Worker

SHIPPED_CONFIG = PROJECT_ROOT / "config" / "agent.toml"
COLUMNS = ("clips", "intent", "selection", "WER", "cut-offs", "wrong invoice")


async def hear(
    listener_parts: tuple[FasterWhisperTranscriber, Worker],
    config: Config,
    line8k_path: Path,
    expected: Expectation | None,
) -> tuple[list[str], list[str]]:
    """The texts of the turns the call's listener delivers for one clip: those that started
    while the scripted words were being said, and those started later (noise taken for a
    turn after the caller was done). ``expected``: the question the clip answers, for the
    endpoint that listens to meaning (None: the fixed endpoint only)."""
    transcriber, pool = listener_parts
    samples, rate = read_wav(line8k_path)
    if rate != TELEPHONE_RATE:
        raise ValueError(f"{line8k_path}: {rate} Hz; the corpus is 8 kHz line audio")
    wide = resample(samples, TELEPHONE_RATE, SAMPLE_RATE)  # the SIP edge's conversion
    events: list[ListenerEvent] = []
    listener = TurnListener(
        transcriber, WebRtcVad(), segmenter_settings(config.asr), events.append, pool
    )
    if expected is not None:
        listener.judge = functools.partial(judge_turn, expected=expected)
        if config.asr.bias_to_offered and expected.step is Step.CHOOSING:
            listener.hint = offered_hint(expected.offered)
    listener.arm()

    clip = [f.astype("<i2").tobytes() for f in frames(wide)]
    tail = clip[-TRAIL_MS // FRAME_MS :]
    longest = int(config.asr.max_utterance_seconds * 1000 / FRAME_MS)

    words_end = (len(clip) - len(tail)) * FRAME_MS / 1000
    # "arrived" is the time in the clip (the listener only passes it on in its events).
    # Frames go in as fast as the listener takes them, except while a speculative
    # transcription runs: then in real time, as a call's frames keep arriving while Whisper
    # works, so a judgement of the words lands as many frames into the silence as in a call.

    def pace() -> float:
        return FRAME_MS / 1000 if listener.speculating else 0.0

    async def feed() -> AsyncIterator[tuple[float, bytes]]:
        for k, frame in enumerate(clip):
            yield k * FRAME_MS / 1000, frame
            await asyncio.sleep(pace())  # finished transcriptions are delivered, as in a call
        # A line does not stop after the words: while the turn is still open (noise the VAD
        # takes for speech), the clip's last 1.5 s go on, until the endpoint or the cut-off.
        for k in range(longest):
            if not listener.segmenter.in_speech:
                return
            yield (len(clip) + k) * FRAME_MS / 1000, tail[k % len(tail)]
            await asyncio.sleep(pace())

    await listener.run(feed())
    failed = [e for e in events if isinstance(e, HearingFailed)]
    if failed:
        raise RuntimeError(f"{line8k_path}: speech recognition failed: {failed[0].detail}")
    inside: list[str] = []
    after: list[str] = []
    started = 0.0
    for event in events:
        if isinstance(event, SpeechStarted):
            started = event.at
        elif isinstance(event, CallerTurn):
            (inside if started < words_end else after).append(event.text)
    return inside, after


async def run_model(
    model: str,
    config: Config,
    parser: IntentParser,
    *,
    script: Script,
    clips: list[dict[str, str]],
    show_misses: bool,
    corpus: Path,
) -> dict[str, Tally]:
    """Every clip with Whisper ``model``: a tally per condition."""
    asr = replace(config.asr, model=model)  # type: ignore[arg-type]
    transcriber = FasterWhisperTranscriber.from_settings(asr, PROJECT_ROOT / "var" / "models")
    pool = Worker("asr", transcriber.workers)
    policy = make_policy(config, script.today)
    threshold = config.nlu.confidence_threshold
    tallies: dict[str, Tally] = {}
    heard: dict[tuple[str, str], dict[str, Utterance]] = {}
    try:
        for clip in clips:
            turn = script.turn(clip["turn"])
            offered = script.offered[turn.offered] if turn.offered else ()
            expected = Expectation(Step(turn.answers), offered)
            texts, after = await hear(
                (transcriber, pool), replace(config, asr=asr), corpus / clip["clip"], expected
            )  # (a fixed endpoint: the judgements change nothing)
            segments = tuple([await parser.parse(t) for t in texts if t.strip()])
            result = Heard(segments, tuple(after))
            tally = tallies.setdefault(clip["condition"], Tally())
            label = f"{model} {clip['clip']}"
            score_clip(tally, turn, heard=result, offered=offered, threshold=threshold, label=label)
            heard.setdefault((clip["voice"], clip["condition"]), {})[turn.id] = result.first
            if show_misses and tally.misses:
                print(f"    {tally.misses.pop()}", flush=True)
        for (voice, condition), by_turn in heard.items():
            for call in script.calls:
                if {call.pay, call.choose, call.yes, call.no} <= by_turn.keys():
                    offered = script.offered[call.offered]
                    label = f"{model} {voice}/{condition}"
                    score_call(
                        tallies[condition], policy,
                        call=call, offered=offered, heard=by_turn, label=label,
                    )  # fmt: skip
                    if show_misses and tallies[condition].misses:
                        print(f"    {tallies[condition].misses.pop()}", flush=True)
    finally:
        pool.shutdown(wait=False)
    return tallies


def table(results: dict[str, dict[str, Tally]]) -> str:
    """A markdown table: one row per model × condition."""
    lines = [
        "| model | condition | " + " | ".join(COLUMNS) + " |",
        "|---|---|" + "---:|" * len(COLUMNS),
    ]
    for model, tallies in results.items():
        for condition, tally in tallies.items():
            row = tally.row()
            lines.append(f"| {model} | {condition} | " + " | ".join(row[c] for c in COLUMNS) + " |")
    return "\n".join(lines)


def select_clips(corpus: Path, args: argparse.Namespace, script: Script) -> list[dict[str, str]]:
    """Manifest rows for the chosen voices, conditions and turns; SystemExit if none."""
    manifest = corpus / MANIFEST
    if not manifest.is_file():
        raise SystemExit(f"bench-understanding: no {manifest}; make it with scripts/make-corpus")
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    order = script.ordered_ids()
    wanted = set(order[: args.limit] if args.limit else order)
    chosen = [
        r for r in rows
        if r["turn"] in wanted
        and (not args.voices or r["voice"] in args.voices)
        and (not args.conditions or r["condition"] in args.conditions)
    ]  # fmt: skip
    if not chosen:
        raise SystemExit("bench-understanding: no clip in the corpus matches those choices")
    rank = {t: k for k, t in enumerate(order)}
    chosen.sort(key=lambda r: (r["condition"], r["voice"], rank.get(r["turn"], len(rank))))
    return chosen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def run_all(
    args: argparse.Namespace,
    config: Config,
    script: Script,
    clips: list[dict[str, str]],
    nlu: NluSettings,
) -> dict[str, dict[str, Tally]]:
    parser = RasaIntentParser.from_settings(nlu)
    results: dict[str, dict[str, Tally]] = {}
    try:
        for model in args.models:
            start = time.monotonic()
            results[model] = await run_model(
                model, config, parser,
                script=script, clips=clips, show_misses=args.misses, corpus=args.corpus,
            )  # fmt: skip
            seconds = time.monotonic() - start
            print(f"  {model}: {len(clips)} clips in {seconds:.0f} s", flush=True)
    finally:
        await parser.aclose()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench-understanding", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"],
                        choices=["tiny.en", "base"])  # fmt: skip
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N turns")
    parser.add_argument("--conditions", nargs="+", metavar="C")
    parser.add_argument("--voices", nargs="+", metavar="V")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR, help="default: var/corpus")
    parser.add_argument("--misses", action="store_true", help="print every clip misheard")
    parser.add_argument(
        "--fixed-endpoint", action="store_true",
        help="end every turn after [asr] endpoint_silence_ms, whatever the words (the "
        "endpoint before it listened to meaning)",
    )  # fmt: skip
    parser.add_argument(
        "--bias", action="store_true",
        help="[asr] bias_to_offered = true: Whisper is given the amounts and dates read",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    try:
        script = load_script()
        config = load_config(SHIPPED_CONFIG)
        if args.bias:
            config = replace(config, asr=replace(config.asr, bias_to_offered=True))
        if args.fixed_endpoint:
            fixed = config.asr.endpoint_silence_ms
            asr = replace(config.asr, endpoint_complete_ms=fixed, endpoint_incomplete_ms=fixed)
            config = replace(config, asr=asr)
    except (ScriptError, AgentError) as err:
        print(f"bench-understanding: {err}", file=sys.stderr)
        return 2
    clips = select_clips(args.corpus, args, script)
    nlu = replace(
        config.nlu,
        url=f"http://127.0.0.1:{free_port()}",
        model_dir=str(PROJECT_ROOT / "var" / "nlu-models"),
        venv=str(PROJECT_ROOT / ".venv-nlu"),
        auth_token_file=str(PROJECT_ROOT / "var" / "nlu-token"),
        timeout_seconds=10,
    )
    print(f"machine: {describe()}")
    print(f"{len(clips)} clips from {args.corpus}; models {' '.join(args.models)}", flush=True)
    log_path = PROJECT_ROOT / "var" / "log" / "bench-understanding-nlu.log"
    with ManagedNluServer(nlu, log_path=log_path):
        results = asyncio.run(run_all(args, config, script, clips, nlu))
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
