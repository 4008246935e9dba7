"""Piper synthesis with the real packaged voice: sentences, rate, laziness, the prompt cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from piper import PiperVoice, SynthesisConfig

from agent.audio.format import SAMPLE_RATE
from agent.tts import PiperSynthesizer, PromptCache, load_joe_us_voice

PIPER_RATE = 22050
THREE_SENTENCES = "Thanks for calling. I found two open invoices. Which one would you like to pay?"


@dataclass
class CountingVoice(PiperVoice):
    """The real voice, counting the sentences it turns into audio (and their raw lengths)."""

    raw_lengths: list[int] = field(default_factory=list)

    def phoneme_ids_to_audio(
        self,
        phoneme_ids: list[int],
        syn_config: SynthesisConfig | None = None,
        include_alignments: bool = False,
    ) -> Any:
        audio = super().phoneme_ids_to_audio(phoneme_ids, syn_config, include_alignments)
        self.raw_lengths.append(len(audio))
        return audio

    @property
    def calls(self) -> int:
        return len(self.raw_lengths)


@pytest.fixture(scope="module")
def loaded_voice() -> PiperVoice:
    return load_joe_us_voice()


@pytest.fixture
def voice(loaded_voice: PiperVoice) -> CountingVoice:
    return CountingVoice(
        session=loaded_voice.session,
        config=loaded_voice.config,
        espeak_data_dir=loaded_voice.espeak_data_dir,
    )


def test_one_int16_chunk_per_sentence_resampled_to_16k(voice: CountingVoice) -> None:
    assert voice.config.sample_rate == PIPER_RATE
    chunks = list(PiperSynthesizer(voice=voice).synthesize(THREE_SENTENCES))

    assert len(chunks) == 3 == voice.calls
    for chunk, raw in zip(chunks, voice.raw_lengths, strict=True):
        assert chunk.dtype == np.int16 and chunk.ndim == 1
        assert abs(chunk.size - raw * SAMPLE_RATE / PIPER_RATE) <= 1  # resampled once, to 16k
        assert 0.3 < chunk.size / SAMPLE_RATE < 6
        rms = np.sqrt(np.mean(chunk.astype(np.float64) ** 2))
        assert rms > 1000, "speech, not silence"


def test_first_sentence_is_ready_before_the_others_are_made(voice: CountingVoice) -> None:
    sentences = PiperSynthesizer(voice=voice).synthesize(THREE_SENTENCES)

    first = next(sentences)
    assert first.size > 0
    assert voice.calls == 1
    assert len(list(sentences)) == 2
    assert voice.calls == 3


def test_native_rate_and_blank_text(voice: CountingVoice) -> None:
    native = PiperSynthesizer(sample_rate=PIPER_RATE, voice=voice)
    (chunk,) = native.synthesize("Goodbye.")
    assert chunk.size == voice.raw_lengths[0]
    assert list(native.synthesize("   ")) == []


def test_prompt_cache_reuses_audio_without_synthesising_again(voice: CountingVoice) -> None:
    cache = PromptCache(PiperSynthesizer(voice=voice), max_entries=1)
    greeting = "Thanks for calling. How can I help?"
    cache.warm([greeting])
    assert voice.calls == 2

    first = list(cache.synthesize(greeting))
    again = list(cache.synthesize(greeting))
    assert voice.calls == 2
    assert len(first) == 2
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert not first[0].flags.writeable, "callers must not be able to alter the cache"

    # Other texts are synthesised, kept once fully heard, and evicted beyond max_entries.
    assert len(list(cache.synthesize("One moment."))) == 1
    assert voice.calls == 3
    list(cache.synthesize("One moment."))
    assert voice.calls == 3
    list(cache.synthesize("Goodbye."))
    assert cache.cached("One moment.") is None
    assert cache.cached(greeting) is not None  # warmed prompts are never evicted
    assert len(cache) == 2
