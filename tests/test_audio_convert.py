"""Audio conversions: G.711 bit-exact with the stdlib, resampling, the phone line, frames, WAV."""

from __future__ import annotations

import warnings
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from agent.audio import format as fmt
from agent.audio.convert import (
    alaw_decode,
    alaw_encode,
    array_to_pcm16,
    frames,
    pcm16_to_array,
    read_wav,
    resample,
    telephone_round_trip,
    to_int16,
    ulaw_decode,
    ulaw_encode,
    write_wav,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # deprecated in 3.11, gone in 3.13: only the G.711 reference here

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> npt.NDArray[np.int16]:
    t = np.arange(round(seconds * rate)) / rate
    return to_int16(amplitude * np.sin(2 * np.pi * freq * t))


def peak_frequency(samples: npt.NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)])


def snr_db(reference: npt.NDArray[np.int16], signal: npt.NDArray[np.int16]) -> float:
    ref = reference.astype(np.float64)
    noise = signal.astype(np.float64) - ref
    return float(10 * np.log10(np.sum(ref**2) / np.sum(noise**2)))


def test_format_constants() -> None:
    assert (fmt.SAMPLE_RATE, fmt.FRAME_MS, fmt.FRAME_SAMPLES, fmt.FRAME_BYTES) == (
        16000,
        20,
        320,
        640,
    )
    assert fmt.TELEPHONE_RATE == 8000
    assert fmt.FRAME_SECONDS == 0.02


# --- G.711 -----------------------------------------------------------------------------------


def test_ulaw_encode_is_bit_exact_for_every_sample() -> None:
    assert ulaw_encode(ALL_SAMPLES) == audioop.lin2ulaw(ALL_SAMPLES.tobytes(), 2)


def test_alaw_encode_is_bit_exact_for_every_sample() -> None:
    assert alaw_encode(ALL_SAMPLES) == audioop.lin2alaw(ALL_SAMPLES.tobytes(), 2)


def test_ulaw_decode_is_bit_exact_for_every_code() -> None:
    decoded = ulaw_decode(ALL_CODES)
    assert decoded.dtype == np.int16
    assert decoded.tobytes() == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_is_bit_exact_for_every_code() -> None:
    decoded = alaw_decode(ALL_CODES)
    assert decoded.dtype == np.int16
    assert decoded.tobytes() == audioop.alaw2lin(ALL_CODES, 2)


def test_g711_known_codes() -> None:
    # ITU-T G.711: μ-law silence is 0xFF, A-law silence is 0xD5; full scale saturates.
    assert ulaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == b"\xff\x80\x00"
    assert alaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == b"\xd5\xaa\x2a"
    assert ulaw_encode(np.zeros(0, dtype=np.int16)) == b""
    assert ulaw_decode(b"").size == 0


# --- PCM and int16 ---------------------------------------------------------------------------


def test_pcm16_round_trip_is_little_endian() -> None:
    samples = np.array([0, 1, -1, 32767, -32768, 256], dtype=np.int16)
    data = array_to_pcm16(samples)
    assert data[:6] == b"\x00\x00\x01\x00\xff\xff"
    assert np.array_equal(pcm16_to_array(data), samples)
    assert pcm16_to_array(data).flags.writeable


def test_pcm16_rejects_odd_length() -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        pcm16_to_array(b"\x00\x00\x00")


def test_float_and_wide_ints_are_scaled_and_clipped() -> None:
    floats = np.array([0.0, 0.5, 1.0, -1.0, 2.0, -3.0], dtype=np.float32)
    assert to_int16(floats).tolist() == [0, 16384, 32767, -32767, 32767, -32768]
    ints = np.array([0, 40000, -40000, 123], dtype=np.int32)
    assert pcm16_to_array(array_to_pcm16(ints)).tolist() == [0, 32767, -32768, 123]


def test_to_int16_rejects_stereo_shape() -> None:
    with pytest.raises(ValueError, match="1-D"):
        to_int16(np.zeros((10, 2), dtype=np.int16))


# --- resampling and the phone line -----------------------------------------------------------


@pytest.mark.parametrize(
    ("from_rate", "to_rate"), [(22050, 16000), (16000, 8000), (8000, 16000), (48000, 16000)]
)
def test_resample_length_follows_the_rate(from_rate: int, to_rate: int) -> None:
    out = resample(sine(440, 1.0, from_rate), from_rate, to_rate)
    assert out.dtype == np.int16
    assert abs(out.size - to_rate) <= 1


