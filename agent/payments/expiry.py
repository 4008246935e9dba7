"""Closing the hosted checkouts of dead links, so nobody can pay twice.

A checkout opened for a link stays payable at the processor until its own ``expires_at``
(up to 24 hours), whatever happens to the link here. So whenever a link dies (voided by
``links void``, replaced by ``sms retry --new-link``, voided because another link of the
invoice was paid, or its invoice is no longer open) its open checkouts are expired at the
processor (Stripe: ``POST /v1/checkout/sessions/{id}/expire``).

Nothing is queued: the work is whatever :func:`dead_checkouts` finds, a checkout whose link
is dead, which has not been closed yet, and which has not run out by itself. Each one the
processor confirms gets ``closed_at``; one the processor could not be asked about (Stripe
unreachable, an outage) stays "expire pending": an ERROR is logged, ``links list`` shows
it, and the next sweep tries again: after the admin command, after every payment recorded by
the webhook, when ``voice-agent run`` starts and every ``SWEEP_SECONDS`` while it runs.

Several agents on one database each run a :class:`CheckoutSweeper`, unlocked: a sweep is
idempotent. Two boxes that find the same dead checkout both ask the processor to expire it,
with the same idempotency key (Stripe: ``expire-<session id>``), and a session that is no
longer open is checked with a retrieve and counts as closed (``StripeCheckout``); the first
to record it sets ``closed_at`` (a conditional ``UPDATE``: the second changes nothing), and
neither sweeps it again. The cost of no lock is
at most one extra request per dead checkout; a lock would add a way for a held lock (a box
stalled mid-sweep) to keep a payable checkout open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import peewee as pw

from agent.billing.models import CheckoutSession, Invoice, Payment, PaymentLink
from agent.errors import PaymentProcessorError
from agent.payments.processor import CheckoutProcessor

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60.0
"""How often ``voice-agent run`` retries checkouts still to expire."""

MAX_PER_SWEEP = 100
"""A bound on one sweep's requests; the rest wait for the next sweep."""


@dataclass(frozen=True)
class SweepResult:
    closed: int
    """Checkouts the processor confirmed can no longer be paid."""
    pending: int
    """Checkouts it could not confirm: still payable until a later sweep succeeds."""


def dead_checkouts(processor: str, now: datetime) -> list[CheckoutSession]:
    """Checkouts still open at ``processor`` whose link can no longer be used to pay."""
    query = _dead(now).where(CheckoutSession.processor == processor)
    return list(query.order_by(CheckoutSession.id).limit(MAX_PER_SWEEP))


def pending_link_ids(link_ids: list[int], now: datetime) -> set[int]:
    """Which of these links have a checkout to expire that the processor has not confirmed."""
    if not link_ids:
        return set()
    return {row.link.id for row in _dead(now).where(CheckoutSession.link.in_(link_ids))}


def _dead(now: datetime) -> pw.ModelSelect[CheckoutSession]:
    """Checkouts not closed, not run out, not the one paid, of a link that is dead."""
    paid_here = Payment.select(Payment.checkout_session_id).where(
        Payment.checkout_session_id.is_null(False)
    )
    return (
        CheckoutSession.select(CheckoutSession, PaymentLink)
        .join(PaymentLink)
        .join(Invoice)
        .where(
            CheckoutSession.closed_at.is_null()
            & (CheckoutSession.expires_at > now)
            & (
                PaymentLink.used_at.is_null(False)
                | PaymentLink.voided_at.is_null(False)
                | (Invoice.status != "open")
            )
            & CheckoutSession.session_id.not_in(paid_here)
        )
    )


async def expire_dead_checkouts(processor: CheckoutProcessor, now: datetime) -> SweepResult:
    """Ask the processor to expire every dead checkout; never raises for the processor.

    The first failure ends the sweep (the processor is down or refusing: asking about the
    rest now would only wait on timeouts); the rest stay pending for the next sweep."""
    closed = 0
    dead = dead_checkouts(processor.name, now)
    for done, checkout in enumerate(dead):
        try:
            await processor.expire_checkout(str(checkout.session_id))
        except PaymentProcessorError as err:
            log.error(
                "checkout of payment link %d NOT expired, it can still be paid until %s UTC: "
                "%s; retried every %g s while `voice-agent run` runs",
                checkout.link.id, checkout.expires_at, err, SWEEP_SECONDS,
            )  # fmt: skip
            return SweepResult(closed, len(dead) - done)
        _mark_closed(checkout.id, now)
        closed += 1
        log.info("checkout of payment link %d expired at %s", checkout.link.id, processor.name)
    return SweepResult(closed, 0)


def _mark_closed(checkout_id: int, now: datetime) -> None:
    """Record the close once: another agent's sweep may have recorded it first."""
    still_open = (CheckoutSession.id == checkout_id) & CheckoutSession.closed_at.is_null()
    CheckoutSession.update(closed_at=now).where(still_open).execute()


class CheckoutSweeper:
    """Inside ``voice-agent run``: a sweep at start, on :meth:`wake`, and every
    ``SWEEP_SECONDS``; the web service starts :meth:`run` as a task and cancels it."""

    def __init__(self, processor: CheckoutProcessor, clock: Callable[[], datetime]) -> None:
        self._processor = processor
        self._clock = clock
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """Sweep now (a payment was applied: the invoice's other links were voided)."""
        self._woken.set()

    async def run(self) -> None:
        while True:  # until cancelled by the web service's stop
            self._woken.clear()
            try:
                await expire_dead_checkouts(self._processor, self._clock())
            except pw.PeeweeException:
                log.exception("checkout sweep: database error; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), SWEEP_SECONDS)
