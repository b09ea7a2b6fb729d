"""Worker processes that run the heavy part of jobs, off the gRPC event loop.

Each worker is a spawned process with one duplex pipe to the front, over which the typed messages
of jobs/messages.py travel. A worker runs one job at a time, with the JobHandler its capability
names for the job's type (inference_server/capabilities.py): one instance per job type, made and
set up when the first job of that type arrives and kept for the next ones. Cancellation is
cooperative (the handler calls check_cancelled between frames or steps); a worker that does not stop
within the grace period is killed and replaced, so a cancel always takes effect.

A job that fails ends with a status whose message names the user's input (jobs/failures.py), and
the worker logs it with its traceback; an unexpected error gets an error id in both. Before a job
runs, the worker tells the front what the job works on (JobStarted), so that the front can say it
too if the worker dies under the job; faulthandler writes the Python traceback of a crash.
"""

from __future__ import annotations

import faulthandler
import importlib
import logging
import multiprocessing as mp
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from google.protobuf import any_pb2

from inference_server.capabilities import job_handlers
from inference_server.capability import JobHandler
from inference_server.errors import JobCancelled
from inference_server.jobs import faults
from inference_server.jobs.context import JobOutputs
from inference_server.jobs.failures import JobInput, failure_for
from inference_server.jobs.messages import (
    CancelJob,
    FromWorker,
    JobDone,
    JobFailed,
    JobProgress,
    JobStarted,
    RunJob,
    StopWorker,
    ToWorker,
    WorkerExited,
    WorkerReady,
)
from inference_server.jobs.tasks import LocalTaskRunner, TaskRunner, leave_shutdown_to_the_front
from inference_server.logs import setup_logging
from inference_server.models.registry import set_worker_data_dir
from inference_server.store.artifacts import ArtifactStore

log = logging.getLogger("keygrip.workers")

_PROGRESS_INTERVAL_S = 0.1


class Channel(Protocol):
    """The worker's side of its link to the front: a multiprocessing Connection, or an adapter with the
    same three methods (jobs/ray_workers.py)."""

    def send(self, obj: Any) -> None: ...
    def poll(self) -> bool: ...
    def recv(self) -> Any: ...


class WorkerContext(JobOutputs):
    """The JobContext a handler sees inside a worker process."""

    def __init__(self, conn: Channel, job_id: str, artifacts: ArtifactStore, scratch: Path,
                 tasks: TaskRunner, job_type: str = "") -> None:
        self._conn = conn
        self.job_id = job_id
        self.job_type = job_type
        self._artifacts = artifacts
        self.scratch = scratch
        self.tasks = tasks
        self.produced: list[str] = []
        self._last_sent = 0.0
        self._cancelled = False

    @property
    def artifacts(self) -> ArtifactStore:
        return self._artifacts

    def progress(self, stage: str, value: float, maximum: float, message: str = "", *,
                 fps: float = 0.0, preview_png: bytes = b"") -> None:
        faults.trigger(self.job_type, stage)  # a no-op unless the server was started with test faults
        now = time.monotonic()
        # Throttle: watchers need a smooth bar, not one event per frame.
        if now - self._last_sent < _PROGRESS_INTERVAL_S and value < maximum and not preview_png:
            return
        self._last_sent = now
        self._conn.send(JobProgress(self.job_id, stage, value, maximum, message, fps, preview_png))

    def check_cancelled(self) -> None:
        while not self._cancelled and self._conn.poll():
            msg = self._conn.recv()
            # StopWorker arrives when the server shuts down mid-job: end the job as promptly as a cancel.
            if isinstance(msg, StopWorker) or (isinstance(msg, CancelJob) and msg.job_id == self.job_id):
                self._cancelled = True
        if self._cancelled:
            raise JobCancelled("cancelled by the user")


class Handlers:
    """A worker's handlers: one per job type, made and set up on first use, kept for later jobs."""

    def __init__(self, paths: Mapping[str, str]) -> None:
        self.paths = dict(paths)  # job type -> "module:HandlerClass"
        self._made: dict[str, JobHandler[Any]] = {}

    def get(self, job_type: str) -> JobHandler[Any]:
        handler = self._made.get(job_type)
        if handler is None:
            handler = self._new(job_type)
            handler.setup()  # a setup that fails is tried again by the next job of this type
            self._made[job_type] = handler
        return handler

    def _new(self, job_type: str) -> JobHandler[Any]:
        module, name = self.paths[job_type].split(":")
        handler: JobHandler[Any] = getattr(importlib.import_module(module), name)()
        return handler

    def describe(self, job_type: str, request: bytes, artifacts: ArtifactStore) -> JobInput:
        """What the job works on, in the user's words (JobHandler.describe), whatever else fails."""
        try:
            handler = self._made.get(job_type) or self._new(job_type)
            return handler.describe(handler.unpack(any_pb2.Any.FromString(request)), artifacts)
        except Exception:
            log.exception("describing a %s job failed", job_type)
            return JobInput(name=f"this {job_type} job")

    def close(self) -> None:
        for handler in self._made.values():
            try:
                handler.close()
            except Exception:
                log.exception("closing the %s handler failed", type(handler).__name__)
        self._made.clear()


