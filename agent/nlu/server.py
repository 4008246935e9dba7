"""Train and run the Rasa NLU server that lives in its own Python 3.10 venv.

The trained model file is named after a hash of the training data, so training runs
only when the data changed. ``ManagedNluServer`` starts a server for the lifetime of
``voice-agent run``/``chat`` when nothing answers at the configured URL. Either way the
server runs with the secret in ``[nlu] auth_token_file`` (``agent.nlu.auth``), passed in
by ``rasa_launch.py`` so that it never appears on a command line.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from agent.config import NluSettings
from agent.errors import NluSetupError
from agent.nlu.auth import ensure_token, read_token
from agent.nlu.client import server_is_up
from agent.paths import NLU_DATA_DIR
from agent.watchdog import sd_notify

log = logging.getLogger(__name__)

RASA_VERSION = "3.6.21"


def training_hash(data_dir: Path = NLU_DATA_DIR) -> str:
    """sha256 over the training files (names and bytes) and the Rasa version."""
    digest = hashlib.sha256(RASA_VERSION.encode())
    files = [data_dir / "config.yml", data_dir / "domain.yml", *sorted(data_dir.glob("data/*.yml"))]
    for path in files:
        if not path.is_file():
            raise NluSetupError(f"{path}: NLU training file is missing")
        digest.update(path.relative_to(data_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def model_path(settings: NluSettings, data_dir: Path = NLU_DATA_DIR) -> Path:
    return Path(settings.model_dir) / f"nlu-{training_hash(data_dir)[:16]}.tar.gz"


def rasa_binary(settings: NluSettings) -> Path:
    rasa = Path(settings.venv) / "bin" / "rasa"
    if not rasa.is_file():
        raise NluSetupError(
            f"{rasa} not found: the NLU venv is not installed (run scripts/setup first)"
        )
    return rasa


def rasa_env(settings: NluSettings) -> dict[str, str]:
    """Rasa's environment: no telemetry, no downloads, its cache beside the models."""
    env = dict(os.environ)
    env.update(
        RASA_CACHE_DIRECTORY=str(Path(settings.model_dir).resolve().parent / "rasa-cache"),
        RASA_TELEMETRY_ENABLED="false",
        HF_HUB_OFFLINE="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        SQLALCHEMY_SILENCE_UBER_WARNING="1",
        PYTHONWARNINGS="ignore::DeprecationWarning,ignore::PendingDeprecationWarning",
    )
    return env


def train(settings: NluSettings, data_dir: Path = NLU_DATA_DIR, force: bool = False) -> Path:
    """Train the NLU model unless one for this exact training data exists; return its path."""
    target = model_path(settings, data_dir)
    if target.is_file() and not force:
        log.info("NLU model is up to date: %s", target)
        return target
    rasa = rasa_binary(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"Training the NLU model into {target} (a few minutes on 2 cores)...",
        file=sys.stderr,
        flush=True,
    )
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        command = [
            str(rasa), "train", "nlu",
            "--config", str(data_dir / "config.yml"),
            "--domain", str(data_dir / "domain.yml"),
            "--nlu", str(data_dir / "data"),
            "--out", scratch,
            "--fixed-model-name", target.name.removesuffix(".tar.gz"),
        ]  # fmt: skip
        done = subprocess.run(command, env=rasa_env(settings), check=False, stdout=sys.stderr)
        built = Path(scratch) / target.name
        if done.returncode != 0 or not built.is_file():
            raise NluSetupError(f"rasa train nlu failed (exit {done.returncode})")
        os.replace(built, target)
    for stale in target.parent.glob("nlu-*.tar.gz"):  # models of older training data
        if stale != target:
            stale.unlink()
    print(f"NLU model ready: {target}", file=sys.stderr, flush=True)
    return target


LAUNCHER = Path(__file__).with_name("rasa_launch.py")


def serve_command(settings: NluSettings, model: Path) -> list[str]:
    """``rasa run`` through the launcher that adds the auth secret (see ``rasa_launch.py``)."""
    url = urlsplit(settings.url)
    host = url.hostname or "127.0.0.1"
    port = url.port or 5005
    python = rasa_binary(settings).with_name("python")
    return [
        str(python), str(LAUNCHER), str(Path(settings.auth_token_file).resolve()),
        "run", "--enable-api",
        "--model", str(model),
        "--interface", host, "--port", str(port),
    ]  # fmt: skip


