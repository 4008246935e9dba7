"""The pay pages' HTML: server-rendered, no JavaScript, readable on a 360-pixel phone screen.

Every value that comes from the database or the config is escaped. The pages show the
company, the invoice number, its date and the amount due — never the customer's name,
phone number or address: whoever holds the link sees only what the text message said.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import phonenumbers
from aiohttp import web
from babel.dates import format_date

from agent.billing.models import Invoice, Payment
from agent.config import Config
from agent.speech import written_money

CSS = """\
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6;color:#111827;font:18px/1.5 system-ui,-apple-system,\
"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:32rem;margin:0 auto;padding:1.25rem 1rem 2rem}
.company{margin:0 0 .25rem;font-weight:700;color:#374151}
h1{margin:0 0 1rem;font-size:1.5rem;line-height:1.25}
dl{margin:0 0 1.25rem;padding:1rem;background:#fff;border:1px solid #d1d5db;border-radius:.5rem}
dt{font-size:.9rem;color:#4b5563}
dd{margin:0 0 .75rem;font-weight:600;overflow-wrap:anywhere}
dd:last-child{margin-bottom:0}
.amount{font-size:1.75rem}
button{display:block;width:100%;padding:.9rem 1rem;border:0;border-radius:.5rem;\
background:#1d4ed8;color:#fff;font:inherit;font-weight:700;cursor:pointer}
button:focus{outline:3px solid #f59e0b;outline-offset:2px}
p,form{margin:0 0 1rem}
.note{color:#374151;font-size:1rem}
.test{padding:.75rem 1rem;background:#fef3c7;border:2px dashed #b45309;border-radius:.5rem}
a{color:#1d4ed8}
"""


@dataclass(frozen=True)
class Brand:
    """What every page shows about the business, and how it writes money and dates."""

    company: str
    phone_e164: str
    phone_display: str
    locale: str

    @classmethod
    def from_config(cls, config: Config) -> Brand:
        agent = config.agent
        number = phonenumbers.parse(agent.company_phone, agent.default_region)
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        return cls(agent.company_name, agent.company_phone, national, agent.locale)

    def money(self, cents: int, currency: str) -> str:
        return written_money(cents, currency, self.locale)

    def call_us(self) -> str:
        """A tap-to-call link to the business (HTML)."""
        href = escape(f"tel:{self.phone_e164}")
        return f'<a href="{href}">{escape(self.phone_display)}</a>'


def render(brand: Brand, title: str, body: str, status: int = 200) -> web.Response:
    """A whole page; ``body`` is HTML already escaped by the caller."""
    text = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<meta name="referrer" content="no-referrer">
<title>{escape(title)} · {escape(brand.company)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<p class="company">{escape(brand.company)}</p>
<h1>{escape(title)}</h1>
{body}
</main>
</body>
</html>
"""
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def _details(brand: Brand, invoice: Invoice, amount_label: str, cents: int) -> str:
    issued = format_date(invoice.issued_on, format="long", locale=brand.locale.replace("-", "_"))
    return (
        "<dl>"
        f"<dt>Invoice</dt><dd>{escape(invoice.number)}</dd>"
        f"<dt>Date</dt><dd>{escape(issued)}</dd>"
        f'<dt>{escape(amount_label)}</dt><dd class="amount">'
        f"{escape(brand.money(cents, invoice.currency))}</dd>"
        "</dl>"
    )


def payable(brand: Brand, invoice: Invoice, token: str, processor: str | None) -> web.Response:
    """The invoice and, with a processor configured, the "Pay now" button."""
    details = _details(brand, invoice, "Amount due", invoice.balance_cents)
    if processor is None:
        body = (
            f"{details}<p>Online payment is not available yet. To pay this invoice, "
            f"please call us at {brand.call_us()}.</p>"
        )
        return render(brand, f"Invoice {invoice.number}", body)
    where = "Stripe's secure payment page" if processor == "stripe" else "our secure payment page"
    card = f"You will enter your card details on {where}; they never reach us."
    if processor == "demo":
        card = "This is a demonstration: the next page takes a test payment, no card."
    body = (
        f'{details}<form method="post" action="{escape(token)}/checkout">'
        '<button type="submit">Pay now</button></form>'
        f'<p class="note">{card}</p>'
        f'<p class="note">Questions? Call us at {brand.call_us()}.</p>'
    )
    return render(brand, f"Invoice {invoice.number}", body)


def invalid_link(brand: Brand) -> web.Response:
    """The one page for unknown, expired, used and voided links: it tells them apart never."""
    body = (
        "<p>Payment links work for a limited time and only once.</p>"
        f"<p>To get a new link or to pay another way, call us at {brand.call_us()}.</p>"
    )
    return render(brand, "This payment link is no longer valid", body, status=404)


def paid_here(brand: Brand, invoice: Invoice, payment: Payment) -> web.Response:
    details = _details(brand, invoice, "Paid", payment.amount_cents)
    body = f"{details}<p>Thank you! We have received your payment.</p>"
    return render(brand, f"Invoice {invoice.number} is paid", body)


def invoice_closed(brand: Brand, invoice: Invoice) -> web.Response:
    if invoice.status == "paid":
        body = "<p>Nothing is due on this invoice. Thank you!</p>"
        return render(brand, f"Invoice {invoice.number} is already paid", body)
    body = f"<p>This invoice can no longer be paid online. Please call us at {brand.call_us()}.</p>"
    return render(brand, f"Invoice {invoice.number} is closed", body)


def balance_changed(brand: Brand, invoice: Invoice) -> web.Response:
    details = _details(brand, invoice, "Amount due now", invoice.balance_cents)
    body = (
        "<p>The amount due on this invoice has changed since this link was sent.</p>"
        f"{details}<p>To pay it, or to get a new link, please call us at {brand.call_us()}.</p>"
    )
    return render(brand, f"Invoice {invoice.number} has changed", body)


def processor_unavailable(brand: Brand) -> web.Response:
    body = (
        "<p>We could not reach the payment service. Nothing was charged.</p>"
        '<form method="post" action="checkout"><button type="submit">Try again</button></form>'
        f'<p class="note">Or pay by phone: call us at {brand.call_us()}.</p>'
    )
    return render(brand, "Payment service unavailable", body, status=503)


def demo_checkout(
    brand: Brand, invoice: Invoice, cents: int, form_field: tuple[str, str]
) -> web.Response:
    """The demo processor's checkout page: unmistakably a test; "Pay (test)" posts the form
    (with ``form_field``, its anti-forgery name and value) to this same address; "Cancel"
    leads to the ``cancelled`` page beside it, as Stripe's cancel link does."""
    name, value = form_field
    body = (
        '<p class="test">This is the demo payment processor. No card is asked for and '
        "nothing is charged: the invoice is only marked paid in this agent's database.</p>"
        f"{_details(brand, invoice, 'Amount', cents)}"
        '<form method="post">'
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        '<button type="submit">Pay (test)</button></form>'
        '<p><a href="../cancelled">Cancel</a></p>'
    )
    return render(brand, "Test payment — no card is charged", body)


def checkout_closed(brand: Brand) -> web.Response:
    """A demo checkout that was expired (its link died) or ran out."""
    body = (
        "<p>This payment page has expired. Nothing was charged. To pay, open the link in "
        "your text message again.</p>"
        f'<p class="note">Questions? Call us at {brand.call_us()}.</p>'
    )
    return render(brand, "Payment not completed", body, status=410)


def form_refused(brand: Brand) -> web.Response:
    """A payment form that did not come from our own page (forged, or from before a restart)."""
    body = (
        "<p>This payment form is out of date. Nothing was charged. To pay, open the link in "
        "your text message again.</p>"
        f'<p class="note">Questions? Call us at {brand.call_us()}.</p>'
    )
    return render(brand, "Payment not completed", body, status=403)


def too_many_requests(brand: Brand) -> web.Response:
    body = "<p>Please wait a minute, then open your payment link again.</p>"
    response = render(brand, "Too many requests", body, status=429)
    response.headers["Retry-After"] = "60"
    return response


def payment_done(brand: Brand, invoice: Invoice | None, payment: Payment | None) -> web.Response:
    """Where the processor sends the customer after paying."""
    if invoice is not None and payment is not None and payment.status == "applied":
        return paid_here(brand, invoice, payment)
    body = (
        "<p>Your payment is being confirmed; the invoice shows as paid within a few "
        "minutes. You do not need to pay again.</p>"
        f'<p class="note">Questions? Call us at {brand.call_us()}.</p>'
    )
    return render(brand, "Thank you", body)


def payment_cancelled(brand: Brand) -> web.Response:
    body = (
        "<p>Nothing was charged. To pay, open the link in your text message again.</p>"
        f'<p class="note">Questions? Call us at {brand.call_us()}.</p>'
    )
    return render(brand, "Payment not completed", body)
