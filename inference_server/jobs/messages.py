"""What the front and a worker process say to each other over the worker's pipe.

Every message is a small frozen dataclass (picklable, checked by type on arrival) instead of a
tuple whose meaning hangs on its position:

    front -> worker: RunJob | CancelJob | StopWorker
    worker -> front: WorkerReady | JobStarted | JobProgress | JobDone | JobFailed
                     (WorkerExited is made up by the front's reader thread when the pipe closes)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf import any_pb2, message

from inference_server.jobs.failures import JobInput
from keygrip.client import message_class


def unpack_request(data: bytes) -> message.Message:
    """A job's request message from the serialized google.protobuf.Any the job store keeps and RunJob
    carries (keygrip.errors.KeygripError for a type this server does not know; DecodeError for bytes
    that are not one)."""
    packed = any_pb2.Any.FromString(data)
    request = message_class(packed.TypeName())()
    packed.Unpack(request)
    return request


# Front -> worker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunJob:
    """Run a job; request is a serialized google.protobuf.Any holding the job's request message."""

    job_id: str
    job_type: str
    request: bytes


@dataclass(frozen=True)
class CancelJob:
    """Stop the job at its next check_cancelled (a late cancel for an ended job is ignored)."""

    job_id: str


@dataclass(frozen=True)
class StopWorker:
    """The server shuts down: end a running job as promptly as a cancel, then exit."""


ToWorker = RunJob | CancelJob | StopWorker

# Worker -> front ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerReady:
    """The worker started and waits for jobs."""

    pid: int


@dataclass(frozen=True)
class JobStarted:
    """The worker took the job: what it works on, in the user's words (for messages if the worker dies)."""

    job_id: str
    job_input: JobInput


@dataclass(frozen=True)
class JobProgress:
    """Progress of the current stage of a running job (fields as in keygrip.v1.Progress)."""

    job_id: str
    stage: str
    value: float
    maximum: float
    message: str = ""
    fps: float = 0.0
    preview_png: bytes = b""


@dataclass(frozen=True)
class JobDone:
    """The job succeeded: result is a serialized google.protobuf.Any; artifacts are the ids it produced."""

    job_id: str
    result: bytes
    artifacts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JobFailed:
    """The job ended with an error: code is a grpc.StatusCode name ("CANCELLED" for a cancel)."""

    job_id: str
    code: str
    reason: str
    message: str


@dataclass(frozen=True)
class WorkerExited:
    """The worker's pipe closed: it exited or died (made up by the front, never sent)."""

    pid: int | None


FromWorker = WorkerReady | JobStarted | JobProgress | JobDone | JobFailed | WorkerExited
