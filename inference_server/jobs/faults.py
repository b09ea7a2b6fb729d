"""Faults that tests inject into a real server, to see how it reports a bug, a lack of memory or a
dead worker. Off unless the server process was started with the environment variable

    KEYGRIP_TEST_FAULTS="probe_media:probe,motion_capture:inference=memory,rpc:ListJobs"

a comma-separated list of WHERE:WHEN[=KIND]:

- WHERE a job type and WHEN a progress stage of it ("probe_media:probe", "motion_capture:solve"):
  the job's first progress report of that stage raises the fault inside the worker;
- WHERE "rpc" and WHEN a method name ("rpc:ListJobs"): that gRPC method raises it in the front;
- KIND "error" (the default: a RuntimeError, as a bug would), "memory" (MemoryError) or "exit" (the
  worker process exits at once, as a crash or the kernel's OOM killer would end it; jobs only).

Only the environment of the server's own process turns a fault on: it is not a configuration setting
(no TOML key, no flag, not a Config field) and nothing a request, its metadata or an upload carries
is looked at, so no client can turn one on.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

ENV = "KEYGRIP_TEST_FAULTS"
KINDS = ("error", "memory", "exit")


@dataclass(frozen=True)
class Fault:
    where: str  # a job type, or "rpc"
    when: str   # a progress stage, or a gRPC method name
    kind: str   # one of KINDS


def parse(spec: str) -> tuple[Fault, ...]:
    """The faults of a KEYGRIP_TEST_FAULTS value; ValueError for a malformed one."""
    faults = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        place, _, kind = item.partition("=")
        where, sep, when = place.partition(":")
        kind = kind or "error"
        if not sep or not where or not when or kind not in KINDS:
            raise ValueError(f"{ENV}: {item!r} is not WHERE:WHEN[=KIND] with KIND one of {', '.join(KINDS)}")
        faults.append(Fault(where, when, kind))
    return tuple(faults)


@functools.cache
def active() -> tuple[Fault, ...]:
    """The faults this process was started with (none unless KEYGRIP_TEST_FAULTS is set)."""
    return parse(os.environ.get(ENV, ""))


def trigger(where: str, when: str) -> None:
    """Raise (or exit with) the fault set for this place, if any; a no-op when none is set."""
    for fault in active():
        if fault.where == where and fault.when == when:
            if fault.kind == "memory":
                raise MemoryError(f"test fault {where}:{when} ({ENV})")
            if fault.kind == "exit":
                os._exit(70)
            raise RuntimeError(f"test fault {where}:{when} ({ENV})")
