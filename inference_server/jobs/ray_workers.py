"""Workers on a Ray cluster (`keygrip serve --executor ray`): the same job slots as the local worker
processes, each one a Ray actor on whichever node has room.

The front keeps its gRPC service, job store, queue and artifact store; only the running moves. A
RayWorker is the front's handle on one actor and behaves like jobs/workers.py's Worker (the job
manager cannot tell them apart): RunJob starts the actor's `run`, a streaming generator that yields
the worker messages (JobStarted, JobProgress..., JobDone or JobFailed) as the job makes them; a
reader thread hands each to the manager. CancelJob reaches the running job through another of the
actor's threads, where check_cancelled() sees it, as in a local worker; a job that ignores it is
killed with ray.kill after the grace period. An actor that dies (its process killed, its node lost)
fails the front's standing `watch` call on it (and the running job's stream): the manager hears
WorkerExited, requeues the job if there was one, and starts a new actor, idle or not. Ray's own
retries are off (max_restarts=0, max_task_retries=0): retries are the manager's, counted and
recorded in the job's events.

Artifacts: the actor reads and writes the server's data directory, which must be a path every node
sees (a shared file system) under the same name. Ray is an optional extra: `pip install
'keygrip[cluster]'`; the server's configuration check refuses `--executor ray` without it, saying
so, before this module is imported.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ray

from inference_server.jobs.messages import (
    CancelJob,
    FromWorker,
    JobFailed,
    RunJob,
    StopWorker,
    ToWorker,
    WorkerExited,
    WorkerReady,
)
from inference_server.jobs.workers import WorkerState
from keygrip.v1 import server_pb2

log = logging.getLogger("keygrip.workers")


def connect(address: str, namespace: str = "keygrip") -> None:
    """Join the Ray cluster at `address` ("auto": the one this machine belongs to; "": start a local one
    for this server). Idempotent."""
    if ray.is_initialized():
        return
    ray.init(address=address or None, namespace=namespace, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    log.info("joined the Ray cluster", extra={"ray_address": address or "local",
                                              "nodes": len([n for n in ray.nodes() if n.get("Alive")])})


def cluster_info() -> server_pb2.ClusterInfo:
    """The cluster's nodes and its free resources, for GetServerInfo."""
    info = server_pb2.ClusterInfo(executor="ray")
    if not ray.is_initialized():
        return info
    for node in ray.nodes():
        info.nodes.add(id=node.get("NodeID", ""), address=node.get("NodeManagerAddress", ""),
                       alive=bool(node.get("Alive")),
                       resources={k: float(v) for k, v in node.get("Resources", {}).items() if "node:" not in k})
    info.free.update({k: float(v) for k, v in ray.available_resources().items() if "node:" not in k})
    return info


class _Inbox:
    """The actor side of the worker link (jobs/workers.py's Channel): what the job sends goes out through
    the running generator; what the front sends (a cancel) comes in through the actor's other thread."""

    def __init__(self, outbox: queue.Queue[Any], inbox: queue.Queue[Any]) -> None:
        self.outbox = outbox
        self.inbox = inbox

    def send(self, obj: Any) -> None:
        self.outbox.put(obj)

    def poll(self) -> bool:
        return not self.inbox.empty()

    def recv(self) -> Any:
        return self.inbox.get()


_DONE = object()


class _JobActor:
    """One job slot on the cluster: the handlers of a local worker (models stay loaded between jobs)."""

    def __init__(self, data_dir: str, log_level: str, log_format: str) -> None:
        self.state = WorkerState(data_dir, log_level, log_format)
        self.inbox: queue.Queue[Any] = queue.Queue()

    def ready(self) -> tuple[int, str]:
        """This actor's pid and node, once its handlers can take jobs."""
        return os.getpid(), ray.get_runtime_context().get_node_id()

    def run(self, msg: RunJob) -> Iterator[FromWorker]:
        while not self.inbox.empty():  # a cancel that came after the last job ended
            self.inbox.get_nowait()
        outbox: queue.Queue[Any] = queue.Queue()

        def work() -> None:
            try:
                self.state.run(_Inbox(outbox, self.inbox), msg)
            finally:
                outbox.put(_DONE)

        threading.Thread(target=work, name=f"job-{msg.job_id[:8]}", daemon=True).start()
        while (item := outbox.get()) is not _DONE:
            yield item

    def cancel(self, job_id: str) -> None:
        self.inbox.put(CancelJob(job_id))

    def watch(self) -> None:
        """Never returns: the front's call to it fails when this actor dies, even while it is idle."""
        threading.Event().wait()


