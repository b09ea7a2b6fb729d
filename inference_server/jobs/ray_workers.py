"""Jobs on a Ray cluster (`keygrip serve --executor ray`): the same job slots as the local worker
processes, each job run where the cluster has what its type needs.

The front keeps its gRPC service, job store, queue and artifact store; only the running moves. A
RayWorker is the front's handle on one job slot and behaves like jobs/workers.py's Worker (the job
manager cannot tell them apart). How a job runs depends on what its type declares
(JobNeeds, beside its handler in its capability):

- a stateless job (probe, capture, retarget, matte...) is a Ray task asking for the type's CPUs and
  GPUs. Ray keeps a task's worker process for the next task of the same shape, and so does this
  module keep the handlers it set up in that process (`_STATES`);
- a job that uses a loaded model (scene generation, depth) runs on an actor of that model's pool:
  up to `ray_actors_per_node` actors on each node that can hold one, each running one job at a time
  and keeping its pipelines loaded for the next job of the same model.

Either way the job runs on a thread of its process while a streaming generator yields the worker
messages (JobStarted, JobProgress..., JobDone or JobFailed) as the job makes them; a reader thread in
the front hands each to the manager. Cancel is graceful first: an actor hears it through a method of
its control threads, a task through the server's cancel board (an actor it polls), and
check_cancelled() sees it as in a local worker; a job that ignores it is ended after the grace period
(ray.kill of its actor, ray.cancel(force=True) of its task). A job whose process or node dies breaks
its stream: the manager hears WorkerExited and requeues it. Ray's own retries are off (max_retries=0,
max_restarts=0, max_task_retries=0): retries are the manager's, counted and recorded in the job's events.

Resources: a job type's needs are checked against the cluster's alive nodes when it is submitted and
whenever the nodes change (RayExecutor.unmet): a job no node could run (a GPU job on a CPU-only
cluster) fails at once with FAILED_PRECONDITION naming what is missing, instead of pending in Ray
forever.

Artifacts: with `ray_storage = "shared"` the job's process reads and writes the server's data
directory, which every node must see under the same path; with "object_store" it works in a folder of
its node's own, inputs fetched from the front and results sent back through Ray's object store
(jobs/ray_artifacts.py). Ray is an optional extra: `pip install
'keygrip[cluster]'`; the server's configuration check refuses `--executor ray` without it, saying so,
before this module is imported.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import ray

from inference_server.capabilities import job_needs
from inference_server.capability import JobNeeds
from inference_server.config import Config
from inference_server.jobs.messages import (
    CancelJob,
    FromWorker,
    JobDone,
    JobFailed,
    JobStarted,
    RunJob,
    StopWorker,
    ToWorker,
    WorkerExited,
    WorkerReady,
    unpack_request,
)
from inference_server.jobs.ray_artifacts import NodeArtifacts, NodeSetup, registry_files, start_depot
from inference_server.jobs.workers import WorkerState
from keygrip.v1 import server_pb2

log = logging.getLogger("keygrip.workers")

# The custom resource a node declares for its GPU memory (`ray start --resources '{"gpu_memory_gib": 80}'`):
# Ray 2.60 has no GPU-memory request of its own. Asked for only on clusters where some node declares it.
GPU_MEMORY = "gpu_memory_gib"
_NODES_POLL_S = 1.0   # how often the front looks at the cluster's nodes
_CANCEL_POLL_S = 0.2  # how often a running task asks the cancel board
# What ends a job's process under it: requeued by the manager, never retried by Ray.
_DIED = (ray.exceptions.ActorDiedError, ray.exceptions.ActorUnavailableError, ray.exceptions.WorkerCrashedError,
         ray.exceptions.NodeDiedError, ray.exceptions.TaskCancelledError, ray.exceptions.ObjectLostError)


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


# The job's process ----------------------------------------------------------------------------------


class _Link:
    """The job's side of its link to the front (jobs/workers.py's Channel): what the job sends goes out
    through the running generator; a cancel is the job's id appearing in `cancelled`."""

    def __init__(self, outbox: queue.Queue[Any], cancelled: set[str], job_id: str) -> None:
        self.outbox, self.cancelled, self.job_id = outbox, cancelled, job_id

    def send(self, obj: Any) -> None:
        self.outbox.put(obj)

    def poll(self) -> bool:
        return self.job_id in self.cancelled

    def recv(self) -> Any:
        return CancelJob(self.job_id)


