"""Peewee models: customers, their phones and invoices, and the record of every call.

Conventions:

* **Datetimes are naive UTC.** Every ``DateTimeField`` holds a ``datetime`` without
  ``tzinfo`` that means UTC; make them with :func:`utcnow`. (Naive values store the same
  way in SQLite and in PostgreSQL ``timestamp`` columns.) ``DateField`` values
  (``issued_on``, ``due_on``) are the business's calendar dates.
* **Money is integer cents** (``*_cents`` ``BigIntegerField``), never a float; the
  ``total``/``balance`` properties give a two-place ``Decimal`` for display and speech.
* **Phone numbers are E.164 strings** made by :mod:`agent.phones`.
* Models are bound to :data:`database_proxy`; :func:`agent.billing.db.open_database`
  points it at the real database.

Note: a foreign key ``customer`` also gives peewee's ``customer_id`` attribute (the
integer primary key of the row); the business's own id is ``Customer.customer_id``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import peewee as pw

from agent.billing.call_events import CallEventType
from agent.dialog.types import Outcome
from agent.sms.sealed import outbox_cipher

database_proxy = pw.DatabaseProxy()

PHONE_KINDS = ("mobile", "landline", "other")
CURRENCIES = ("USD", "CAD")
INVOICE_STATUSES = ("open", "paid", "void")
SMS_STATUSES = ("queued", "sent", "delivered", "failed", "blocked")
"""queued: waiting to be (re)sent; sent: the gateway accepted it; delivered: the phone got
it (delivery report); failed: refused for good or out of attempts; blocked: never sent, the
number opted out (STOP)."""
PAYMENT_STATUSES = ("applied", "unapplied")
CALL_CHANNELS = ("chat", "sip")
CALL_OUTCOMES = tuple(Outcome)
"""The values of ``agent.dialog.types.Outcome``. ``call.outcome`` has no CHECK constraint, so a
new outcome needs no schema change (a database made by an earlier version takes it as is)."""


def utcnow() -> datetime:
    """The current time as a naive UTC ``datetime`` (the form every table stores)."""
    return datetime.now(UTC).replace(tzinfo=None)


def cents_to_decimal(cents: int) -> Decimal:
    """``28500`` → ``Decimal("285.00")``: exact, always two places."""
    return Decimal(int(cents)).scaleb(-2)


def _one_of(column: str, values: tuple[str, ...]) -> pw.SQL | pw.NodeList:
    """A portable CHECK constraint: ``column IN ('a', 'b')``."""
    listed = ", ".join(f"'{value}'" for value in values)
    return pw.Check(f"{column} IN ({listed})")


class SealedTextField(pw.TextField):
    """Text stored encrypted with the outbox key (``agent.sms.sealed``): a copy of the
    database shows ``sealed:v1:...``, the program sees the text."""

    def db_value(self, value: Any) -> Any:
        return None if value is None else outbox_cipher.get().seal(str(value))

    def python_value(self, value: Any) -> Any:
        return None if value is None else outbox_cipher.get().unseal(value)


class BaseModel(pw.Model):
    id = pw.AutoField()

    class Meta:
        database = database_proxy
        legacy_table_names = False  # SmsMessage → sms_message


class Customer(BaseModel):
    customer_id = pw.CharField(unique=True)
    """The business's own customer id (from its CSV export)."""
    name = pw.CharField()
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)

    phones: pw.ModelSelect[Phone]  # backref
    invoices: pw.ModelSelect[Invoice]  # backref


class Phone(BaseModel):
    customer = pw.ForeignKeyField(Customer, backref="phones", on_delete="CASCADE")
    e164 = pw.CharField(index=True)
    """Not unique: a number shared by two customers is the "ambiguous" caller."""
    kind = pw.CharField(constraints=[_one_of("kind", PHONE_KINDS)])

    class Meta:
        indexes = ((("customer", "e164"), True),)


class Invoice(BaseModel):
    number = pw.CharField(unique=True)
    customer = pw.ForeignKeyField(Customer, backref="invoices")
    issued_on = pw.DateField()
    due_on = pw.DateField(null=True)
    total_cents = pw.BigIntegerField(constraints=[pw.Check("total_cents >= 0")])
    balance_cents = pw.BigIntegerField(constraints=[pw.Check("balance_cents >= 0")])
    currency = pw.CharField(max_length=3, constraints=[_one_of("currency", CURRENCIES)])
    status = pw.CharField(max_length=8, constraints=[_one_of("status", INVOICE_STATUSES)])
    updated_at = pw.DateTimeField(default=utcnow)

    links: pw.ModelSelect[PaymentLink]  # backref
    payments: pw.ModelSelect[Payment]  # backref

    class Meta:
        constraints = [pw.Check("balance_cents <= total_cents")]

    @property
    def total(self) -> Decimal:
        return cents_to_decimal(self.total_cents)

    @property
    def balance(self) -> Decimal:
        return cents_to_decimal(self.balance_cents)


