"""Typed errors with stable codes, caught in one place (the CLI or the session).

Each stage of the agent raises its own subclass; the conversation session decides
what the caller hears (usually: escalate), the CLI decides the exit status.
"""

from __future__ import annotations

from dataclasses import dataclass


class AgentError(Exception):
    """Base class: every error the agent raises on purpose has a short code."""

    code = "agent-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Problem:
    """One located problem in a user-supplied file: ``FILE:LINE: message``."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class ProblemsError(AgentError):
    """A user file (config, CSV) had one or more problems; nothing was applied."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class ConfigError(ProblemsError):
    code = "config-invalid"


class CsvImportError(ProblemsError):
    code = "import-invalid"


class NluUnavailableError(AgentError):
    """The NLU server did not answer (down, timed out, or answered garbage)."""

    code = "nlu-unavailable"


class NluSetupError(AgentError):
    """The NLU environment (venv, training data, model) is missing or broken."""

    code = "nlu-setup"


class DatabaseError(AgentError):
    code = "database-error"


class DatabaseUnavailableError(DatabaseError):
    """The database refused a call's work or did not answer in time (locked, down, full)."""

    code = "db-unavailable"


class SmsError(AgentError):
    code = "sms-error"


class WebServiceError(AgentError):
    """The web service (pay pages, webhooks, callbacks) cannot start, e.g. its port is taken."""

    code = "web-error"


class PaymentProcessorError(AgentError):
    """The payment processor did not create a checkout (down, refused, timed out)."""

    code = "payment-processor"