_DONE = object()


def _stream(state: WorkerState, msg: RunJob, cancelled: set[str]) -> Iterator[FromWorker]:
    """Run the job on a thread of this process and yield its messages as they come."""
    outbox: queue.Queue[Any] = queue.Queue()

    def work() -> None:
        try:
            state.run(_Link(outbox, cancelled, msg.job_id), msg)
        finally:
            outbox.put(_DONE)

    threading.Thread(target=work, name=f"job-{msg.job_id[:8]}", daemon=True).start()
    while (item := outbox.get()) is not _DONE:
        yield item


def _worker_state(node: NodeSetup) -> WorkerState:
    """The handlers of a job's process: over the server's data directory (shared storage), or over this
    node's own folder and artifact cache (object store)."""
    if node.depot is None:
        return WorkerState(node.data_dir, node.log_level, node.log_format)
    local = node.local_dir()
    local.mkdir(parents=True, exist_ok=True)
    for name, text in node.registry:  # the models the server knows, for the handlers' model registry
        (local / name).write_text(text)
    return WorkerState(str(local), node.log_level, node.log_format,
                       artifacts=NodeArtifacts(local / "artifacts", node.depot))


# A Ray worker process runs task after task: what one set up (MediaPipe graphs, handlers) stays for the
# next, per server (its data directory).
_STATES: dict[str, WorkerState] = {}


def job_task(node: NodeSetup, msg: RunJob, board: Any) -> Iterator[FromWorker]:
    """A stateless job as a Ray task; a cancel arrives through the server's cancel board."""
    state = _STATES.get(node.data_dir)
    if state is None:
        state = _STATES[node.data_dir] = _worker_state(node)
    cancelled: set[str] = set()
    ended = threading.Event()

    def listen() -> None:
        while not ended.wait(_CANCEL_POLL_S):
            try:
                if ray.get(board.cancelled.remote(msg.job_id)):
                    cancelled.add(msg.job_id)
                    return
            except ray.exceptions.RayError:
                return  # no board: the forced cancel after the grace period still ends the job

    threading.Thread(target=listen, name=f"cancel-{msg.job_id[:8]}", daemon=True).start()
    try:
        yield from _stream(state, msg, cancelled)
    finally:
        ended.set()


class _JobActor:
    """One member of a model's pool: a job at a time (the "jobs" group), its handlers and their loaded
    models kept between jobs; cancel and watch on the "control" threads."""

    def __init__(self, node: NodeSetup) -> None:
        self.state = _worker_state(node)
        self.cancelled: set[str] = set()

    @ray.method(concurrency_group="jobs")
    def run(self, msg: RunJob) -> Iterator[FromWorker]:
        try:
            yield from _stream(self.state, msg, self.cancelled)
        finally:
            self.cancelled.discard(msg.job_id)

    @ray.method(concurrency_group="control")
    def cancel(self, job_id: str) -> None:
        self.cancelled.add(job_id)  # also for a job still waiting its turn on this actor

    @ray.method(concurrency_group="control")
    def watch(self) -> None:
        """Never returns: the front's call to it fails when this actor dies, even while it is idle."""
        threading.Event().wait()


