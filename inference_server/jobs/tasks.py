"""Tasks: the one scheduler for work that a job splits up itself.

A job runs in one worker process (jobs/workers.py). When it splits its own work, as capture does
with the chunks of a clip, it submits tasks through its context instead of starting processes
itself, so that one place owns those processes and a cluster executor can take the same calls
over (a Ray remote function per task, ray.cancel(force=True) to terminate):

    with ctx.tasks.group() as group:
        tasks = [group.submit(track, chunk, name=f"chunk {i}", on_progress=show) for i, chunk in ...]
        ...                                      # the job's own share of the work meanwhile
        while not group.wait(tasks, timeout=0.1):
            ctx.check_cancelled()
        results = [t.result() for t in tasks]

A task is a module-level (picklable) function with picklable arguments and result, called as
fn(*args), or as fn(*args, report=report) when on_progress is given: each report(value) reaches
on_progress(value) in the submitting thread, during wait(). A KeygripError raised by a task is
raised again by result(), and so is a MemoryError; any other exception, and a task process that
died, become a TaskFailed (a RuntimeError naming the task) that carries the task's own traceback as
its __cause__, for the job's log line. Leaving the `with` block ends the tasks still running (after
an error or a cancel), so none outlives the job.

LocalTaskRunner starts one spawned process per task at submit time, as many as the job asks for.
Each task process also ends when the process that submitted it dies (a job worker killed after
ignoring a cancel takes its tasks with it).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.context import SpawnContext, SpawnProcess
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

from inference_server.errors import JobCancelled, KeygripError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

_POLL_S = 0.1  # how often wait() looks for tasks whose process died without a result
_JOIN_S = 5.0


class Task(Protocol[T_co]):
    """A submitted task."""

    @property
    def name(self) -> str: ...

    def done(self) -> bool:
        """Whether its result (or error) has arrived; updated by TaskGroup.wait()."""
        ...

    def result(self) -> T_co:
        """Its return value; raises its error, or RuntimeError while it is still running."""
        ...


class TaskGroup(Protocol):
    """Tasks submitted together; leaving the `with` block cancels those still running."""

    def submit(self, fn: Callable[..., T], *args: Any, name: str = "",
               on_progress: Callable[[Any], None] | None = None) -> Task[T]:
        """Start fn(*args) (fn(*args, report=...) when on_progress is given) as a task."""
        ...

    def wait(self, tasks: Iterable[Task[Any]] | None = None, timeout: float | None = None) -> bool:
        """Deliver progress and results until the tasks (default: all) are done, or for at most
        timeout seconds (0: only what already arrived). True when they are all done."""
        ...

    def cancel(self) -> None:
        """End every task still running; their result() raises JobCancelled."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class TaskRunner(Protocol):
    """Where a job's tasks run: JobContext.tasks."""

    def group(self) -> TaskGroup: ...


class TaskFailed(RuntimeError):
    """A task raised something other than a KeygripError (a bug), or its process died.

    task: the task's name; error: "TypeName: message" of what it raised (empty when it died);
    exitcode: the process's exit code when it died (negative: killed by that signal), else None.
    remote_traceback: the traceback in the task's process, also set as __cause__ when raised.
    """

    def __init__(self, task: str, error: str = "", exitcode: int | None = None, remote_traceback: str = "") -> None:
        super().__init__(f"{task} died (exit {exitcode})" if exitcode is not None else f"{task} failed: {error}")
        self.task, self.error, self.exitcode, self.remote_traceback = task, error, exitcode, remote_traceback

    def __reduce__(self) -> tuple[object, ...]:
        return (TaskFailed, (self.task, self.error, self.exitcode, self.remote_traceback))