# The actor class (ray.remote returns an ActorClass, which its type hints do not describe), and how each
# is started: threads for a job, a cancel and the watch; no restarts or retries of Ray's own (the
# manager's instead).
JobActor: Any = ray.remote(_JobActor)
_OPTIONS = {"max_concurrency": 3, "max_restarts": 0, "max_task_retries": 0, "num_cpus": 1}


class RayWorker:
    """The front's handle on one JobActor, with the interface of jobs/workers.py's Worker."""

    def __init__(self, index: int, data_dir: Path, on_message: Callable[[Any, FromWorker], None], *,
                 log_level: str = "INFO", log_format: str = "json") -> None:
        self.index = index
        self.on_message = on_message
        self.job_id: str | None = None
        self.job_input: Any = None
        self.pid: int | None = None   # set when the actor runs on this machine's node
        self._alive = True
        self._lock = threading.Lock()
        self._code: int | None = None
        self.actor = JobActor.options(**_OPTIONS).remote(str(data_dir), log_level, log_format)
        threading.Thread(target=self._wait_ready, name=f"keygrip-ray-ready-{index}", daemon=True).start()

    @property
    def busy(self) -> bool:
        return self.job_id is not None

    def alive(self) -> bool:
        return self._alive

    def exit_code(self) -> int | None:
        return self._code  # Ray does not say how an actor's process ended

    def _wait_ready(self) -> None:
        try:
            pid, node = ray.get(self.actor.ready.remote())
        except ray.exceptions.RayError as exc:
            log.error("a Ray worker could not start: %s", exc)
            self._exited()
            return
        self.pid = pid if node == ray.get_runtime_context().get_node_id() else None  # this machine's only
        log.info("ray worker ready", extra={"worker": self.index, "pid": pid, "node": node})
        self.on_message(self, WorkerReady(pid))
        try:
            ray.get(self.actor.watch.remote())
        except ray.exceptions.RayError:  # died: idle or busy, this is how the front hears of it
            self._exited()

    def send(self, msg: ToWorker) -> bool:
        if not self._alive:
            return False
        if isinstance(msg, RunJob):
            stream = self.actor.run.options(num_returns="streaming").remote(msg)
            threading.Thread(target=self._read, args=(stream, msg), name=f"keygrip-ray-reader-{self.index}",
                             daemon=True).start()
        elif isinstance(msg, CancelJob):
            self.actor.cancel.remote(msg.job_id)
        elif isinstance(msg, StopWorker):
            self.kill()
        return True

    def _read(self, stream: Any, msg: RunJob) -> None:
        try:
            for ref in stream:
                self.on_message(self, ray.get(ref))
        except ray.exceptions.ActorDiedError:
            self._exited()
        except ray.exceptions.RayError as exc:  # the job's messages could not come back: it failed here
            log.exception("a Ray worker's job stream broke")
            self.on_message(self, JobFailed(msg.job_id, "UNAVAILABLE", "WORKER_LOST",
                                            f"the cluster lost this job's results ({type(exc).__name__}); "
                                            "submit it again"))

    def _exited(self) -> None:
        with self._lock:  # the watch and a job's stream both see a death: say it once
            if not self._alive:
                return
            self._alive = False
        self.on_message(self, WorkerExited(self.pid))

    def kill(self) -> None:
        ray.kill(self.actor, no_restart=True)

    def stop(self, timeout: float = 3.0) -> None:
        with self._lock:
            self._alive = False  # stopped on purpose: no WorkerExited
        ray.kill(self.actor, no_restart=True)
