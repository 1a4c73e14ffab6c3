"""Real `warp-registry serve` processes for the multi-process and crash tests.

Each server runs in its own session (process group), so that a test can SIGKILL the
granian main process and all its workers at once, as a machine failure or the kernel's
OOM killer would, and nothing is left running on the port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import free_port

START_TIMEOUT_S = 30


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def kill9(self) -> None:
        """SIGKILL the server and its workers, with no chance to clean up."""
        kill_group(self.process.pid)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Shut down cleanly; SIGKILL if that takes more than 10 s."""
        _signal_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill9()
        # Workers are in the same group; make sure none outlives the main process.
        kill_group(self.process.pid)

    def worker_pids(self) -> list[int]:
        """Child processes of the server's main process (granian's workers)."""
        children: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            text = (task / "children").read_text().split()
            children.extend(int(pid) for pid in text)
        return children

    def client(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )


def start(database: str, *extra: str, log_path: Path) -> ServerProcess:
    """`warp-registry serve` on a free port of 127.0.0.1; returns once it answers HTTP."""
    port = free_port()
    log = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "warp_registry", "serve", "--database", database,
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    log.close()
    server = ServerProcess(process, f"http://127.0.0.1:{port}/client/v4", log_path)

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()}")
        try:
            httpx.get(server.base_url + "/", timeout=0.5)
            return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill9()
    raise RuntimeError(f"server did not start: {log_path.read_text()}")


@contextlib.contextmanager
def running(database: str, *extra: str, log_path: Path) -> Iterator[ServerProcess]:
    """A server for the `with` block; stopped at its end, whatever happened in it."""
    server = start(database, *extra, log_path=log_path)
    try:
        yield server
    finally:
        server.stop()


def kill_group(pid: int) -> None:
    """SIGKILL every process of the session `pid` leads (nothing if all have exited)."""
    _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group has exited
        os.killpg(pid, sig)
