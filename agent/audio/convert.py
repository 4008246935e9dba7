"""Conversions between the internal format and everything else: pure numpy, no I/O but WAV files.

Samples are ``int16`` numpy arrays (16-bit signed PCM, mono); PCM bytes are little-endian.
Float arrays are taken to be in [-1.0, 1.0] and scaled by 32767 (as Piper does), then clipped.

G.711 here is the real ITU-T G.711 (the segment/quantisation rules of the Sun reference
``g711.c``, which CPython's ``audioop`` also uses): bit-exact with ``audioop`` for every input.
In the running agent pjsua2 does the G.711 and 8 kHz conversions at the SIP edge; these functions
exist so tests and benchmarks can put audio through the same phone line
(``telephone_round_trip``) and read or write what a phone would carry.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soxr

from agent.audio.format import FRAME_SAMPLES, SAMPLE_RATE, SAMPLE_WIDTH, TELEPHONE_RATE

Int16Array = npt.NDArray[np.int16]

_PCM16 = np.dtype("<i2")
_INT16_MIN = -32768
_INT16_MAX = 32767
_FLOAT_SCALE = 32767.0


# --- PCM bytes <-> arrays -------------------------------------------------------------------


def pcm16_to_array(data: bytes) -> Int16Array:
    """Little-endian 16-bit PCM bytes as an ``int16`` array (a new, writable array)."""
    if len(data) % SAMPLE_WIDTH:
        raise ValueError(f"16-bit PCM must have an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype=_PCM16).astype(np.int16)


def array_to_pcm16(samples: npt.ArrayLike) -> bytes:
    """Samples as little-endian 16-bit PCM bytes (floats in [-1, 1] scaled; all clipped)."""
    return to_int16(samples).astype(_PCM16, copy=False).tobytes()


def to_int16(samples: npt.ArrayLike) -> Int16Array:
    """A 1-D ``int16`` array: integers clipped to the int16 range, floats in [-1, 1] scaled."""
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(f"mono samples must be a 1-D array, got shape {array.shape}")
    if array.dtype == np.int16:
        return array.astype(np.int16, copy=False)
    if np.issubdtype(array.dtype, np.floating):
        scaled = np.rint(array.astype(np.float64) * _FLOAT_SCALE)
        return np.clip(scaled, _INT16_MIN, _INT16_MAX).astype(np.int16)
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        return np.clip(array.astype(np.int64), _INT16_MIN, _INT16_MAX).astype(np.int16)
    raise TypeError(f"samples must be integer or float, got dtype {array.dtype}")


# --- resampling ------------------------------------------------------------------------------


def resample(samples: npt.ArrayLike, from_rate: int, to_rate: int) -> Int16Array:
    """Resample mono ``int16`` audio with soxr (HQ); the input itself when the rates are equal.

    The whole signal is resampled at once (no state kept between calls), so call it on whole
    utterances or sentences, not on 20 ms frames.
    """
    for name, rate in (("from_rate", from_rate), ("to_rate", to_rate)):
        if rate <= 0:
            raise ValueError(f"{name} must be a positive number of Hz, got {rate}")
    array = to_int16(samples)
    if from_rate == to_rate:
        return array
    if array.size == 0:
        return np.zeros(0, dtype=np.int16)
    out = soxr.resample(array, from_rate, to_rate, quality="HQ")
    return to_int16(out)


# --- G.711 (ITU-T), table driven -----------------------------------------------------------

_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159  # largest 14-bit magnitude before the bias is added


def _ulaw_encode_formula(linear: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """μ-law codes of 16-bit samples (``int64`` array): G.711 on the top 14 bits."""
    value = linear >> 2
    negative = value < 0
    magnitude = np.minimum(np.where(negative, -value, value), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude)  # first end >= magnitude
    in_range = segment < 8
    shift = np.where(in_range, segment + 1, 0)
    code = np.where(in_range, (segment << 4) | ((magnitude >> shift) & 0x0F), 0x7F)
    mask = np.where(negative, 0x7F, 0xFF)  # μ-law sends every bit inverted
    return (code ^ mask).astype(np.uint8)


def _ulaw_decode_formula(codes: npt.NDArray[np.int64]) -> Int16Array:
    inverted = ~codes & 0xFF
    magnitude = (((inverted & 0x0F) << 3) + _ULAW_BIAS) << ((inverted & 0x70) >> 4)
    signed = np.where(inverted & 0x80, _ULAW_BIAS - magnitude, magnitude - _ULAW_BIAS)
    return signed.astype(np.int16)


def _alaw_encode_formula(linear: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """A-law codes of 16-bit samples (``int64`` array): G.711 on the top 13 bits."""
    value = linear >> 3
    negative = value < 0
    magnitude = np.where(negative, -value - 1, value)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude)
    in_range = segment < 8
    shift = np.where(segment < 2, 1, np.minimum(segment, 7))
    code = np.where(in_range, (segment << 4) | ((magnitude >> shift) & 0x0F), 0x7F)
    mask = np.where(negative, 0x55, 0xD5)  # even bits inverted; sign bit set for >= 0
    return (code ^ mask).astype(np.uint8)


def _alaw_decode_formula(codes: npt.NDArray[np.int64]) -> Int16Array:
    toggled = codes ^ 0x55
    segment = (toggled & 0x70) >> 4
    mantissa = (toggled & 0x0F) << 4
    magnitude = np.where(segment == 0, mantissa + 8, mantissa + 0x108)
    magnitude = magnitude << np.maximum(segment - 1, 0)
    signed: Int16Array = np.where(toggled & 0x80, magnitude, -magnitude).astype(np.int16)
    return signed


# Lookup tables built once at import: index = sample + 32768 (encode) or the code (decode).
_ALL_SAMPLES = np.arange(_INT16_MIN, _INT16_MAX + 1, dtype=np.int64)
_ALL_CODES = np.arange(256, dtype=np.int64)
_ULAW_ENCODE = _ulaw_encode_formula(_ALL_SAMPLES)
_ULAW_DECODE = _ulaw_decode_formula(_ALL_CODES)
_ALAW_ENCODE = _alaw_encode_formula(_ALL_SAMPLES)
_ALAW_DECODE = _alaw_decode_formula(_ALL_CODES)


def _encode(samples: npt.ArrayLike, table: npt.NDArray[np.uint8]) -> bytes:
    index = to_int16(samples).astype(np.int64) - _INT16_MIN
    return table[index].tobytes()


def _decode(data: bytes, table: Int16Array) -> Int16Array:
    decoded: Int16Array = table[np.frombuffer(data, dtype=np.uint8)]
    return decoded


def ulaw_encode(samples: npt.ArrayLike) -> bytes:
    """G.711 μ-law (PCMU): one byte per 16-bit sample."""
    return _encode(samples, _ULAW_ENCODE)


def ulaw_decode(data: bytes) -> Int16Array:
    """G.711 μ-law (PCMU) bytes back to 16-bit samples."""
    return _decode(data, _ULAW_DECODE)


def alaw_encode(samples: npt.ArrayLike) -> bytes:
    """G.711 A-law (PCMA): one byte per 16-bit sample."""
    return _encode(samples, _ALAW_ENCODE)


def alaw_decode(data: bytes) -> Int16Array:
    """G.711 A-law (PCMA) bytes back to 16-bit samples."""
    return _decode(data, _ALAW_DECODE)


def telephone_round_trip(samples16k: npt.ArrayLike, codec: str = "pcmu") -> Int16Array:
    """Put 16 kHz audio through a phone line: 8 kHz, G.711 encode/decode, back to 16 kHz.

    This is the path a caller's voice takes (band-limited to 4 kHz, companded to 8 bits).
    The result has exactly as many samples as the input (trimmed or zero-padded by at most a
    sample or two that the resampler's rounding adds or drops).
    """
    codecs = {"pcmu": (ulaw_encode, ulaw_decode), "pcma": (alaw_encode, alaw_decode)}
    if codec not in codecs:
        raise ValueError(f"codec must be 'pcmu' or 'pcma', got {codec!r}")
    encode, decode = codecs[codec]
    original = to_int16(samples16k)
    narrow = resample(original, SAMPLE_RATE, TELEPHONE_RATE)
    wide = resample(decode(encode(narrow)), TELEPHONE_RATE, SAMPLE_RATE)
    return _fit(wide, original.size)


def _fit(samples: Int16Array, length: int) -> Int16Array:
    if samples.size >= length:
        return samples[:length]
    return np.concatenate([samples, np.zeros(length - samples.size, dtype=np.int16)])


# --- frames ----------------------------------------------------------------------------------


def frames(samples: npt.ArrayLike, frame_samples: int = FRAME_SAMPLES) -> Iterator[Int16Array]:
    """Split audio into frames of ``frame_samples``; the last partial frame is zero-padded.

    Full frames are views into the input (no copy). Empty input yields nothing.
    """
    if frame_samples <= 0:
        raise ValueError(f"frame_samples must be positive, got {frame_samples}")
    array = to_int16(samples)
    whole = array.size - array.size % frame_samples
    for start in range(0, whole, frame_samples):
        yield array[start : start + frame_samples]
    if whole < array.size:
        yield _fit(array[whole:], frame_samples)


# --- WAV files -------------------------------------------------------------------------------


def read_wav(path: str | Path) -> tuple[Int16Array, int]:
    """Read a mono 16-bit PCM WAV file: ``(samples, sample_rate)``.

    Raises ``ValueError`` naming the file when it is not a WAV file or not mono 16-bit PCM
    (these are admin-supplied files: say exactly what to fix). Missing files raise ``OSError``.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            channels = wav.getnchannels()
            width = wav.getsampwidth()
            rate = wav.getframerate()
            data = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as err:
        raise ValueError(f"{path}: not a readable PCM WAV file ({err})") from err
    if channels != 1:
        raise ValueError(f"{path}: WAV has {channels} channels; it must be mono (1 channel)")
    if width != SAMPLE_WIDTH:
        raise ValueError(f"{path}: WAV has {8 * width}-bit samples; it must be 16-bit signed PCM")
    return pcm16_to_array(data), rate


def write_wav(path: str | Path, samples: npt.ArrayLike, rate: int) -> None:
    """Write mono 16-bit PCM WAV (floats in [-1, 1] are scaled; everything is clipped)."""
    if rate <= 0:
        raise ValueError(f"rate must be a positive number of Hz, got {rate}")
    data = array_to_pcm16(samples)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_WIDTH)
        wav.setframerate(rate)
        wav.writeframes(data)
