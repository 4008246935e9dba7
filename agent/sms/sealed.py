"""The SMS outbox text sealed at rest: a copy of the database opens no invoice.

A queued text carries a working payment link, so ``sms_message.body`` is stored encrypted
(Fernet: AES-128-CBC + HMAC-SHA256, from ``cryptography``) with a key kept outside the
database: the file ``[sms] body_key_file`` (default ``var/outbox.key``, mode 0600), or the
systemd credential ``outbox-key`` when ``$CREDENTIALS_DIRECTORY`` holds one
(``LoadCredential=`` in ``systemd/voice-agent.service``). A stored body reads
``sealed:v1:<token>``; :func:`unseal` is the one way back to the text, used through the
model field (``agent.billing.models.SealedTextField``) by everything that reads a body.

The key is made on first use, but never while sealed rows exist: a new key would orphan
them, so a missing key file is then an error naming the file (restore it from the backup
kept apart from the database's).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from agent.errors import AgentError

PREFIX = "sealed:v1:"
"""What every sealed body starts with; anything else is plain text from before sealing."""

CREDENTIAL_NAME = "outbox-key"
"""The systemd credential (``LoadCredential=outbox-key:/etc/voice-agent/outbox.key``)."""


class BodyKeyError(AgentError):
    """The outbox key is missing, unreadable or not the one the stored texts were sealed with."""

    code = "outbox-key"


@dataclass(frozen=True)
class BodyCipher:
    """Seals and unseals outbox texts with one key; ``source`` names where the key came from."""

    fernet: Fernet
    source: str

    def seal(self, text: str) -> str:
        if text.startswith(PREFIX):
            return text  # already sealed (a value read back and written again)
        return PREFIX + self.fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def unseal(self, stored: str, what: str = "an SMS outbox text") -> str:
        """The text of ``stored``; plain text (a row from before sealing) is returned as is."""
        if not stored.startswith(PREFIX):
            return stored
        try:
            return self.fernet.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as err:
            raise BodyKeyError(
                f"{what} cannot be decrypted with the key in {self.source}: "
                "it was sealed with another key (restore the original key file)"
            ) from err


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def key_path(configured: str) -> tuple[Path, bool]:
    """Where the key is read from, and whether it may be created there.

    A systemd credential wins (it is never created by the agent); else ``configured``.
    """
    credentials = os.environ.get("CREDENTIALS_DIRECTORY", "")
    if credentials and (Path(credentials) / CREDENTIAL_NAME).is_file():
        return Path(credentials) / CREDENTIAL_NAME, False
    return Path(configured), True


def load_cipher(configured: str, sealed_rows_exist: bool) -> BodyCipher:
    """The outbox cipher, making a new 0600 key file only when nothing sealed exists yet."""
    path, creatable = key_path(configured)
    if not path.exists():
        if sealed_rows_exist or not creatable:
            raise BodyKeyError(
                f"the SMS outbox key file {path} is missing, and the database holds texts "
                "sealed with it: restore the key file (a new key would make them unreadable)"
            )
        _create_key_file(path)
    try:
        key = path.read_bytes().strip()
        return BodyCipher(Fernet(key), str(path))
    except OSError as err:
        raise BodyKeyError(f"cannot read the SMS outbox key file {path}: {err.strerror}") from err
    except ValueError as err:
        raise BodyKeyError(
            f"the SMS outbox key file {path} does not hold a key (32 url-safe base64 bytes)"
        ) from err


def _create_key_file(path: Path) -> None:
    """Write a fresh key to ``path``, 0600, in a 0700 folder; never over an existing file.

    The key is written to a private temporary file first and linked into place, so an
    agent starting at the same moment sees either no file or a whole key, never an empty one.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(Fernet.generate_key() + b"\n")
            os.link(temporary, path)  # fails if another process made it first
        finally:
            os.unlink(temporary)
    except FileExistsError:
        return  # another process made it first: use theirs
    except OSError as err:
        raise BodyKeyError(f"cannot create the SMS outbox key file {path}: {err.strerror}") from err


class CipherSlot:
    """The cipher of the open database (bound next to ``database_proxy``)."""

    def __init__(self) -> None:
        self.cipher: BodyCipher | None = None

    def initialize(self, cipher: BodyCipher | None) -> None:
        self.cipher = cipher

    def get(self) -> BodyCipher:
        if self.cipher is None:
            raise BodyKeyError("no SMS outbox key is loaded (the database was not opened)")
        return self.cipher


outbox_cipher = CipherSlot()
"""Bound by :func:`agent.billing.db.open_database`, like the models' database."""
