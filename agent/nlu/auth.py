"""The NLU server's shared secret: kept in a 0600 file, proven with signed tokens.

Rasa runs with ``--auth-token S`` and ``--jwt-secret S`` (HS256), S being the 32 random
bytes (hex) in ``[nlu] auth_token_file``. The agent never sends S itself: every request
carries ``Authorization: Bearer <JWT signed with S>``, which Rasa checks, and which tells a
listener that does not know S nothing about it. ``?token=S`` stays available to an admin's
``curl``; any request with neither (``DELETE /model``, ``PUT /model`` from anyone local) gets
401.

A JWT signed with a random decoy key looks exactly like a real one to anyone who lacks S
(same header, same claims, a random nonce, 32 bytes of signature), so only a server that
knows S can tell them apart; ``agent.nlu.proof`` uses that to refuse a stand-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from agent.errors import NluSetupError

TOKEN_BYTES = 32
TOKEN_LIFETIME_SECONDS = 120
"""A captured request's JWT is useless after this; each request gets a fresh one."""


def read_token(path: Path) -> str:
    """The secret in ``path``; a precise ``NluSetupError`` when it is missing or unusable."""
    try:
        token = path.read_text().strip()
    except FileNotFoundError as err:
        raise NluSetupError(
            f"{path}: the NLU auth token file is missing (scripts/setup creates it)"
        ) from err
    except OSError as err:
        raise NluSetupError(f"{path}: cannot read the NLU auth token: {err.strerror}") from err
    if len(token) < 32 or not token.isascii() or not token.isalnum():
        raise NluSetupError(f"{path}: the NLU auth token must be at least 32 letters or digits")
    return token


def ensure_token(path: Path) -> str:
    """Read the secret, creating the file (mode 0600, 32 random bytes) when it is missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # made meanwhile by another process: use theirs
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(TOKEN_BYTES) + "\n")
    return read_token(path)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signed_jwt(key: str, now: float, nonce: str) -> str:
    """An HS256 JWT that Rasa accepts as an admin when ``key`` is its ``--jwt-secret``."""
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "user": {"username": "voice-agent", "role": "admin"},
        "iat": int(now),
        "exp": int(now) + TOKEN_LIFETIME_SECONDS,
        "jti": nonce,
    }
    signing_input = ".".join(
        _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def bearer(key: str, now: float) -> dict[str, str]:
    """Request headers carrying a fresh JWT signed with ``key``."""
    return {"Authorization": "Bearer " + signed_jwt(key, now, secrets.token_hex(8))}


def decoy_key() -> str:
    """A random key of the same shape as the real one, known to nobody."""
    return secrets.token_hex(TOKEN_BYTES)
