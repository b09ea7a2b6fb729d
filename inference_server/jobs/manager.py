"""The job manager: a bounded queue in front of worker processes, with events for watchers.

All state changes happen on the event-loop thread (worker messages are handed over with
call_soon_threadsafe), so no locks are needed around the store or the watcher lists.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from google.protobuf import any_pb2, message, timestamp_pb2

from inference_server.config import Config
from inference_server.errors import FailedPrecondition, NotFound, ResourceExhausted, new_error_id
from inference_server.jobs import faults
from inference_server.jobs.failures import JobInput, describe_request, died_message
from inference_server.jobs.messages import (
    CancelJob,
    FromWorker,
    JobDone,
    JobFailed,
    JobProgress,
    JobStarted,
    RunJob,
    WorkerExited,
    WorkerReady,
    unpack_request,
)
from inference_server.jobs.workers import Worker
from inference_server.metrics import Metrics
from inference_server.store import jobs as js
from inference_server.store.artifacts import ArtifactStore
from keygrip.errors import KeygripError as SdkError
from keygrip.v1 import common_pb2

if TYPE_CHECKING:
    from inference_server.jobs.ray_workers import RayExecutor, RayWorker

    WorkerHandle = Worker | RayWorker  # the manager cannot tell a local worker from a Ray one

log = logging.getLogger("keygrip.jobs")



def _timestamp(t: float | None) -> timestamp_pb2.Timestamp | None:
    if t is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(t * 1e9))
    return ts


class JobManager:
    def __init__(self, config: Config, store: js.JobStore, artifacts: ArtifactStore, metrics: Metrics) -> None:
        self.config = config
        self.store = store
        self.artifacts = artifacts
        self.metrics = metrics
        self.queue: deque[str] = deque()
        self.workers: list[WorkerHandle] = []
        self.watchers: dict[str, set[asyncio.Queue]] = {}
        self.cancel_requested: set[str] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = False
        self.ray: RayExecutor | None = None  # with executor "ray": the cluster's side of the front

    # Life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        faults.active()  # a malformed KEYGRIP_TEST_FAULTS stops the server here, not in a job
        self.loop = asyncio.get_running_loop()
        if self.config.executor == "ray":
            from inference_server.jobs import ray_workers

            await asyncio.to_thread(ray_workers.connect, self.config.ray_address)
            loop = self.loop

            def changed() -> None:
                loop.call_soon_threadsafe(self._cluster_changed)

            self.ray = await asyncio.to_thread(ray_workers.RayExecutor, self.config, changed)
        self._recover()
        for i in range(self.config.workers):
            self.workers.append(self._spawn(i))
        self._dispatch()

    async def stop(self) -> None:
        """Stop the workers. A job they were running goes back to the queue without using up an attempt:
        it was stopped, not broken, and runs again when the server starts (one submitted with no_requeue
        fails instead: it was interrupted, and must not start over)."""
        self.stopping = True  # workers exiting from here on are not replaced
        for worker in self.workers:
            job_id, worker.job_id = worker.job_id, None  # what the stopping worker still says is not heard
            rec = self.store.get(job_id) if job_id else None
            if rec is not None and not rec.ended and self._options(rec).no_requeue:
                self._finish(rec.id, js.FAILED, error=(
                    "ABORTED", "SERVER_STOPPED", "the server was stopped while this job ran (not run again: the "
                    "job was submitted with no_requeue); submit it again"))
            elif rec is not None and not rec.ended:
                self.store.update(rec.id, state=js.QUEUED, attempts=max(0, rec.attempts - 1), progress=None)
                self._emit(rec.id, state=js.QUEUED, message="the server is stopping; this job runs again when "
                                                            "it starts")
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in self.workers))
        self.workers.clear()
        if self.ray is not None:
            import ray

            self.ray.stop()
            ray.shutdown()  # leaves the cluster (a local one started for this server ends with it)

    def _spawn(self, index: int) -> WorkerHandle:
        level, fmt = self.config.log_level, self.config.log_format
        if self.ray is not None:
            from inference_server.jobs.ray_workers import RayWorker

            return RayWorker(index, self.ray, self._on_worker_message)
        return Worker(index, self.config.data_dir, self._on_worker_message, log_level=level, log_format=fmt)

    def _recover(self) -> None:
        """Jobs running when the server died run again first (their inputs are content-addressed and
        the work deterministic), while they have attempts left; then the queued ones, oldest first."""
        running = sorted(self.store.list(states=[js.RUNNING], limit=1_000_000), key=lambda r: r.created)
        for rec in reversed(running):  # each goes to the front of the queue: the oldest ends up first
            self._requeue_or_fail(rec, "the server stopped while it ran", (
                "ABORTED", "SERVER_RESTARTED",
                f"the server stopped while this job was running, {self._attempts_text(rec)}; submit it again"))
        requeued = set(self.queue)
        queued = self.store.list(states=[js.QUEUED], limit=1_000_000)
        self.queue.extend(rec.id for rec in sorted(queued, key=lambda r: r.created) if rec.id not in requeued)
        self.metrics.queue_depth.set(len(self.queue))

    def _attempts_text(self, rec: js.JobRecord) -> str:
        return "its only attempt" if rec.attempts <= 1 else f"on all {rec.attempts} attempts"

    def _requeue_or_fail(self, rec: js.JobRecord, what: str, error: tuple[str, str, str]) -> None:
        """A job whose process died: back to the front of the queue while it has attempts left (each one
        recorded in its events), else FAILED with `error`; at once for a job submitted with no_requeue."""
        if self._options(rec).no_requeue:
            code, reason, text = error
            self._finish(rec.id, js.FAILED, error=(code, reason, f"{text} (not run again: the job was submitted "
                                                                   "with no_requeue)"))
            return
        if rec.attempts >= self.config.max_attempts:
            self._finish(rec.id, js.FAILED, error=error)
            return
        self.store.update(rec.id, state=js.QUEUED, progress=None)
        self.queue.appendleft(rec.id)  # it was running: it goes before jobs that have not started
        self._emit(rec.id, state=js.QUEUED,
                   message=f"{what} (attempt {rec.attempts} of {self.config.max_attempts}); requeued")
        log.warning("job requeued", extra={"job_id": rec.id, "job_type": rec.type, "attempt": rec.attempts,
                                           "cause": what})

    # Requests ------------------------------------------------------------------------------

    def submit(self, job_type: str, request: message.Message, request_id: str = "") -> js.JobRecord:
        if request_id:
            existing = self.store.by_request_id(request_id)
            if existing is not None:
                return existing  # a retried submit: same job, no new work
        if len(self.queue) >= self.config.max_queue:
            raise ResourceExhausted(
                f"the job queue is full ({len(self.queue)} jobs waiting); try again later or start "
                "the server with a larger --max-queue", reason="QUEUE_FULL")
        unmet = self.ray.unmet(job_type) if self.ray is not None else ""
        if unmet:  # Ray would keep it pending forever
            raise FailedPrecondition(unmet, reason="NO_NODE_FOR_JOB")
        packed = any_pb2.Any()
        packed.Pack(request)
        job_id = uuid.uuid4().hex
        rec = self.store.create(job_id, job_type, packed.SerializeToString(), request_id or None)
        self.queue.append(job_id)
        self.metrics.queue_depth.set(len(self.queue))
        self._emit(job_id, state=js.QUEUED, message="queued")
        self._dispatch()
        return self.store.get(job_id) or rec

    def get(self, job_id: str) -> js.JobRecord:
        rec = self.store.get(job_id)
        if rec is None:
            raise NotFound(f"job {job_id!r} does not exist on this server (deleted, or never submitted here)")
        return rec

    def cancel(self, job_id: str) -> js.JobRecord:
        rec = self.get(job_id)
        if rec.ended:
            return rec
        if job_id in self.queue:
            self.queue.remove(job_id)
            self.metrics.queue_depth.set(len(self.queue))
            self._finish(job_id, js.CANCELLED, error=("CANCELLED", "CANCELLED", "cancelled before it started"))
            return self.get(job_id)
        self.cancel_requested.add(job_id)
        worker = self._worker_of(job_id)
        if worker is not None:
            worker.send(CancelJob(job_id))
            assert self.loop is not None
            self.loop.call_later(self.config.cancel_grace_seconds, self._enforce_cancel, job_id, worker)
        self._emit(job_id, message="cancelling")
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        rec = self.get(job_id)
        if not rec.ended:
            raise FailedPrecondition(f"job {job_id} is still {common_pb2.JobState.Name(rec.state)}; cancel it first")
        self.store.delete(job_id)
        for q in self.watchers.pop(job_id, ()):
            q.put_nowait(None)

    async def watch(self, job_id: str, after_sequence: int) -> AsyncIterator[common_pb2.JobEvent]:
        """Stored events after `after_sequence`, then live ones until the job ends."""
        self.get(job_id)
        live: asyncio.Queue = asyncio.Queue()
        # Subscribe before reading history so that no event falls between the two.
        self.watchers.setdefault(job_id, set()).add(live)
        try:
            last = after_sequence
            for blob in self.store.events(job_id, after_sequence):
                ev = common_pb2.JobEvent.FromString(blob)
                last = ev.sequence
                yield ev
                if ev.terminal:
                    return
            rec = self.store.get(job_id)
            if rec is None or rec.ended:
                return
            while True:
                ev = await live.get()
                if ev is None:  # job deleted
                    return
                if ev.sequence <= last:
                    continue
                last = ev.sequence
                yield ev
                if ev.terminal:
                    return
        finally:
            subs = self.watchers.get(job_id)
            if subs is not None:
                subs.discard(live)
                if not subs:
                    self.watchers.pop(job_id, None)

    def queue_position(self, job_id: str) -> int:
        try:
            return self.queue.index(job_id) + 1
        except ValueError:
            return 0

    def to_proto(self, rec: js.JobRecord) -> common_pb2.Job:
        job = common_pb2.Job(id=rec.id, type=rec.type, state=rec.state, request_id=rec.request_id or "",
                             queue_position=self.queue_position(rec.id), last_sequence=rec.last_sequence)
        for name, value in (("created_at", rec.created), ("started_at", rec.started),
                            ("finished_at", rec.finished)):
            ts = _timestamp(value)
            if ts is not None:
                getattr(job, name).CopyFrom(ts)
        if rec.progress:
            job.progress.ParseFromString(rec.progress)
        if rec.error_code:
            job.error.code, job.error.reason, job.error.message = rec.error_code, rec.error_reason, rec.error_message
        if rec.result:
            job.result.ParseFromString(rec.result)
        job.request.ParseFromString(rec.request)
        job.options.CopyFrom(self._options(rec))
        return job

    # Scheduling ----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        for worker in self.workers:
            if not self.queue:
                break
            if worker.busy or not worker.alive():
                continue
            job_id = self.queue.popleft()
            rec = self.store.get(job_id)
            if rec is None or rec.state != js.QUEUED:
                continue
            unmet = self.ray.unmet(rec.type) if self.ray is not None else ""
            if unmet:  # the nodes that could run it left while it waited
                self._no_node(job_id, unmet)
                continue
            worker.job_id = job_id
            now = time.time()
            attempt = rec.attempts + 1
            self.store.update(job_id, state=js.RUNNING, started=now, attempts=attempt)
            again = f" (attempt {attempt} of {self.config.max_attempts})" if attempt > 1 else ""
            self._emit(job_id, state=js.RUNNING, message=f"running on worker {worker.index}{again}")
            if not worker.send(RunJob(job_id, rec.type, rec.request)):
                worker.job_id = None
                self._finish(job_id, js.FAILED, error=(
                    "UNAVAILABLE", "WORKER_LOST",
                    f"the worker process for {self._describe(rec).what} was lost before it started; "
                    "submit the job again"))
        self.metrics.queue_depth.set(len(self.queue))

    def _cluster_changed(self) -> None:
        """Nodes joined or left: a job that no alive node can run now fails instead of pending in Ray
        forever, queued or already handed to Ray (a job whose node died is requeued first and fails
        here or at its dispatch)."""
        if self.ray is None or self.stopping:
            return
        for job_id in list(self.queue):
            rec = self.store.get(job_id)
            unmet = self.ray.unmet(rec.type) if rec is not None else ""
            if unmet:
                self.queue.remove(job_id)
                self._no_node(job_id, unmet)
        for worker in list(self.workers):
            rec = self.store.get(worker.job_id) if worker.job_id else None
            unmet = self.ray.unmet(rec.type) if rec is not None else ""
            if rec is not None and unmet:
                worker.job_id, worker.job_input = None, None  # what its end says is not heard
                self._no_node(rec.id, unmet)
                worker.kill()
        self.metrics.queue_depth.set(len(self.queue))
        self._dispatch()

    def _no_node(self, job_id: str, unmet: str) -> None:
        """Fail a job no alive node of the cluster can run (unmet: what it needs that none has)."""
        self._finish(job_id, js.FAILED, error=("FAILED_PRECONDITION", "NO_NODE_FOR_JOB", unmet))

    def _worker_of(self, job_id: str) -> WorkerHandle | None:
        return next((w for w in self.workers if w.job_id == job_id), None)

    def _enforce_cancel(self, job_id: str, worker: WorkerHandle) -> None:
        if worker.job_id == job_id and worker in self.workers:
            log.warning("worker %d ignored cancel of job %s; killing it", worker.index, job_id)
            worker.kill()  # its reader thread reports "exited", which finishes the job as cancelled

    def _on_worker_message(self, worker: WorkerHandle, msg: FromWorker) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._handle, worker, msg)

    def _handle(self, worker: WorkerHandle, msg: FromWorker) -> None:
        if isinstance(msg, WorkerReady):
            self._dispatch()
            return
        if isinstance(msg, WorkerExited):
            self._worker_exited(worker)
            return
        job_id = msg.job_id
        if worker.job_id != job_id:
            return  # a message from a job already finished (e.g. killed after cancel)
        if isinstance(msg, JobStarted):
            worker.job_input = msg.job_input
            return
        if isinstance(msg, JobProgress):
            progress = common_pb2.Progress(stage=msg.stage, value=msg.value, maximum=msg.maximum, fps=msg.fps,
                                           message=msg.message)
            progress.eta_seconds = (progress.maximum - progress.value) / progress.fps if progress.fps > 0 else -1
            self.store.update(job_id, progress=progress.SerializeToString())
            self._emit(job_id, progress=progress, preview=msg.preview_png)
            return
        worker.job_id = None
        worker.job_input = None
        if isinstance(msg, JobDone):
            self.store.link_artifacts(job_id, list(msg.artifacts))
            self._finish(job_id, js.SUCCEEDED, result=msg.result)
        elif isinstance(msg, JobFailed):
            state = js.CANCELLED if msg.code == "CANCELLED" else js.FAILED
            self._finish(job_id, state, error=(msg.code, msg.reason, msg.message))
        self._dispatch()

    def _worker_exited(self, worker: WorkerHandle) -> None:
        if worker not in self.workers or self.stopping:
            return  # stopped on purpose
        job_id, job_input = worker.job_id, worker.job_input
        worker.job_id, worker.job_input = None, None
        code = worker.exit_code()
        if job_id is not None:
            if job_id in self.cancel_requested:
                self._finish(job_id, js.CANCELLED, error=("CANCELLED", "CANCELLED", "cancelled by the user"))
            else:
                rec = self.store.get(job_id)
                job = job_input or (self._describe(rec) if rec is not None else JobInput("this job"))
                error_id = new_error_id()
                # No traceback can come from a dead process; faulthandler wrote one above if it crashed.
                log.error("worker %d died (exit code %s) while %s (error id %s)", worker.index, code, job.what,
                          error_id, extra={"job_id": job_id, "error_id": error_id, "exit_code": code,
                                           "input": job.name})
                # On a cluster the process may have died with its node: if no node left can run the
                # job, say so rather than run it again (and again) on a node that is gone.
                changed = self.ray is not None and self.ray.refresh()
                unmet = self.ray.unmet(rec.type) if rec is not None and self.ray is not None else ""
                if changed:  # the watch will not see this change again: the other jobs hear of it here
                    assert self.loop is not None
                    self.loop.call_soon(self._cluster_changed)
                if rec is not None and unmet:
                    self._no_node(job_id, unmet)
                elif rec is not None:
                    self._requeue_or_fail(rec, f"the worker died (exit code {code}, error id {error_id})", (
                        "INTERNAL", "WORKER_DIED",
                        died_message(job, "worker process", code, error_id, attempts=rec.attempts)))
        log.warning("worker %d exited (code %s); starting a new one", worker.index, code)
        self.workers[self.workers.index(worker)] = self._spawn(worker.index)

    def _options(self, rec: js.JobRecord) -> common_pb2.JobOptions:
        """The job_options its request was submitted with (every job request has the field)."""
        try:
            options = getattr(unpack_request(rec.request), "job_options", None)
        except (SdkError, message.DecodeError):  # a request this server cannot read: the defaults
            return common_pb2.JobOptions()
        return options if isinstance(options, common_pb2.JobOptions) else common_pb2.JobOptions()

    def _describe(self, rec: js.JobRecord) -> JobInput:
        """What a job works on, from its stored request, for when its worker could not say."""
        try:
            return describe_request(unpack_request(rec.request), self.artifacts)
        except Exception:
            log.exception("describing job %s failed", rec.id)
            return JobInput(name=f"this {rec.type} job")

    def _finish(self, job_id: str, state: common_pb2.JobState.ValueType, *, result: bytes | None = None,
                error: tuple[str, str, str] | None = None) -> None:
        rec = self.store.get(job_id)
        if rec is None or rec.ended:
            return
        now = time.time()
        values: dict[str, object] = {"state": state, "finished": now}
        if result is not None:
            values["result"] = result
        if error is not None:
            values["error_code"], values["error_reason"], values["error_message"] = error
        self.store.update(job_id, **values)
        self.cancel_requested.discard(job_id)
        label = common_pb2.JobState.Name(state).removeprefix("JOB_STATE_").lower()
        self.metrics.jobs_total.labels(rec.type, label).inc()
        if rec.started:
            self.metrics.job_seconds.labels(rec.type, label).observe(now - rec.started)
        if state == js.FAILED:
            self.metrics.failures.labels(rec.type, error[0] if error else "UNKNOWN").inc()
        log.info("job ended", extra={"job_id": job_id, "job_type": rec.type, "state": label,
                                     "error": error[2] if error else ""})
        self._emit(job_id, state=state, message=error[2] if error else "done", terminal=True)

    def _emit(self, job_id: str, *, state: common_pb2.JobState.ValueType = common_pb2.JOB_STATE_UNSPECIFIED,
              progress: common_pb2.Progress | None = None, message: str = "", preview: bytes = b"",
              terminal: bool = False) -> None:
        rec = self.store.get(job_id)
        if rec is None:
            return
        ev = common_pb2.JobEvent(sequence=rec.last_sequence + 1, job_id=job_id, state=state or rec.state,
                                 message=message, preview_png=preview, terminal=terminal)
        ev.time.GetCurrentTime()
        if progress is not None:
            ev.progress.CopyFrom(progress)
        self.store.append_event(job_id, ev.sequence, ev.SerializeToString())
        for q in self.watchers.get(job_id, ()):
            q.put_nowait(ev)
