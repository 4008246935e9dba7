"""Line noise for ``voice-agent test-call --noise DBFS``: a steady hiss under all the caller sends.

A real phone line never goes quiet: the noise is there under the caller's words, in the
pauses between turns and while the agent speaks. ``LineNoise.mix`` adds the next 20 ms of
it to every frame the test caller sends, speech or silence alike (``agent.sip.caller`` calls
it for each frame the conference bridge asks for).

The noise is Gaussian and pink (-3 dB per octave) within the telephone channel's band,
300 to 3400 Hz (ITU-T G.712): all of it survives an 8 kHz codec (PCMU/PCMA drop everything
above 4 kHz), so the requested level is the level on the line whichever codec is used. Its
level is the RMS relative to full scale (32768), as sox's ``stat`` reads "RMS lev dB".

Why the band starts at 300 Hz, measured with the agent's own ``WebRtcVad`` (aggressiveness 2)
on 3 x 20 s of noise alone after a PCMU round trip (seeds 1-3): noise from 300 Hz, pink or
white, is never called speech up to -35 dBFS (at -30 dBFS: 34 % white, 95 % pink); the same
pink noise from 200 Hz is called speech in 43 % of its frames from -45 dBFS (white from
200 Hz: 41 % from -40 dBFS). Energy between 200 and 300 Hz is a hum or rumble rather than a
line's hiss, and the VAD takes it for a voice: a different test from a noisy line.

It is made in blocks of half a second by shaping a random spectrum (one inverse FFT per
block), each block scaled to exactly the requested RMS and joined to the next by a 10 ms
equal-power crossfade (the blocks are uncorrelated, so the level holds through the join).
The generator is seeded: every call hears the same noise, and a test that passes once
passes again.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agent.audio.format import SAMPLE_RATE
from agent.testcall.options import NOISE_DBFS_RANGE

Samples = npt.NDArray[np.float64]

SEED = 1042
"""The random generator's seed: the same noise on every call."""

BAND_HZ = (300.0, 3400.0)
"""The noise's band: the telephone channel's, carried whole by every codec."""

BLOCK_SAMPLES = SAMPLE_RATE // 2
"""Samples made at once (0.5 s): one inverse FFT every 25 frames on the bridge's thread."""

FADE_SAMPLES = SAMPLE_RATE // 100
"""Crossfade between two blocks (10 ms)."""

FULL_SCALE = 32768.0


def rms_dbfs(samples: npt.ArrayLike) -> float:
    """The RMS level of int16-scaled ``samples`` in dB relative to full scale (32768)."""
    values = np.asarray(samples, dtype=np.float64)
    rms = float(np.sqrt(np.mean(values**2))) if values.size else 0.0
    return 20 * float(np.log10(max(rms, 1e-9) / FULL_SCALE))


class LineNoise:
    """Endless band-limited pink noise at ``dbfs`` (RMS), added frame by frame with ``mix``.

    Not thread-safe: one thread (the conference bridge's clock thread) draws from it."""

    def __init__(self, dbfs: float, seed: int = SEED) -> None:
        low, high = NOISE_DBFS_RANGE
        if not low <= dbfs <= high:
            raise ValueError(f"line noise must be {low:g} to {high:g} dBFS, got {dbfs:g}")
        self.dbfs = dbfs
        self._rms = FULL_SCALE * 10 ** (dbfs / 20)
        self._rng = np.random.default_rng(seed)
        freqs = np.fft.rfftfreq(BLOCK_SAMPLES + FADE_SAMPLES, 1 / SAMPLE_RATE)
        in_band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
        self._shape = np.where(in_band, 1 / np.sqrt(np.maximum(freqs, 1.0)), 0.0)
        angle = (np.arange(FADE_SAMPLES) + 0.5) / FADE_SAMPLES * np.pi / 2
        self._fade_in, self._fade_out = np.sin(angle), np.cos(angle)
        self._tail: Samples | None = None
        self._pending: Samples = np.zeros(0)

    def samples(self, count: int) -> Samples:
        """The next ``count`` samples of noise (int16 scale, not yet rounded)."""
        parts = [self._pending]
        have = len(self._pending)
        while have < count:
            block = self._next_block()
            parts.append(block)
            have += len(block)
        joined = np.concatenate(parts) if len(parts) > 1 else self._pending
        self._pending = joined[count:]
        return joined[:count]

    def mix(self, frame: bytes) -> bytes:
        """``frame`` (16 kHz mono int16 PCM) with the next stretch of noise added, clipped."""
        speech = np.frombuffer(frame, dtype="<i2")
        mixed = speech + np.rint(self.samples(len(speech)))
        return bytes(np.clip(mixed, -32768, 32767).astype("<i2").tobytes())

    def _next_block(self) -> Samples:
        """``BLOCK_SAMPLES`` more samples, the first ``FADE_SAMPLES`` crossfaded from the
        previous block's tail."""
        bins = len(self._shape)
        spectrum = (self._rng.standard_normal(bins) + 1j * self._rng.standard_normal(bins)) * (
            self._shape
        )
        block = np.fft.irfft(spectrum, BLOCK_SAMPLES + FADE_SAMPLES)
        block *= self._rms / np.sqrt(np.mean(block**2))
        head = block[:BLOCK_SAMPLES].copy()
        if self._tail is not None:
            head[:FADE_SAMPLES] = self._tail * self._fade_out + head[:FADE_SAMPLES] * self._fade_in
        self._tail = block[BLOCK_SAMPLES:]
        return head
