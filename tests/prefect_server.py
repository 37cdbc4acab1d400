"""A real `prefect server` on loopback (own PREFECT_HOME, SQLite) for the end-to-end test.

A fresh server spends about 20 s of its start migrating its database. conftest.py starts
it as soon as collection shows the end-to-end test is selected, so that start overlaps the
tests that run before it; the test itself then waits only for what is left.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from flows.config import PROJECT_ROOT

BIN = Path(os.environ.get("VIRTUAL_ENV") or PROJECT_ROOT / ".venv") / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """SIGINT to the process group (Prefect's servers and workers shut down cleanly on it)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class PrefectServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ledgerflow-e2e-"))
        self.port = free_port()
        self.ui_url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.ui_url}/api"
        self.log = self.root / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.root / "server-home"),
            PREFECT_UI_URL=self.ui_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
        )
        self.process = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1"]
            + ["--port", str(self.port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"prefect server exited with {self.process.returncode}:\n"
                    + self.log.read_text(errors="replace")
                )
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"prefect server not healthy after {timeout} s")

    def stop(self) -> None:
        stop(self.process)
