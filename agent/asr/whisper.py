"""Whisper through faster-whisper, with the encoder run on the caller's turn only.

Every method here is blocking model work (ctranslate2 releases the GIL while it computes):
callers on the event loop run it in an executor. One transcriber is shared by every call:
it holds ``workers`` replicas of the model's compute (the weights are loaded once), so that
many transcriptions run at the same time, each on ``cpu_threads`` threads; more run one after
another.

The direct path (``transcribe``)
--------------------------------
faster-whisper's ``transcribe()`` pads every input to 30 s (3000 log-mel frames), so a 1 s
"yes" costs as much encoder time as a 30 s monologue. Whisper's encoder accepts fewer frames,
so ``transcribe`` computes the log-mel features of the turn only, padded with digital silence
to a window of ``window_frames`` (at least ``min_window_frames``: ``MIN_WINDOW_FRAMES``), runs
``model.encode`` on that window and ``model.generate`` with the English start-of-transcript
prompt and ``<|notimestamps|>``, greedy (or ``beam_size``), with the token count bounded by the
turn's length. Measured on 40 Piper-voiced phone clips (20 caller phrases at two speaking
rates, 8 kHz μ-law), against faster-whisper's own ``transcribe()`` on the same clips:

- the window must not hug the turn. With 500-600 frames tiny.en's words differed from the
  standard path on 19 of 40 clips (base: 7), mostly loops ("no" -> "no no no no", "that's
  right that's right", "can I talk to a person can I") or a lost last word; with 1000 frames
  on 5 (base: 3, where the direct path was the more accurate one), one of them a loop that
  the retry below catches.
- base tolerates a shorter window than tiny.en. On 72 phone clips (24 caller phrases in
  Piper's voice and in espeak-ng's at two speeds; 360 words) base made 114/115/114/120 word
  errors at 600/700/800/1000 frames with no wider-window retry from 700 up, and its compute
  p50 fell from 244 ms (1000) to 131-182 ms (700-800); tiny.en made 92/101/105/99 errors but
  needed 8/2/1/0 retries, so it keeps 1000 (``python -m agent.bench.window``). base takes 800:
  in live calls one turn (a caller who paused mid-phrase and went on) looped at 700 and at
  800 alike, and the 1500-frame retry below got it right.
- padding the *audio* with zeros before computing features beats padding the *features* with
  zeros (what faster-whisper does up to 3000 frames): with feature padding at 500 frames 31 of
  60 tiny.en clips looped. The log-mel floor of real silence is what Whisper saw in training
  (OpenAI's reference pads the audio), and it is what makes the decoder stop.
- a result that still loops (``is_repetitive``) or reaches the token bound is decoded again
  from a window 200 frames wider, then from 1500 frames, then from the full 3000 (the
  standard path's view of the audio), so a loop costs time, not words;
  ``Transcript.encoder_frames`` says which window produced the text. Going to 3000 at once
  cost base ~1.4 s in a live call. A loop hangs on the window's exact length: every loop
  met at 700-800 frames (tiny.en on 3 of the 72 ``agent.bench.window`` clips; base on the
  live "Yes, please." turn of ``scripts/bench-latency``, captured 7 times) was gone 200
  frames wider, with the same words as at 1500 and at about half the cost. At 600 frames
  tiny.en still looped on 1 of 8 200 frames wider and made more word errors there (24
  against 13 at 1500), which is what the later rungs are for.
- encoder time, 2 threads on this project's 2-core machine: tiny.en 30/70/140/420 ms and
  base 70/155/250/900+ ms for 500/1000/1500/3000 frames; the decoder then takes 6-13 ms per
  token (tiny.en/base). See ``python -m agent.bench.asr`` for whole-turn figures.

Silence and noise never become words: a result whose ``no_speech_prob`` exceeds
``no_speech_threshold`` (0.6), that has no letters or digits, or that is one of Whisper's
stock hallucinations on noise ("you", "thank you", "thanks for watching", ...) while the model
is not sure it heard speech (``no_speech_prob`` above 0.2), comes back as "". Measured: silence,
hum and white noise at -60 to -20 dBFS gave ``no_speech_prob`` 0.68-0.99; spoken words
0.00-0.38 (a lone "you"), so a caller's real "thank you" (0.00-0.04) is kept.
"""

from __future__ import annotations

import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from threading import Event
from typing import Any, Protocol

import ctranslate2
import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

from agent.asr import AsrError, TranscriptionAbandoned
from agent.asr.models import whisper_model_dir
from agent.audio.convert import Int16Array
from agent.audio.format import SAMPLE_RATE
from agent.config import AsrSettings

