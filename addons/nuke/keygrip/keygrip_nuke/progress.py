"""A run's nuke.ProgressTask, with its Cancel button, on a thread of its own.

Nuke's documented use of ProgressTask is from a thread other than the main one, which stays free for
the artist; the task closes when its object is deleted. This thread touches no node and no knob: it
shows the latest progress the session reported on the main thread, and when the artist presses the
task's Cancel it asks the main thread (nuke.executeInMainThread, through the session's MainThread)
to cancel the session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from keygrip.session import MainThread, Progress

from .host import nuke

POLL_SECONDS = 0.1


class ProgressPanel:
    """start() on the main thread; update() and close() from the main thread; the task lives on a thread."""

    def __init__(self, title: str, cancel: Callable[[], None], main: MainThread) -> None:
        self.title = title
        self._cancel = cancel
        self._main = main
        self._lock = threading.Lock()
        self._latest: Progress | None = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"keygrip progress: {title}", daemon=True)

    def start(self) -> ProgressPanel:
        self._thread.start()
        return self

    def update(self, progress: Progress) -> None:
        with self._lock:
            self._latest = progress

    def close(self) -> None:
        self._closed.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        task = nuke.ProgressTask(self.title)
        cancel_asked = False
        shown: Progress | None = None
        try:
            while not self._closed.wait(POLL_SECONDS):
                shown = self._show(task, shown)
                if not cancel_asked and task.isCancelled():
                    cancel_asked = True
                    self._main.post(self._cancel)
            # A short run can end between two polls: its last progress is shown before the task goes.
            self._show(task, shown)
        finally:
            del task   # closes the task in Nuke's progress panel

    def _show(self, task: nuke.ProgressTask, shown: Progress | None) -> Progress | None:
        """The latest progress on the task when it is new; what the task now shows."""
        with self._lock:
            latest = self._latest
        if latest is None or latest is shown:
            return shown
        task.setProgress(max(0, min(100, int(100 * latest.fraction))))
        task.setMessage(latest.text())
        return latest
