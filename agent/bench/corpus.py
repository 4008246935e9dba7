"""``scripts/make-corpus``: the understanding benchmark's audio, made from the turn file.

Every turn of ``tests/corpus/turns.toml`` in every voice — Piper ``joe-us`` at three paces,
espeak-ng ``en-us`` at three pitch/speed settings — with real silence for ``<pause N>``,
300 ms of silence before and 1.5 s after (a turn as the listener hears it, endpoint
included), then through a phone line under every condition of ``agent.bench.line_conditions``.
Written to ``var/corpus/<voice>/<condition>/<turn>.wav`` (8 kHz mono 16-bit, what the line
delivers) with ``manifest.jsonl``: one line per clip with its turn, voice, condition and the
meaning expected. Deterministic: Piper without sampling noise, fixed seeds per clip, so making
a clip again gives the same bytes (``tests/test_corpus.py`` checks it).

    python -m agent.bench.corpus [--out DIR] [--voices V ...] [--conditions C ...]
                                 [--turns ID ...] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from agent.audio.convert import Int16Array, read_wav, resample, write_wav
from agent.audio.format import SAMPLE_RATE, TELEPHONE_RATE
from agent.bench.line_conditions import BABBLE_TALKERS, CONDITIONS, apply, seed_for
from agent.bench.turns import Script, ScriptError, Turn, load_script
from agent.paths import PROJECT_ROOT
from agent.tts import PiperSynthesizer

CORPUS_DIR = PROJECT_ROOT / "var" / "corpus"
MANIFEST = "manifest.jsonl"
LEAD_MS = 300
TRAIL_MS = 1500
PIPER_VOICES = {"piper-0.85": 0.85, "piper-1.0": 1.0, "piper-1.2": 1.2}
"""Piper ``joe-us`` (the agent's own voice model) at these length scales."""
ESPEAK_VOICES = {"espeak-a": (50, 165), "espeak-b": (30, 140), "espeak-c": (75, 190)}
"""espeak-ng ``en-us`` at (pitch 0-99, words per minute)."""
VOICES = (*PIPER_VOICES, *ESPEAK_VOICES)

Speaker = Callable[[str], Int16Array]


def piper_speaker(length_scale: float) -> Speaker:
    """Piper at ``length_scale``, without sampling noise (the same words, the same audio)."""
    piper = PiperSynthesizer(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0)
    return lambda text: np.concatenate(list(piper.synthesize(text)))


def espeak_speaker(pitch: int, speed: int) -> Speaker:
    def speak(text: str) -> Int16Array:
        with tempfile.TemporaryDirectory() as folder:
            wav = Path(folder) / "turn.wav"
            subprocess.run(
                ["espeak-ng", "-v", "en-us", "-p", str(pitch), "-s", str(speed), "-w", str(wav)]
                + [text],
                check=True,
                capture_output=True,
            )
            samples, rate = read_wav(wav)
        return resample(samples, rate, SAMPLE_RATE)

    return speak


def speaker(voice: str) -> Speaker:
    if voice in PIPER_VOICES:
        return piper_speaker(PIPER_VOICES[voice])
    if voice in ESPEAK_VOICES:
        return espeak_speaker(*ESPEAK_VOICES[voice])
    raise ValueError(f"unknown voice {voice!r}; known: {', '.join(VOICES)}")


def silence(ms: int) -> Int16Array:
    return np.zeros(SAMPLE_RATE * ms // 1000, dtype=np.int16)


def say_turn(speak: Speaker, turn: Turn) -> Int16Array:
    """The turn at 16 kHz: each stretch between pauses spoken alone, real silence between."""
    parts = [silence(LEAD_MS)]
    for piece in turn.pieces:
        parts.append(silence(piece) if isinstance(piece, int) else speak(piece))
    parts.append(silence(TRAIL_MS))
    return np.concatenate(parts)


def babble_talkers(script: Script, turn: Turn) -> list[str]:
    """The turns (ids) that make the babble under ``turn``: fixed per turn, never itself."""
    others = [t.id for t in script.turns if t.id != turn.id]
    rng = np.random.default_rng(seed_for("babble", turn.id))
    return [others[k] for k in rng.choice(len(others), BABBLE_TALKERS, replace=False)]


def clip_path(out: Path, voice: str, condition: str, turn_id: str) -> Path:
    return out / voice / condition / f"{turn_id}.wav"


def manifest_row(script: Script, turn: Turn, voice: str, condition: str) -> dict[str, object]:
    return {
        "clip": f"{voice}/{condition}/{turn.id}.wav",
        "turn": turn.id,
        "voice": voice,
        "condition": condition,
        "words": turn.spoken,
        "answers": turn.answers,
        "intent": turn.intent,
        "offered": turn.offered,
        "selects": turn.selects,
    }


class SpokenTurns:
    """Turns said by one voice, each synthesised once (the babble reuses them)."""

    def __init__(self, script: Script, speak: Speaker) -> None:
        self.script = script
        self.speak = speak
        self._said: dict[str, Int16Array] = {}

    def __call__(self, turn_id: str) -> Int16Array:
        if turn_id not in self._said:
            self._said[turn_id] = say_turn(self.speak, self.script.turn(turn_id))
        return self._said[turn_id]


def make(
    script: Script,
    out: Path,
    *,
    voices: Sequence[str],
    conditions: Sequence[str],
    turns: Sequence[Turn],
    progress: Callable[[str], None] = lambda _: None,
) -> list[dict[str, object]]:
    """Write every clip of ``turns`` × ``voices`` × ``conditions``; return the manifest rows."""
    rows = []
    for voice in voices:
        said = SpokenTurns(script, speaker(voice))
        for turn in turns:
            for condition in conditions:
                talkers = []
                if condition.startswith("babble"):
                    talkers = [said(t) for t in babble_talkers(script, turn)]
                seed = seed_for(turn.id, voice, condition)
                line = apply(condition, said(turn.id), seed, talkers)
                path = clip_path(out, voice, condition, turn.id)
                path.parent.mkdir(parents=True, exist_ok=True)
                write_wav(path, line, TELEPHONE_RATE)
                rows.append(manifest_row(script, turn, voice, condition))
            progress(f"{voice}: {turn.id}")
    return rows


def write_manifest(out: Path, rows: list[dict[str, object]]) -> None:
    """Merge ``rows`` into the folder's manifest (a later run replaces a clip's old row)."""
    path = out / MANIFEST
    kept: dict[str, dict[str, object]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            kept[str(row["clip"])] = row
    for row in rows:
        kept[str(row["clip"])] = row
    lines = [json.dumps(kept[k], sort_keys=True) for k in sorted(kept)]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def choose(given: Sequence[str] | None, known: Sequence[str], what: str) -> list[str]:
    """``given`` checked against ``known`` (all of them when None); SystemExit names the bad."""
    if not given:
        return list(known)
    unknown = [g for g in given if g not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return list(given)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make-corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CORPUS_DIR, help="default: var/corpus")
    parser.add_argument("--voices", nargs="+", metavar="VOICE", help=", ".join(VOICES))
    parser.add_argument("--conditions", nargs="+", metavar="C", help=", ".join(CONDITIONS))
    parser.add_argument("--turns", nargs="+", metavar="ID", help="only these turns")
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="only the first N turns (those of the scripted calls first)",
    )
    args = parser.parse_args(argv)
    try:
        script = load_script()
    except ScriptError as err:
        print(f"make-corpus: {err}", file=sys.stderr)
        return 2
    voices = choose(args.voices, VOICES, "voice")
    conditions = choose(args.conditions, CONDITIONS, "condition")
    turn_ids = choose(args.turns, script.ordered_ids(), "turn")
    if args.limit is not None:
        if args.limit < 1:
            raise SystemExit("--limit must be at least 1")
        turn_ids = turn_ids[: args.limit]
    turns = [script.turn(t) for t in turn_ids]
    clips = len(turns) * len(voices) * len(conditions)
    print(f"making {clips} clips in {args.out}", flush=True)
    rows = make(script, args.out, voices=voices, conditions=conditions, turns=turns)
    write_manifest(args.out, rows)
    print(f"{len(rows)} clips written; manifest: {args.out / MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
