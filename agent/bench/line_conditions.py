"""What happens to a caller's voice between their mouth and the agent, for the corpus.

Pure numpy, seeded: the same inputs and seed give the same samples, byte for byte. The room
(noise, babble, level, clipping) acts on the 16 kHz speech before the phone line; the line
(8 kHz, G.711 μ-law, the pieces ``telephone_round_trip`` is made of) follows, and packet loss
with concealment acts on what the line delivers, 20 ms at a time, as a phone's jitter buffer
would. The result stays at 8 kHz: that is what the line carries, and the benchmark converts
it to the internal rate once, as the SIP edge does.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from agent.audio.convert import Int16Array, resample, to_int16, ulaw_decode, ulaw_encode
from agent.audio.format import FRAME_MS, SAMPLE_RATE, TELEPHONE_RATE

Floats = npt.NDArray[np.float64]

CONDITIONS = ("clean", "car-20", "car-10", "babble-10", "loss-2", "quiet-20", "clipped")
"""clean; low-frequency car/street noise at 20 and 10 dB SNR; babble of three other turns at
10 dB SNR; 2 % of 20 ms packets lost and concealed; 20 dB below the normal level; clipped."""
LOW_PASS_HZ = 500.0
"""Car and street noise is a rumble: brown noise with nothing above this."""
BABBLE_TALKERS = 3
LOSS_RATE = 0.02
PLC_ATTENUATION = 0.5
"""A lost packet is the last good one again, at this gain (and half again for each loss in a
row), as a phone's packet-loss concealment does."""
QUIET_DB = -20.0
CLIP_GAIN = 4.0
CLIP_LEVEL = 0.3
"""Clipping: the voice 12 dB too hot into a limiter at 30 % of full scale."""
_FULL = 32767.0


def seed_for(*names: str) -> int:
    """A stable seed from names (``hash()`` changes between runs; CRC-32 does not)."""
    return zlib.crc32("/".join(names).encode())


def speech_power(samples: Int16Array) -> float:
    """Mean power of the voiced part (20 ms frames within 40 dB of the loudest)."""
    values = samples.astype(np.float64)
    size = SAMPLE_RATE * FRAME_MS // 1000
    usable = values[: values.size - values.size % size].reshape(-1, size)
    if usable.size == 0:
        return 0.0
    power = (usable**2).mean(axis=1)
    voiced = power[power >= power.max() * 1e-4]
    return float(voiced.mean())


def at_snr(speech: Int16Array, noise: Floats, snr_db: float) -> Int16Array:
    """``speech`` plus ``noise`` scaled so the voiced speech is ``snr_db`` above it."""
    noise = noise[: speech.size]
    noise_power = float((noise**2).mean()) or 1.0
    gain = np.sqrt(speech_power(speech) / noise_power / 10 ** (snr_db / 10))
    return to_int16((speech.astype(np.float64) + gain * noise) / _FULL)


def rumble(length: int, seed: int) -> Floats:
    """Brown noise low-passed at ``LOW_PASS_HZ``: a car's or a street's low roar."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(length))
    hz = np.fft.rfftfreq(length, 1 / SAMPLE_RATE)
    spectrum /= np.maximum(hz, 20.0)  # brown: -6 dB per octave
    spectrum[hz > LOW_PASS_HZ] = 0.0
    return np.fft.irfft(spectrum, n=length)


def babble(length: int, talkers: Sequence[Int16Array]) -> Floats:
    """Other callers' turns at equal level, each looped to ``length`` and summed."""
    out = np.zeros(length)
    for voice in talkers:
        power = speech_power(voice) or 1.0
        looped = np.resize(voice.astype(np.float64), length)
        out += looped / np.sqrt(power)
    return out


def phone_line(samples16k: Int16Array) -> Int16Array:
    """16 kHz audio as it leaves a μ-law line at 8 kHz (``telephone_round_trip``, first half)."""
    narrow = resample(samples16k, SAMPLE_RATE, TELEPHONE_RATE)
    return ulaw_decode(ulaw_encode(narrow))


def lose_packets(line8k: Int16Array, rate: float, seed: int) -> Int16Array:
    """Drop ``rate`` of the 20 ms packets; conceal each with the last good one, attenuated."""
    size = TELEPHONE_RATE * FRAME_MS // 1000
    out = line8k.astype(np.float64).copy()
    lost = np.random.default_rng(seed).random(out.size // size) < rate
    last = np.zeros(size)
    gain = 1.0
    for k, dropped in enumerate(lost):
        frame = slice(k * size, (k + 1) * size)
        if dropped:
            gain *= PLC_ATTENUATION
            out[frame] = last * gain
        else:
            gain = 1.0
            last = out[frame].copy()
    return to_int16(np.rint(out).astype(np.int64))


def apply(
    condition: str, speech: Int16Array, seed: int, talkers: Sequence[Int16Array] = ()
) -> Int16Array:
    """``speech`` (16 kHz) through the room and the line under ``condition``: 8 kHz out."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
    room = speech
    if condition in ("car-20", "car-10"):
        room = at_snr(speech, rumble(speech.size, seed), float(condition[4:]))
    elif condition == "babble-10":
        if len(talkers) < BABBLE_TALKERS:
            raise ValueError(f"babble needs {BABBLE_TALKERS} other turns, got {len(talkers)}")
        room = at_snr(speech, babble(speech.size, talkers), 10.0)
    elif condition == "quiet-20":
        room = to_int16(speech.astype(np.float64) * 10 ** (QUIET_DB / 20) / _FULL)
    elif condition == "clipped":
        limit = CLIP_LEVEL * _FULL
        room = to_int16(np.clip(speech.astype(np.float64) * CLIP_GAIN, -limit, limit) / _FULL)
    line = phone_line(room)
    if condition == "loss-2":
        line = lose_packets(line, LOSS_RATE, seed)
    return line
