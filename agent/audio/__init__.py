"""Audio inside the agent: one format, conversions at the edges, VAD and turn segmentation.

- ``format``: the one internal format (16 kHz mono int16, 20 ms frames).
- ``convert``: PCM bytes <-> arrays, resampling, G.711, WAV files, the simulated phone line.
- ``vad``: per-frame speech/non-speech (``VoiceActivityDetector``, ``WebRtcVad``).
- ``segmenter``: the pure state machine that decides where a caller's turn starts and ends.
"""
