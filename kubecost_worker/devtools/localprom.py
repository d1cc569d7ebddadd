"""A throwaway local Prometheus seeded from an OpenMetrics file: the stand-in for Thanos Query in the demo,
the tests and the benchmarks (Debian's ``prometheus`` and ``promtool``)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests


def require_tools() -> None:
    missing = [tool for tool in ("prometheus", "promtool") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} not found: install Debian's prometheus package")


def create_blocks(openmetrics: Path, tsdb_dir: Path, block_hours: int = 72) -> None:
    """Write TSDB blocks from ``openmetrics`` (72 h blocks: far faster than the 2 h default, but promtool then holds
    every series of the file at once: 2 h blocks for a large tenant over many hours)."""
    require_tools()
    result = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", f"--max-block-duration={block_hours}h",
                             str(openmetrics), str(tsdb_dir)], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"promtool failed: {(result.stderr or result.stdout)[-500:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT_ATTEMPTS = 3


class LocalPrometheus:
    """``with LocalPrometheus(tsdb_dir) as url: ...`` serves the blocks on a free loopback port."""

    def __init__(self, tsdb_dir: Path, port: int | None = None):
        self.tsdb_dir = Path(tsdb_dir)
        self.fixed_port = port is not None
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        """Starts Prometheus and waits until it answers. A free port can be taken by another process between
        ``free_port`` and Prometheus binding it (tests run in several processes): Prometheus then exits, and it
        starts again on another port, unless the port was given."""
        require_tools()
        for _ in range(PORT_ATTEMPTS):
            if self._started():
                return self.url
            if self.fixed_port:
                break
            self.port = free_port()
        raise RuntimeError(f"prometheus exited with {self.process.returncode}")

    def _started(self) -> bool:
        """Whether this Prometheus answers on ``self.port``; False where it exited (the port taken)."""
        config = self.tsdb_dir.parent / f"prometheus-{self.port}.yml"
        config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.tsdb_dir}",
             "--storage.tsdb.retention.time=3650d", f"--web.listen-address=127.0.0.1:{self.port}",
             "--query.max-samples=200000000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                # ready, and serving this data directory: not another process's Prometheus on the same port
                flags = requests.get(f"{self.url}/api/v1/status/flags", timeout=1)
                if flags.status_code == 200 and flags.json()["data"]["storage.tsdb.path"] == str(self.tsdb_dir) \
                        and requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return True
            except (requests.RequestException, ValueError, LookupError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("prometheus did not become ready in 60 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
