"""The dashboard page: :class:`~agent.dashboard.figures.Figures` as server-rendered HTML.

One stylesheet (``CSS``, inline; the Content-Security-Policy allows exactly it), no
JavaScript, charts as inline SVG (:mod:`agent.dashboard.svg`), every figure also written
as a number in a table beside its chart (a chart shows the shape, the table the exact
count). The same page, without the period form, the log-out button and the links to call
audits, is what ``voice-agent report --html`` writes. Phone numbers appear only as their
last four digits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from agent.dashboard import svg
from agent.dashboard.figures import DayCalls, Figures, FunnelStep, Money
from agent.dashboard.stats import percent
from agent.dashboard.svg import esc

CSS = """\
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;\
color:#1d2430;background:#f3f5f8}
header{background:#1f3a5f;color:#fff;padding:12px 16px}
header h1{margin:0;font-size:1.3rem}
header p{margin:2px 0 0;font-size:.9rem;color:#dfe7f1}
main{max-width:1240px;margin:0 auto;padding:12px}
h2{font-size:1.05rem;margin:0 0 8px}
a{color:#1f5fa8}
.toolbar{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:flex-end;\
justify-content:space-between}
form{margin:0}
main>.card{margin-bottom:12px}
form.period{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-end}
label{display:flex;flex-direction:column;font-size:.85rem;gap:2px}
input,button{font:inherit;padding:6px 10px;border:1px solid #9aa5b4;border-radius:6px;\
background:#fff;color:#1d2430;min-height:44px}
button{background:#1f3a5f;color:#fff;border-color:#1f3a5f;cursor:pointer}
button.quiet{background:#fff;color:#1f3a5f}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;\
margin:12px 0}
.tile,.card{background:#fff;border:1px solid #dde2e8;border-radius:10px;padding:12px 14px;\
min-width:0}
.tile p{margin:0;font-size:.85rem;color:#4a5360}
.tile .value{font-size:1.6rem;font-weight:650;color:#1d2430}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,480px),1fr));\
gap:12px;margin-bottom:12px}
.chart{display:block;width:100%;height:auto;font-size:16px;margin:4px 0 8px}
@media (max-width:600px){.chart{font-size:22px}}
.chart .strong{font-weight:650;fill:#1d2430}
table{width:100%;border-collapse:collapse;font-size:.9rem}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e6e9ee;vertical-align:top;\
overflow-wrap:anywhere}
th{font-weight:600;color:#4a5360}
.num{text-align:right;white-space:nowrap}
.amount{text-align:right}
.nowrap{white-space:nowrap}
.table-wrap{overflow-x:auto}
.legend{list-style:none;padding:0;margin:0 0 8px;display:flex;flex-wrap:wrap;gap:4px 14px;\
font-size:.9rem}
.swatch{width:12px;height:12px;margin-right:5px;vertical-align:-1px}
.small{font-size:.85rem;color:#4a5360}
.small dt{font-weight:600;color:#1d2430;margin-top:8px}
.small dd{margin:0}
.error{color:#b3261e;font-weight:600}
.login{max-width:380px;margin:10vh auto;padding:0 12px}
.login form{display:flex;flex-direction:column;gap:12px}
code{overflow-wrap:anywhere}
"""

OUTCOMES: dict[str, tuple[str, str]] = {
    "link_sent": ("link sent", "#2e7d32"),
    "escalated": ("to a person", "#ef6c00"),
    "no_invoices": ("nothing to pay", "#5c6bc0"),
    "caller_hung_up": ("hung up", "#8d96a3"),
    "completed": ("completed", "#00897b"),
    "agent_stopped": ("agent stopped", "#8e24aa"),
    "interrupted": ("interrupted", "#c62828"),
    "in progress": ("in progress", "#c5ced8"),
}
"""Outcome → (what the page calls it, its colour)."""
OTHER_COLOUR = "#795548"
RATE_COLOUR = "#1f5fa8"
FUNNEL_COLOUR = "#2e7d32"
LATENCY_COLOUR = "#1f5fa8"


def page(title: str, body: str) -> str:
    """A whole HTML document around ``body``, with the stylesheet."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>{body}</body></html>"
    )


def outcome_name(outcome: str) -> str:
    return OUTCOMES.get(outcome, (outcome, ""))[0]


def outcome_colour(outcome: str) -> str:
    return OUTCOMES.get(outcome, ("", OTHER_COLOUR))[1]


def dashboard_page(figures: Figures, company: str, *, live: bool) -> str:
    """``live``: served by the admin listener (period form, log out, links to call audits);
    otherwise the standalone file ``voice-agent report --html`` writes."""
    sections = [
        _toolbar(figures) if live else "",
        _tiles(figures),
        '<div class="grid">',
        _calls_card(figures),
        _rate_card(figures),
        _funnel_card(figures),
        _latency_card(figures),
        _failed_card(figures, live),
        _callbacks_card(figures, live),
        "</div>",
        _small_print(figures),
    ]
    body = _header(figures, company) + "<main>" + "".join(sections) + "</main>"
    return page(f"{company}: payments dashboard", body)


def _header(figures: Figures, company: str) -> str:
    period = figures.period
    made = figures.made_at.strftime("%Y-%m-%d %H:%M")
    return (
        f"<header><h1>{esc(company)}: payments dashboard</h1>"
        f"<p>{_long_day(period.since)} to {_long_day(period.until)} ({period.days} days), "
        f"times in {esc(figures.time_zone)}; read {esc(made)}</p></header>"
    )


def _toolbar(figures: Figures) -> str:
    """Another period (a plain GET form: no JavaScript), and log out."""
    period = figures.period
    return (
        '<div class="toolbar"><form class="period" method="get" action="/">'
        f'<label>From<input type="date" name="since" value="{period.since}" required></label>'
        f'<label>To<input type="date" name="until" value="{period.until}" required></label>'
        "<button>Show</button></form>"
        '<form method="post" action="/logout"><button class="quiet">Log out</button></form></div>'
    )


def _long_day(day: date) -> str:
    return f"{day:%a %b} {day.day}, {day.year}"


def _tile(name: str, key: str, value: str, note: str = "") -> str:
    extra = f'<p class="note">{esc(note)}</p>' if note else ""
    return (
        f'<div class="tile"><p>{esc(name)}</p>'
        f'<div class="value" data-figure="{esc(key)}">{esc(value)}</div>{extra}</div>'
    )


def _tiles(figures: Figures) -> str:
    paid = figures.step("paid")
    return (
        '<section class="tiles">'
        + _tile("Calls", "calls", str(figures.calls))
        + _tile("Asked to pay", "asked-to-pay", str(figures.asked_to_pay))
        + _tile(
            "Resolved without a person",
            "resolution-rate",
            percent(figures.resolution_rate),
            f"{figures.resolved} of {figures.asked_to_pay}",
        )
        + _tile("Paid by link", "paid", str(paid.calls), _amounts(paid.amounts))
        + "</section>"
    )


def _amounts(amounts: Sequence[Money]) -> str:
    return " + ".join(str(m) for m in amounts) if amounts else "–"


def _amount_lines(amounts: Sequence[Money]) -> str:
    """One currency per line (HTML), so a narrow table wraps between them."""
    return "<br>".join(f'<span class="nowrap">{esc(m)}</span>' for m in amounts) or "–"


def day_labels(days: Sequence[date]) -> list[str]:
    """x-axis labels: about six across, the month named on the first and where it changes."""
    every = max(1, -(-len(days) // 6))
    labels, month = [], 0
    for i, day in enumerate(days):
        if i % every:
            labels.append("")
            continue
        labels.append(f"{day:%b} {day.day}" if day.month != month else str(day.day))
        month = day.month
    return labels


def _swatch(colour: str) -> str:
    return (
        f'<svg class="swatch" viewBox="0 0 10 10" aria-hidden="true">'
        f'<rect width="10" height="10" fill="{esc(colour)}"/></svg>'
    )


def _calls_card(figures: Figures) -> str:
    outcomes = [outcome for outcome, _ in figures.outcome_totals]
    labels = day_labels([d.day for d in figures.days])
    bars = [
        svg.Bar(
            label,
            _day_tip(day),
            tuple((outcome_colour(o), float(day.count(o))) for o in outcomes),
        )
        for day, label in zip(figures.days, labels, strict=True)
    ]
    legend = "".join(
        f"<li>{_swatch(outcome_colour(o))}{esc(outcome_name(o))} "
        f'<strong data-outcome="{esc(o)}">{n}</strong></li>'
        for o, n in figures.outcome_totals
    )
    return (
        '<section class="card"><h2>Calls per day, by outcome</h2>'
        + svg.bar_chart("calls-per-day", "Calls per day, by outcome", bars)
        + (f'<ul class="legend">{legend}</ul>' if legend else '<p class="small">No calls.</p>')
        + "</section>"
    )


def _day_tip(day: DayCalls) -> str:
    parts = ", ".join(f"{n} {outcome_name(o)}" for o, n in day.outcomes) or "no calls"
    return f"{_long_day(day.day)}: {parts}"


def _rate_card(figures: Figures) -> str:
    labels = day_labels([d.day for d in figures.days])
    points = [
        svg.Point(
            label,
            f"{_long_day(day.day)}: {percent(day.resolution_rate)} "
            f"({day.resolved} of {day.asked_to_pay})",
            day.resolution_rate,
        )
        for day, label in zip(figures.days, labels, strict=True)
    ]
    return (
        '<section class="card"><h2>Payment calls resolved without a person</h2>'
        + svg.rate_line("resolution", "Resolved without a person, per day", points, RATE_COLOUR)
        + f'<p>Over the period: <strong data-figure="resolved">{figures.resolved}</strong> of '
        f"{figures.asked_to_pay} ({percent(figures.resolution_rate)}). Days without a payment "
        "call have no dot.</p></section>"
    )


def _share(step: FunnelStep, asked: int) -> str:
    return f"{percent(step.calls / asked)} of asked" if asked else "–"


def _funnel_card(figures: Figures) -> str:
    asked = figures.step("asked").calls
    stages = [svg.Stage(step.label, step.calls, _share(step, asked)) for step in figures.funnel]
    rows = "".join(
        f'<tr><td>{esc(step.label)}</td><td class="num" data-step="{esc(step.key)}">'
        f'{step.calls}</td><td class="num">{percent(step.calls / asked) if asked else "–"}</td>'
        f'<td class="amount">{_amount_lines(step.amounts)}</td></tr>'
        for step in figures.funnel
    )
    return (
        '<section class="card"><h2>From asking to paying</h2>'
        + svg.funnel("funnel", "From asking to paying (calls)", stages, FUNNEL_COLOUR)
        + '<div class="table-wrap"><table><thead><tr><th>step</th><th class="num">calls</th>'
        '<th class="num">of asked</th><th class="amount">amount</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div></section>"
    )


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{round(value)} ms"


def _latency_card(figures: Figures) -> str:
    latency = figures.latency
    bars = [
        svg.Bar(
            str(b.low_ms) if b.low_ms % 300 == 0 else "",
            f"{b.label}: {b.turns} turn{'' if b.turns == 1 else 's'}",
            ((LATENCY_COLOUR, float(b.turns)),),
        )
        for b in latency.bins
    ]
    return (
        '<section class="card"><h2>How fast the agent answers</h2>'
        f'<p>Median <strong data-figure="p50">{_ms(latency.p50_ms)}</strong>, '
        f'95th percentile <strong data-figure="p95">{_ms(latency.p95_ms)}</strong>, over '
        f'<span data-figure="turns">{latency.turns}</span> caller turns on the phone.</p>'
        + svg.bar_chart("latency", "Caller turns by answer time (ms)", bars)
        + '<p class="small">Milliseconds from the end of the caller\'s words to the start of '
        "the reply; the last bar is everything from 1500 ms.</p></section>"
    )


def _call_ref(call_id: int | None, live: bool) -> str:
    if call_id is None:
        return "–"
    if live:
        return f'<a href="/calls/{call_id}">call {call_id}</a>'
    return f"call {call_id}"


def _time(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M")


def _failed_card(figures: Figures, live: bool) -> str:
    rows = "".join(
        f"<tr><td>{esc(_time(t.created_at))}</td>"
        f'<td class="nowrap">{_call_ref(t.call_id, live)}</td>'
        f"<td>ending in {esc(t.number_ending)}</td>"
        f"<td>{esc(t.error or t.report or '–')}</td></tr>"
        for t in figures.failed_texts
    )
    shown = len(figures.failed_texts)
    more = ""
    if figures.failed_texts_total > shown:
        more = (
            f'<p class="small">The newest {shown} of {figures.failed_texts_total} are listed.</p>'
        )
    table = (
        '<div class="table-wrap"><table><thead><tr><th>created</th><th>call</th><th>to</th>'
        f"<th>last error</th></tr></thead><tbody>{rows}</tbody></table></div>"
        if rows
        else '<p class="small">None.</p>'
    )
    return (
        '<section class="card"><h2>Texts that failed '
        f'(<span data-figure="failed-texts">{figures.failed_texts_total}</span>)</h2>'
        + table
        + more
        + '<p class="small">Send one again with <code>voice-agent sms retry ID</code> '
        "(<code>voice-agent sms list --status failed</code> lists them).</p></section>"
    )


def _callbacks_card(figures: Figures, live: bool) -> str:
    rows = "".join(
        f'<tr><td class="nowrap">{_call_ref(c.call_id, live)}</td>'
        f"<td>{esc(_time(c.requested_at))}</td>"
        f"<td>{esc(c.reason or '–')}</td><td>{esc(c.customer or '–')}</td>"
        f"<td>{esc('ending in ' + c.number_ending if c.number_ending else 'withheld')}</td></tr>"
        for c in figures.callbacks
    )
    more = '<p class="small">Older ones are not listed.</p>' if figures.more_callbacks else ""
    table = (
        '<div class="table-wrap"><table><thead><tr><th>call</th><th>asked</th><th>why</th>'
        f"<th>customer</th><th>number</th></tr></thead><tbody>{rows}</tbody></table></div>"
        if rows
        else '<p class="small">None: every callback is done.</p>'
    )
    return (
        '<section class="card"><h2>Callbacks still to do '
        f'(<span data-figure="callbacks">{len(figures.callbacks)}</span>)</h2>'
        + table
        + more
        + '<p class="small">The numbers to dial: <code>voice-agent calls list --callbacks</code>; '
        "when done: <code>voice-agent calls callback-done ID</code>.</p></section>"
    )


def _small_print(figures: Figures) -> str:
    terms = (
        ("Period", f"calls started from midnight on {figures.period.since} to midnight after "
         f"{figures.period.until}, {figures.time_zone}; a call counts on the day it started."),
        ("Asked to pay", "the caller said they want to pay (understood with at least the "
         "configured confidence), pressed 1 at the greeting, or was sent a link."),
        ("Resolved without a person", "of the calls that asked to pay, those that ended with "
         "the payment link sent; the others went to a person, had nothing to pay, or hung up."),
        ("Link sent", "calls that ended with a payment link texted; the amount is the balance "
         "each link was made for."),
        ("Text delivered", "the gateway's delivery report said the phone got the text (a "
         "gateway without delivery reports leaves this below the next steps)."),
        ("Link opened", "the link's pay page was shown at least once (a phone's link preview "
         "counts too)."),
        ("Paid", "a payment came in through the link and was applied to the invoice; the "
         "amount is the money received."),
        ("Answer time", "phone calls only: from the end of the caller's speech to the first "
         "sound of the reply; median and 95th percentile are values real turns had."),
        ("Texts that failed", "texts created in the period that the gateway refused or could "
         "not deliver; only the last four digits of the number are shown."),
        ("Callbacks still to do", "every callback request not yet marked done, whatever the "
         "period: a failed transfer to a person, a payment text that failed for good, or a "
         "call cut off on its way to a person."),
    )  # fmt: skip
    items = "".join(f"<dt>{esc(term)}</dt><dd>{esc(text)}</dd>" for term, text in terms)
    return f'<section class="card small"><h2>What the figures mean</h2><dl>{items}</dl></section>'
