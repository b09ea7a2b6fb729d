"""A Keygrip server that a host starts itself, on a private Unix socket, when the artist asks.

ensure_running() blocks until the server prints its "listening on" line, so a host calls it only
from a worker thread (keygrip.session's connector does), never from its UI thread. The host stops
the server when it quits (stop()); jobs and results stay in the data folder for the next start.
"""

from __future__ import annotations

import getpass
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path


def default_socket_path() -> Path:
    """<tmp>/keygrip-<uid>.sock: one local server per user, shared by that user's Blender sessions."""
    uid = os.getuid() if hasattr(os, "getuid") else getpass.getuser()
    return Path(tempfile.gettempdir()) / f"keygrip-{uid}.sock"


def socket_address(path: Path) -> str:
    return f"unix://{path}"


class LocalServer:
    """`<python> -m inference_server` as a child process, started on demand and stopped on quit.

    python: the interpreter that has the Keygrip server installed (not Blender's own Python).
    data_dir: where the server keeps jobs and artifacts.
    """

    def __init__(self, python: str, data_dir: str | os.PathLike[str], socket_path: Path | None = None) -> None:
        self.python = python
        self.data_dir = Path(data_dir)
        self.socket_path = socket_path or default_socket_path()
        self.proc: subprocess.Popen[str] | None = None
        self.output: deque[str] = deque(maxlen=40)
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return socket_address(self.socket_path)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        return [self.python, "-m", "inference_server", "--listen", self.address, "--data-dir", str(self.data_dir)]

    def ensure_running(self, timeout: float = 120.0) -> str:
        """Start the server unless it runs already; returns its address. Blocks: worker thread only.

        Raises RuntimeError with the server's last output lines when it does not come up.
        """
        with self._lock:
            if self.running:
                return self.address
            if not Path(self.python).is_file():
                raise RuntimeError(f"the server Python {self.python!r} does not exist: set 'Server Python' in "
                                   "the Keygrip preferences to the python of the environment where Keygrip's "
                                   "server is installed")
            self.data_dir.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            # Blender's own Python settings must not leak into the server's interpreter.
            for key in ("PYTHONHOME", "PYTHONPATH"):
                env.pop(key, None)
            self.output.clear()
            self.proc = subprocess.Popen(
                self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                start_new_session=sys.platform != "win32")
            # A reader thread collects the output from the start, so that a server that hangs
            # before printing anything cannot stall this wait past its deadline.
            ready = threading.Event()
            threading.Thread(target=self._drain, args=(self.proc, ready), daemon=True).start()
            ready.wait(timeout)
            if self.proc.poll() is None and any("listening on" in line for line in list(self.output)):
                return self.address
            self._kill()
            tail = "\n".join(list(self.output)[-10:])
            raise RuntimeError(f"the local Keygrip server did not start ({' '.join(self.command())}):\n{tail}")

    def _drain(self, proc: subprocess.Popen[str], ready: threading.Event) -> None:
        """Keep reading so that a chatty server never blocks on a full pipe; set `ready` once the
        server announces its address, or when its output ends."""
        for line in proc.stdout or ():
            self.output.append(line.rstrip())
            if "listening on" in line:
                ready.set()
        ready.set()

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (graceful: jobs are kept for the next start), then SIGKILL after `timeout`."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        if sys.platform == "win32":
            proc.terminate()
        else:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            if sys.platform != "win32":
                os.killpg(proc.pid, signal.SIGKILL)
            proc.kill()
            proc.wait()


_instance: LocalServer | None = None


def get(python: str, data_dir: str | os.PathLike[str]) -> LocalServer:
    """The one local server of this process (replaced when its settings change)."""
    global _instance
    if _instance is None or _instance.python != python or _instance.data_dir != Path(data_dir):
        stop()
        _instance = LocalServer(python, data_dir)
    return _instance


def stop() -> None:
    """Stop the local server if this process started one (host add-on unregister and quit)."""
    global _instance
    if _instance is not None:
        _instance.stop()
        _instance = None