class Call(BaseModel):
    channel = pw.CharField(max_length=8)
    """"chat" or "sip" (see ``CALL_CHANNELS``)."""
    caller_id = pw.CharField()
    """The caller ID exactly as received, e.g. "anonymous" or "sip:+1416...@pbx"."""
    caller_e164 = pw.CharField(null=True, index=True)
    customer = pw.ForeignKeyField(Customer, null=True, backref="calls")
    invoice = pw.ForeignKeyField(Invoice, null=True, backref="calls")
    """The invoice a payment link was sent for, if any."""
    started_at = pw.DateTimeField(default=utcnow)
    ended_at = pw.DateTimeField(null=True)
    outcome = pw.CharField(null=True)
    """One of ``CALL_OUTCOMES`` once the call has ended."""
    escalation_reason = pw.CharField(null=True)
    sip_call_id = pw.CharField(null=True, index=True)
    """The SIP Call-ID header of a phone call (how ``voice-agent test-call`` finds its row)."""
    verstat = pw.CharField(null=True)
    """The STIR/SHAKEN ``verstat`` the trunk sent with the caller ID, if any."""
    instance = pw.CharField(null=True)
    """The agent (``[agent] instance``) that took a phone call; None for chats and for calls
    recorded before agents named themselves (``agent.voice.interrupted``)."""
    customer_id: int | None  # the raw foreign keys, without loading the rows
    invoice_id: int | None

    events: pw.ModelSelect[CallEvent]  # backref


class SmsMessage(BaseModel):
    """The SMS outbox: one row per text the agent wants delivered."""

    to_number = pw.CharField()
    body = SealedTextField()
    """The text, sealed at rest (it carries a working payment link until sent)."""
    purpose = pw.CharField()
    """What the text is for, e.g. "payment-link"."""
    status = pw.CharField(default="queued", index=True)
    """One of ``SMS_STATUSES``."""
    attempts = pw.IntegerField(default=0)
    gateway = pw.CharField()
    """The name of the gateway driver that sends (or sent) it."""
    gateway_id = pw.CharField(null=True)
    last_error = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)
    next_attempt_at = pw.DateTimeField(null=True)
    call = pw.ForeignKeyField(Call, null=True, backref="sms_messages")
    call_id: int | None  # the raw foreign key, without loading the call
    claimed_until = pw.DateTimeField(null=True)
    """Set while one sender is sending it; a claim left by a crash expires at this time."""
    accepted_at = pw.DateTimeField(null=True)
    """When the gateway accepted it."""
    report = pw.CharField(null=True)
    """The gateway's last delivery report, e.g. "kannel:1 delivered", "twilio:undelivered"."""
    reported_at = pw.DateTimeField(null=True)
    """When that delivery report arrived."""
    redacted_at = pw.DateTimeField(null=True)
    """When the link's token was removed from ``body`` (once accepted or failed for good)."""


class SmsOptOut(BaseModel):
    """Opt-out history per phone number (STOP, START); the newest row of a number rules."""

    number = pw.CharField(index=True)
    """E.164."""
    opted_out = pw.BooleanField()
    """True after STOP and its synonyms, False after START/UNSTOP."""
    keyword = pw.CharField()
    """The keyword as recognised, e.g. "STOP", "UNSUBSCRIBE", "START"."""
    source = pw.CharField()
    """Where it came from: "kannel", "twilio" or "admin"."""
    at = pw.DateTimeField(default=utcnow)


class PaymentLink(BaseModel):
    invoice = pw.ForeignKeyField(Invoice, backref="links")
    token_hash = pw.CharField(max_length=64, unique=True)
    """sha256 hex digest of the token; the token itself is never stored."""
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()
    used_at = pw.DateTimeField(null=True)
    voided_at = pw.DateTimeField(null=True)
    sms = pw.ForeignKeyField(SmsMessage, null=True, backref="links")
    call = pw.ForeignKeyField(Call, null=True, backref="links")
    sms_id: int | None  # the raw foreign keys, without loading the rows
    call_id: int | None
    amount_cents = pw.BigIntegerField()
    """The invoice balance when the link was made."""
    currency = pw.CharField(max_length=3)
    first_viewed_at = pw.DateTimeField(null=True)
    """When its pay page was first shown (the dashboard's "link opened"); set once."""

    @property
    def amount(self) -> Decimal:
        return cents_to_decimal(self.amount_cents)

    def mark_viewed(self, at: datetime) -> bool:
        """Record the first time the link's page was shown; later views change nothing.

        One conditional ``UPDATE``, so two requests at the same moment record one time.
        True when this call recorded it."""
        if self.first_viewed_at is not None:
            return False
        first = PaymentLink.first_viewed_at.is_null()
        updated = PaymentLink.update(first_viewed_at=at).where((PaymentLink.id == self.id) & first)
        if updated.execute() != 1:
            return False
        self.first_viewed_at = at
        return True


