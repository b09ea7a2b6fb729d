"""Shared fixtures: the real server in a subprocess, talking real gRPC."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
SHARED_DATA = REPO.parent / "shared" / "data"


class ServerProcess:
    """`python -m inference_server` on a free port with its own data directory; restartable."""

    def __init__(self, data_dir: Path, *extra: str, workers: int = 1) -> None:
        self.data_dir = data_dir
        self.extra = list(extra)
        self.workers = workers
        self.proc: subprocess.Popen | None = None
        self.address = ""
        self.listen = "127.0.0.1:0"
        self.stderr: list[str] = []

    def start(self, timeout: float = 60.0) -> ServerProcess:
        cmd = [sys.executable, "-m", "inference_server", "--listen", self.listen, "--data-dir",
               str(self.data_dir), "--workers", str(self.workers), "--log-format", "json", *self.extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("KEYGRIP_TOKEN", None)
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env, start_new_session=True)
        threading.Thread(target=self._drain_stderr, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if "listening on" in line or not line:
                break
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError("server did not start:\n" + "".join(self.stderr[-40:]))
        self.address = line.rsplit("listening on ", 1)[1].strip()
        if not self.listen.startswith("unix:"):
            # Restarts come back on the same port, as a real server would.
            self.listen = self.address
        return self

    def _drain_stderr(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            self.stderr.append(line)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def kill(self) -> None:
        """Hard stop of the server and its workers, as a crash or power cut would."""
        self.stop(signal.SIGKILL)

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:
    started: list[ServerProcess] = []

    def make(*extra: str, workers: int = 1, data_dir: Path | None = None) -> ServerProcess:
        srv = ServerProcess(data_dir or tmp_path / f"data{len(started)}", *extra, workers=workers)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that do not restart or reconfigure it."""
    media_root = DATA
    srv = ServerProcess(tmp_path_factory.mktemp("shared-server"), "--allowed-root", str(media_root), workers=2)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(shared_server: ServerProcess):
    from keygrip import Client

    with Client(shared_server.address) as c:
        yield c
