"""Background work for hosts, without freezing their UI: a Session runs network steps on a worker
thread and hands their results to the host's main thread.

A Session is a chain of steps. A `Worker` step runs on a thread and may block (gRPC calls, uploads,
watching a job); a `Main` step runs on the host's main thread and may touch the scene. Each step
receives the previous step's value. A host supplies two things:

- its main thread, as anything with `post(fn)` (`MainThread`): Blender uses a `MainQueue` drained by
  a bpy.app.timers tick; Nuke passes an object whose post is `nuke.executeInMainThread`; tests and
  scripts drain a `MainQueue` themselves.
- how to connect (`Connect`), run on the worker thread before the first Worker step: `connector()`
  covers an address, a token, and a local server started when none answers.

    session = Session("probe", [Worker(lambda ctx, _: ctx.run_job(ctx.client.probe(path), "probe"))],
                      connector(ServerSettings("127.0.0.1:50051")))
    main = MainQueue()
    session.start(main)
    while session.busy:
        main.run_pending(wait=0.1)
    print(session.state, session.value or session.error)

Cancelling (Esc, a Cancel button) stops the chain and cancels the server job being watched.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, Union

from google.protobuf.message import Message

from keygrip import errors, local_server
from keygrip.client import Client, Job
from keygrip.events import ProgressEvent
from keygrip.v1 import server_pb2

R = TypeVar("R", bound=Message)


class MainThread(Protocol):
    """The host's main thread: post(fn) runs fn there soon. Called from any thread; never blocks."""

    def post(self, fn: Callable[[], None]) -> None: ...


class MainQueue:
    """A MainThread for hosts that poll: post() from any thread, run_pending() on the main thread
    (Blender's timer tick, a test, a script in background mode)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Callable[[], None]] = queue.Queue()

    def post(self, fn: Callable[[], None]) -> None:
        self._queue.put(fn)

    def run_pending(self, wait: float = 0.0) -> int:
        """Run what was posted, in order; returns how many. wait: seconds to block for the first
        one when nothing is pending (0: never block, as a UI tick must not)."""
        ran = 0
        try:
            fn = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            while True:
                fn()
                ran += 1
                fn = self._queue.get_nowait()
        except queue.Empty:
            return ran


@dataclass
class Progress:
    """What a host's panel, status bar or progress task shows."""

    stage: str = "starting"
    fraction: float = 0.0
    fps: float = 0.0
    eta_seconds: float = -1.0
    message: str = ""
    preview_png: bytes = b""   # the session's latest step preview (a small PNG), empty before the first

    def text(self) -> str:
        parts = [f"{self.stage} {100 * self.fraction:.0f}%"]
        if self.fps > 0:
            parts.append(f"{self.fps:.1f} fps")
        if self.eta_seconds >= 0:
            parts.append(f"ETA {self.eta_seconds:.0f} s")
        return ", ".join(parts)


@dataclass(frozen=True)
class Connection:
    """A client whose server answered GetServerInfo, and where it was found."""

    client: Client
    info: server_pb2.ServerInfo
    address: str


Report = Callable[[Progress], None]
Connect = Callable[[Report], Connection]   # runs on the worker thread; may report progress


@dataclass(frozen=True)
class ServerSettings:
    """Where the server is, as a host's preferences say (a snapshot: the worker never reads the host).

    start_local: when nothing answers, start `<python> -m inference_server` on a private socket,
    keeping its jobs and results in data_dir.
    """

    address: str
    token: str = ""
    start_local: bool = False
    python: str = ""
    data_dir: str = ""


