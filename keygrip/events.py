"""Typed events yielded by Job.watch()."""

from __future__ import annotations

from dataclasses import dataclass

from keygrip.v1 import common_pb2


@dataclass(frozen=True)
class ProgressEvent:
    sequence: int
    stage: str
    value: float
    maximum: float
    fps: float
    eta_seconds: float       # < 0 when unknown
    message: str
    preview_png: bytes = b""

    @property
    def fraction(self) -> float:
        return self.value / self.maximum if self.maximum > 0 else 0.0


@dataclass(frozen=True)
class StateEvent:
    sequence: int
    state: str               # "queued", "running", "succeeded", "failed", "cancelled"
    message: str
    terminal: bool


def state_name(state: common_pb2.JobState.ValueType | int) -> str:
    return common_pb2.JobState.Name(common_pb2.JobState.ValueType(state)).removeprefix("JOB_STATE_").lower()


def from_proto(ev: common_pb2.JobEvent, previous_state: int) -> list[ProgressEvent | StateEvent]:
    """One wire event becomes a StateEvent when the state changed or the job ended, and a
    ProgressEvent when it carries progress."""
    out: list[ProgressEvent | StateEvent] = []
    if ev.HasField("progress"):
        p = ev.progress
        out.append(ProgressEvent(ev.sequence, p.stage, p.value, p.maximum, p.fps, p.eta_seconds,
                                 p.message, ev.preview_png))
    if ev.state != previous_state or ev.terminal or not out:
        out.append(StateEvent(ev.sequence, state_name(ev.state), ev.message, ev.terminal))
    return out
