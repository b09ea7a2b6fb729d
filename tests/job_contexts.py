"""Job contexts the in-process tests share (the server's own NullContext, with a cancel at a known point)."""

from __future__ import annotations

from inference_server.errors import JobCancelled
from inference_server.jobs.context import NullContext


class CancelAfter(NullContext):
    """A NullContext whose check_cancelled raises JobCancelled from its (n + 1)th call on."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.calls, self.n = 0, n

    def check_cancelled(self) -> None:
        self.calls += 1
        if self.calls > self.n:
            raise JobCancelled("cancelled by the test")
