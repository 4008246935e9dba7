"""``scripts/bench-barge-in``: what the caller says over the agent, and whether it stops.

Events a caller makes while the agent talks — backchannels ("uh-huh", "okay", "yeah"), sounds
that are not words (a cough, a door, clicks on the line, a breath), and real interruptions
("wait", "stop", "sorry?", "representative", the start of a sentence) — are spoken in several
voices (the corpus's Piper and espeak-ng voices) or made with numpy (the noises, seeded), put
through the phone line under several conditions (``agent.bench.line_conditions``), and fed in
20 ms frames to a call's own ``TurnListener`` while the agent is talking (disarmed: no
no-input timer), with the shipped ``[asr]`` settings and Whisper. Each listener event goes to
``agent.voice.barge_in.interrupts`` exactly as the call does.

Frames go in as fast as the listener takes them until the caller makes a sound, then in real
time (a call's frames keep arriving while Whisper works) until the listener has decided
(the turn delivered, or the agent stopped); so the clip time at which the agent would stop is
what it would be in a call (on this machine, with nothing else running). Printed per event
kind and condition: how often the agent stopped (for backchannels and noises that is the
false barge-in rate; for interruptions, one minus the missed rate), and for interruptions
the time from the caller's first sound to the stop (p50/p95) and from
the end of a one-word interruption to the stop. Not a test: it prints figures.

    python -m agent.bench.barge_in [--models tiny.en base] [--voices V ...] [--conditions C ...]
                                   [--misses]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace

import numpy as np

from agent.asr.whisper import FasterWhisperTranscriber
from agent.audio.convert import Int16Array, frames, resample
from agent.audio.format import FRAME_MS, SAMPLE_RATE, TELEPHONE_RATE
from agent.audio.vad import WebRtcVad
from agent.bench.corpus import speaker
from agent.bench.line_conditions import apply, seed_for
from agent.bench.machine import describe, percentile
from agent.config import Config, load_config
from agent.paths import PROJECT_ROOT
from agent.voice.barge_in import interrupts
from agent.voice.listener import CallerTurn, ListenerEvent, TurnListener
from agent.voice.services import segmenter_settings
from agent.voice.workers import Worker

SHIPPED_CONFIG = PROJECT_ROOT / "config" / "agent.toml"
LEAD_MS = 300
TRAIL_MS = 2000
BACKCHANNELS = ("uh-huh", "okay", "yeah", "mm-hmm", "right", "okay, yeah", "thank you", "yes")
INTERRUPTIONS = (
    "wait", "stop", "sorry?", "representative", "hold on", "no, the other one",
    "actually I wanted the second one", "can I talk to a person",
)  # fmt: skip
NOISES = ("cough", "door", "clicks", "breath")
VOICES = ("piper-1.0", "piper-1.2", "espeak-a", "espeak-b")
CONDITIONS = ("clean", "car-10", "loss-2")


@dataclass(frozen=True)
class Event:
    kind: str
    """"backchannel", "noise" or "interruption"."""
    name: str
    voice: str
    audio: Int16Array
    """16 kHz, the event alone (no lead or trail)."""


@dataclass
class Tally:
    events: int = 0
    stopped: int = 0
    from_onset_ms: list[float] = field(default_factory=list)
    from_end_ms: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)


def noise(name: str) -> Int16Array:
    """A sound that is not a word, made with numpy (seeded)."""
    rng = np.random.default_rng(seed_for("barge-in", name))
    rate = SAMPLE_RATE
    if name == "cough":  # two bursts of breathy noise with a fast attack
        bursts = []
        for length in (0.18, 0.14):
            t = np.arange(int(length * rate)) / rate
            envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t / 0.06)
            bursts += [rng.normal(0, 0.5, t.size) * envelope, np.zeros(int(0.08 * rate))]
        signal = np.concatenate(bursts)
    elif name == "door":  # a thump: low-passed impulse with a short ring
        t = np.arange(int(0.25 * rate)) / rate
        signal = np.sin(2 * np.pi * 90 * t) * np.exp(-t / 0.04) + rng.normal(0, 0.3, t.size) * (
            np.exp(-t / 0.01)
        )
    elif name == "clicks":  # line clicks: five 2 ms pops 80 ms apart
        signal = np.zeros(int(0.4 * rate))
        for k in range(5):
            start = int((0.02 + 0.08 * k) * rate)
            signal[start : start + int(0.002 * rate)] = 0.8
    elif name == "breath":  # a long soft exhale
        t = np.arange(int(0.6 * rate)) / rate
        signal = rng.normal(0, 0.08, t.size) * np.sin(np.pi * t / t[-1])
    else:
        raise ValueError(f"unknown noise {name!r}")
    peak = float(np.abs(signal).max()) or 1.0
    return (signal / peak * 0.5 * 32767).astype(np.int16)


def events(voices: list[str]) -> list[Event]:
    made: list[Event] = [Event("noise", name, "-", noise(name)) for name in NOISES]
    for voice in voices:
        speak = speaker(voice)
        made += [Event("backchannel", w, voice, speak(w)) for w in BACKCHANNELS]
        made += [Event("interruption", w, voice, speak(w)) for w in INTERRUPTIONS]
    return made


def sounding(audio: Int16Array) -> tuple[float, float]:
    """Seconds from the start of ``audio`` to its first loud 20 ms frame and to the end of its
    last (loud: within 30 dB of the loudest)."""
    size = SAMPLE_RATE * FRAME_MS // 1000
    usable = audio[: audio.size - audio.size % size].astype(np.float64).reshape(-1, size)
    power = (usable**2).mean(axis=1)
    loud = np.nonzero(power >= power.max() * 1e-3)[0]
    if not loud.size:
        return 0.0, 0.0
    return float(loud[0] * FRAME_MS / 1000), float((loud[-1] + 1) * FRAME_MS / 1000)


async def stop_time(
    parts: tuple[FasterWhisperTranscriber, Worker], config: Config, line8k: Int16Array
) -> float | None:
    """Clip time (s) at which the call would stop talking, or None if it would go on."""
    transcriber, pool = parts
    stopped: list[float] = []
    delivered: list[ListenerEvent] = []
    now = [0.0]

    def emit(event: ListenerEvent) -> None:
        if not stopped and interrupts(event):
            stopped.append(now[0])
        if isinstance(event, CallerTurn):
            delivered.append(event)

    listener = TurnListener(transcriber, WebRtcVad(), segmenter_settings(config.asr), emit, pool)
    listener.long_speech_seconds = config.tts.barge_in_after_ms / 1000
    listener.disarm()  # the agent is talking
    wide = resample(line8k, TELEPHONE_RATE, SAMPLE_RATE)

    async def feed() -> AsyncIterator[tuple[float, bytes]]:
        for k, frame in enumerate(frames(wide)):
            if stopped or delivered:
                return
            now[0] = (k + 1) * FRAME_MS / 1000
            yield now[0], frame.astype("<i2").tobytes()
            await asyncio.sleep(FRAME_MS / 1000 if listener.busy else 0.0)

    await listener.run(feed())
    await listener.aclose()
    return stopped[0] if stopped else None


async def run_model(
    model: str, config: Config, made: list[Event], conditions: list[str],
    progress: Callable[[str], None],
) -> dict[tuple[str, str], Tally]:  # fmt: skip
    asr = replace(config.asr, model=model)  # type: ignore[arg-type]
    transcriber = FasterWhisperTranscriber.from_settings(asr, PROJECT_ROOT / "var" / "models")
    pool = Worker("asr", transcriber.workers)
    config = replace(config, asr=asr)
    tallies: dict[tuple[str, str], Tally] = {}
    lead = np.zeros(SAMPLE_RATE * LEAD_MS // 1000, np.int16)
    trail = np.zeros(SAMPLE_RATE * TRAIL_MS // 1000, np.int16)
    try:
        for event in made:
            for condition in conditions:
                clip = np.concatenate([lead, event.audio, trail])
                seed = seed_for("barge-in", event.name, event.voice, condition)
                line = apply(condition, clip, seed)
                at = await stop_time((transcriber, pool), config, line)
                tally = tallies.setdefault((event.kind, condition), Tally())
                tally.events += 1
                label = f"{model} {condition} {event.voice} {event.name!r}"
                if at is not None:
                    tally.stopped += 1
                    start, end = sounding(event.audio)
                    tally.from_onset_ms.append(1000 * (at - LEAD_MS / 1000 - start))
                    if " " not in event.name.strip("?"):
                        tally.from_end_ms.append(1000 * (at - LEAD_MS / 1000 - end))
                    if event.kind != "interruption":
                        tally.misses.append(f"{label}: stopped")
                elif event.kind == "interruption":
                    tally.misses.append(f"{label}: went on")
            progress(f"  {model}: {event.kind} {event.voice} {event.name!r}")
    finally:
        pool.shutdown(wait=False)
    return tallies


def table(results: dict[str, dict[tuple[str, str], Tally]]) -> str:
    lines = [
        "| model | events | condition | n | stopped | from first sound p50 / p95 | "
        "from end of one word p50 / p95 |",
        "|---|---|---|---:|---:|---|---|",
    ]

    def spread(values: list[float]) -> str:
        if not values:
            return "-"
        return f"{percentile(values, 50):.0f} / {percentile(values, 95):.0f} ms"

    for model, tallies in results.items():
        for (kind, condition), t in sorted(tallies.items()):
            share = f"{t.stopped}/{t.events} ({100 * t.stopped / t.events:.0f}%)"
            lines.append(
                f"| {model} | {kind} | {condition} | {t.events} | {share} | "
                f"{spread(t.from_onset_ms)} | {spread(t.from_end_ms)} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-barge-in", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"],
                        choices=["tiny.en", "base"])  # fmt: skip
    parser.add_argument("--voices", nargs="+", default=list(VOICES), metavar="V")
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), metavar="C")
    parser.add_argument("--misses", action="store_true", help="print every wrong decision")
    parser.add_argument("--after-ms", type=int, metavar="MS",
                        help="[tts] barge_in_after_ms (default: the shipped config's)")  # fmt: skip
    args = parser.parse_args(argv)
    config = load_config(SHIPPED_CONFIG)
    if args.after_ms is not None:
        config = replace(config, tts=replace(config.tts, barge_in_after_ms=args.after_ms))
    print(f"barge_in_after_ms = {config.tts.barge_in_after_ms}")
    print(f"machine: {describe()}")
    made = events(args.voices)
    print(f"{len(made)} events x {len(args.conditions)} conditions; models {' '.join(args.models)}")
    results = {}
    for model in args.models:
        results[model] = asyncio.run(
            run_model(model, config, made, args.conditions, lambda line: None)
        )
        if args.misses:
            for tally in results[model].values():
                for miss in tally.misses:
                    print(f"    {miss}")
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
