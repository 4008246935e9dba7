"""Open the billing database named by a URL and bind the models to it.

``sqlite:///var/agent.db`` (relative path), ``sqlite:////srv/agent/agent.db`` (absolute)
or ``postgresql://user:pass@host/agent`` — the same code runs on either; nothing in
:mod:`agent.billing` writes SQLite-only SQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import peewee as pw
from playhouse import db_url

from agent.billing.migrate import upgrade_schema
from agent.billing.models import ALL_MODELS, database_proxy
from agent.billing.sealing import bind_outbox_key
from agent.errors import DatabaseError
from agent.sms.sealed import BodyKeyError, outbox_cipher
from agent.urls import redact

SQLITE_PRAGMAS = {  # applied in this order, so the wait covers switching to WAL too
    "busy_timeout": 5000,  # ms to wait for another writer instead of failing at once
    "journal_mode": "wal",  # readers (web page) never block the writer (call)
    "foreign_keys": 1,
}


DEFAULT_BODY_KEY_FILE = "var/outbox.key"
"""``[sms] body_key_file``'s default: the key that seals the outbox texts (``agent.sms.sealed``)."""


def open_database(url: str, body_key_file: str = DEFAULT_BODY_KEY_FILE) -> pw.Database:
    """Connect to ``url``, bind every model to it, create missing tables and columns,
    bind the outbox key from ``body_key_file`` and seal texts stored in plain text.

    Raises ``DatabaseError`` (naming the URL, never its password) when the URL is not
    understood, the driver is missing, the file cannot be created, or the server refuses.
    """
    scheme = urlparse(url).scheme
    options: dict[str, Any] = {}
    database: pw.Database | None = None
    try:
        if "sqlite" in scheme:
            _make_parent_directory(url)
            options["pragmas"] = SQLITE_PRAGMAS
            # Every transaction takes the write lock at BEGIN, so it waits busy_timeout for
            # another writer (the web thread, the calls' database thread, an import); a plain
            # BEGIN that reads and then writes fails at once under WAL instead.
            options["lock_type"] = "IMMEDIATE"
        # A password holding "@", "/", ":" or "#" must be percent-encoded in a URL, so
        # decode it (as libpq and SQLAlchemy do); playhouse.db_url does not by default.
        database = db_url.connect(url, unquote_password=True, unquote_user=True, **options)
        database.connect(reuse_if_open=True)
        database_proxy.initialize(database)
        upgrade_schema(database, ALL_MODELS)  # new tables, and columns older versions lack
        bind_outbox_key(database, body_key_file)
    except BodyKeyError:
        _unbind(database)
        raise
    except (pw.PeeweeException, OSError, RuntimeError, ValueError, DatabaseError) as err:
        _unbind(database)
        reason = " ".join(redact(str(err)).split())  # libpq's messages end in "\n"
        message = f"cannot open database {redact(url)}: {reason}"
        raise DatabaseError(message) from err
    return database


def close_database() -> None:
    """Close this thread's connection and unbind the models (safe to call twice)."""
    database = database_proxy.obj
    if database is None:
        return
    try:
        database.close()
    finally:
        database_proxy.initialize(None)
        outbox_cipher.initialize(None)


def _unbind(database: pw.Database | None) -> None:
    database_proxy.initialize(None)
    outbox_cipher.initialize(None)
    if database is not None:
        database.close()


def _make_parent_directory(url: str) -> None:
    path = urlparse(url).path[1:]  # same rule as playhouse.db_url: drop one leading "/"
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
