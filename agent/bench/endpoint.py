"""``python -m agent.bench.endpoint``: how the early endpoint would split or speed up turns.

Caller phrases with pauses inside them (commas, which Piper voices as ~0.2–0.4 s pauses, and
hesitations made by joining parts with silence) are spoken by Piper, put through an 8 kHz
μ-law line, then fed frame by frame to the agent's own VAD and segmenter with no endpoint
(so every pause is seen). At each pause, as on a call, the audio so far is transcribed 100 ms
into the silence. For each early-endpoint setting it counts:

- cuts: pauses *inside* a phrase that were long enough and whose transcript sounded finished
  (``sounds_finished``: the last word is not one that needs a continuation such as "the",
  "to", "and", "um", "hundred", and there is no trailing comma): the caller would have been
  cut off there;
- early ends: final pauses where the turn would end early, and the endpoint wait then
  (the early setting, or 100 ms + the ASR time if the transcript came later).

Measured (base, 2 cores, 2026-11-26): the check is not safe. Whisper turns a fragment into
a finished-sounding word ("can I" -> "Bye.", "it's the" -> "Yeah.", "No," -> "Hello."), and
its ``avg_logprob`` does not tell those apart from real turns, so an early endpoint at
250 ms cut 6 of 44 inner pauses that the 350 ms endpoint would have kept whole (one of them
turning "it's the... third one" into a "yes"). The agent therefore does not end turns early
on how the words sound.

What it does instead (``agent.dialog.turn_end``) judges the words against the question asked:
only a yes or a no to a yes/no question, or words picking exactly one invoice read, end a turn
early. ``--judged`` measures that rule on the same pauses, under each question (greeting,
choosing among the demo caller's three invoices, confirming): the inner pauses it would cut
(judged complete and at least ``[asr] endpoint_complete_ms`` long, or unsure and at least the
fixed endpoint), and how soon the final pauses end.

Not a test: it prints figures (and the transcripts that caused cuts).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import date

import numpy as np

from agent.asr.models import whisper_model_dir
from agent.asr.whisper import FasterWhisperTranscriber
from agent.audio.convert import Int16Array, array_to_pcm16, frames, telephone_round_trip
from agent.audio.format import SAMPLE_RATE
from agent.audio.segmenter import (
    Completeness,
    SegmenterEvent,
    SegmenterSettings,
    UtteranceSegmenter,
)
from agent.audio.vad import WebRtcVad
from agent.bench.machine import describe, percentile
from agent.dialog.turn_end import Expectation, judge_turn
from agent.dialog.types import InvoiceView, Step
from agent.paths import PROJECT_ROOT
from agent.tts import PiperSynthesizer

# --- the early endpoint's text check, as tried (not used: see docs/performance.md) ---------
CONTINUING_WORDS = frozenset(
    """
    a an the my our your his her their this these those some any another every no
    to for of from with on in at about by into onto over under than as via per
    and or but because so if when while since until unless whether nor plus
    um uh er erm ah hmm mm like well actually basically just
    i i'm i'd i'll i've it's its is was are were am be been can could would will shall
    should may might must want wanna need gonna gotta going trying
    let we we're you're he she they that's what's which who whose where how
    hundred thousand point
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
"""Last words after which a sentence almost always goes on."""

_OPEN_ENDING = re.compile(r"(,|-|–|—|\.\.\.|…)\s*$")
_WORD = re.compile(r"[a-z0-9']+")


def sounds_finished(text: str) -> bool:
    """Whether ``text`` (a transcript of the caller's audio so far) could be a whole turn."""
    stripped = text.strip()
    if not stripped or _OPEN_ENDING.search(stripped):
        return False
    words = _WORD.findall(stripped.lower().replace("’", "'"))
    if not words:
        return False
    return words[-1] not in CONTINUING_WORDS


