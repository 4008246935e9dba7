"""``voice-agent test-call``: dial the agent as a separate SIP caller and script the call.

- ``turns``: the ``--say`` specs, parsed (pure);
- ``prompts``: when an agent prompt has started and ended, from VAD flags (pure);
- ``chunks``: where to cut a long agent turn for the transcriber (pure);
- ``listener``: the agent's audio as it arrives (recording, VAD, prompt waits);
- ``script``: plays the turns into the call and follows its SIP events;
- ``noise``: line noise under everything the caller sends (``--noise``);
- ``outcome``: the agent's database row for the call, found by its SIP Call-ID;
- ``report``: the transcript and outcome, as text or JSON lines;
- ``run``: the command itself; ``command``: its command-line options.
"""
