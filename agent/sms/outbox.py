"""``Outbox``: queue texts, send them, and tell a waiting caller what became of theirs.

One ``Outbox`` per process, shared by every call and by the worker. A call queues its text
inside its own database transaction (``queue``), then ``send_now`` tries it at once and
waits a bounded time for the answer, without blocking the event loop: the attempt runs as
its own task and carries on (and is recorded) even if the caller stops waiting. Whoever
sends a row, the call or the worker, claims it first (see ``agent.sms.rows``), so a text is
never sent by two senders at once. A text that fails for good is logged at ERROR and, when
it belongs to a call, asks a person to call the customer back (``_give_up``).

The outbox's database work runs where ``database`` says (``DatabaseThread`` in ``voice-agent
run``: never on the loop that feeds call audio); ``queue`` and ``block`` are called from
inside the caller's transaction, wherever that runs.
"""

from __future__ import annotations

import asyncio
import logging

from agent.billing.call_events import CallEventType
from agent.billing.db_work import DatabaseWork, InlineDatabase
from agent.billing.models import Call, CallEvent, SmsMessage, database_proxy, utcnow
from agent.config import Config
from agent.errors import DatabaseUnavailableError
from agent.metrics import record as metrics
from agent.phones import last_four
from agent.sms import optout, rows
from agent.sms.gateway import OutgoingSms, SendResult, SendStatus, SmsGateway
from agent.sms.status import TextStatus

log = logging.getLogger(__name__)

RECORD_WAIT_SECONDS = 30.0
"""How long an attempt waits for its result to be recorded (the write goes on after)."""

_BY_ROW_STATUS = {
    "sent": TextStatus.ACCEPTED,
    "delivered": TextStatus.ACCEPTED,
    "failed": TextStatus.FAILED,
    "blocked": TextStatus.OPTED_OUT,
}


