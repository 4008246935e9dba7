"""Bind the outbox key when a database is opened, and seal texts stored before sealing.

Run by :func:`agent.billing.db.open_database` after the schema upgrade, every time:

* the key is loaded (or made, when no sealed text exists yet: ``agent.sms.sealed``) and
  checked against the newest sealed text, so a wrong key stops the command at once with
  the key file's name, before anything is written;
* bodies still in plain text (a database from before sealing, or a row an older version
  wrote) are sealed in one transaction and the count logged at INFO. A database with none
  is only read, so running it again changes nothing.
"""

from __future__ import annotations

import logging

import peewee as pw

from agent.billing.migrate import schema_transaction
from agent.billing.models import SmsMessage
from agent.sms.sealed import PREFIX, load_cipher, outbox_cipher

log = logging.getLogger(__name__)

_PATTERN = (PREFIX + "%",)
"""``LIKE`` parameter (raw SQL: the rows are read as stored, not through the field)."""


def bind_outbox_key(database: pw.Database, key_file: str) -> int:
    """Load and check the key, bind it, seal plain rows; how many rows were sealed."""
    like = f"body LIKE {database.param}"
    newest = database.execute_sql(  # type: ignore[no-untyped-call]
        f"SELECT id, body FROM sms_message WHERE {like} ORDER BY id DESC LIMIT 1", _PATTERN
    ).fetchone()
    cipher = load_cipher(key_file, sealed_rows_exist=newest is not None)
    if newest is not None:
        cipher.unseal(newest[1], f"SMS outbox text {newest[0]}")
    outbox_cipher.initialize(cipher)
    return _seal_plain_rows(database)


def _seal_plain_rows(database: pw.Database) -> int:
    plain_rows = f"FROM sms_message WHERE body NOT LIKE {database.param}"
    if (
        database.execute_sql(  # type: ignore[no-untyped-call]
            f"SELECT 1 {plain_rows} LIMIT 1", _PATTERN
        ).fetchone()
        is None
    ):
        return 0
    with schema_transaction(database):  # a second agent starting now waits, then finds none
        plain = database.execute_sql(  # type: ignore[no-untyped-call]
            f"SELECT id, body {plain_rows}", _PATTERN
        ).fetchall()
        for row_id, body in plain:  # the field seals on the way in
            SmsMessage.update(body=body).where(SmsMessage.id == row_id).execute()
    if plain:
        log.info("sealed %d SMS outbox text(s) stored in plain text", len(plain))
    return len(plain)
