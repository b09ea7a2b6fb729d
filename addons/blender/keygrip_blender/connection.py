"""Background work without freezing Blender: a Session runs network steps on a worker thread and
hands their results back to the main thread through a queue.

A Session is a chain of steps. A `Worker` step runs on a thread and may block (gRPC calls, uploads,
watching a job); a `Main` step runs inside Session.poll() on Blender's main thread and may touch
bpy data. Each step receives the previous step's value. poll() is what the bpy.app.timers tick calls;
tests and scripts in background mode (no event loop) call drain() instead.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy

from . import local_server

TICK_SECONDS = 0.1


@dataclass(frozen=True)
class ServerSettings:
    """A snapshot of the preferences, taken on the main thread (the worker never reads bpy)."""

    address: str
    token: str = ""
    start_local: bool = False
    python: str = ""
    data_dir: str = ""


@dataclass
class Progress:
    """What the panel and the status bar show."""

    stage: str = "starting"
    fraction: float = 0.0
    fps: float = 0.0
    eta_seconds: float = -1.0
    message: str = ""

    def text(self) -> str:
        parts = [f"{self.stage} {100 * self.fraction:.0f}%"]
        if self.fps > 0:
            parts.append(f"{self.fps:.1f} fps")
        if self.eta_seconds >= 0:
            parts.append(f"ETA {self.eta_seconds:.0f} s")
        return ", ".join(parts)


@dataclass
class Worker:
    """A step that runs on the worker thread: fn(ctx, value) -> value."""

    fn: Callable[[WorkerContext, Any], Any]


@dataclass
class Main:
    """A step that runs on Blender's main thread, inside poll(): fn(value) -> value."""

    fn: Callable[[Any], Any]


