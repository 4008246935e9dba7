"""The dashboard's password and sessions.

The password is never stored: ``[admin] password_hash`` holds
``scrypt$N$r$p$salt$key`` (salt and key in base64) made by ``voice-agent admin password``.
scrypt with N = 2^15, r = 8, p = 1 (32 MiB, about 0.1 s a try here) makes each guess at a
stolen hash costly; the login form itself allows ``FAILURES_PER_MINUTE`` wrong passwords
per client address, then answers 429 until the minute has passed.

A good password opens a session: a random token (256 bits) in an ``HttpOnly``,
``SameSite=Strict`` cookie, kept in this process's memory (only its SHA-256) for
``SESSION_SECONDS``; a restart of the agent logs everyone out, which is fine for a page an
owner opens now and then.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

SCHEME = "scrypt"
COST_N, BLOCK_R, PARALLEL_P = 2**15, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
MAX_MEMORY = 256 * 1024 * 1024
"""scrypt needs 128·r·N bytes; a hash asking for more than this is refused."""
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
SESSION_SECONDS = 12 * 3600
FAILURES_PER_MINUTE = 5


class BadHashError(ValueError):
    """``[admin] password_hash`` is not a hash ``voice-agent admin password`` made."""


@dataclass(frozen=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    @classmethod
    def make(cls, password: str, salt: bytes | None = None) -> PasswordHash:
        salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
        made = cls(COST_N, BLOCK_R, PARALLEL_P, salt, b"")
        return cls(COST_N, BLOCK_R, PARALLEL_P, salt, made.derive(password, KEY_BYTES))

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """Raises ``BadHashError`` saying what is wrong (never echoing the hash)."""
        parts = text.strip().split("$")
        if len(parts) != 6 or parts[0] != SCHEME:
            raise BadHashError("it is not scrypt$N$r$p$salt$key")
        try:
            n, r, p = (int(part) for part in parts[1:4])
            salt, key = (base64.b64decode(part, validate=True) for part in parts[4:6])
        except (ValueError, binascii.Error) as err:
            raise BadHashError("its numbers or base64 parts do not read") from err
        if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
            raise BadHashError("its N must be a power of 2, r 1 to 64, p 1 to 16")
        if 128 * r * n > MAX_MEMORY or len(salt) < 8 or len(key) < 16:
            raise BadHashError("its cost is too high or its salt or key too short")
        return cls(n, r, p, salt, key)

    def __str__(self) -> str:
        salt = base64.b64encode(self.salt).decode("ascii")
        key = base64.b64encode(self.key).decode("ascii")
        return f"{SCHEME}${self.n}${self.r}${self.p}${salt}${key}"

    def matches(self, password: str) -> bool:
        """Whether ``password`` is the one; compared in constant time."""
        if len(password) > MAX_PASSWORD_CHARS:
            return False
        return hmac.compare_digest(self.derive(password, len(self.key)), self.key)

    def derive(self, password: str, length: int) -> bytes:
        """scrypt of ``password`` with this hash's salt and cost."""
        return hashlib.scrypt(
            password.encode("utf-8"), salt=self.salt, n=self.n, r=self.r, p=self.p,
            maxmem=MAX_MEMORY, dklen=length,
        )  # fmt: skip


def password_problem(password: str) -> str | None:
    """Why ``password`` will not do as the dashboard's, or None."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"the password has {len(password)} characters; at least {MIN_PASSWORD_CHARS}"
    if len(password) > MAX_PASSWORD_CHARS:
        return f"the password has {len(password)} characters; at most {MAX_PASSWORD_CHARS}"
    return None


class Sessions:
    """Logged-in browsers: token digest → expiry (monotonic seconds)."""

    def __init__(
        self,
        lifetime: float = SESSION_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_sessions: int = 1000,
    ) -> None:
        self.lifetime = lifetime
        self._clock = clock
        self._max = max_sessions
        self._expiry: OrderedDict[bytes, float] = OrderedDict()
        """Oldest session first."""

    def open(self) -> str:
        """A new session; its token (for the cookie). The oldest goes when full."""
        self._forget_expired()
        while len(self._expiry) >= self._max:
            self._expiry.popitem(last=False)
        token = secrets.token_urlsafe(32)
        self._expiry[_digest(token)] = self._clock() + self.lifetime
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        expiry = self._expiry.get(_digest(token))
        if expiry is None:
            return False
        if expiry <= self._clock():
            del self._expiry[_digest(token)]
            return False
        return True

    def close(self, token: str | None) -> None:
        if token:
            self._expiry.pop(_digest(token), None)

    def __len__(self) -> int:
        return len(self._expiry)

    def _forget_expired(self) -> None:
        now = self._clock()
        for digest in [d for d, expiry in self._expiry.items() if expiry <= now]:
            del self._expiry[digest]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class FailureLimiter:
    """At most ``limit`` wrong passwords per client in any ``window`` seconds.

    Only failures count, so logging in from a phone and a laptop never locks the owner out;
    a client over the limit is refused before its password is even checked. At most
    ``max_clients`` are remembered (the stalest forgotten first), so a flood of addresses
    costs bounded memory.
    """

    def __init__(
        self,
        limit: int = FAILURES_PER_MINUTE,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked(self, client: str) -> bool:
        failures = self._failures.get(client)
        if failures is None:
            return False
        now = self._clock()
        while failures and now - failures[0] >= self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return False
        return len(failures) >= self.limit

    def failed(self, client: str) -> None:
        failures = self._failures.get(client)
        if failures is None:
            while len(self._failures) >= self._max:
                self._failures.popitem(last=False)
            failures = self._failures[client] = deque(maxlen=self.limit)
        self._failures.move_to_end(client)
        failures.append(self._clock())
