"""The task runner a job splits its own work with (jobs/tasks.py), with real spawned processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable

import pytest

from inference_server.errors import InvalidInput, JobCancelled
from inference_server.jobs.tasks import LocalTaskRunner

# Task functions: module level, so that a spawned process can import them.


def square(x: int) -> int:
    return x * x


def count_to(n: int, *, report: Callable[[int], None]) -> int:
    for i in range(1, n + 1):
        report(i)
    return os.getpid()


def refuse(what: str) -> None:
    raise InvalidInput(f"{what} is not a video", reason="NOT_MEDIA")


def crash() -> None:
    raise ZeroDivisionError("a bug")


def die() -> None:
    os._exit(3)


def signalled(x: int) -> int:
    """Gets what Ctrl+C in a terminal or a service manager's stop sends to the whole process group."""
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGTERM)
    return x


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def test_results_and_progress() -> None:
    seen: list[int] = []
    with LocalTaskRunner().group() as group:
        squares = [group.submit(square, x) for x in (2, 3)]
        counter = group.submit(count_to, 5, on_progress=seen.append)
        assert group.wait(timeout=60)
        assert [t.result() for t in squares] == [4, 9]
        assert counter.result() != os.getpid()  # it ran in a process of its own
    assert seen == [1, 2, 3, 4, 5]
    assert multiprocessing.active_children() == []


def test_errors_reach_the_caller() -> None:
    with LocalTaskRunner().group() as group:
        refused = group.submit(refuse, "notes.txt")
        crashed = group.submit(crash, name="the crash task")
        died = group.submit(die, name="the dying task")
        group.wait(timeout=60)
        # A KeygripError arrives as itself, reason included; anything else names the task.
        with pytest.raises(InvalidInput, match="notes.txt is not a video") as info:
            refused.result()
        assert info.value.reason == "NOT_MEDIA"
        with pytest.raises(RuntimeError, match="the crash task failed: ZeroDivisionError"):
            crashed.result()
        with pytest.raises(RuntimeError, match=r"the dying task died \(exit 3\)"):
            died.result()


def test_leaving_the_group_ends_running_tasks() -> None:
    with pytest.raises(JobCancelled, match="user"), LocalTaskRunner().group() as group:
        slow = group.submit(sleep, 60.0)
        assert not group.wait(timeout=0)
        assert not slow.done()
        with pytest.raises(RuntimeError, match="still running"):
            slow.result()
        raise JobCancelled("cancelled by the user")
    assert multiprocessing.active_children() == []
    with pytest.raises(JobCancelled, match="was cancelled"):
        slow.result()


def test_a_stop_signal_to_the_process_group_is_left_to_the_front() -> None:
    # The front decides what happens to a running job when the server stops (run again or fail with
    # SERVER_STOPPED); a task dying of the same signal first would fail the job as a crash.
    with LocalTaskRunner().group() as group:
        task = group.submit(signalled, 7)
        assert group.wait(timeout=60)
        assert task.result() == 7
