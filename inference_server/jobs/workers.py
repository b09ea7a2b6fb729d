"""Worker processes that run the heavy part of jobs, off the gRPC event loop.

Each worker is a spawned process with one duplex pipe to the front:
    front -> worker: ("run", job_id, job_type, request_bytes) | ("cancel", job_id) | ("stop",)
    worker -> front: ("progress", job_id, Progress bytes, preview_png)
                     | ("done", job_id, result Any bytes, [artifact ids])
                     | ("error", job_id, code name, reason, message)
A worker runs one job at a time. Cancellation is cooperative (the pipeline calls
check_cancelled between frames or steps); a worker that does not stop within the grace period is
killed and replaced, so a cancel always takes effect.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import os
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

from google.protobuf import any_pb2

from inference_server.errors import JobCancelled, KeygripError
from inference_server.store.artifacts import Artifact, ArtifactStore
from keygrip.v1 import common_pb2

log = logging.getLogger("keygrip.workers")

# job type -> "module:function". Handlers import their heavy dependencies themselves, so a worker
# only loads MediaPipe once it runs a capture.
HANDLERS: dict[str, str] = {
    "probe_media": "inference_server.pipelines.probe:run",
    "motion_capture": "inference_server.pipelines.capture:run",
    "retarget": "inference_server.pipelines.retarget:run",
}

_PROGRESS_INTERVAL_S = 0.1


class WorkerContext:
    """The JobContext a pipeline sees inside a worker process."""

    def __init__(self, conn: Connection, job_id: str, artifacts: ArtifactStore, scratch: Path) -> None:
        self._conn = conn
        self.job_id = job_id
        self.artifacts = artifacts
        self.scratch = scratch
        self.produced: list[str] = []
        self._last_sent = 0.0
        self._cancelled = False

    def progress(self, stage: str, value: float, maximum: float, message: str = "", *,
                 fps: float = 0.0, preview_png: bytes = b"") -> None:
        now = time.monotonic()
        # Throttle: watchers need a smooth bar, not one event per frame.
        if now - self._last_sent < _PROGRESS_INTERVAL_S and value < maximum and not preview_png:
            return
        self._last_sent = now
        p = common_pb2.Progress(stage=stage, value=value, maximum=maximum, fps=fps, message=message)
        self._conn.send(("progress", self.job_id, p.SerializeToString(), preview_png))

    def check_cancelled(self) -> None:
        while not self._cancelled and self._conn.poll():
            msg = self._conn.recv()
            # "stop" arrives when the server shuts down mid-job: end the job as promptly as a cancel.
            if msg[0] == "stop" or (msg[0] == "cancel" and msg[1] == self.job_id):
                self._cancelled = True
        if self._cancelled:
            raise JobCancelled("cancelled by the user")

    def put_bytes(self, data: bytes, name: str, media_type: str) -> Artifact:
        art = self.artifacts.put_bytes(data, name, media_type)
        self.produced.append(art.id)
        return art

    def put_file(self, path: Path, name: str, media_type: str) -> Artifact:
        art = self.artifacts.put_file(path, name, media_type)
        self.produced.append(art.id)
        return art


def _load_handler(job_type: str) -> Callable:
    module, func = HANDLERS[job_type].split(":")
    return getattr(importlib.import_module(module), func)


def worker_main(conn: Connection, data_dir: str) -> None:
    """Entry point of a worker process."""
    import signal

    # Ctrl+C in the terminal reaches the whole process group: let the front shut workers down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    artifacts = ArtifactStore(Path(data_dir) / "artifacts")
    scratch_root = Path(data_dir) / "scratch"
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg[0] == "stop":
            return
        if msg[0] != "run":
            continue  # a late cancel for a job that already ended
        _, job_id, job_type, request_bytes = msg
        scratch = scratch_root / job_id
        scratch.mkdir(parents=True, exist_ok=True)
        ctx = WorkerContext(conn, job_id, artifacts, scratch)
        try:
            request = any_pb2.Any()
            request.ParseFromString(request_bytes)
            result = _load_handler(job_type)(request, ctx)
            packed = any_pb2.Any()
            packed.Pack(result)
            conn.send(("done", job_id, packed.SerializeToString(), ctx.produced))
        except KeygripError as exc:
            conn.send(("error", job_id, exc.code.name, exc.reason, exc.message))
        except MemoryError:
            conn.send(("error", job_id, "RESOURCE_EXHAUSTED", "OUT_OF_MEMORY",
                       "the worker ran out of memory; try a shorter frame range or fewer workers"))
        except Exception as exc:  # a bug: report it rather than kill the worker
            log.error("job %s crashed:\n%s", job_id, traceback.format_exc())
            conn.send(("error", job_id, "INTERNAL", "INTERNAL", f"internal error: {exc!r}"))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


class Worker:
    """The front's handle on one worker process; a reader thread forwards its messages."""

    def __init__(self, index: int, data_dir: Path,
                 on_message: Callable[[Worker, tuple], None]) -> None:
        self.index = index
        self.on_message = on_message
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=worker_main, args=(child, str(data_dir)),
                                   name=f"keygrip-worker-{index}", daemon=True)
        self.process.start()
        child.close()
        self.job_id: str | None = None
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name=f"keygrip-reader-{index}", daemon=True)
        self._reader.start()

    @property
    def busy(self) -> bool:
        return self.job_id is not None

    def send(self, msg: tuple) -> bool:
        try:
            with self._send_lock:
                self.conn.send(msg)
            return True
        except (OSError, ValueError):
            return False

    def _read(self) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                self.on_message(self, ("exited", self.process.pid))
                return
            self.on_message(self, msg)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)

    def stop(self, timeout: float = 3.0) -> None:
        self.send(("stop",))
        self.process.join(timeout=timeout)
        if self.process.is_alive():
            self.kill()