def friendly_error(exc: BaseException, address: str) -> str:
    """One line for the artist that says what went wrong and what to do next."""
    import keygrip

    if isinstance(exc, keygrip.ServerUnavailable):
        return (f"server not reachable at {address}: start it with "
                f"`python -m inference_server --listen {address}` "
                "or enable 'Start a local server' in the Keygrip add-on preferences")
    if isinstance(exc, keygrip.Unauthenticated):
        return "the server refused the token: set the token the server was started with in the Keygrip preferences"
    if isinstance(exc, keygrip.JobCancelled):
        return "cancelled"
    if isinstance(exc, keygrip.KeygripError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


class WorkerContext:
    """What a Worker step gets: the client, progress reporting and the job it may have to cancel."""

    def __init__(self, session: Session, client: Any) -> None:
        self.session = session
        self.client = client

    def progress(self, stage: str, fraction: float, message: str = "", fps: float = 0.0,
                 eta_seconds: float = -1.0) -> None:
        self.session._queue.put(("progress", Progress(stage, fraction, fps, eta_seconds, message)))

    def check_cancelled(self) -> None:
        import keygrip

        if self.session._cancel.is_set():
            raise keygrip.JobCancelled("cancelled")

    def run_job(self, job: Any, label: str) -> Any:
        """Watch a server job to its end, reporting its progress; returns its result message.

        Cancelling the session while this runs cancels the job on the server.
        """
        self.session._set_job(job)
        self.check_cancelled()
        try:
            for ev in job.watch():
                if hasattr(ev, "fraction"):
                    stage = f"{label}: {ev.stage}" if ev.stage else label
                    self.progress(stage, ev.fraction, ev.message, ev.fps, ev.eta_seconds)
            return job.result()
        finally:
            self.session._set_job(None)


class Session:
    """One background task (e.g. capture then retarget then write back) with its progress.

    title: shown in the panel. settings: where the server is. steps: Worker and Main steps.
    on_finish(session) runs on the main thread once, when the chain ends in any way.
    state: "running", "succeeded", "failed" or "cancelled"; error holds the artist-facing message.
    """

    def __init__(self, title: str, settings: ServerSettings, steps: list[Worker | Main],
                 on_finish: Callable[[Session], None] | None = None) -> None:
        self.title = title
        self.settings = settings
        self.steps = list(steps)
        self.on_finish = on_finish
        self.state = "running"
        self.error = ""
        self.value: Any = None
        self.progress = Progress()
        self.server_info: Any = None
        self.address = settings.address
        self.started = time.monotonic()
        self._queue: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._job: Any = None
        self.job_ids: list[str] = []   # every server job this session started or watched
        self._job_lock = threading.Lock()
        self._client: Any = None
        self._thread: threading.Thread | None = None

    # Main thread -------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.state == "running"

    def start(self) -> Session:
        self._advance(None)
        return self

    def cancel(self) -> None:
        """Ask for the end of this session; the server job is cancelled from a short-lived thread."""
        if not self.busy:
            return
        self._cancel.set()
        with self._job_lock:
            job = self._job
        if job is not None:
            threading.Thread(target=_cancel_job, args=(job,), daemon=True).start()

    def poll(self) -> bool:
        """Handle what the worker reported (main thread only). Returns True while still busy."""
        while self.busy:
            try:
                kind, payload = self._queue.get_nowait()
            except queue.Empty:
                break
            if kind == "progress":
                self.progress = payload
            elif kind == "info":
                self.server_info, self.address = payload
            elif kind == "done":
                self._advance(payload)
            elif kind == "error":
                self._fail(payload)
        return self.busy

    def _advance(self, value: Any) -> None:
        """Run Main steps until the next Worker step, which goes to the thread."""
        try:
            while self.steps:
                if self._cancel.is_set():
                    import keygrip

                    raise keygrip.JobCancelled("cancelled")
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

    def _fail(self, exc: BaseException) -> None:
        import keygrip

        if isinstance(exc, keygrip.JobCancelled) or self._cancel.is_set():
            self._finish("cancelled", "cancelled")
            return
        if not isinstance(exc, keygrip.KeygripError):
            traceback.print_exception(exc)
        self._finish("failed", friendly_error(exc, self.address))

    def _finish(self, state: str, error: str = "") -> None:
        self.state, self.error = state, error
        self.steps.clear()
        if self.on_finish is not None:
            self.on_finish(self)

    # Worker thread -----------------------------------------------------------------------------

    def _set_job(self, job: Any) -> None:
        with self._job_lock:
            self._job = job
            if job is not None:
                self.job_ids.append(job.id)
        if job is not None and self._cancel.is_set():
            _cancel_job(job)

    def _connect(self) -> Any:
        """The client, connected (GetServerInfo answered), starting the local server if allowed."""
        import keygrip

        s = self.settings
        address = s.address
        if s.start_local:
            address = local_server.socket_address(local_server.default_socket_path())
        client = keygrip.Client(address, s.token or None, timeout=15.0)
        try:
            info = client.info()
        except keygrip.ServerUnavailable:
            client.close()
            if not s.start_local:
                raise
            self._queue.put(("progress", Progress("starting the local server", 0.0)))
            server = local_server.get(s.python, Path(s.data_dir))
            address = server.ensure_running()
            client = keygrip.Client(address, s.token or None, timeout=15.0)
            info = client.info()
        self._queue.put(("info", (info, address)))
        return client

    def _run_worker(self, step: Worker, value: Any) -> None:
        try:
            if self._client is None:
                self._client = self._connect()
            result = step.fn(WorkerContext(self, self._client), value)
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the main thread
            self._queue.put(("error", exc))
            self._close_if_last()
            return
        self._queue.put(("done", result))
        self._close_if_last()

    def _close_if_last(self) -> None:
        if not any(isinstance(s, Worker) for s in self.steps) and self._client is not None:
            self._client.close()
            self._client = None

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker thread (scripts and shutdown only; never from the UI)."""
        if self._thread is not None:
            self._thread.join(timeout)


def _cancel_job(job: Any) -> None:
    import keygrip

    # The job may have ended meanwhile, or the server gone away: the watcher reports either.
    with contextlib.suppress(keygrip.KeygripError):
        job.cancel()


# The sessions of this Blender, drained by one timer ------------------------------------------------

_sessions: list[Session] = []
listeners: list[Callable[[], None]] = []   # called after each tick that changed something (UI redraw)


def sessions() -> list[Session]:
    return list(_sessions)


def latest() -> Session | None:
    return _sessions[-1] if _sessions else None


def running() -> list[Session]:
    return [s for s in _sessions if s.busy]


def submit(session: Session) -> Session:
    """Start a session and make sure the timer drains it."""
    _sessions[:] = [s for s in _sessions if s.busy] + [session]
    session.start()
    if session.busy and not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=TICK_SECONDS, persistent=True)
    return session


def poll_all() -> bool:
    """Poll every session once; True while any is busy."""
    for session in list(_sessions):
        session.poll()
    for listener in listeners:
        listener()
    return bool(running())


def tick() -> float | None:
    """The bpy.app.timers function: drain the queues, stop ticking when nothing runs."""
    return TICK_SECONDS if poll_all() else None


def drain(timeout: float = 300.0, interval: float = 0.05) -> None:
    """Poll until no session is busy: what the timer does, for background mode and scripts.

    Raises TimeoutError (after cancelling) if sessions are still busy after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while poll_all():
        if time.monotonic() > deadline:
            for s in running():
                s.cancel()
            raise TimeoutError(f"Keygrip sessions still running after {timeout} s")
        time.sleep(interval)


def shutdown() -> None:
    """Cancel everything, stop the timer and forget the sessions (add-on unregister)."""
    for session in running():
        session.cancel()
    for session in list(_sessions):
        session.join(2.0)
    _sessions.clear()
    listeners.clear()
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
