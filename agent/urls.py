"""URL helpers shared by config validation and the database layer."""

from __future__ import annotations

import re

_CREDENTIALS = re.compile(r"//([^/@:]*):[^/]*@")  # to the last "@", as urlparse reads it


def redact(url: str) -> str:
    """The URL with any password replaced: ``postgresql://agent:***@db/agent``."""
    return _CREDENTIALS.sub(r"//\1:***@", url)