FULL_WINDOW_FRAMES = 3000
"""Whisper's 30 s window in log-mel frames (10 ms each); the encoder takes at most this."""

HOP_SAMPLES = SAMPLE_RATE // 100
"""Samples per log-mel frame (160 at 16 kHz)."""

SILENCE_HALLUCINATIONS = frozenset(
    {
        "you",
        "thank you",
        "thank you very much",
        "thanks for watching",
        "thank you for watching",
        "thanks for listening",
        "please subscribe",
        "i'm",
        "oh",
        "so",
        "bye",
        "uh",
        "um",
        "hmm",
    }
)
"""Normalised texts Whisper makes up on silence or noise; dropped unless it is sure of speech."""

MIN_WINDOW_FRAMES = {"tiny.en": 1000, "base": 800}
"""The smallest encoder window per packaged model, measured (see the module docstring)."""

RETRY_STEP_FRAMES = 200
"""The first retry of a looping result widens the window by this much (see the docstring)."""

RETRY_WINDOWS = (1500, FULL_WINDOW_FRAMES)
"""Wider windows tried after that, in turn, while the result still loops."""

_MAX_TOKENS = 448
_WORD = re.compile(r"[a-z0-9']+")


class Transcriber(Protocol):
    """Turns one finished utterance into text."""

    def transcribe(
        self, samples: Int16Array, abandoned: Event | None = None, hint: str = ""
    ) -> Transcript:
        """Transcribe 16 kHz mono int16 ``samples``; "" when there is no speech. Blocking.

        Once ``abandoned`` is set, the work may stop at its next step and raise
        ``TranscriptionAbandoned`` (a speculative run whose caller went on speaking).
        ``hint``: what the caller was just offered ("$129.50, $412.00 ..."), which they are
        likely to repeat; the recogniser may be biased toward it."""
        ...


@dataclass(frozen=True)
class Transcript:
    """What was heard in one utterance, and what it cost."""

    text: str
    """The words, as Whisper writes them ("Yes, please send it."); "" for silence or noise."""

    no_speech_prob: float
    """Whisper's probability that there was no speech at all (0..1)."""

    avg_logprob: float
    """Mean log-probability of the decoded tokens (closer to 0 is surer); 0.0 if none."""

    audio_seconds: float
    """Length of the audio given."""

    compute_seconds: float
    """Wall time the transcription took (features, encoder, decoder; retries included)."""

    encoder_frames: int = 0
    """Log-mel frames the encoder saw for the final text (3000 on the standard path)."""

    decodes: int = 1
    """Encoder and decoder runs: 1, plus one per wider-window retry of a looping result."""


def normalize_words(text: str) -> str:
    """Lower case, punctuation dropped, single spaces: "Yes, please." -> "yes please"."""
    return " ".join(_WORD.findall(text.lower().replace("\u2019", "'")))