class _CancelBoard:
    """The job ids the user cancelled while their tasks run; tasks poll it."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def cancel(self, job_id: str) -> None:
        self.ids.add(job_id)

    def cancelled(self, job_id: str) -> bool:
        return job_id in self.ids

    def forget(self, job_id: str) -> None:
        self.ids.discard(job_id)


# Ray's wrappers (ray.remote returns classes its type hints do not describe). No retries or restarts of
# Ray's own: the manager's instead.
_ray_remote: Any = ray.remote  # its overloads do not list an actor's concurrency_groups
JobActor: Any = _ray_remote(concurrency_groups={"jobs": 1, "control": 2}, max_restarts=0,
                            max_task_retries=0)(_JobActor)
JobTask: Any = ray.remote(max_retries=0, retry_exceptions=False)(job_task)
CancelBoard: Any = ray.remote(num_cpus=0, max_restarts=0)(_CancelBoard)


# The front's side -----------------------------------------------------------------------------------


def _amount(resource: str, value: float) -> str:
    names = {"CPU": ("CPU core", "CPU cores"), "GPU": ("GPU", "GPUs"), GPU_MEMORY: ("GiB of GPU memory",) * 2}
    one, many = names.get(resource, (resource, resource))
    return f"{value:g} {one if value == 1 else many}"


class _Member:
    """An actor of a model's pool and how many jobs the front has given it (running or waiting)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.jobs = 0
        self.alive = True


class _Pool:
    """The actors that keep one model loaded: at most ray_actors_per_node on each node that can hold one."""

    def __init__(self, executor: RayExecutor, model: str, needs: JobNeeds) -> None:
        self.executor, self.model, self.needs = executor, model, needs
        self.members: list[_Member] = []
        self.lock = threading.Lock()

    def acquire(self) -> _Member:
        """An idle actor, else a new one while the pool has room, else the least busy (its next job)."""
        with self.lock:
            self.members = [m for m in self.members if m.alive]
            idle = [m for m in self.members if m.jobs == 0]
            if idle:
                member = idle[0]
            elif len(self.members) < self.executor.pool_size(self.needs):
                member = self._start()
            else:
                member = min(self.members, key=lambda m: m.jobs)
            member.jobs += 1
            return member

    def release(self, member: _Member) -> None:
        with self.lock:
            member.jobs -= 1

    def _start(self) -> _Member:
        actor = JobActor.options(**self.executor.ray_options(self.needs)).remote(self.executor.node)
        member = _Member(actor)
        self.members.append(member)
        log.info("model actor started", extra={"model": self.model, "pool_size": len(self.members)})
        threading.Thread(target=self._watch, args=(member,), name=f"keygrip-pool-{self.model}", daemon=True).start()
        return member

    def _watch(self, member: _Member) -> None:
        try:
            ray.get(member.actor.watch.remote())
        except ray.exceptions.RayError:  # died (killed, its node lost, stopped): the next job starts another
            member.alive = False

    def stop(self) -> None:
        with self.lock:
            for member in self.members:
                member.alive = False
                ray.kill(member.actor, no_restart=True)
            self.members.clear()