class RemoteTraceback(Exception):
    """The traceback of an exception raised in another process, shown as the cause of the local one."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\n{self.text}"


# Messages from a task process to its group ---------------------------------------------------------

@dataclass(frozen=True)
class _Progress:
    index: int
    value: Any


@dataclass(frozen=True)
class _Result:
    index: int
    value: Any


@dataclass(frozen=True)
class _Failure:
    index: int
    error: BaseException


def leave_shutdown_to_the_front() -> None:
    """Ignore the signals that reach a whole process group: Ctrl+C in a terminal (SIGINT) and a service
    manager's stop (systemd sends SIGTERM to every process of the unit). The front hears them too and
    decides what happens to each running job; a worker or task dying of them first would fail its job
    as a crash. They are still ended by SIGKILL, and end by themselves when the front is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _die_with_parent() -> None:
    """End this process as soon as the process that started it is gone."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(1)

    threading.Thread(target=watch, name="keygrip-task-watchdog", daemon=True).start()


def _task_main(out: multiprocessing.Queue[Any], index: int, name: str, fn: Callable[..., Any],
               args: tuple[Any, ...], reports: bool) -> None:
    """Entry point of a task process."""
    leave_shutdown_to_the_front()
    _die_with_parent()
    try:
        kwargs = {"report": lambda v: out.put(_Progress(index, v))} if reports else {}
        out.put(_Result(index, fn(*args, **kwargs)))
    except (KeygripError, MemoryError) as exc:
        out.put(_Failure(index, exc))
    except Exception as exc:  # a bug; it must still reach the group, which would wait for it
        out.put(_Failure(index, TaskFailed(name, _describe(exc), remote_traceback=traceback.format_exc())))


def _describe(exc: BaseException) -> str:
    """"ZeroDivisionError: division by zero", never a repr."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class LocalTask(Generic[T]):
    """A task running in a process of this machine."""

    def __init__(self, name: str, process: SpawnProcess, on_progress: Callable[[Any], None] | None) -> None:
        self.name = name
        self.process = process
        self.on_progress = on_progress
        self._done = False
        self._value: T | None = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._done

    def result(self) -> T:
        if not self._done:
            raise RuntimeError(f"{self.name} is still running")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set with _done, may be None for T = None

    def _finish(self, value: Any = None, error: BaseException | None = None) -> None:
        if not self._done:
            self._done, self._value, self._error = True, value, error


class LocalTaskGroup:
    """Tasks in spawned processes of this machine, one process per task, started at submit."""

    def __init__(self, mp_context: SpawnContext) -> None:
        self._mp = mp_context
        self._queue: multiprocessing.Queue[Any] | None = None
        self._tasks: list[LocalTask[Any]] = []

    def submit(self, fn: Callable[..., T], *args: Any, name: str = "",
               on_progress: Callable[[Any], None] | None = None) -> LocalTask[T]:
        if self._queue is None:
            self._queue = self._mp.Queue()
        index = len(self._tasks)
        name = name or f"task {index} ({getattr(fn, '__qualname__', fn)})"
        process = self._mp.Process(
            target=_task_main, args=(self._queue, index, name, fn, args, on_progress is not None),
            name=f"keygrip-task-{index}", daemon=True)
        process.start()
        task: LocalTask[T] = LocalTask(name, process, on_progress)
        self._tasks.append(task)
        return task

    def wait(self, tasks: Iterable[Task[Any]] | None = None, timeout: float | None = None) -> bool:
        pending = [t for t in (self._tasks if tasks is None else tasks) if not t.done()]
        deadline = None if timeout is None else time.monotonic() + timeout
        while pending:
            left = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
            self._receive(left)
            self._reap()
            pending = [t for t in pending if not t.done()]
            if deadline is not None and time.monotonic() >= deadline:
                break
        return not pending

    def cancel(self) -> None:
        for task in self._tasks:
            if task.process.is_alive():
                task.process.kill()  # it ignores SIGTERM (leave_shutdown_to_the_front)
        for task in self._tasks:
            task.process.join(timeout=_JOIN_S)
            task._finish(error=JobCancelled(f"{task.name} was cancelled"))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cancel()
        if self._queue is not None:
            self._queue.close()

    def _receive(self, block_s: float) -> None:
        """Hand over every message that arrived, first waiting up to block_s for one."""
        if self._queue is None:
            return
        try:
            msg = self._queue.get(timeout=block_s) if block_s > 0 else self._queue.get_nowait()
            while True:
                self._deliver(msg)
                msg = self._queue.get_nowait()
        except queue.Empty:
            return

    def _deliver(self, msg: _Progress | _Result | _Failure) -> None:
        task = self._tasks[msg.index]
        if isinstance(msg, _Progress):
            if task.on_progress is not None and not task.done():
                task.on_progress(msg.value)
        elif isinstance(msg, _Result):
            task._finish(value=msg.value)
        else:
            error = msg.error
            if isinstance(error, TaskFailed) and error.remote_traceback:
                error.__cause__ = RemoteTraceback(error.remote_traceback)
            task._finish(error=error)

    def _reap(self) -> None:
        """Fail the tasks whose process ended without sending a result."""
        ended = [t for t in self._tasks if not t.done() and t.process.exitcode is not None]
        if not ended:
            return
        self._receive(0)  # what a process sent is in the pipe by the time it has exited
        for task in ended:
            task._finish(error=TaskFailed(task.name, exitcode=task.process.exitcode))


class LocalTaskRunner:
    """Runs a job's tasks in spawned processes on this machine."""

    def __init__(self) -> None:
        self._mp = multiprocessing.get_context("spawn")

    def group(self) -> LocalTaskGroup:
        return LocalTaskGroup(self._mp)