def is_repetitive(text: str) -> bool:
    """Whether ``text`` loops: it starts over (all of it repeats its first words, "no no",
    "can I talk to a person can I", with at least two words repeated unless one word loops),
    or it ends in one word or phrase said three times running ("... bill bill bill")."""
    words = normalize_words(text).split()
    for period in range(1, len(words)):
        repeated = len(words) - period
        if repeated >= min(2, period) and words[period:] == words[:repeated]:
            return True
    for size in range(1, len(words) // 3 + 1):
        tail = words[-size:]
        if words[-2 * size : -size] == tail and words[-3 * size : -2 * size] == tail:
            return True
    return False


@dataclass(frozen=True)
class _Decoded:
    text: str
    no_speech_prob: float
    avg_logprob: float
    hit_limit: bool


class FasterWhisperTranscriber:
    """``Transcriber`` on faster-whisper (CTranslate2, CPU, int8), see the module docstring.

    ``english_only`` must match the model (True for tiny.en, False for the multilingual base,
    which is then told the language is English). ``hotwords`` (space separated) are given to
    the decoder as previous text, to bias it toward domain words. ``cpu_threads`` (per
    transcription) 0 means one per core, at most four; ``workers`` transcriptions may run at
    once.
    """

    def __init__(
        self,
        model_dir: Path | str,
        *,
        english_only: bool,
        beam_size: int = 1,
        hotwords: str = "",
        cpu_threads: int = 0,
        workers: int = 1,
        min_window_frames: int = 1000,
        no_speech_threshold: float = 0.6,
    ) -> None:
        model_dir = Path(model_dir)
        if not (model_dir / "tokenizer.json").is_file() or not (model_dir / "model.bin").is_file():
            raise AsrError(
                f"{model_dir} is not a Whisper model directory (model.bin and tokenizer.json "
                "are needed; without tokenizer.json faster-whisper would download one)"
            )
        if not 1 <= beam_size <= 5:
            raise ValueError(f"beam_size must be 1 to 5, got {beam_size}")
        if not 100 <= min_window_frames <= FULL_WINDOW_FRAMES:
            raise ValueError(f"min_window_frames must be 100 to 3000, got {min_window_frames}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        threads = cpu_threads or cores()
        try:
            self._model = WhisperModel(
                str(model_dir),
                device="cpu",
                compute_type="int8",
                cpu_threads=threads,
                num_workers=workers,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as err:
            raise AsrError(f"cannot load the Whisper model in {model_dir}: {err}") from err
        multilingual = bool(self._model.model.is_multilingual)
        if multilingual == english_only:
            kind = "multilingual" if multilingual else "English-only"
            raise AsrError(f"{model_dir} holds a {kind} model but english_only={english_only}")
        self.model_dir = model_dir
        self.workers = workers
        self.beam_size = beam_size
        self.hotwords = hotwords.strip()
        self.min_window_frames = min_window_frames
        self.no_speech_threshold = no_speech_threshold
        self._tokenizer = Tokenizer(self._model.hf_tokenizer, multilingual, "transcribe", "en")
        self._prompt = self._build_prompt()
        self._hinted: dict[str, list[int]] = {}
        self._suppress = list(get_suppressed_tokens(self._tokenizer, [-1]) or ())

    @classmethod
    def from_settings(cls, settings: AsrSettings, cache_dir: Path) -> FasterWhisperTranscriber:
        """The transcriber ``[asr]`` asks for (``asr_workers`` single-threaded transcriptions
        at once); ``cache_dir`` is where base is joined."""
        return cls(
            whisper_model_dir(settings.model, cache_dir),
            english_only=settings.model.endswith(".en"),
            beam_size=settings.beam_size,
            hotwords=settings.hotwords,
            cpu_threads=1,
            workers=asr_workers(settings),
            min_window_frames=MIN_WINDOW_FRAMES[settings.model],
        )

    def _build_prompt(self, hint: str = "") -> list[int]:
        """The decoder's prompt: the hotwords and ``hint`` as previous text, then the
        start of an English transcript without timestamps."""
        tokenizer = self._tokenizer
        prompt: list[int] = []
        previous = " ".join(part for part in (self.hotwords, hint.strip()) if part)
        if previous:
            words = tokenizer.encode(" " + previous)[-(_MAX_TOKENS // 2 - 1) :]
            prompt += [tokenizer.sot_prev, *words]
        return [*prompt, *tokenizer.sot_sequence, tokenizer.no_timestamps]

    def _prompt_for(self, hint: str) -> list[int]:
        if not hint:
            return self._prompt
        prompt = self._hinted.get(hint)
        if prompt is None:
            if len(self._hinted) > 64:  # one per question asked in the calls of the moment
                self._hinted.clear()
            prompt = self._hinted[hint] = self._build_prompt(hint)
        return prompt

    def warm_up(self) -> None:
        """Run both paths on a second of silence, on every worker at once, so the first
        callers wait less."""
        silence = np.zeros(SAMPLE_RATE, dtype=np.int16)
        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(lambda _: self.transcribe(silence), range(self.workers)))
        self.transcribe_standard(silence)

    def transcribe(
        self, samples: Int16Array, abandoned: Event | None = None, hint: str = ""
    ) -> Transcript:
        """The direct path: the encoder sees the turn (plus silence), not 30 s. Blocking.

        ``abandoned`` is looked at before the encoder, before the decoder and before each
        retry; once set, ``TranscriptionAbandoned`` is raised there. Under load a thrown-away
        speculative run then stops early instead of holding a worker for its whole length.
        ``hint`` goes to the decoder as previous text, after the hotwords."""
        started = time.perf_counter()
        audio = _to_float(samples)
        seconds = audio.size / SAMPLE_RATE
        if audio.size == 0:
            return Transcript("", 1.0, 0.0, 0.0, time.perf_counter() - started, 0)
        frames = self.window_frames(audio.size)
        if frames > FULL_WINDOW_FRAMES:  # longer than Whisper's window: let it chunk
            return self.transcribe_standard(samples)
        prompt = self._prompt_for(hint)
        max_new = min(_MAX_TOKENS - len(prompt), 12 + math.ceil(10 * seconds))
        decoded = self._decode(self._features(audio, frames), prompt, max_new, abandoned)
        decodes = 1
        for wider in (frames + RETRY_STEP_FRAMES, *RETRY_WINDOWS):
            if not (decoded.hit_limit or is_repetitive(decoded.text)):
                break
            if frames < wider <= FULL_WINDOW_FRAMES:
                frames = wider
                features = self._features(audio, frames)
                decoded = self._decode(features, prompt, max_new, abandoned)
                decodes += 1
        return Transcript(
            text=self._gate(decoded.text, decoded.no_speech_prob),
            no_speech_prob=decoded.no_speech_prob,
            avg_logprob=decoded.avg_logprob,
            audio_seconds=seconds,
            compute_seconds=time.perf_counter() - started,
            encoder_frames=frames,
            decodes=decodes,
        )

    def window_frames(self, samples: int) -> int:
        """Encoder window for ``samples`` of audio: the turn plus >= 1 s of silence, rounded up
        to 100 frames, at least ``min_window_frames`` (may exceed 3000 for a long turn)."""
        needed = -(-samples // HOP_SAMPLES) + 100
        return max(self.min_window_frames, -(-needed // 100) * 100)

    def _features(self, audio: npt.NDArray[np.float32], frames: int) -> npt.NDArray[np.float32]:
        padded = np.zeros(frames * HOP_SAMPLES, dtype=np.float32)
        padded[: min(audio.size, padded.size)] = audio[: padded.size]
        features = self._model.feature_extractor(padded)[:, :frames]
        return np.ascontiguousarray(features[np.newaxis], dtype=np.float32)

    def _decode(
        self,
        features: npt.NDArray[np.float32],
        prompt: list[int],
        max_new_tokens: int,
        abandoned: Event | None,
    ) -> _Decoded:
        _check(abandoned)
        try:
            encoded = self._model.model.encode(ctranslate2.StorageView.from_array(features))
            _check(abandoned)
            result: Any = self._model.model.generate(
                encoded,
                [prompt],
                beam_size=self.beam_size,
                max_length=len(prompt) + max_new_tokens,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=self._suppress,
            )[0]
        except (RuntimeError, ValueError) as err:
            raise AsrError(f"Whisper failed on {features.shape[-1]} frames: {err}") from err
        tokens: list[int] = result.sequences_ids[0]
        # As faster-whisper does: the score is length-normalised; +1 counts the end token.
        avg_logprob = float(result.scores[0]) * len(tokens) / (len(tokens) + 1) if tokens else 0.0
        return _Decoded(
            text=self._tokenizer.decode(tokens).strip(),
            no_speech_prob=float(result.no_speech_prob),
            avg_logprob=avg_logprob,
            hit_limit=len(tokens) >= max_new_tokens,
        )

    def transcribe_standard(self, samples: Int16Array) -> Transcript:
        """faster-whisper's own ``transcribe()`` (30 s window), for comparison. Blocking."""
        started = time.perf_counter()
        audio = _to_float(samples)
        try:
            segments, _info = self._model.transcribe(
                audio,
                language="en",
                beam_size=self.beam_size,
                without_timestamps=True,
                condition_on_previous_text=False,
                vad_filter=False,
                hotwords=self.hotwords or None,
            )
            heard = list(segments)  # the generator does the work: consume it here
        except (RuntimeError, ValueError) as err:
            raise AsrError(f"Whisper failed: {err}") from err
        text = "".join(segment.text for segment in heard).strip()
        no_speech = max((s.no_speech_prob for s in heard), default=1.0)
        avg = sum(s.avg_logprob for s in heard) / len(heard) if heard else 0.0
        return Transcript(
            text=self._gate(text, no_speech),
            no_speech_prob=no_speech,
            avg_logprob=avg,
            audio_seconds=audio.size / SAMPLE_RATE,
            compute_seconds=time.perf_counter() - started,
            encoder_frames=FULL_WINDOW_FRAMES,
        )

    def _gate(self, text: str, no_speech_prob: float) -> str:
        """``text``, or "" when it is most likely not speech (see the module docstring)."""
        words = normalize_words(text)
        if no_speech_prob > self.no_speech_threshold or not words:
            return ""
        if words in SILENCE_HALLUCINATIONS and no_speech_prob > 0.2:
            return ""
        return text


def _check(abandoned: Event | None) -> None:
    if abandoned is not None and abandoned.is_set():
        raise TranscriptionAbandoned


def cores() -> int:
    """CPU cores to use: those this process may run on, at most four."""
    return min(4, len(os.sched_getaffinity(0)) or 1)


def asr_workers(settings: AsrSettings) -> int:
    """Transcriptions run at once: ``[asr] workers``, or one per core when it is 0."""
    return settings.workers or cores()


def _to_float(samples: Int16Array) -> npt.NDArray[np.float32]:
    array = np.asarray(samples)
    if array.ndim != 1 or array.dtype != np.int16:
        raise ValueError(f"expected 1-D int16 samples, got {array.dtype} {array.shape}")
    return array.astype(np.float32) / 32768.0
