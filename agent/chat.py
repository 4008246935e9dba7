"""``voice-agent chat``: the payment conversation over text, one stdin line per caller turn.

The same session as a phone call, minus audio: operators try conversations with it
and tests script them. End of input means the caller hung up.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from agent.config import Config
from agent.dialog.session import ConversationSession, Turn, make_policy
from agent.nlu.client import RasaIntentParser
from agent.sms.drivers import build_gateway
from agent.sms.outbox import Outbox


class ChatPrinter:
    """Writes agent turns as plain lines or, with ``--json``, one JSON object per line."""

    def __init__(self, out: TextIO, as_json: bool, interactive: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.interactive = interactive

    def turn(self, turn: Turn) -> None:
        if self.as_json:
            record = {"say": turn.say, "state": turn.state, "intent": turn.intent}
            self.out.write(json.dumps(record) + "\n")
        elif turn.say:
            self.out.write(f"agent: {turn.say}\n")
        self.out.flush()

    def prompt(self) -> None:
        if self.interactive and not self.as_json:
            self.out.write("you> ")
            self.out.flush()

    def summary(self, session: ConversationSession) -> None:
        s = session.summary
        record = {
            "outcome": s.outcome,
            "invoice": s.invoice,
            "sms_to": s.sms_to,
            "link_url": s.link_url,
            "escalation_reason": s.escalation_reason,
        }
        if self.as_json:
            self.out.write(json.dumps(record) + "\n")
        else:
            details = ", ".join(f"{k} {v}" for k, v in record.items() if v and k != "outcome")
            self.out.write(
                f"-- call ended: {s.outcome}" + (f" ({details})" if details else "") + "\n"
            )
        self.out.flush()


async def chat(
    config: Config, caller: str, printer: ChatPrinter, stdin: TextIO, verstat: str | None = None
) -> str | None:
    """Run one text conversation; returns the outcome. ``verstat`` stands in for the trunk's
    STIR/SHAKEN result (none: the caller is not attested, see ``disclose_amounts``)."""
    today = datetime.now(ZoneInfo(config.agent.time_zone)).date()
    parser = RasaIntentParser.from_settings(config.nlu)
    # No outbox worker here: the session tries its text itself (bounded wait); a text still
    # queued at the end is sent by the next `voice-agent run`.
    outbox = Outbox(build_gateway(config), config)
    session = ConversationSession(
        config,
        make_policy(config, today),
        parser,
        outbox,
        caller_id=caller,  # "anonymous" is recognised as withheld by check_caller
        verstat=verstat,
    )
    try:
        printer.turn(session.begin())
        while not session.ended:
            printer.prompt()
            line = await asyncio.to_thread(stdin.readline)
            if not line:
                session.hang_up()
                break
            if line.strip():
                printer.turn(await session.hear(line.strip()))
    finally:
        await parser.aclose()
        await outbox.aclose()  # an attempt still in flight is finished and recorded
    printer.summary(session)
    return session.summary.outcome


def run_chat(config: Config, caller: str, as_json: bool, verstat: str | None = None) -> int:
    printer = ChatPrinter(sys.stdout, as_json, interactive=sys.stdin.isatty())
    asyncio.run(chat(config, caller, printer, sys.stdin, verstat))
    return 0