PHRASES = (
    "Yes, the second one, please.",
    "No, the first one.",
    "Yes, please, text it to me.",
    "Okay, yes, go ahead.",
    "Well, I'd like to pay my bill.",
    "Hi, I'm calling about my invoice.",
    "The one for a hundred twenty nine, fifty.",
    "Sorry, can you repeat that?",
    "Yeah, that one, the plumbing one.",
    "Um, I want to talk to a person.",
    "I'd like to | pay my bill",
    "the one for | a hundred twenty nine fifty",
    "I want to pay | the invoice from October",
    "um | the second one",
    "can I | speak to someone please",
    "it's the | third one",
    "I need to pay | an invoice",
    "yes | that's the one",
    "I'm calling because | I got a bill",
    "the one from | November",
)
"""``|`` marks a hesitation: the parts are spoken separately and joined with silence."""
HESITATION_SECONDS = (0.15, 0.25, 0.4)
ENDPOINT_MS = 350
"""The full endpoint wait the early endpoint is compared with."""
SPECULATIVE_SECONDS = 0.1
EARLY_SETTINGS_MS = (150, 200, 250)


@dataclass(frozen=True)
class Pause:
    phrase: str
    final: bool
    silence_ms: float
    """How long the pause lasted (for the final one: the whole trailing silence)."""
    text: str
    asr_ms: float
    logprob: float


