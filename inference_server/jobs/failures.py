"""How a job that fails ends: a status for the user, a log line for the developer.

Whatever escapes a job handler ends as (code, reason, message), and the message names the user's
input as they know it (an upload's file name, a path as given, a sequence pattern) and says what to
do next:

- a KeygripError keeps its code and its message, with the artifact store's name of an upload (its
  digest) replaced by the user's file name, and the name put in front when the message lacks it;
- MemoryError becomes RESOURCE_EXHAUSTED, suggesting a smaller job;
- anything else is a bug: INTERNAL, with an error id that also stands in the log line carrying the
  traceback, and never the exception's repr;
- a task or worker process that died says so and how to find out more (error id, memory).

Each job handler describes its input (JobHandler.describe, which returns a JobInput); the
front uses the same words when a worker dies under a job (jobs/manager.py).
"""

from __future__ import annotations

import contextlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from inference_server.errors import JobCancelled, KeygripError, internal_message, new_error_id
from inference_server.jobs.tasks import TaskFailed

if TYPE_CHECKING:
    from google.protobuf import message

    from inference_server.store.artifacts import ArtifactStore
    from keygrip.v1 import common_pb2

DEFAULT_SMALLER = "a shorter frame range or a smaller frame size"


@dataclass(frozen=True)
class JobInput:
    """What a job works on and does, in the user's words, for the messages of a failed job.

    name: the input as the user knows it: an upload's file name, a path as given, a sequence pattern.
    doing: what the job does to it, as in "while capturing shot.mp4" ("capturing").
    kind: what the user gave, as in "this is a bug, not your footage" ("footage", "motion").
    smaller: how to make the job smaller when memory runs out.
    after: what follows the name in `what` (" onto the rig Armature").
    aliases: (text, replacement) pairs: how code that saw only the local file names it (the artifact
        store's path and digest of an upload) and what the user should read instead.
    """

    name: str
    doing: str = "running"
    kind: str = "input"
    smaller: str = DEFAULT_SMALLER
    after: str = ""
    aliases: tuple[tuple[str, str], ...] = ()

    @property
    def what(self) -> str:
        """"capturing shot.mp4"."""
        return f"{self.doing} {self.name}{self.after}"

    def for_user(self, message: str) -> str:
        """A message about this input with local names replaced by the user's, and the input named."""
        for text, replacement in sorted(self.aliases, key=lambda a: -len(a[0])):
            if text:
                message = message.replace(text, replacement)
        names = {self.name, Path(self.name).name}
        if not any(n and n in message for n in names):
            message = f"{self.name}: {message}"
        return message


def describe_media(media: common_pb2.MediaInput, artifacts: ArtifactStore | None, doing: str,
                   kind: str = "footage", smaller: str = DEFAULT_SMALLER) -> JobInput:
    """A JobInput for a request's MediaInput: the upload's file name, the path or the sequence pattern."""
    which = media.WhichOneof("source")
    if which == "artifact_id":
        name, aliases = _artifact_name(media.artifact_id, artifacts)
    elif which == "path":
        name, aliases = media.path, ()
    elif which == "sequence":
        name = media.sequence.pattern or "the image sequence"
        aliases = tuple(alias for frame in media.sequence.frames
                        for alias in _artifact_aliases(frame.artifact_id, artifacts, f"{name} frame {frame.number}"))
    else:
        name, aliases = "the job's input", ()
    return JobInput(name=name, doing=doing, kind=kind, smaller=smaller, aliases=aliases)


def describe_request(request: message.Message, artifacts: ArtifactStore | None, doing: str = "running",
                     kind: str = "input") -> JobInput:
    """The default description of a job: its request's first MediaInput field, if it has one."""
    for field, value in request.ListFields():
        if field.message_type is not None and field.message_type.full_name == "keygrip.v1.MediaInput":
            return describe_media(value, artifacts, doing, kind)
    return JobInput(name=f"this {request.DESCRIPTOR.name.removesuffix('Request')} job", doing=doing, kind=kind)


def artifact_name(artifact_id: str, artifacts: ArtifactStore | None, fallback: str = "") -> str:
    """The file name an artifact was uploaded with ("shot.mp4"), or fallback (default: "upload 1a2b3c4d5e6f")."""
    return _artifact_name(artifact_id, artifacts, fallback)[0]


