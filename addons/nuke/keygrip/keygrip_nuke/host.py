"""Nuke's `nuke` module, imported here and nowhere else in the plugin (tests put a fake in its
place), and Nuke's main thread as keygrip.session wants it."""

from __future__ import annotations

import threading
from collections.abc import Callable

import nuke

__all__ = ["NukeMainThread", "nuke", "on_main_thread"]


def on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class NukeMainThread:
    """keygrip.session.MainThread for Nuke's GUI: post(fn) hands fn to nuke.executeInMainThread.

    A Session posts only from its worker threads. Called from the main thread itself,
    executeInMainThread can hang Nuke, so that is refused loudly instead.
    """

    def post(self, fn: Callable[[], None]) -> None:
        if on_main_thread():
            raise RuntimeError("NukeMainThread.post from Nuke's main thread: call the function directly")
        nuke.executeInMainThread(fn)