def connector(settings: ServerSettings, *, timeout: float = 15.0) -> Connect:
    """The usual Connect: the configured server, else (if allowed) a local one started on demand."""

    def connect(report: Report) -> Connection:
        address = settings.address
        if settings.start_local:
            address = local_server.socket_address(local_server.default_socket_path())
        client = Client(address, settings.token or None, timeout=timeout)
        try:
            return Connection(client, client.info(), address)
        except errors.ServerUnavailable:
            client.close()
            if not settings.start_local:
                raise
        report(Progress("starting the local server", 0.0))
        address = local_server.get(settings.python, settings.data_dir).ensure_running()
        client = Client(address, settings.token or None, timeout=timeout)
        try:
            return Connection(client, client.info(), address)
        except BaseException:
            client.close()
            raise

    return connect


@dataclass
class Worker:
    """A step that runs on the worker thread: fn(ctx, value) -> value."""

    fn: Callable[[WorkerContext, Any], Any]


@dataclass
class Main:
    """A step that runs on the host's main thread: fn(value) -> value."""

    fn: Callable[[Any], Any]


Step = Union[Worker, Main]  # noqa: UP007 - evaluated at import: Python 3.9 hosts (Nuke 14)


class WorkerContext:
    """What a Worker step gets: the connected client, progress reporting and cancellation."""

    def __init__(self, session: Session, connection: Connection) -> None:
        self.session = session
        self.connection = connection
        self.client = connection.client

    @property
    def server_info(self) -> server_pb2.ServerInfo:
        return self.connection.info

    def progress(self, stage: str, fraction: float, message: str = "", fps: float = 0.0,
                 eta_seconds: float = -1.0, preview_png: bytes = b"") -> None:
        """Report progress; the session's latest step preview rides along until a newer one comes."""
        if preview_png:
            self.session._preview = preview_png
        self.session._report(Progress(stage, fraction, fps, eta_seconds, message, self.session._preview))

    def transfer_progress(self, stage: str) -> Callable[[int, int], None]:
        """A Client upload/download progress callback: reports `stage` and stops the transfer (with
        JobCancelled) once the session is cancelled, so that Esc does not wait for a whole video."""
        def report(done: int, total: int) -> None:
            self.check_cancelled()
            self.progress(stage, done / total if total else 1.0)
        return report

    def upload_progress(self, what: str) -> Callable[[int, int], None]:
        """transfer_progress for "uploading <what>"."""
        return self.transfer_progress(f"uploading {what}")

    def check_cancelled(self) -> None:
        if self.session.cancel_requested:
            raise errors.JobCancelled("cancelled")

    def run_job(self, job: Job[R], label: str) -> R:
        """Watch a server job to its end, reporting its progress; returns its result message.

        Cancelling the session while this runs cancels the job on the server. The job's step previews
        reach the host as Progress.preview_png.
        """
        self.session._set_job(job)
        self.check_cancelled()
        try:
            for ev in job.watch():
                if isinstance(ev, ProgressEvent):
                    stage = f"{label}: {ev.stage}" if ev.stage else label
                    self.progress(stage, ev.fraction, ev.message, ev.fps, ev.eta_seconds, ev.preview_png)
            return job.result()
        finally:
            self.session._set_job(None)