def clips(piper: PiperSynthesizer) -> list[tuple[str, Int16Array]]:
    made: list[tuple[str, Int16Array]] = []
    for phrase in PHRASES:
        parts = [p.strip() for p in phrase.split("|")]
        for gap in HESITATION_SECONDS if len(parts) > 1 else (0.0,):
            pieces: list[Int16Array] = [np.zeros(SAMPLE_RATE // 2, dtype=np.int16)]
            for index, part in enumerate(parts):
                if index:
                    pieces.append(np.zeros(int(gap * SAMPLE_RATE), dtype=np.int16))
                pieces.extend(piper.synthesize(part))
            pieces.append(np.zeros(SAMPLE_RATE, dtype=np.int16))
            label = phrase if not gap else f"{phrase} ({gap * 1000:.0f} ms)"
            made.append((label, telephone_round_trip(np.concatenate(pieces))))
    return made


def pauses(label: str, clip: Int16Array, transcriber: FasterWhisperTranscriber) -> list[Pause]:
    vad = WebRtcVad()
    segmenter = UtteranceSegmenter(
        SegmenterSettings(
            endpoint_silence_seconds=5.0,
            speculative_silence_seconds=SPECULATIVE_SECONDS,
            max_utterance_seconds=60,
            no_input_timeout_seconds=60,
        )
    )
    heard: list[bytes] = []
    found: list[tuple[str, float, float]] = []  # text, asr ms, silence at the end of the pause
    logprobs: list[float] = []
    started = False
    for frame in frames(clip):
        data = array_to_pcm16(frame)
        event = segmenter.process(0.02, vad.is_speech(data))
        if event is SegmenterEvent.SPEECH_START:
            started = True
        if started:
            heard.append(data)
        if event is SegmenterEvent.SILENCE_STARTED:
            samples = np.frombuffer(b"".join(heard), dtype="<i2")
            transcript = transcriber.transcribe(samples)
            found.append((transcript.text, transcript.compute_seconds * 1000, 0.0))
            logprobs.append(transcript.avg_logprob)
        if found and segmenter.silence_seconds > 0:
            text, asr_ms, longest = found[-1]
            found[-1] = (text, asr_ms, max(longest, segmenter.silence_seconds * 1000))
    return [
        Pause(label, index == len(found) - 1, silence, text, asr_ms, logprobs[index])
        for index, (text, asr_ms, silence) in enumerate(found)
    ]


def judged(inner: list[Pause], final: list[Pause], complete_ms: int, fixed_ms: int) -> None:
    """The judged endpoint on these pauses, under each question the agent asks."""
    offered = (
        InvoiceView("INV-2207", 12950, "CAD", date(2026, 11, 13)),
        InvoiceView("INV-2163", 41200, "CAD", date(2026, 10, 23)),
        InvoiceView("INV-2118", 8999, "CAD", date(2026, 9, 28)),
    )
    limits = {Completeness.COMPLETE: complete_ms, Completeness.UNSURE: fixed_ms}
    for step in (Step.GREETING, Step.CHOOSING, Step.CONFIRMING):
        expected = Expectation(step, offered)
        cuts = [
            p for p in inner
            if p.silence_ms >= limits.get(judge_turn(p.text, expected), 10**9)
        ]  # fmt: skip
        early = [p for p in final if judge_turn(p.text, expected) is Completeness.COMPLETE]
        print(
            f"judged, {step.value}: {len(cuts)}/{len(inner)} inner pauses cut the caller off "
            f"(fixed {fixed_ms} ms alone: {sum(p.silence_ms >= fixed_ms for p in inner)}); "
            f"{len(early)}/{len(final)} turns judged complete at their end"
        )
        for p in cuts:
            verdict = judge_turn(p.text, expected).value
            print(f"    cut ({verdict}): {p.phrase!r} after {p.text!r} ({p.silence_ms:.0f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="base", choices=("tiny.en", "base"))
    parser.add_argument(
        "--judged", type=int, metavar="COMPLETE_MS",
        help="measure the judged endpoint (agent.dialog.turn_end) with this complete-answer "
        "silence instead of the text check as tried",
    )  # fmt: skip
    args = parser.parse_args()
    piper = PiperSynthesizer(noise_scale=0.0, noise_w_scale=0.0)
    model_dir = whisper_model_dir(args.model, PROJECT_ROOT / "var" / "models")
    transcriber = FasterWhisperTranscriber(model_dir, english_only=args.model == "tiny.en")
    found = [p for label, clip in clips(piper) for p in pauses(label, clip, transcriber)]
    inner = [p for p in found if not p.final]
    final = [p for p in found if p.final]
    print(f"{len(final)} phrases, {len(inner)} pauses inside them; Whisper {args.model}")
    print(f"on {describe()}")
    if args.judged is not None:
        judged(inner, final, args.judged, ENDPOINT_MS)
        return
    print(
        "final-pause transcripts that sound finished: "
        f"{sum(sounds_finished(p.text) for p in final)}/{len(final)}"
    )
    for p in final:
        if not sounds_finished(p.text):
            print(f"    not finished-sounding at the end: {p.phrase!r} heard {p.text!r}")
    finals = sorted(round(p.logprob, 2) for p in final)
    print(f"final transcripts' avg_logprob: {finals}")
    print(f"ASR time at the pauses: p50 {percentile([p.asr_ms for p in found], 50):.0f} ms")
    for p in inner:
        mark = "FINISHED?" if sounds_finished(p.text) else "continues"
        print(f"    inner {p.silence_ms:4.0f} ms {mark:9} {p.text!r}  <- {p.phrase!r}")
    baseline = [p for p in inner if p.silence_ms >= ENDPOINT_MS]
    print(
        f"endpoint {ENDPOINT_MS} ms alone: {len(baseline)}/{len(inner)} inner pauses "
        "cut the caller off"
    )
    for early in EARLY_SETTINGS_MS:
        extra = [
            p for p in inner
            if sounds_finished(p.text) and early <= p.silence_ms < ENDPOINT_MS
        ]  # fmt: skip
        waits = [
            min(ENDPOINT_MS, max(early, SPECULATIVE_SECONDS * 1000 + p.asr_ms))
            for p in final
            if sounds_finished(p.text)
        ]
        print(
            f"early {early} ms: {len(extra)} more inner pauses would cut the caller off "
            f"(even with instant ASR); {len(waits)}/{len(final)} turns end early, endpoint wait "
            f"with this ASR p50 {percentile(waits, 50):.0f} ms p95 {percentile(waits, 95):.0f} ms"
        )
        for p in extra:
            print(
                f"    cut: {p.phrase!r} after {p.text!r} "
                f"({p.silence_ms:.0f} ms pause, logprob {p.logprob:.2f})"
            )


if __name__ == "__main__":
    main()
