"""The commands that need no speech models start without loading them.

``voice-agent --help``, ``config check`` and the admin commands are what an admin types
most; each used to import the whole service (pjsua2, faster-whisper, Piper) first, about a
second on a small box. The real console script runs under ``python -X importtime``, which
names every module imported, however late.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import VOICE_AGENT, write_config

HEAVY = ("pjsua2", "faster_whisper", "ctranslate2", "piper", "onnxruntime", "numpy")
"""Top-level packages of the SIP stack and the speech models (and the arrays they use)."""
VOICE_MODULES = ("agent.service", "agent.voice", "agent.asr", "agent.tts", "agent.audio")
"""The agent's own modules that load them."""


def imported_modules(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python -X importtime ARGS``; its result and every module it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    return done, modules


def errors(done: subprocess.CompletedProcess[str]) -> str:
    """``done``'s stderr without importtime's lines."""
    return "\n".join(
        line for line in done.stderr.splitlines() if not line.startswith("import time:")
    )


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(
        name
        for name in modules
        if name.split(".")[0] in HEAVY
        or any(name == voice or name.startswith(f"{voice}.") for voice in VOICE_MODULES)
    )


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("--help",), id="help"),
        pytest.param(("config", "check"), id="config-check"),
        pytest.param(("calls", "list"), id="calls-list"),
    ],
)
def test_light_commands_load_no_speech_or_sip_modules(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    config = write_config(tmp_path / "agent.toml", "http://127.0.0.1:9", tmp_path / "agent.db")

    done, modules = imported_modules(VOICE_AGENT, "--config", str(config), *args)

    assert done.returncode == 0, errors(done)
    assert "agent.cli" in modules  # importtime did report
    heavy = heavy_in(modules)
    assert not heavy, f"voice-agent {' '.join(args)} imported {heavy[:20]}"


def test_run_still_reaches_the_voice_modules() -> None:
    """The check above can fail: the same probe sees the service's imports."""
    done, modules = imported_modules("-c", "import agent.service")

    assert done.returncode == 0, errors(done)
    assert {"pjsua2", "faster_whisper", "piper", "agent.service"} <= set(heavy_in(modules))
