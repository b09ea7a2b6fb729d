"""What a pipeline sees of the job it runs in: progress reporting and cooperative cancellation."""

from __future__ import annotations

from typing import Protocol


class JobContext(Protocol):
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

    def check_cancelled(self) -> None:
        """Raise inference_server.errors.JobCancelled if the user cancelled the job."""


class NullContext:
    """A context for scripts and tests that call pipelines directly, outside the server."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        self.events: list[tuple[str, float, float, str]] = []

    def progress(self, stage: str, value: float, maximum: float, message: str = "", *,
                 fps: float = 0.0, preview_png: bytes = b"") -> None:
        self.events.append((stage, value, maximum, message))
        if self.verbose:
            print(f"[{stage}] {value:.0f}/{maximum:.0f} {message}")

    def check_cancelled(self) -> None:
        return None