TRAINING_TIMEOUT_USEC = 30 * 60 * 1_000_000
"""While ``nlu serve`` trains (only when the training data changed), systemd's start timeout
is extended to this: training takes a few minutes on 2 cores, more than loading a model."""


def serve_foreground(settings: NluSettings) -> int:
    """``voice-agent nlu serve``: run the Rasa server (what systemd runs); its exit status.

    Rasa runs as a child so that this process can tell the service manager ``READY=1`` once
    the server answers with its model loaded (``Type=notify`` in
    ``systemd/voice-agent-nlu.service``, which ``voice-agent.service`` waits for). SIGTERM,
    SIGINT and SIGHUP are passed on to it; its exit status is this command's.
    """
    secret = ensure_token(Path(settings.auth_token_file))
    if not model_path(settings).is_file():
        sd_notify(f"EXTEND_TIMEOUT_USEC={TRAINING_TIMEOUT_USEC}")
        sd_notify("STATUS=training the NLU model")
    command = serve_command(settings, train(settings))
    sd_notify(f"STATUS=loading the NLU model, to answer at {settings.url}")
    process = subprocess.Popen(command, env=rasa_env(settings), start_new_session=True)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda number, _frame: process.send_signal(number))
    while process.poll() is None:
        if server_is_up(settings.url, secret):
            sd_notify("READY=1")
            sd_notify(f"STATUS=answering at {settings.url}")
            print(f"NLU server answering at {settings.url}", file=sys.stderr, flush=True)
            break
        time.sleep(0.5)
    status = process.wait()
    return status if status >= 0 else 128 - status  # killed by signal N: 128 + N, as a shell


class NluStartError(NluSetupError):
    """A managed NLU server exited while starting or did not answer in time.

    A run-time fault, not a setup mistake: ``voice-agent run`` goes on without it
    (``agent.nlu.supervisor``); ``chat``, the benchmark and the tests stop, as before."""

    code = "nlu-start"


class ManagedNluServer:
    """Start Rasa if nothing answers at the configured URL; stop it on exit."""

    def __init__(self, settings: NluSettings, log_path: Path | None = None) -> None:
        self.settings = settings
        self.log_path = log_path or Path(settings.model_dir).parent / "log" / "nlu-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ManagedNluServer:
        self.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        token_file = Path(self.settings.auth_token_file)
        secret = ensure_token(token_file) if self.settings.manage else read_token(token_file)
        if server_is_up(self.settings.url, secret):
            log.info("NLU server already answering at %s", self.settings.url)
            return
        if not self.settings.manage:
            raise NluSetupError(
                f"no NLU server answers at {self.settings.url} and [nlu] manage = false: "
                "start it with `voice-agent nlu serve` (or its systemd unit)"
            )
        self.launch(train(self.settings))
        self._wait_until_up(secret)

    def launch(self, model: Path) -> None:
        """Start ``rasa run`` with ``model`` in the background, its output appended to the log."""
        command = serve_command(self.settings, model)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        print(f"Starting the NLU server at {self.settings.url} ...", file=sys.stderr, flush=True)
        with self.log_path.open("ab") as out:
            self._process = subprocess.Popen(
                command, env=rasa_env(self.settings), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def exit_status(self) -> int | None:
        """The launched server's exit status once it has exited; None while it runs (or none
        was launched)."""
        return None if self._process is None else self._process.poll()

    def _wait_until_up(self, secret: str) -> None:
        deadline = time.monotonic() + self.settings.startup_timeout_seconds
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise NluStartError(
                    f"the NLU server exited with status {self._process.returncode} "
                    f"while starting; see {self.log_path}"
                )
            if server_is_up(self.settings.url, secret):
                print("NLU server ready.", file=sys.stderr, flush=True)
                return
            time.sleep(0.5)
        self.stop()
        raise NluStartError(
            f"the NLU server did not answer within {self.settings.startup_timeout_seconds:g} s; "
            f"see {self.log_path}"
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
