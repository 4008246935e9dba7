"""Token handling, pure: the token lives only in the URL texted to the caller.

The database keeps its SHA-256, so a copy of the database cannot be turned into
working links. Tokens carry no personal data: they are ``token_bytes`` of
``secrets.token_bytes`` in URL-safe base64.
"""

from __future__ import annotations

import hashlib
import secrets

MIN_TOKEN_BYTES = 32
"""256 random bits at least."""


def new_token(nbytes: int = MIN_TOKEN_BYTES) -> str:
    if nbytes < MIN_TOKEN_BYTES:
        raise ValueError(f"payment-link tokens need at least {MIN_TOKEN_BYTES} random bytes")
    return secrets.token_urlsafe(nbytes)


def hash_token(token: str) -> str:
    """The value stored and looked up: hex SHA-256 of the token's text."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def link_url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + "/" + token
