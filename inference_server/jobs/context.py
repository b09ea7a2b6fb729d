"""What a job handler sees of the job it runs in: JobContext.

Handlers and the code they call type their context as JobContext and use nothing else of it. Inside
the server a worker process gives them a WorkerContext (jobs/workers.py); scripts and tests that
call handlers, capture or retargeting directly pass a NullContext; a cluster executor brings its own.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Protocol

from inference_server.jobs.tasks import LocalTaskRunner, TaskRunner
from inference_server.store.artifacts import Artifact, ArtifactStore


class JobContext(Protocol):
    @property
    def job_id(self) -> str:
        """The job's id (for provenance in results)."""
        ...

    @property
    def scratch(self) -> Path:
        """A folder of the job's own for temporary files; removed when a server job ends."""
        ...

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store, to read inputs (path, read_bytes, stat). Add results with put_bytes
        or put_file, never through the store itself, so that they belong to the job."""
        ...

    @property
    def tasks(self) -> TaskRunner:
        """Where work the job splits up itself runs (see jobs/tasks.py)."""
        ...

    def progress(
        self,
        stage: str,
        value: float,
        maximum: float,
        message: str = "",
        *,
        fps: float = 0.0,
        preview_png: bytes = b"",
    ) -> None:
        """Report progress of the current stage; cheap enough to call once per frame batch."""
        ...

    def check_cancelled(self) -> None:
        """Raise inference_server.errors.JobCancelled if the user cancelled the job."""
        ...

    def put_bytes(self, data: bytes, name: str, media_type: str) -> Artifact:
        """Store a result of the job as an artifact."""
        ...

    def put_file(self, path: Path, name: str, media_type: str) -> Artifact:
        """Copy a file the job wrote (in scratch) into the artifact store as a result."""
        ...


class JobOutputs:
    """What every concrete context does the same way: results go into its artifact store and their
    ids into `produced`, so that they belong to the job."""

    produced: list[str]

    @property
    def artifacts(self) -> ArtifactStore:
        raise NotImplementedError

    def put_bytes(self, data: bytes, name: str, media_type: str) -> Artifact:
        art = self.artifacts.put_bytes(data, name, media_type)
        self.produced.append(art.id)
        return art

    def put_file(self, path: Path, name: str, media_type: str) -> Artifact:
        art = self.artifacts.put_file(path, name, media_type)
        self.produced.append(art.id)
        return art


class NullContext(JobOutputs):
    """A JobContext for scripts and tests that run handlers, capture or retargeting directly, outside
    the server.

    Progress is recorded in `events` (and printed when verbose); nothing is ever cancelled. The
    artifact store and the scratch folder are the ones given, or new temporary folders made on first
    use and left in place for the caller to read.
    """

    def __init__(self, verbose: bool = False, *, artifacts: ArtifactStore | None = None,
                 scratch: Path | None = None, tasks: TaskRunner | None = None, job_id: str = "local") -> None:
        self.verbose = verbose
        self.job_id = job_id
        self.tasks: TaskRunner = tasks or LocalTaskRunner()
        self.events: list[tuple[str, float, float, str]] = []
        self.produced: list[str] = []
        self._artifacts = artifacts
        self._scratch = scratch

    @property
    def artifacts(self) -> ArtifactStore:
        if self._artifacts is None:
            self._artifacts = ArtifactStore(Path(tempfile.mkdtemp(prefix="keygrip-artifacts-")))
        return self._artifacts

    @property
    def scratch(self) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="keygrip-scratch-"))
        return self._scratch

    def progress(self, stage: str, value: float, maximum: float, message: str = "", *,
                 fps: float = 0.0, preview_png: bytes = b"") -> None:
        self.events.append((stage, value, maximum, message))
        if self.verbose:
            print(f"[{stage}] {value:.0f}/{maximum:.0f} {message}")

    def check_cancelled(self) -> None:
        return None