def run_job(handlers: Handlers, conn: Channel, msg: RunJob, artifacts: ArtifactStore, scratch_root: Path,
         tasks: TaskRunner) -> None:
    job = handlers.describe(msg.job_type, msg.request, artifacts)
    conn.send(JobStarted(msg.job_id, job))
    scratch = scratch_root / msg.job_id
    try:
        scratch.mkdir(parents=True, exist_ok=True)
        ctx = WorkerContext(conn, msg.job_id, artifacts, scratch, tasks, msg.job_type)
        handler = handlers.get(msg.job_type)
        result = handler.run(handler.unpack(any_pb2.Any.FromString(msg.request)), ctx)
        packed = any_pb2.Any()
        packed.Pack(result)
        conn.send(JobDone(msg.job_id, packed.SerializeToString(), ctx.produced))
    except Exception as exc:  # whatever it is, the job ends with a status and the worker lives on
        failure = failure_for(exc, job, job_id=msg.job_id, job_type=msg.job_type, log=log)
        conn.send(JobFailed(msg.job_id, failure.code, failure.reason, failure.message))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def worker_main(conn: Connection, data_dir: str, log_level: str = "INFO", log_format: str = "json") -> None:
    """Entry point of a worker process."""
    leave_shutdown_to_the_front()
    # The front starts workers as daemons (they end with it), and a daemon may not start processes;
    # a job's tasks (jobs/tasks.py) need to, and they end with this worker by themselves.
    mp.current_process().daemon = False
    worker = WorkerState(data_dir, log_level, log_format)
    conn.send(WorkerReady(os.getpid()))
    try:
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                return
            if isinstance(msg, StopWorker):
                return
            if isinstance(msg, RunJob):
                worker.run(conn, msg)
            # anything else is a late cancel for a job that already ended
    finally:
        worker.handlers.close()


class WorkerState:
    """What a process that runs jobs holds (a local worker, or a Ray actor of jobs/ray_workers.py)."""

    def __init__(self, data_dir: str, log_level: str, log_format: str, artifacts: ArtifactStore | None = None) -> None:
        """artifacts: the store jobs read and write (default: data_dir's; a Ray node's own, ray_artifacts.py)."""
        setup_logging(log_level, log_format)  # the front's log format, on the same stderr
        faulthandler.enable()  # a crash in native code (a decoder, MediaPipe) still leaves a traceback
        # The model registry a handler builds with inference_server.models.worker_registry() reads this
        # data_dir (models.json, and the TOML's models the front wrote to models-config.json at start).
        set_worker_data_dir(Path(data_dir))
        self.artifacts = artifacts or ArtifactStore(Path(data_dir) / "artifacts")
        self.scratch_root = Path(data_dir) / "scratch"
        self.handlers = Handlers(job_handlers())
        self.tasks = LocalTaskRunner()

    def run(self, conn: Channel, msg: RunJob) -> None:
        run_job(self.handlers, conn, msg, self.artifacts, self.scratch_root, self.tasks)


class Worker:
    """The front's handle on one worker process; a reader thread forwards its messages."""

    def __init__(self, index: int, data_dir: Path,
                 on_message: Callable[[Worker, FromWorker], None], *, log_level: str = "INFO",
                 log_format: str = "json") -> None:
        self.index = index
        self.on_message = on_message
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=worker_main, args=(child, str(data_dir), log_level, log_format),
                                   name=f"keygrip-worker-{index}", daemon=True)
        self.process.start()
        child.close()
        self.job_id: str | None = None
        self.job_input: JobInput | None = None  # what the running job works on (JobStarted)
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name=f"keygrip-reader-{index}", daemon=True)
        self._reader.start()

    @property
    def busy(self) -> bool:
        return self.job_id is not None

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.is_alive()

    def exit_code(self) -> int | None:
        """The exit code of a worker that has exited (its pipe closed as it did: the code follows at once)."""
        self.process.join(timeout=1.0)
        return self.process.exitcode

    def send(self, msg: ToWorker) -> bool:
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
                self.on_message(self, WorkerExited(self.process.pid))
                return
            self.on_message(self, msg)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)

    def stop(self, timeout: float = 3.0) -> None:
        self.send(StopWorker())
        self.process.join(timeout=timeout)
        if self.process.is_alive():
            self.kill()
