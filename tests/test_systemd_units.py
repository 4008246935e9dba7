"""The systemd units: hardened (systemd-analyze security), valid (systemd-analyze verify), and
the NLU unit's mounts matching the paths the default config makes it use.

Nothing here starts a unit (that needs systemd as PID 1); both checks read the unit files
offline. ``verify`` runs against a scratch root holding the system's own units, the two unit
files and stand-in executables for their ``ExecStart=``, so it checks every setting's syntax,
the units they name (``After=``, ``Wants=``) and that the command would be executable, without
/opt/voice-agent existing here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.config import load_config
from agent.nlu.server import rasa_env
from agent.paths import PROJECT_ROOT

UNITS = PROJECT_ROOT / "systemd"
AGENT_UNIT = UNITS / "voice-agent.service"
NLU_UNIT = UNITS / "voice-agent-nlu.service"
MAX_EXPOSURE = 2.5
"""systemd-analyze's "OK" band ends here; both units were 8.5 ("EXPOSED") before hardening."""

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def service_settings(unit: Path) -> dict[str, list[str]]:
    """The ``[Service]`` section: each key with its values in order (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith(("#", ";")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    """systemd-analyze; fails (never skips) where it is missing: scripts/setup installs it
    (package ``systemd`` in scripts/apt-packages.txt)."""
    assert SYSTEMD_ANALYZE is not None, "systemd-analyze is missing: run scripts/setup"
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("unit", [AGENT_UNIT, NLU_UNIT], ids=lambda unit: unit.name)
def test_unit_is_rated_ok_by_systemd_analyze_security(unit: Path) -> None:
    threshold = str(int(MAX_EXPOSURE * 10))  # --threshold counts in tenths
    done = analyze("security", "--offline=true", f"--threshold={threshold}", str(unit))
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert level is not None, done.stdout + done.stderr
    assert float(level[1]) <= MAX_EXPOSURE, done.stdout
    assert done.returncode == 0, done.stdout + done.stderr


def verify_root(tmp_path: Path, units: list[Path]) -> Path:
    """A file system root with the system's units, ``units`` and their ExecStart commands."""
    root = tmp_path / "root"
    system_units = next(
        (p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()),
        None,
    )
    assert system_units is not None, "no /usr/lib/systemd/system: run scripts/setup (systemd)"
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in units:
        shutil.copy(unit, root / "etc/systemd/system" / unit.name)
        for command in service_settings(unit)["ExecStart"]:
            stand_in = root / command.split()[0].lstrip("-@:+!").lstrip("/")
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            stand_in.write_text("#!/bin/sh\n")
            stand_in.chmod(0o755)
    return root


def verify(root: Path, *names: str) -> subprocess.CompletedProcess[str]:
    return analyze("verify", "--man=no", f"--root={root}", *names)


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    root = verify_root(tmp_path, [AGENT_UNIT, NLU_UNIT])
    done = verify(root, AGENT_UNIT.name, NLU_UNIT.name)
    # verify exits 0 on an unknown or misspelt setting, only warning: any output is a fault.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_verify_would_catch_a_bad_setting_or_a_missing_command(tmp_path: Path) -> None:
    root = verify_root(tmp_path, [AGENT_UNIT, NLU_UNIT])
    unit = root / "etc/systemd/system" / AGENT_UNIT.name
    unit.write_text(unit.read_text().replace("ProtectProc=invisible", "ProtectProc=invisibel"))
    assert "invisibel" in verify(root, AGENT_UNIT.name).stderr
    (root / "opt/voice-agent/.venv/bin/voice-agent").unlink()
    assert "is not executable" in verify(root, NLU_UNIT.name).stderr


def test_nlu_unit_mounts_what_the_default_config_makes_it_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its own writable folders and the token, and nothing else of var/ (the agent's data)."""
    nlu = service_settings(NLU_UNIT)
    install = Path(nlu["WorkingDirectory"][0])
    settings = load_config(PROJECT_ROOT / "config" / "agent.toml").nlu
    monkeypatch.chdir(tmp_path)  # stands in for the working directory, /opt/voice-agent
    cache = Path(rasa_env(settings)["RASA_CACHE_DIRECTORY"]).relative_to(tmp_path)

    assert nlu["TemporaryFileSystem"] == [f"{install / 'var'}:ro"]
    assert nlu["BindReadOnlyPaths"] == [str(install / settings.auth_token_file)]
    writable = set(" ".join(nlu["BindPaths"]).split())
    assert {str(install / settings.model_dir), str(install / cache)} <= writable
    assert all(Path(path).parent == install / "var" for path in writable)
    assert "ReadWritePaths" not in nlu

    agent = service_settings(AGENT_UNIT)
    assert nlu["User"] != agent["User"], "the NLU server must not be able to open the database"
    assert nlu["IPAddressDeny"] == ["any"] and nlu["IPAddressAllow"] == ["localhost"]