class Session:
    """One background task (e.g. capture, then retarget, then write back) with its progress.

    title: what the host shows. steps: Worker and Main steps. connect: how the worker reaches the
    server (see connector). on_finish(session) runs on the main thread once, when the chain ends in
    any way; on_progress(session) after each progress update there.
    state: "running", "succeeded", "failed" or "cancelled"; value: the last step's value; error: the
    artist-facing message (errors.user_message) when it did not succeed.
    """

    def __init__(self, title: str, steps: Sequence[Step], connect: Connect, *,
                 on_finish: Callable[[Session], None] | None = None,
                 on_progress: Callable[[Session], None] | None = None) -> None:
        self.title = title
        self.steps: list[Step] = list(steps)
        self.on_finish = on_finish
        self.on_progress = on_progress
        self.state = "running"
        self.error = ""
        self.value: Any = None
        self.progress = Progress()
        self.server_info: server_pb2.ServerInfo | None = None
        self.address = ""
        self.job_ids: list[str] = []   # every server job this session started or watched
        self.started = time.monotonic()
        self._connect = connect
        self._connection: Connection | None = None
        self._main: MainThread | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._job: Job[Any] | None = None
        self._pending_progress: Progress | None = None
        self._preview = b""   # the latest step preview a worker reported (worker threads only)
        self._thread: threading.Thread | None = None

    # Main thread -------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.state == "running"

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def start(self, main: MainThread) -> Session:
        """Run the first Main steps here and hand the first Worker step to a thread."""
        self._main = main
        self._advance(None)
        return self

    def cancel(self) -> None:
        """Ask for the end of this session; the server job is cancelled from a short-lived thread."""
        if not self.busy:
            return
        self._cancel.set()
        with self._lock:
            job = self._job
        if job is not None:
            threading.Thread(target=_cancel_job, args=(job,), daemon=True).start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker thread (scripts and shutdown only; never from a UI)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _advance(self, value: Any) -> None:
        """Run Main steps until the next Worker step, which goes to a thread."""
        if not self.busy:
            return
        try:
            while self.steps:
                if self._cancel.is_set():
                    raise errors.JobCancelled("cancelled")
                step = self.steps.pop(0)
                if isinstance(step, Worker):
                    self._thread = threading.Thread(target=self._run_worker, args=(step, value), daemon=True,
                                                    name=f"keygrip: {self.title}")
                    self._thread.start()
                    return
                value = step.fn(value)
        except Exception as exc:
            self._fail(exc)
            return
        self.value = value
        self._finish("succeeded")

    def _connected(self, info: server_pb2.ServerInfo, address: str) -> None:
        self.server_info, self.address = info, address

    def _apply_progress(self) -> None:
        with self._lock:
            progress, self._pending_progress = self._pending_progress, None
        if progress is not None and self.busy:
            self.progress = progress
            if self.on_progress is not None:
                self.on_progress(self)

    def _fail(self, exc: BaseException) -> None:
        if not self.busy:
            return
        if isinstance(exc, errors.JobCancelled) or self._cancel.is_set():
            self._finish("cancelled", "cancelled")
            return
        if not isinstance(exc, errors.KeygripError):
            traceback.print_exception(type(exc), exc, exc.__traceback__)
        self._finish("failed", errors.user_message(exc, self.address))

    def _finish(self, state: str, error: str = "") -> None:
        self.state, self.error = state, error
        self.steps.clear()
        if self.on_finish is not None:
            self.on_finish(self)

    # Worker thread -----------------------------------------------------------------------------

    def _post(self, fn: Callable[[], None]) -> None:
        assert self._main is not None, "Session.start(main) first"
        self._main.post(fn)

    def _report(self, progress: Progress) -> None:
        """Progress from the worker: only the latest counts, so one post carries any number."""
        with self._lock:
            posted = self._pending_progress is not None
            self._pending_progress = progress
        if not posted:
            self._post(self._apply_progress)

    def _set_job(self, job: Job[Any] | None) -> None:
        with self._lock:
            self._job = job
            if job is not None:
                self.job_ids.append(job.id)
        if job is not None and self._cancel.is_set():
            _cancel_job(job)

    def _run_worker(self, step: Worker, value: Any) -> None:
        # Read before the main thread can advance: whether a later step still needs the connection.
        last = not any(isinstance(s, Worker) for s in self.steps)
        try:
            if self._connection is None:
                self._connection = self._connect(self._report)
                self._post(functools.partial(self._connected, self._connection.info, self._connection.address))
            result = step.fn(WorkerContext(self, self._connection), value)
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the main thread
            self._disconnect()
            self._post(functools.partial(self._fail, exc))
            return
        if last:
            self._disconnect()
        self._post(functools.partial(self._advance, result))

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.client.close()
            self._connection = None


def _cancel_job(job: Job[Any]) -> None:
    # The job may have ended meanwhile, or the server gone away: the watcher reports either.
    with contextlib.suppress(errors.KeygripError):
        job.cancel()