def test_resample_same_rate_is_identity() -> None:
    samples = sine(440, 0.1, 16000)
    assert resample(samples, 16000, 16000) is samples


def test_resample_rejects_bad_rates() -> None:
    with pytest.raises(ValueError, match="to_rate"):
        resample(sine(440, 0.1, 16000), 16000, 0)


def test_resample_empty() -> None:
    assert resample(np.zeros(0, dtype=np.int16), 22050, 16000).size == 0


def test_sine_keeps_its_frequency_through_8k() -> None:
    original = sine(1000, 1.0, 16000)
    narrow = resample(original, 16000, 8000)
    wide = resample(narrow, 8000, 16000)
    assert peak_frequency(narrow, 8000) == pytest.approx(1000, abs=2)
    assert peak_frequency(wide, 16000) == pytest.approx(1000, abs=2)
    assert snr_db(original[800:-800], wide[800:-800]) > 40


@pytest.mark.parametrize(("codec", "min_snr"), [("pcmu", 30.0), ("pcma", 30.0)])
def test_telephone_round_trip_keeps_a_sine(codec: str, min_snr: float) -> None:
    original = sine(1000, 1.0, 16000, amplitude=0.3)
    line = telephone_round_trip(original, codec)
    assert line.dtype == np.int16
    assert line.size == original.size
    assert peak_frequency(line, 16000) == pytest.approx(1000, abs=2)
    assert snr_db(original[800:-800], line[800:-800]) > min_snr


def test_telephone_round_trip_removes_the_wide_band() -> None:
    line = telephone_round_trip(sine(6000, 0.5, 16000))  # above the 4 kHz phone band
    assert np.sqrt(np.mean(line.astype(np.float64) ** 2)) < 50


@pytest.mark.parametrize("length", [0, 1, 319, 321, 16001])
def test_telephone_round_trip_keeps_odd_lengths(length: int) -> None:
    assert telephone_round_trip(sine(500, length / 16000, 16000)).size == length


def test_telephone_round_trip_rejects_unknown_codec() -> None:
    with pytest.raises(ValueError, match="codec"):
        telephone_round_trip(sine(500, 0.1, 16000), "g722")


# --- frames ----------------------------------------------------------------------------------


def test_frames_pad_the_last_partial_frame() -> None:
    samples = np.arange(1, 801, dtype=np.int16)  # 2.5 frames
    chunks = list(frames(samples))
    assert [c.size for c in chunks] == [320, 320, 320]
    assert chunks[0][0] == 1 and chunks[1][0] == 321
    assert np.array_equal(chunks[2][:160], np.arange(641, 801))
    assert not chunks[2][160:].any()
    assert all(c.dtype == np.int16 for c in chunks)


def test_frames_exact_and_empty() -> None:
    assert [c.size for c in frames(np.zeros(640, dtype=np.int16))] == [320, 320]
    assert list(frames(np.zeros(0, dtype=np.int16))) == []
    assert [c.size for c in frames(np.zeros(5, dtype=np.int16), frame_samples=2)] == [2, 2, 2]
    with pytest.raises(ValueError, match="frame_samples"):
        list(frames(np.zeros(5, dtype=np.int16), frame_samples=0))


# --- WAV -------------------------------------------------------------------------------------


def test_wav_round_trip(tmp_path: Path) -> None:
    samples = sine(300, 0.25, 22050)
    path = tmp_path / "prompt.wav"
    write_wav(path, samples, 22050)
    read, rate = read_wav(path)
    assert rate == 22050
    assert np.array_equal(read, samples)


def write_raw_wav(path: Path, channels: int, width: int, frames_: int = 100) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(8000)
        wav.writeframes(b"\x80" * (frames_ * channels * width))


def test_read_wav_rejects_stereo(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    write_raw_wav(path, channels=2, width=2)
    with pytest.raises(ValueError, match=r"stereo\.wav.*2 channels.*mono"):
        read_wav(path)


def test_read_wav_rejects_8_bit(tmp_path: Path) -> None:
    path = tmp_path / "eight.wav"
    write_raw_wav(path, channels=1, width=1)
    with pytest.raises(ValueError, match=r"eight\.wav.*8-bit.*16-bit"):
        read_wav(path)


def test_read_wav_rejects_a_file_that_is_not_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("not audio")
    with pytest.raises(ValueError, match=r"notes\.wav.*not a readable PCM WAV"):
        read_wav(path)


def test_write_wav_rejects_bad_rate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rate"):
        write_wav(tmp_path / "x.wav", np.zeros(10, dtype=np.int16), 0)
