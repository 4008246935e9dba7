"""What ``voice-agent test-call`` prints: the transcript, then the call's outcome.

Plain text: ``agent: ...`` and ``caller: ...`` lines, then
``-- call ended: <outcome> (invoice ..., sms_to ..., ...)``, as ``voice-agent chat`` ends.
With ``--json``: one object per agent turn, ``{"agent", "caller", "agent_seconds", "note"}``,
then one final object with the outcome (the keys of ``CallReport``). A call that did not go
as scripted (``CallFailure``: an agent prompt never came) adds a ``-- call failed: ...`` line,
or, in JSON, ``"failure": {"code", "after_turn", "message"}`` (null when the call went as
scripted); ``voice-agent test-call`` then exits 1. A call made with ``--noise`` adds
``"noise_dbfs"`` (the line noise's level) to that object; without it the key is left out.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TextIO


@dataclass(frozen=True)
class AgentTurn:
    """One agent turn and the caller turn that answered it."""

    agent: str | None
    """What the agent said (transcribed); "" when nothing was heard, None with
    ``--no-transcript``."""
    caller: str | None
    """The caller's next turn as shown (text, ``[dtmf 1]``, ``[file.wav]``); None at the end."""
    agent_seconds: float
    """From the first to the last moment of the agent's speech in this turn."""
    note: str | None = None
    """Something that went differently than scripted (e.g. no prompt before a timeout)."""


@dataclass(frozen=True)
class CallFailure:
    """Why a call that was answered did not go as scripted (the command then exits 1)."""

    code: str
    """``"no-agent-prompt"``: the agent said nothing (or sent no audio) within the turn
    timeout; ``"prompt-too-long"``: its prompt did not end within ``max_prompt_seconds``."""
    after_turn: int
    """How many caller turns had been played when the prompt was missed (0: the greeting)."""
    message: str
    """For people: "no agent prompt within 20 s after turn 2 ([dtmf 1])"."""


@dataclass(frozen=True)
class CallReport:
    """How the call ended. ``outcome``..``escalation_reason`` come from the agent's database."""

    outcome: str | None
    invoice: str | None
    sms_to: str | None
    escalation_reason: str | None
    transferred_to: str | None
    transfer_answered: bool | None
    """Whether the transferred call was answered (None without a transfer)."""
    hung_up_by: str | None
    """Who ended the call: "agent" or "caller"."""
    sip_call_id: str
    failure: CallFailure | None = None
    """Set when the call did not go as scripted; None when it did."""
    noise_dbfs: float | None = None
    """The line noise the caller sent (``--noise``); None (and left out of the JSON): none."""


class ReportPrinter:
    """Writes turns and the final report as text lines or JSON lines."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json

    def turn(self, turn: AgentTurn) -> None:
        if self.as_json:
            self.out.write(json.dumps(asdict(turn)) + "\n")
        else:
            shown = "[not transcribed]" if turn.agent is None else turn.agent or "[nothing heard]"
            self.out.write(f"agent: {shown}\n")
            if turn.caller is not None:
                self.out.write(f"caller: {turn.caller}\n")
        self.out.flush()

    def summary(self, report: CallReport) -> None:
        record = asdict(report)
        if report.noise_dbfs is None:
            del record["noise_dbfs"]  # only calls made with --noise report it
        if self.as_json:
            self.out.write(json.dumps(record) + "\n")
        else:
            shown = ("invoice", "sms_to", "escalation_reason", "transferred_to")
            details = [f"{key} {record[key]}" for key in shown if record[key]]
            if report.transfer_answered is not None:
                answered = "answered" if report.transfer_answered else "not answered"
                details.append(f"transfer {answered}")
            if report.hung_up_by:
                details.append(f"hung up by {report.hung_up_by}")
            outcome = report.outcome or "unknown"
            self.out.write(
                f"-- call ended: {outcome}" + (f" ({', '.join(details)})" if details else "") + "\n"
            )
            if report.failure is not None:
                self.out.write(f"-- call failed: {report.failure.message}\n")
        self.out.flush()
