"""The figures read at scrape time: from the database (texts, links) and the configuration.

``read_figures`` runs three aggregate queries, each answered from an index or one pass over
a small table: texts by status (``sms_message.status`` is indexed), the oldest queued text
(the same index), and payment links by state (one pass over ``payment_link``, no rows
fetched). It runs on the metrics thread (``agent.metrics.exposition``), never on the loop
that feeds call audio. ``ScrapeCollector`` turns what was read (or the lack of it: the
database did not answer) into metric families for one scrape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import peewee as pw
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from agent.billing.models import PaymentLink, SmsMessage
from agent.metrics import labels


@dataclass(frozen=True)
class DatabaseFigures:
    messages: Mapping[str, int]
    """Texts in the outbox by status (every status in ``labels.MESSAGE_STATUSES``)."""
    oldest_queued_seconds: float
    """Age of the oldest text still queued (0 when none is)."""
    links: Mapping[str, int]
    """Payment links by state (``labels.LINK_STATES``)."""


def read_figures(now: datetime) -> DatabaseFigures:
    """The database's figures at ``now`` (naive UTC); raises what peewee raises."""
    messages = dict.fromkeys(labels.MESSAGE_STATUSES, 0)
    query = SmsMessage.select(SmsMessage.status, pw.fn.COUNT(SmsMessage.id))
    by_status = cast(Iterable[tuple[str, int]], query.group_by(SmsMessage.status).tuples())
    for status, count in by_status:
        key = labels.one_of(status, labels.MESSAGE_STATUSES)
        messages[key] = messages.get(key, 0) + int(count)
    oldest = (
        SmsMessage.select(pw.fn.MIN(SmsMessage.created_at))
        .where(SmsMessage.status == "queued")
        .scalar()
    )
    return DatabaseFigures(messages, _age_seconds(oldest, now), _link_states(now))


def _link_states(now: datetime) -> dict[str, int]:
    """Live (not used, voided or expired yet), used (paid through it), voided (another link
    paid, or an admin), expired: decided as ``agent.admin.links.link_state`` decides."""
    link = PaymentLink
    unused, standing = link.used_at.is_null(), link.voided_at.is_null()
    conditions = {
        "live": unused & standing & (link.expires_at > now),
        "used": link.used_at.is_null(False),
        "voided": unused & link.voided_at.is_null(False),
        "expired": unused & standing & (link.expires_at <= now),
    }
    counts = [
        pw.fn.COALESCE(pw.fn.SUM(pw.Case(None, [(condition, 1)], 0)), 0)
        for condition in conditions.values()
    ]
    [row] = cast(Iterable[tuple[int, ...]], link.select(*counts).tuples())
    return {state: int(n) for state, n in zip(conditions, row, strict=True)}


def _age_seconds(oldest: datetime | None, now: datetime) -> float:
    """``MIN(created_at)`` comes back as a ``datetime`` (peewee converts it as the column)."""
    if oldest is None:
        return 0.0
    return max((now - oldest).total_seconds(), 0.0)


class ScrapeCollector:
    """One scrape's figures that are not counted in code (a prometheus_client collector)."""

    def __init__(self, max_calls: int, figures: DatabaseFigures | None) -> None:
        """``figures`` None: the database did not answer; its gauges are left out."""
        self.max_calls = max_calls
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "voice_agent_max_calls",
            "Calls taken at once at most ([sip] max_calls); more are refused (503).",
            value=self.max_calls,
        )
        yield GaugeMetricFamily(
            "voice_agent_database_up",
            "1 when the database answered this scrape's queries in time, else 0 (and the "
            "texts and links gauges are left out).",
            value=0 if self.figures is None else 1,
        )
        figures = self.figures
        if figures is None:
            return
        messages = GaugeMetricFamily(
            "voice_agent_sms_messages", "Texts in the outbox by status.", labels=["status"]
        )
        for status, count in figures.messages.items():
            messages.add_metric([status], count)
        yield messages
        yield GaugeMetricFamily(
            "voice_agent_sms_oldest_queued_age_seconds",
            "Age of the oldest text still queued (waiting to be sent or retried); 0: none.",
            value=figures.oldest_queued_seconds,
        )
        links = GaugeMetricFamily(
            "voice_agent_payment_links",
            "Payment links by state: live, used (paid through it), voided, expired.",
            labels=["state"],
        )
        for state, count in figures.links.items():
            links.add_metric([state], count)
        yield links
