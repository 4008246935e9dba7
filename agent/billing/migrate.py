"""Bring an existing database up to the current models, on SQLite and PostgreSQL alike.

Run by :func:`agent.billing.db.open_database` every time, so a database made by an earlier
version gains what this version added the first time this version opens it:

* a table that is missing is created (with its indexes);
* a column a model has and its table lacks is added with ``ALTER TABLE ... ADD COLUMN``
  (peewee's ``playhouse.migrate``), with its index or unique index, and logged at INFO.
  Nothing is ever dropped, renamed or retyped; rows already there are kept.

How a new column is added depends on what the field allows:

* ``null=True`` → a nullable column (old rows hold NULL);
* NOT NULL with a constant default (``default=0``, ``default="queued"``) → ``NOT NULL
  DEFAULT <value>``, so old rows get the value and the constraint holds;
* NOT NULL with a computed default (``default=utcnow``) → a nullable column whose old rows
  get the value computed once now (making it NOT NULL would mean rebuilding the table on
  SQLite, where dropping a parent table cascades deletes);
* NOT NULL without a default cannot be added to rows that exist: ``DatabaseError`` names
  the field, and nothing is changed.

A schema that is already current is only read (no lock, no write). Otherwise everything
happens in one transaction that also serialises agents starting at the same time:
``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on PostgreSQL; what is
missing is looked up again under the lock, so the second agent finds nothing to do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

import peewee as pw
from playhouse.migrate import SchemaMigrator

from agent.errors import DatabaseError

log = logging.getLogger(__name__)

_ADVISORY_LOCK_KEY = 0x766F6963_65414731  # "voiceAG1": one schema lock per database
"""PostgreSQL advisory-lock key held while the schema is checked and upgraded."""


@dataclass(frozen=True)
class AddedColumn:
    """One column this upgrade added."""

    table: str
    column: str
    how: str
    """How it was added, for the log: "nullable", "NOT NULL DEFAULT 0", ..."""

    def __str__(self) -> str:
        return f"{self.table}.{self.column} ({self.how})"


@dataclass(frozen=True)
class UpgradeReport:
    """What :func:`upgrade_schema` changed; both empty when the schema was current."""

    created_tables: tuple[str, ...]
    added_columns: tuple[AddedColumn, ...]


def upgrade_schema(database: pw.Database, models: Sequence[type[pw.Model]]) -> UpgradeReport:
    """Create missing tables and add missing columns for ``models`` (parents first).

    ``models`` must already be bound to ``database``. Raises ``DatabaseError`` for a column
    that cannot be added; peewee's own errors (server refused, ...) pass through.
    """
    if _is_current(database, models):  # the usual case: no write lock taken
        database.create_tables(models, safe=True)  # any index added since (IF NOT EXISTS)
        return UpgradeReport(created_tables=(), added_columns=())
    with schema_transaction(database):  # look again under the lock, then change
        missing = [m for m in models if not database.table_exists(m._meta.table_name)]
        # New tables first: a new column may reference one of them.
        database.create_tables(missing, safe=True)
        for model in missing:
            log.info("database: created table %s", model._meta.table_name)
        added: list[AddedColumn] = []
        migrator = SchemaMigrator.from_database(database)
        for model in models:
            if model not in missing:
                added.extend(_add_missing_columns(database, migrator, model))
        # Indexes named in Meta.indexes since the table was made (CREATE INDEX IF NOT EXISTS).
        database.create_tables(models, safe=True)
    return UpgradeReport(
        created_tables=tuple(m._meta.table_name for m in missing), added_columns=tuple(added)
    )


def _is_current(database: pw.Database, models: Sequence[type[pw.Model]]) -> bool:
    tables = set(database.get_tables())
    for model in models:
        if model._meta.table_name not in tables:
            return False
        present = {column.name for column in database.get_columns(model._meta.table_name)}
        if any(field.column_name not in present for field in model._meta.sorted_fields):
            return False
    return True


@contextmanager
def schema_transaction(database: pw.Database) -> Iterator[None]:
    """One transaction holding the schema lock until commit (or rollback).

    Also taken by one-off data upgrades (``agent.billing.sealing``): SQLite's plain
    ``BEGIN`` would fail at once with "database is locked" when another agent wrote first.
    """
    if isinstance(database, pw.SqliteDatabase):
        atomic = database.atomic(lock_type="IMMEDIATE")  # take the write lock at BEGIN
    else:
        atomic = database.atomic()
    with atomic:
        if isinstance(database, pw.PostgresqlDatabase):
            pw.Select(columns=[pw.fn.pg_advisory_xact_lock(_ADVISORY_LOCK_KEY)]).execute(database)
        yield


def _add_missing_columns(
    database: pw.Database, migrator: SchemaMigrator, model: type[pw.Model]
) -> Iterable[AddedColumn]:
    table = model._meta.table_name
    present = {column.name for column in database.get_columns(table)}
    fields = [f for f in model._meta.sorted_fields if f.column_name not in present]
    for field in fields:  # check all first, so a bad field changes nothing
        _check_addable(model, field)
    for field in fields:
        how = _add_column(migrator, model, field)
        log.info("database: added column %s.%s (%s)", table, field.column_name, how)
        yield AddedColumn(table, field.column_name, how)


def _check_addable(model: type[pw.Model], field: pw.Field) -> None:
    if field.primary_key:
        raise DatabaseError(
            f"cannot upgrade table {model._meta.table_name}: its primary key "
            f"{field.column_name} is missing"
        )
    if not field.null and field.default is None:
        raise DatabaseError(
            f"cannot add column {model._meta.table_name}.{field.column_name} to an existing "
            f"table: it is NOT NULL without a default (give {model.__name__}.{field.name} "
            "null=True or a default)"
        )


def _add_column(migrator: SchemaMigrator, model: type[pw.Model], field: pw.Field) -> str:
    """Add one column (and its index); returns how it was added."""
    table = model._meta.table_name
    if field.null:
        migrator.add_column(table, field.column_name, field).run()
        return "nullable"
    if callable(field.default):
        nullable = field.clone()
        nullable.null = True
        migrator.add_column(table, field.column_name, nullable).run()
        model.update({field: field.default()}).execute()
        return "nullable, existing rows set to its default now"
    default = _sql_literal(field.default)
    with_default = field.clone()
    with_default.constraints = [pw.SQL(f"DEFAULT {default}"), *(field.constraints or [])]
    migrator.add_column(table, field.column_name, with_default, allow_not_null=True).run()
    return f"NOT NULL DEFAULT {default}"


def _sql_literal(value: object) -> str:
    """A constant default as SQL text that SQLite and PostgreSQL read the same way."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise DatabaseError(f"cannot write the default {value!r} as SQL; use a callable default")