def _artifact_name(artifact_id: str, artifacts: ArtifactStore | None, fallback: str = ""
                   ) -> tuple[str, tuple[tuple[str, str], ...]]:
    name = ""
    if artifacts is not None:
        try:
            name = artifacts.stat(artifact_id).name
        except Exception:  # a missing or damaged artifact still gets a name
            name = ""
    name = name or fallback or f"upload {artifact_id[:12]}"
    return name, _artifact_aliases(artifact_id, artifacts, name)


def _artifact_aliases(artifact_id: str, artifacts: ArtifactStore | None, name: str) -> tuple[tuple[str, str], ...]:
    aliases = [(artifact_id, name)] if artifact_id else []
    if artifacts is not None and artifact_id:
        with contextlib.suppress(Exception):  # not a digest: nothing is stored under it
            aliases.insert(0, (str(artifacts.path(artifact_id)), name))
    return tuple(aliases)


@dataclass(frozen=True)
class Failure:
    """How a job ends: code is a grpc.StatusCode name, error_id set for what the log must explain."""

    code: str
    reason: str
    message: str
    error_id: str = ""


def failure_for(exc: BaseException, job: JobInput, *, job_id: str, job_type: str, log: logging.Logger
                ) -> Failure:
    """The status a job ends with after `exc`, having logged it (with its traceback) for the developer."""
    extra = {"job_id": job_id, "job_type": job_type, "input": job.name}
    if isinstance(exc, JobCancelled):
        log.info("job cancelled", extra=extra)
        return Failure("CANCELLED", exc.reason, exc.message)
    if isinstance(exc, KeygripError):
        message = job.for_user(exc.message)
        # Expected (the user can fix it), so not an error of the server's; the traceback still helps.
        log.info("job failed: %s", message, exc_info=exc,
                 extra={**extra, "code": exc.code.name, "reason": exc.reason})
        return Failure(exc.code.name, exc.reason, message)
    error_id = new_error_id()
    extra["error_id"] = error_id
    if isinstance(exc, MemoryError) or isinstance(exc.__cause__, MemoryError):
        log.error("job ran out of memory (error id %s)", error_id, exc_info=exc, extra=extra)
        return Failure("RESOURCE_EXHAUSTED", "OUT_OF_MEMORY", out_of_memory_message(job, error_id), error_id)
    if isinstance(exc, TaskFailed) and exc.exitcode is not None:
        log.error("a task of the job died (error id %s): %s", error_id, exc, exc_info=exc, extra=extra)
        return Failure("INTERNAL", "TASK_DIED", died_message(job, "one of its helper processes", exc.exitcode,
                                                             error_id), error_id)
    log.error("job failed with an internal error (error id %s)", error_id, exc_info=exc, extra=extra)
    return Failure("INTERNAL", "INTERNAL", internal_message(job.what, error_id, job.kind), error_id)


def out_of_memory_message(job: JobInput, error_id: str) -> str:
    return (f"Keygrip ran out of memory while {job.what} (error id {error_id}): try {job.smaller}, or run "
            "fewer jobs at once (start the server with fewer --workers).")


def died_message(job: JobInput, process: str, exitcode: int | None, error_id: str, *, attempts: int = 1) -> str:
    """A job's process ended without a word: say how, and what the user can try. attempts: how many
    runs of the job it ended (the last one is `exitcode`'s)."""
    if exitcode is None:
        how = "it ended without an exit code"
    elif exitcode < 0:
        try:
            how = f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
    else:
        how = f"exit code {exitcode}"
    memory = ("the system stops the biggest process when memory runs out, so " if exitcode == -signal.SIGKILL
              else "if the machine ran out of memory, ")
    if attempts > 1:
        return (f"Keygrip's {process} died while {job.what}, on all {attempts} attempts (the last: {how}; error id "
                f"{error_id}): {memory}try {job.smaller}. Otherwise report the error id (the server log has the "
                "details).")
    return (f"Keygrip's {process} died while {job.what} ({how}; error id {error_id}): {memory}try "
            f"{job.smaller}. Otherwise try again; if it happens again, report the error id (the server log "
            "has the details).")
