"""The dashboard's other pages: log in, closed (no password set), a refusal, a call's audit.

Same stylesheet as the dashboard (:data:`agent.dashboard.html.CSS`), no JavaScript.
"""

from __future__ import annotations

from datetime import datetime

from agent.dashboard.audit import CallAudit
from agent.dashboard.html import outcome_name, page
from agent.dashboard.svg import esc

PASSWORD_ENV = "VOICE_AGENT_ADMIN_PASSWORD_HASH"


def login_page(company: str, problem: str = "") -> str:
    error = f'<p class="error" role="alert">{esc(problem)}</p>' if problem else ""
    body = (
        '<main class="login"><div class="card">'
        f"<h1>{esc(company)}</h1><p>Payments dashboard</p>{error}"
        '<form method="post" action="/login">'
        '<label>Password<input type="password" name="password" autocomplete="current-password" '
        "required autofocus></label><button>Log in</button></form></div></main>"
    )
    return page(f"{company}: log in", body)


def closed_page(company: str, reason: str) -> str:
    """503: the dashboard cannot open until a password hash is configured."""
    body = (
        '<main class="login"><div class="card">'
        f"<h1>{esc(company)}</h1><h2>The dashboard is closed</h2>"
        f"<p>{esc(reason)}</p>"
        "<p>To open it, on the server:</p><ol>"
        "<li>run <code>.venv/bin/voice-agent admin password</code> and type a password "
        "(twice); it prints a line starting <code>scrypt$</code>;</li>"
        f"<li>put that line in the environment variable <code>{PASSWORD_ENV}</code> of "
        "<code>voice-agent run</code> (or in <code>[admin] password_hash</code> of the "
        "config file);</li>"
        "<li>restart the agent.</li></ol></div></main>"
    )
    return page(f"{company}: dashboard closed", body)


def message_page(company: str, title: str, message: str) -> str:
    """A refusal (bad dates, too many tries, no such call) with a way back."""
    body = (
        '<main class="login"><div class="card">'
        f"<h1>{esc(title)}</h1><p>{esc(message)}</p>"
        '<p><a href="/">Back to the dashboard</a></p></div></main>'
    )
    return page(f"{company}: {title}", body)


def _when(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def audit_page(company: str, audit: CallAudit, zone_name: str) -> str:
    fields = (
        ("call", f"{audit.call_id} ({audit.channel})"),
        ("caller", audit.caller),
        ("customer", audit.customer or "–"),
        ("started", _when(audit.started_at)),
        ("ended", _when(audit.ended_at)),
        ("outcome", outcome_name(audit.outcome) if audit.outcome else "in progress"),
        ("went to a person because", audit.escalation_reason or "–"),
        ("invoice", audit.invoice or "–"),
    )
    summary = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in fields)
    events = "".join(
        f'<tr><td class="num">{e.seq}</td><td>{esc(_when(e.at))}</td><td>{esc(e.type)}</td>'
        f"<td><code>{esc(e.data)}</code></td></tr>"
        for e in audit.events
    )
    body = (
        f"<header><h1>{esc(company)}: call {audit.call_id}</h1>"
        f"<p>Audit trail, times in {esc(zone_name)}; phone numbers show their last four "
        "digits, long digit runs in the caller's words were removed before they were "
        "stored</p></header><main>"
        '<p><a href="/">Back to the dashboard</a></p>'
        f'<section class="card"><table><tbody>{summary}</tbody></table></section>'
        f'<section class="card"><h2>Events ({len(audit.events)})</h2><div class="table-wrap">'
        '<table id="events"><thead><tr><th class="num">#</th><th>time</th><th>event</th>'
        f"<th>details</th></tr></thead><tbody>{events}</tbody></table></div></section></main>"
    )
    return page(f"{company}: call {audit.call_id}", body)