class RayExecutor:
    """The front's side of the cluster: what each job type needs, the model pools, the cancel board, and a
    watch on the nodes that calls on_change when the cluster's resources change."""

    def __init__(self, config: Config, on_change: Callable[[], None]) -> None:
        self.config = config
        storage = config.ray_storage == "object_store"
        self.node = NodeSetup(str(config.data_dir), config.log_level, config.log_format,
                              depot=start_depot(config.data_dir) if storage else None,
                              registry=registry_files(config.data_dir) if storage else ())
        self.needs = job_needs()
        self.board = CancelBoard.remote()
        self.pools: dict[str, _Pool] = {}
        self._lock = threading.Lock()
        self._nodes = self._alive_nodes()
        self._stopped = threading.Event()
        threading.Thread(target=self._watch_nodes, args=(on_change,), name="keygrip-ray-nodes", daemon=True).start()

    # What jobs need, and whether the cluster has it ------------------------------------------------

    def needs_of(self, job_type: str) -> JobNeeds:
        return self.needs.get(job_type, JobNeeds())  # a type no capability declares (a job from another version)

    def asks(self, needs: JobNeeds) -> dict[str, float]:
        """A job's needs as Ray resources; GPU memory only where some node declares it."""
        asks = {"CPU": needs.cpus, "GPU": needs.gpus}
        if needs.gpus and any(GPU_MEMORY in node for node in self._nodes):
            asks[GPU_MEMORY] = needs.gpu_memory_gib
        return {k: v for k, v in asks.items() if v > 0}

    def ray_options(self, needs: JobNeeds) -> dict[str, Any]:
        asks = self.asks(needs)
        custom = {k: v for k, v in asks.items() if k not in ("CPU", "GPU")}
        options: dict[str, Any] = {"num_cpus": asks.get("CPU", 0), "num_gpus": asks.get("GPU", 0)}
        if custom:
            options["resources"] = custom
        return options

    def _fits(self, asks: dict[str, float], node: dict[str, float]) -> bool:
        return all(node.get(k, 0.0) >= v for k, v in asks.items())

    def unmet(self, job_type: str) -> str:
        """Why no alive node of the cluster could ever run a job of this type; "" when one can."""
        asks = self.asks(self.needs_of(job_type))
        nodes = self._nodes
        if any(self._fits(asks, node) for node in nodes):
            return ""
        largest = {k: max((node.get(k, 0.0) for node in nodes), default=0.0) for k in asks}
        short = [f"{_amount(k, v)} (the most any node has: {largest[k]:g})" for k, v in asks.items() if largest[k] < v]
        what = "; ".join(short) or f"{', '.join(_amount(k, v) for k, v in asks.items())} on one node"
        return (f"a {job_type} job needs {what}, and none of the Ray cluster's {len(nodes)} alive node(s) has it; "
                f"add a node that has it to the cluster (ray start --num-gpus / --resources), or run the job on a "
                f"server that has it")

    def pool_size(self, needs: JobNeeds) -> int:
        asks = self.asks(needs)
        return max(1, self.config.ray_actors_per_node * sum(self._fits(asks, node) for node in self._nodes))

    def pool(self, msg: RunJob) -> _Pool:
        """The pool of the model a job names (one pool per model, whichever job type uses it)."""
        needs = self.needs_of(msg.job_type)
        model = needs.model_of(unpack_request(msg.request)) or "(default)"
        with self._lock:
            pool = self.pools.get(model)
            if pool is None:
                pool = self.pools[model] = _Pool(self, model, needs)
            return pool

    # The nodes ------------------------------------------------------------------------------------

    @staticmethod
    def _alive_nodes() -> list[dict[str, float]]:
        return [{k: float(v) for k, v in node.get("Resources", {}).items() if not k.startswith("node:")}
                for node in ray.nodes() if node.get("Alive")]

    def refresh(self) -> bool:
        """Look at the cluster's nodes now (not at the watch's next poll); True when they changed.
        A job whose process died asks this first: its node may just have left, and a job run again
        on the node list of a moment ago would go back to it."""
        try:
            nodes = self._alive_nodes()
        except Exception:  # the cluster is unreachable for a moment: keep what was seen last
            log.warning("could not list the Ray cluster's nodes", exc_info=True)
            return False
        if sorted(map(sorted, (n.items() for n in nodes))) == sorted(map(sorted, (n.items() for n in self._nodes))):
            return False
        self._nodes = nodes
        log.info("the Ray cluster changed", extra={"nodes": len(nodes)})
        return True

    def _watch_nodes(self, on_change: Callable[[], None]) -> None:
        while not self._stopped.wait(_NODES_POLL_S):
            if self.refresh():
                on_change()

    def stop(self) -> None:
        self._stopped.set()
        for pool in list(self.pools.values()):
            pool.stop()