class Outbox:
    def __init__(
        self, gateway: SmsGateway, config: Config, database: DatabaseWork | None = None
    ) -> None:
        self.gateway = gateway
        self.database: DatabaseWork = database or InlineDatabase()
        self.settings = config.sms
        self.link_base = config.paylinks.base_url
        self.changed = asyncio.Event()
        """Set whenever a row is queued or attempted: the worker re-plans its next wake-up."""
        self._waiters: dict[int, list[asyncio.Future[TextStatus]]] = {}
        self._attempts: set[asyncio.Task[TextStatus | None]] = set()

    # --- queueing (synchronous: inside the caller's database transaction) ---------------

    def queue(self, to_number: str, body: str, purpose: str, call: Call | None) -> SmsMessage:
        message = rows.queue_message(to_number, body, purpose, self.gateway.name, call)
        self._wake_worker()
        return message

    def block(self, to_number: str, body: str, purpose: str, call: Call | None) -> SmsMessage:
        """Record a text that is not sent because the number opted out (``body`` carries
        no live link)."""
        reason = blocked_reason(to_number) or "the number opted out of texts"
        return rows.queue_message(
            to_number, body, purpose, "none", call, status="blocked", error=reason
        )

    @staticmethod
    def is_opted_out(to_number: str) -> bool:
        return optout.is_opted_out(to_number)

    def _wake_worker(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # the database thread: the call's send_now wakes the worker
            return
        self.changed.set()

    # --- sending ----------------------------------------------------------------------

    async def send_now(self, message_id: int, wait_seconds: float) -> TextStatus:
        """Try ``message_id`` at once; its fate, or ``DELAYED`` if unknown after the wait."""
        waiter: asyncio.Future[TextStatus] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(message_id, []).append(waiter)
        self.changed.set()
        try:
            self._start(message_id)
            return await asyncio.wait_for(asyncio.shield(waiter), wait_seconds)
        except TimeoutError:
            return TextStatus.DELAYED
        finally:
            waiting = self._waiters.get(message_id, [])
            if waiter in waiting:
                waiting.remove(waiter)
            if not waiting:
                self._waiters.pop(message_id, None)

    def _start(self, message_id: int) -> None:
        task = asyncio.create_task(self.attempt(message_id), name=f"sms-{message_id}")
        self._attempts.add(task)
        task.add_done_callback(self._attempts.discard)

    async def attempt(self, message_id: int) -> TextStatus | None:
        """One attempt if the row is due and free; None if it was not ours to send."""
        try:
            message = await self.database.run(rows.claim, message_id, utcnow(), self._lease_seconds)
        except DatabaseUnavailableError as err:  # the worker tries it again later
            log.warning("SMS %s: not attempted now: %s", message_id, err.message)
            return None
        if message is None:
            return None
        try:
            attempted = await self._send_claimed(message)
        except DatabaseUnavailableError as err:  # the claim expires and the row is retried
            log.error("SMS %s: could not record the attempt: %s", message_id, err.message)
            return None
        except Exception:
            log.exception("SMS %s: could not record the attempt", message_id)
            raise
        finally:
            self.changed.set()
        status = self._text_status(attempted)
        for waiter in self._waiters.get(message_id, []):
            if not waiter.done():
                waiter.set_result(status)
        return status

    async def _send_claimed(self, message: SmsMessage) -> rows.Attempted:
        refused = await self.database.run(self._refuse_if_not_sendable, message)
        if refused is not None:
            return refused
        outgoing = OutgoingSms(message.id, message.to_number, message.body)
        try:
            result = await asyncio.wait_for(
                self.gateway.send(outgoing), self.settings.send_timeout_seconds
            )
        except TimeoutError:
            result = SendResult(SendStatus.RETRY, error="the gateway did not answer in time")
        except Exception as err:  # drivers report outages as results: this is a bug in one
            log.exception("SMS %s: the %s driver failed", message.id, self.gateway.name)
            result = SendResult(SendStatus.RETRY, error=f"gateway error: {err!r}")
        attempted, given_up = await self.database.run(
            self._record, message, result, wait_seconds=RECORD_WAIT_SECONDS
        )
        log.info(
            "SMS %s to number ending %s via %s: %s%s",
            message.id, _end(message), self.gateway.name, result.status.value,
            f" ({result.error})" if result.error else "",
        )  # fmt: skip
        metrics.sms_send_attempted(self.gateway.name, result.status.value)
        if given_up is not None:
            log.error("%s", given_up)
        return attempted

    def _refuse_if_not_sendable(self, message: SmsMessage) -> rows.Attempted | None:
        """Refuse (and record) a text to a number that opted out, with a dead link, or too
        long; None when it may be sent (database thread)."""
        reason = blocked_reason(message.to_number)
        if reason is not None:
            log.info("SMS %s not sent: number ending %s opted out", message.id, _end(message))
            return rows.refuse(message, "blocked", reason, self.link_base)
        reason = rows.dead_link_reason(message, utcnow()) or rows.too_long_reason(message.body)
        if reason is not None:
            log.warning("SMS %s not sent: %s", message.id, reason)
            return rows.refuse(message, "failed", reason, self.link_base)
        return None

    def _record(self, message: SmsMessage, result: SendResult) -> tuple[rows.Attempted, str | None]:
        """The final status and the callback request, or neither (database thread)."""
        with database_proxy.atomic():
            attempted = rows.record_result(
                message, result, self.gateway.name, self.settings, self.link_base
            )
            gave_up = attempted.status == "failed" and attempted.outcome is not SendStatus.ACCEPTED
            return attempted, _give_up(message) if gave_up else None

    @staticmethod
    def _text_status(attempted: rows.Attempted) -> TextStatus:
        if attempted.outcome is SendStatus.HELD:
            return TextStatus.HELD
        return _BY_ROW_STATUS.get(attempted.status, TextStatus.DELAYED)

    @property
    def _lease_seconds(self) -> float:
        return self.settings.send_timeout_seconds + rows.CLAIM_MARGIN_SECONDS

    async def aclose(self) -> None:
        """Let attempts in flight finish and be recorded (each is time-limited)."""
        while self._attempts:
            await asyncio.gather(*list(self._attempts), return_exceptions=True)


def blocked_reason(to_number: str) -> str | None:
    row = optout.opted_out_since(to_number)
    if row is None:
        return None
    when = f"{row.at:%Y-%m-%d %H:%M} UTC"
    return f"not sent: the number opted out ({row.keyword} via {row.source}, {when})"


def _end(message: SmsMessage) -> str:
    return last_four(message.to_number)


# --- a text that gave up: tell the admin, ask a person to call the customer ---------------

SMS_FAILED = "sms-failed"
"""The callback's reason: the same name the dialog gives the escalation (``agent.dialog``)."""


def _give_up(message: SmsMessage) -> str:
    """For a text the gateway refused for good or that used its last attempt (``failed``):
    the ERROR line to log, after ``callback-requested`` ``{"reason": "sms-failed", "number",
    "sms"}`` is appended to its call's audit trail — in the caller's transaction, so the
    status and the request are written together or not at all.

    ``number`` is the number texted, in E.164 as a failed transfer stores the caller's; it is
    the one the customer expects the payment link on. A text without a call (an admin's
    resend of one that had none) only gets the line. A call that already has a callback
    request gets no second one: an open request already puts a person on the phone with the
    customer (a failed transfer, often for this very text: the dialog offers a person when a
    text is delayed or fails while the caller is on the line), and one marked done cannot be
    reopened (``calls callback-done`` closes a call's callbacks once; ``calls list
    --callbacks`` hides the call from then on), so the ERROR line is then the admin's notice.

    The line names the call and the text, the last error and the number's last four digits;
    never the number or the text (its link)."""
    current: SmsMessage = SmsMessage.get_by_id(message.id)
    what = f"SMS {message.id}"
    asked = ""
    if message.call_id is not None:
        call = Call.get_by_id(message.call_id)
        what = f"SMS {message.id} of call {call.id}"
        earlier = call.events.where(CallEvent.type == CallEventType.CALLBACK_REQUESTED).exists()
        if earlier:
            asked = "; the call already has a callback request"
        else:
            data = {"reason": SMS_FAILED, "number": message.to_number, "sms": message.id}
            CallEvent.append(call, CallEventType.CALLBACK_REQUESTED, data)
            asked = "; callback requested (voice-agent calls list --callbacks)"
    return f"{what} to number ending {_end(message)} failed for good: {current.last_error}{asked}"
