"""A real Prometheus for the tests: Debian's ``/usr/bin/prometheus`` scraping the agent.

``PrometheusServer(folder, targets)`` writes a ``prometheus.yml`` with one job,
``voice-agent``, scraping ``/metrics`` on each ``host:port`` every ``interval`` seconds (1 by
default), and starts ``prometheus`` on a free loopback port with its data in ``folder``; the
``with`` block waits until it is ready and stops it after. ``query`` asks its HTTP API
(``/api/v1/query``) as Grafana does; ``wait_for`` asks again until an answer satisfies the
test (every wait is bounded).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from tests.conftest import free_port

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
JOB = "voice-agent"
"""The scrape job's name: what ``deploy/prometheus/alerts.yml`` selects on."""
READY_SECONDS = 60.0
STOP_SECONDS = 20.0


def require_prometheus() -> None:
    """Fail (never skip) when Prometheus is missing: scripts/setup installs it."""
    missing = [path for path in (PROMETHEUS, PROMTOOL) if not Path(path).exists()]
    if missing:
        raise AssertionError(
            f"Prometheus is not installed ({', '.join(missing)} missing): run scripts/setup, "
            "which installs the Debian package prometheus"
        )


class PrometheusServer:
    def __init__(self, folder: Path, targets: list[str], interval: float = 1.0) -> None:
        """``targets``: ``host:port`` of each agent's admin listener; ``interval``: seconds
        between scrapes (each scrape may take as long)."""
        require_prometheus()
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = folder / "prometheus.yml"
        self.log_path = folder / "prometheus.log"
        every = f"{interval:g}s"
        config = {
            "global": {"scrape_interval": every, "scrape_timeout": every},
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": targets}],
                }
            ],
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
            )  # fmt: skip
        try:
            self._wait_ready()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise AssertionError(f"prometheus exited at start:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus was not ready in {READY_SECONDS:g} s:\n{self.log_tail()}")

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    # --- asking it ----------------------------------------------------------------------

    def query(self, expr: str) -> dict[str, Any]:
        """The whole answer of ``/api/v1/query`` (``status``, ``data`` or ``error``)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        answer: dict[str, Any] = response.json()
        return answer

    def vector(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant vector's (labels, value) pairs; AssertionError on any other answer."""
        answer = self.query(expr)
        assert answer["status"] == "success", (expr, answer)
        data = answer["data"]
        assert data["resultType"] == "vector", (expr, data)
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def value(self, expr: str) -> float | None:
        """The single value of ``expr``; None when it has no result."""
        result = self.vector(expr)
        assert len(result) <= 1, (expr, result)
        return result[0][1] if result else None

    def wait_for(
        self,
        expr: str,
        check: Callable[[float | None], bool],
        limit_s: float = 30.0,
    ) -> float | None:
        """Ask for ``expr`` until ``check`` accepts its value (scrapes come every interval);
        AssertionError with the last value after ``limit_s``."""
        deadline = time.monotonic() + limit_s
        while True:
            value = self.value(expr)
            if check(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{expr} = {value} after {limit_s:g} s")
            time.sleep(0.5)

    def label_values(self, label: str, match: str) -> list[str]:
        """``/api/v1/label/<label>/values?match[]=<match>``: what Grafana's
        ``label_values(match, label)`` variable query lists."""
        response = httpx.get(
            f"{self.url}/api/v1/label/{label}/values", params={"match[]": match}, timeout=10
        )
        answer = response.json()
        assert answer["status"] == "success", answer
        values: list[str] = answer["data"]
        return values


def promtool(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``promtool ARGS`` (``stdin``: what it reads, e.g. for ``check metrics``)."""
    require_prometheus()
    return subprocess.run(
        [PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
