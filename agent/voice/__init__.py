"""The phone conversation: SIP events and call audio in, the payment conversation spoken.

- ``listener``: VAD, segmenter and (speculative) transcription turn audio into caller turns;
- ``speaker``: replies synthesised sentence by sentence and played, interruptible (barge-in);
- ``call``: one call from ringing to hang-up (turn-taking, DTMF, silence, transfer);
- ``server``: the SIP endpoint, the shared models, and one ``VoiceCall`` per call.
"""
