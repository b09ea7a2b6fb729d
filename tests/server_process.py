"""The real server in a subprocess, for tests: started on a free port with its own data folder,
its output read as it arrives. A plain module (not a conftest), so that any test can import it:
`from server_process import ServerProcess`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]


class OutputLines:
    """The lines a child process writes to one pipe, read by a thread as they arrive.

    wait_for() blocks until a matching line has been written (or the pipe closes, or time runs out), so
    a test never looks at a snapshot that the reader thread has not caught up with yet.
    """

    def __init__(self, pipe: IO[str], name: str) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(pipe,), name=f"read-{name}", daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        try:
            for line in pipe:
                with self._changed:
                    self.lines.append(line)
                    self._changed.notify_all()
        finally:
            with self._changed:
                self.closed = True
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of `pattern` in a line, waiting for it; TimeoutError or EOFError if none comes."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        checked = 0
        with self._changed:
            while True:
                for line in self.lines[checked:]:
                    if (match := regex.search(line)) is not None:
                        return match
                checked = len(self.lines)
                if self.closed:
                    raise EOFError(f"the output ended without a line matching {pattern!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no line matching {pattern!r} within {timeout} s")
                self._changed.wait(remaining)

    def finish(self, timeout: float = 5.0) -> list[str]:
        """Every line, once the writer has closed the pipe (or `timeout` has passed)."""
        self._thread.join(timeout)
        with self._changed:
            return list(self.lines)


class ServerProcess:
    """`python -m inference_server` on a free port with its own data directory; restartable.

    `launcher` replaces `-m inference_server` (e.g. `-m keygrip.cli serve`). The process's stdout and
    stderr are read by threads for as long as it runs; wait_for_log() waits on stderr (JSON log lines).
    """

    def __init__(self, data_dir: Path, *extra: str, workers: int = 1,
                 launcher: Sequence[str] = ("-m", "inference_server")) -> None:
        self.data_dir = data_dir
        self.extra = list(extra)
        self.workers = workers
        self.launcher = list(launcher)
        self.proc: subprocess.Popen[str] | None = None
        self.address = ""
        self.listen = "127.0.0.1:0"
        self._stdout: OutputLines | None = None
        self._stderr: OutputLines | None = None

    @property
    def stderr(self) -> list[str]:
        """The stderr lines of the current run read so far (use wait_for_log to wait for one)."""
        return list(self._stderr.lines) if self._stderr else []

    def start(self, timeout: float = 60.0) -> ServerProcess:
        cmd = [sys.executable, *self.launcher, "--listen", self.listen, "--data-dir", str(self.data_dir),
               "--workers", str(self.workers), "--log-format", "json", *self.extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("KEYGRIP_TOKEN", None)
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, start_new_session=True)
        assert proc.stdout is not None and proc.stderr is not None
        self.proc = proc
        self._stdout = OutputLines(proc.stdout, "stdout")
        self._stderr = OutputLines(proc.stderr, "stderr")
        try:
            # The server prints this one stdout line once it serves; everything it logs before is on stderr.
            match = self._stdout.wait_for(r"listening on (\S+)", timeout)
        except (TimeoutError, EOFError) as exc:
            self.stop(signal.SIGKILL)
            tail = "".join(self._stderr.finish()[-40:])
            raise RuntimeError(f"server did not start ({exc}):\n{tail}") from None
        # Every start binds a fresh port (tests reconnect to .address). Reusing the old one would race with
        # any process that picks port 0 meanwhile, and gRPC's SO_REUSEPORT would let both servers bind it.
        self.address = match.group(1)
        return self

    def wait_for_log(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first stderr line of the current run matching `pattern`, waiting until it is written."""
        assert self._stderr is not None, "the server was never started"
        return self._stderr.wait_for(pattern, timeout)

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


def wait_running(job: object, timeout: float = 120.0) -> None:
    """Until a job reports inference progress (its worker is really busy with frames); AssertionError
    when it ends first. job: a keygrip.Job."""
    from keygrip import events

    for ev in job.watch(timeout=timeout):  # type: ignore[attr-defined]
        if isinstance(ev, events.ProgressEvent) and ev.stage == "inference" and ev.value > 0:
            return
        if isinstance(ev, events.StateEvent) and ev.terminal:
            raise AssertionError(f"the job ended before the test could act: {ev}")