class CheckoutSession(BaseModel):
    """A hosted checkout page opened for a payment link ("Pay now"), reused while open."""

    link = pw.ForeignKeyField(PaymentLink, backref="checkouts")
    processor = pw.CharField(max_length=16)
    """The ``[payments] processor`` that made it, e.g. "stripe"."""
    session_id = pw.CharField(unique=True)
    """The processor's id, e.g. Stripe's "cs_live_..."."""
    url = pw.TextField()
    """The hosted page the customer is sent to."""
    amount_cents = pw.BigIntegerField()
    currency = pw.CharField(max_length=3)
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()
    closed_at = pw.DateTimeField(null=True)
    """When the processor confirmed it can no longer be paid (expired on our request, or
    already expired/complete). Null while its link is dead but the processor has not
    confirmed: "expire pending" (:mod:`agent.payments.expiry` retries)."""


class Payment(BaseModel):
    """Money a processor reported as received: one row per paid checkout session.

    ``applied`` rows reduced the invoice's balance; ``unapplied`` rows (amount, currency or
    invoice did not match, or the invoice was no longer open) left the invoice untouched and
    need a person (``note`` says why): the money was taken, so the row is kept either way.
    """

    invoice = pw.ForeignKeyField(Invoice, backref="payments")
    link = pw.ForeignKeyField(PaymentLink, null=True, backref="payments")
    amount_cents = pw.BigIntegerField(constraints=[pw.Check("amount_cents >= 0")])
    currency = pw.CharField(max_length=3)
    processor = pw.CharField(max_length=16)
    checkout_session_id = pw.CharField(unique=True)
    """The processor's checkout id: one payment per checkout, however often it is reported."""
    payment_intent_id = pw.CharField(null=True)
    event_id = pw.CharField()
    """The webhook event that reported it."""
    status = pw.CharField(max_length=10, constraints=[_one_of("status", PAYMENT_STATUSES)])
    note = pw.TextField(null=True)
    paid_at = pw.DateTimeField()
    created_at = pw.DateTimeField(default=utcnow)
    link_id: int | None  # the raw foreign key, without loading the link


class ProcessedWebhook(BaseModel):
    """Every verified processor event acted on, so a redelivered event changes nothing."""

    provider = pw.CharField(max_length=16)
    event_id = pw.CharField()
    event_type = pw.CharField()
    outcome = pw.CharField()
    """What was done, e.g. "payment-applied", "payment-unapplied", "unknown-link"."""
    received_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("provider", "event_id"), True),)


class CallEvent(BaseModel):
    """Append-only audit trail of a call: one row per event, numbered by ``seq``."""

    call = pw.ForeignKeyField(Call, backref="events", on_delete="CASCADE")
    call_id: int  # the raw foreign key, without loading the call
    seq = pw.IntegerField()
    at = pw.DateTimeField(default=utcnow)
    type = pw.CharField()
    """Kebab-case event type, e.g. "caller-verified"."""
    data = pw.TextField(default="{}")
    """Compact JSON object; read it with :meth:`payload`."""

    class Meta:
        indexes = ((("call", "seq"), True),)

    @staticmethod
    def encode(data: dict[str, Any]) -> str:
        """Compact, key-sorted JSON for the ``data`` column."""
        return json.dumps(data, separators=(",", ":"), sort_keys=True, default=str)

    def payload(self) -> dict[str, Any]:
        """``data`` decoded as a dict."""
        decoded = json.loads(self.data)
        if not isinstance(decoded, dict):
            raise ValueError(f"call event {self.id} data is not a JSON object")
        return decoded

    @classmethod
    def append(
        cls,
        call: Call,
        event_type: CallEventType,
        data: dict[str, Any],
        at: datetime | None = None,
    ) -> CallEvent:
        """Add the next event of ``call`` (``seq`` = last + 1) in its own transaction."""
        with database_proxy.atomic():
            last = cls.select(pw.fn.MAX(cls.seq)).where(cls.call == call).scalar()
            return cls.create(
                call=call,
                seq=(last or 0) + 1,
                at=at or utcnow(),
                type=event_type,
                data=cls.encode(data),
            )


ALL_MODELS: tuple[type[BaseModel], ...] = (
    Customer,
    Phone,
    Invoice,
    Call,
    SmsMessage,
    SmsOptOut,
    PaymentLink,
    CheckoutSession,
    Payment,
    ProcessedWebhook,
    CallEvent,
)
"""Every table, parents before children (the order to create them in)."""
