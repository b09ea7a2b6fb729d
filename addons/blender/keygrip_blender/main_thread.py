"""All of the add-on's threading: Blender's main thread for keygrip.session, and the running sessions.

Worker steps post their results to one keygrip.session.MainQueue; one bpy.app.timers tick drains it
on Blender's main thread while any session runs, then redraws (listeners). Background mode and
scripts have no event loop: drain() plays the timer's part.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import bpy

from keygrip.session import MainQueue, Session

TICK_SECONDS = 0.1

_main = MainQueue()
_sessions: list[Session] = []
listeners: list[Callable[[], None]] = []   # called after each tick (UI redraw, status bar)


def sessions() -> list[Session]:
    return list(_sessions)


def latest() -> Session | None:
    return _sessions[-1] if _sessions else None


def running() -> list[Session]:
    return [s for s in _sessions if s.busy]


def submit(session: Session) -> Session:
    """Start a session on Blender's main thread and make sure the timer drains it."""
    _sessions[:] = [s for s in _sessions if s.busy] + [session]
    session.start(_main)
    if session.busy and not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=TICK_SECONDS, persistent=True)
    return session


def poll_all(wait: float = 0.0) -> bool:
    """Run what the workers posted (waiting up to `wait` s for it), then the listeners; True while
    any session is busy. Main thread only."""
    _main.run_pending(wait)
    for listener in listeners:
        listener()
    return bool(running())


def tick() -> float | None:
    """The bpy.app.timers function: drain the queue, stop ticking when nothing runs."""
    return TICK_SECONDS if poll_all() else None


def drain(timeout: float = 300.0, interval: float = 0.05) -> None:
    """Poll until no session is busy: what the timer does, for background mode and scripts.

    Raises TimeoutError (after cancelling) if sessions are still busy after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while poll_all(wait=interval):
        if time.monotonic() > deadline:
            for s in running():
                s.cancel()
            raise TimeoutError(f"Keygrip sessions still running after {timeout} s")


def shutdown() -> None:
    """Cancel everything, stop the timer and forget the sessions (add-on unregister)."""
    global _main
    for session in running():
        session.cancel()
    for session in list(_sessions):
        session.join(2.0)
    _sessions.clear()
    listeners.clear()
    # What the cancelled workers still post goes to a queue nobody drains any more.
    _main = MainQueue()
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