class RayWorker:
    """The front's handle on one job slot on the cluster, with the interface of jobs/workers.py's Worker."""

    def __init__(self, index: int, executor: RayExecutor, on_message: Callable[[Any, FromWorker], None]) -> None:
        self.index = index
        self.executor = executor
        self.on_message = on_message
        self.job_id: str | None = None
        self.job_input: Any = None
        self.pid: int | None = None  # a job's process is on whichever node Ray picks
        self._alive = True
        self._lock = threading.Lock()
        self._stream: Any = None            # the running job's ObjectRefGenerator
        self._member: _Member | None = None  # its pool actor, for a model's job
        self._started = False                # the job began (JobStarted): it is no longer waiting its turn
        on_message(self, WorkerReady(0))     # a slot is ready at once: Ray starts processes as jobs need them

    @property
    def busy(self) -> bool:
        return self.job_id is not None

    def alive(self) -> bool:
        return self._alive

    def exit_code(self) -> int | None:
        return None  # Ray does not say how a process ended

    def send(self, msg: ToWorker) -> bool:
        if not self._alive:
            return False
        if isinstance(msg, RunJob):
            needs = self.executor.needs_of(msg.job_type)
            pool: _Pool | None = None
            member: _Member | None = None
            try:
                pool = self.executor.pool(msg) if needs.model else None
                if pool is not None:
                    member = pool.acquire()
                    stream = member.actor.run.options(num_returns="streaming").remote(msg)
                else:
                    stream = JobTask.options(num_returns="streaming", **self.executor.ray_options(needs)).remote(
                        self.executor.node, msg, self.executor.board)
            except Exception:  # Ray unreachable, an actor that cannot start: the manager fails the job
                log.exception("could not hand job %s to Ray", msg.job_id)
                if pool is not None and member is not None:
                    pool.release(member)
                return False
            self._stream, self._member, self._started = stream, member, False
            threading.Thread(target=self._read, args=(stream, msg, pool, member),
                             name=f"keygrip-ray-reader-{self.index}", daemon=True).start()
        elif isinstance(msg, CancelJob):
            if self._member is not None:
                self._member.actor.cancel.remote(msg.job_id)
            else:
                self.executor.board.cancel.remote(msg.job_id)
        elif isinstance(msg, StopWorker):
            self.kill()
        return True

    def _read(self, stream: Any, msg: RunJob, pool: _Pool | None, member: _Member | None) -> None:
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                if pool is not None and member is not None:
                    pool.release(member)
                else:
                    self.executor.board.forget.remote(msg.job_id)

        try:
            for ref in stream:
                item = ray.get(ref)
                if isinstance(item, JobStarted):
                    self._started = True
                if isinstance(item, (JobDone, JobFailed)):
                    release()  # before the manager hears of it and gives the slot (or the actor) its next job
                self.on_message(self, item)
        except _DIED:
            self._exited()
        except ray.exceptions.RayError as exc:  # the job's messages could not come back: it failed here
            log.exception("a Ray job's stream broke")
            self.on_message(self, JobFailed(msg.job_id, "UNAVAILABLE", "WORKER_LOST",
                                            f"the cluster lost this job's results ({type(exc).__name__}); "
                                            "submit it again"))
        finally:
            release()

    def _exited(self) -> None:
        with self._lock:  # said once
            if not self._alive:
                return
            self._alive = False
        self.on_message(self, WorkerExited(None))

    def kill(self) -> None:
        """End the running job's process: its actor, or its task. A job still waiting its turn on a busy
        actor is taken off the actor's queue instead: the actor's own job goes on."""
        if self._member is not None and not self._started:
            ray.cancel(self._stream)
        elif self._member is not None:
            self._member.alive = False
            ray.kill(self._member.actor, no_restart=True)
        elif self._stream is not None:
            ray.cancel(self._stream, force=True)

    def stop(self, timeout: float = 3.0) -> None:
        with self._lock:
            self._alive = False  # stopped on purpose: no WorkerExited
        if self.job_id is not None:
            self.kill()
