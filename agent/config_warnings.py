"""What a valid config still gets wrong for security: ``FILE:LINE: key: warning``.

A warning does not stop the agent (a lab box may want exactly this); ``config check``
prints each one and ``run`` logs each one at start, so the admin sees them where they look.

- ``[paylinks] base_url`` in plain ``http://`` on a host other than loopback: every payment
  link (a working bearer token until it is used) would cross the network unencrypted.
- A secret written literally in a file that users other than its owner may read (mode
  group- or other-readable): anyone with a shell on the box could read it. Secrets belong
  in the environment (``{ env = "NAME" }``) or, with a literal, in a 0600 file.

Pure: the config, the file's text and its mode in, located problems out.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.config_locate import KeyLocator, KeyPath
from agent.config_schema import Config, Secret
from agent.errors import Problem

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def config_warnings(config: Config, text: str, mode: int) -> list[Problem]:
    """Warnings for ``config``, read from ``text`` in a file with permission bits ``mode``."""
    file = str(config.source)
    lines = KeyLocator(text)
    warnings: list[Problem] = []

    def warn(path: KeyPath, message: str) -> None:
        key = ".".join(path)
        warnings.append(Problem(file, lines.line_of(path), f"warning: {key}: {message}"))

    base_url = config.paylinks.base_url
    if _plain_http_off_box(base_url):
        warn(
            ("paylinks", "base_url"),
            "plain http:// on a host that is not loopback: payment links would cross the "
            "network unencrypted; serve them over https:// (a reverse proxy with a certificate)",
        )
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        readable = "everyone" if mode & stat.S_IROTH else "its group"
        for path in _literal_secrets(config):
            warn(
                path,
                f"a password or key written in a file {readable} can read "
                f'(mode {stat.S_IMODE(mode):04o}); use {{ env = "NAME" }} or chmod 600 the file',
            )
    return warnings


def read_warnings(config: Config) -> list[Problem]:
    """``config_warnings`` for the file ``config`` was loaded from (none for defaults)."""
    if config.source is None:
        return []
    path = Path(config.source)
    try:
        return config_warnings(config, path.read_text(encoding="utf-8-sig"), path.stat().st_mode)
    except OSError:  # it was read a moment ago; if it is gone now there is nothing to warn about
        return []


def _plain_http_off_box(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        return False
    host = (parts.hostname or "").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name other than localhost: customers' phones reach it over a network


def _literal_secrets(config: Config) -> Iterator[KeyPath]:
    """Key paths of secrets written in the file: literal ``Secret``s, URL passwords."""
    for path, value in _walk(config, ()):
        if isinstance(value, Secret) and value.env is None and value.literal:
            yield path
    if urlsplit(config.database.url).password:
        yield ("database", "url")


def _walk(value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, Any]]:
    if isinstance(value, Secret):
        yield path, value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _walk(getattr(value, field.name), (*path, field.name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*path, str(key)))
