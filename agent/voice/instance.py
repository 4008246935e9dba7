"""Which agent took a call, when several share one database: ``[agent] instance``.

Each box names itself (``[agent] instance``, default ``<hostname>:<[sip] port>``: unique on a
host, since two agents there cannot bind the same SIP port, and the same after a restart)
and stores the name on every phone call row it takes (``call.instance``). At start, an agent
closes the calls *it* left open when it was killed (``agent.voice.interrupted``) — all of
them, however young — because none of them can still be running: it is that box.

That "none can be running" holds only if no other live process goes by the same name (two
boxes cloned from one image with the same host name and port, or a second ``voice-agent
run`` started by hand next to a draining one). On PostgreSQL, :class:`InstanceClaim` makes
sure of it: a session advisory lock keyed by the name, taken on a connection of its own and
held while the agent runs. PostgreSQL releases it when that connection ends, which a killed
process's does at once (the kernel closes its socket); a box that lost power holds it until
the server notices the dead connection (TCP keepalive). An agent that cannot take it closes
only calls no agent can still be running, whoever took them, and logs why. If PostgreSQL
restarts while the agent runs, the lock goes with the connection and is not taken again:
the agent goes on, and its name is unguarded until it restarts.

SQLite is one box's database: no claim is taken, and the time rule of
``agent.voice.interrupted`` applies to every call, as before names existed.
"""

from __future__ import annotations

import hashlib
import logging
import socket
from typing import Any

import peewee as pw

from agent.config_schema import AgentSettings, SipSettings

log = logging.getLogger(__name__)


def instance_name(agent: AgentSettings, sip: SipSettings, hostname: str | None = None) -> str:
    """``[agent] instance``, or ``<hostname>:<[sip] port>`` when it is empty."""
    if agent.instance:
        return agent.instance
    return f"{hostname if hostname is not None else socket.gethostname()}:{sip.port}"


def claim_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for the instance ``name`` (same in every process)."""
    digest = hashlib.blake2b(f"voice-agent:instance:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class InstanceClaim:
    """This process's hold on its instance name (see the module docstring).

    ``sole``: True when this process is known to be the only live agent of that name (the
    PostgreSQL lock is held); False on SQLite, and when another connection holds the lock.
    Blocking: take and release it off the event loop."""

    def __init__(self, name: str, connection: Any = None) -> None:
        self.name = name
        self._connection = connection

    @property
    def sole(self) -> bool:
        return self._connection is not None

    @classmethod
    def take(cls, database: pw.Database, name: str) -> InstanceClaim:
        """Try the lock on a new connection of ``database`` (kept while held)."""
        if not isinstance(database, pw.PostgresqlDatabase):
            return cls(name)
        connection = database._connect()  # type: ignore[attr-defined]  # its own session
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (claim_key(name),))
                (held,) = cursor.fetchone()
        except Exception:
            connection.close()
            raise
        if held:
            return cls(name, connection)
        connection.close()
        log.warning(
            "another agent holds the instance name %r on this database (or a box of that name "
            "lost power and its connection has not timed out yet): only calls no agent can "
            "still be running are closed as interrupted; give each box its own [agent] instance",
            name,
        )
        return cls(name)

    def release(self) -> None:
        """End the claim (closing its connection releases the lock); safe to call twice."""
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception as err:  # a connection PostgreSQL already dropped
                log.debug("closing the instance claim's connection: %s", err)
