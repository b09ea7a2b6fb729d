"""A subject capture's two passes side by side: the people pass (people.find_people: decoding,
detector looks, linking) on a thread of its own running ahead, and MediaPipe Pose on the subject's
boxes (inference.detect) following it, so that on two cores the time goes towards the longer pass
rather than the sum of both.

The pose pass cannot simply take each box as the people pass makes it: a frame's box is only known
once the people pass has ended. Linker.finish stitches stretches over the whole clip, joins the
ambiguous sightings to the paths it chose and drops tracks seen on too few of all the looks;
subject.choose picks among the finished tracks (for `auto` the person seen most over the clip, ids
numbered after the drop); the subject's path is a running median of their sightings, interpolated
between sightings, which needs the sightings after the frame (and a box held after a last sighting
becomes unknown once a sighting far later turns up). So the pose pass runs on provisional boxes:
the same code (finish, choose, mask_boxes) over the looks made so far, for the frames that the
provisional subject has READY_SIGHTINGS sightings after. Every box the pose pass used is checked
against the final one when the people pass ends; on any difference (or one a later provisional
update already shows, which stops the pose pass at once) the pose pass runs again on the final
boxes, as the sequential path does. The landmarks are therefore always the sequential path's; only
the time differs. Measured on the four distractor clips (100 frames, a look every 6 frames): with
the pose pass 3 looks behind, the provisional boxes were the final ones on every frame.

Each pass decodes its own frames: the pose pass trails the people pass by a few looks, and by up to
the whole clip where the subject is unseen (a box there waits for their next sighting or the end),
so sharing decoded frames would need a buffer as long as that lag; two decoders keep memory to a
few frames.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

from inference_server.errors import FailedPrecondition, InvalidInput, JobCancelled
from inference_server.jobs.context import JobContext
from inference_server.jobs.tasks import TaskRunner
from inference_server.media.video import frame_numbers, frames_in_range, probe
from inference_server.mocap.inference import chunk_count, detect
from inference_server.mocap.landmarks import Landmarks
from inference_server.mocap.people import People, find_people
from inference_server.mocap.subject import PATH_MEDIAN, Box, choose, mask_boxes
from inference_server.mocap.tracks import Track
from inference_server.store.artifacts import Artifact, ArtifactStore
from keygrip.v1 import mocap_pb2

# A frame's provisional box is handed over once the provisional subject has this many sightings
# after it: the running median (PATH_MEDIAN) and the interpolation around the frame then use
# sightings that are all there.
READY_SIGHTINGS = PATH_MEDIAN // 2 + 1
# Provisional updates (a Linker.finish and the boxes) may take at most this share of the people
# pass's time; on a long clip they become rarer instead of growing with its length squared.
UPDATE_SHARE = 0.1
_POLL_S = 0.1
_PROGRESS_INTERVAL_S = 0.25


def capture_subject(
    path: str | Path, subject: mocap_pb2.Subject, *, start: int = 0, end: int | None = None,
    hands: bool = False, face: bool = False, workers: int | None = None, name: str | None = None,
    stride: int = 1, discover_every: int = 1, ctx: JobContext,
) -> tuple[People, Track, Landmarks, bool]:
    """The people pass and the pose pass on the subject's boxes of frames start <= index < end,
    side by side when the pose pass runs in one process (see the module doc), else one after the
    other. Returns the people, the subject's track, the landmarks (exactly inference.detect's with
    subject=mask_boxes(...) of the final track) and whether the pose pass had to run again on the
    final boxes. stride, discover_every: as find_people's. Raises what find_people, choose and
    detect raise; JobCancelled stops both passes.
    """
    info = probe(path)
    first, last = frames_in_range(info, start, end, name)
    if chunk_count(len(frame_numbers(info, first, last)), workers) > 1:
        people = find_people(path, start=start, end=end, ctx=ctx, name=name, stride=stride,
                             discover_every=discover_every)
        track = choose(people, subject)
        return people, track, _pose(path, start, end, hands, face, workers,
                                    mask_boxes(people, track, np.arange(people.start, people.end)), ctx), False
    # Imported before the second thread starts: two threads importing MediaPipe for the first time at
    # once see each other's partly initialised modules (an AttributeError deep in its protobufs).
    import mediapipe  # noqa: F401

    boxes = LiveBoxes(subject, np.arange(first, last), ctx)
    thread = threading.Thread(
        target=boxes.run_people, name="keygrip-people", daemon=True,
        kwargs={"path": path, "start": start, "end": end, "name": name, "stride": stride,
                "discover_every": discover_every})
    thread.start()
    try:
        try:
            landmarks = _pose(path, start, end, hands, face, 1, boxes, ctx)
            replay = not boxes.matches_final()
        except StaleBox:
            replay = True
        if replay:
            landmarks = _pose(path, start, end, hands, face, 1, boxes.final(), ctx)
        people, track = boxes.finished()
    finally:
        boxes.stop.set()
        thread.join()
    return people, track, landmarks, replay


def _pose(path: str | Path, start: int, end: int | None, hands: bool, face: bool, workers: int | None,
          boxes: Mapping[int, Box], ctx: JobContext) -> Landmarks:
    return detect(path, start=start, end=end, hands=hands, face=face, workers=workers, subject=boxes, ctx=ctx)


class StaleBox(Exception):
    """A box the pose pass read is not the final one: the pose pass must run again."""


class LiveBoxes(Mapping[int, Box]):
    """The subject's boxes as the people pass (run_people, on its own thread) makes them known.

    Read from the pose pass's thread: a frame's box waits until it is ready (provisionally, or
    finally once the people pass has ended), polling the job's cancellation meanwhile; a box read
    is remembered, to be checked against the final one. Raises StaleBox as soon as a box read is
    known to differ from the final one (or from a later provisional one)."""

    def __init__(self, subject: mocap_pb2.Subject, frames: np.ndarray, ctx: JobContext) -> None:
        self.subject, self.frames, self.ctx = subject, frames, ctx
        self.stop = threading.Event()
        self._lock = threading.Condition()
        self._boxes: dict[int, Box] = {}  # provisional, for the frames before _ready
        self._ready = int(frames[0]) if len(frames) else 0
        self._used: dict[int, Box] = {}
        self._next = self._ready  # the frame the pose pass reads next
        self._stale = False
        self._people: People | None = None
        self._error: BaseException | None = None
        self._done = False
        self._final: tuple[Track, dict[int, Box]] | None = None
        self._verified = False  # every box read before the people pass ended was checked
        self._progress: tuple[str, float, float, str, float] | None = None
        self._last_report = 0.0
        self._update_s = 0.0
        self._t0 = time.perf_counter()

    # The people pass's thread.

    def run_people(self, *, path: str | Path, start: int, end: int | None, name: str | None, stride: int,
                   discover_every: int) -> None:
        try:
            people = find_people(path, start=start, end=end, ctx=_ThreadContext(self, self.ctx), name=name,
                                 stride=stride, discover_every=discover_every, on_look=self.offer)
        except BaseException as exc:  # handed to the pose pass's thread, which raises it
            self.end(error=exc)
            return
        self.end(people)

    def end(self, people: People | None = None, error: BaseException | None = None) -> None:
        """The people pass has ended, with its people or an error."""
        with self._lock:
            self._people, self._error, self._done = people, error, True
            self._lock.notify_all()

    def offer(self, frame: int, so_far: Callable[[], People]) -> None:
        """After the people pass's look at `frame` (find_people's on_look): hand over the boxes of
        the frames now ready, and mark the capture stale if a box read already changed."""
        # An update only when the pose pass comes near the frames handed over (it is the slower pass:
        # most looks need none), and within its share of the time.
        if (self._next < self._ready - (frame - self._ready)
                or self._update_s > UPDATE_SHARE * (time.perf_counter() - self._t0)):
            return
        t = time.perf_counter()
        people = so_far()
        try:
            track = choose(people, self.subject)
        except (InvalidInput, FailedPrecondition):  # nobody yet, or not at the point yet: wait for more looks
            self._update_s += time.perf_counter() - t
            return
        ready = track.frames[-READY_SIGHTINGS] if len(track.frames) >= READY_SIGHTINGS else self._ready
        boxes = mask_boxes(people, track, self.frames[self.frames < ready]) if ready > self._ready else {}
        with self._lock:
            if any(boxes.get(f, box) != box for f, box in self._used.items()):
                self._stale = True
            if ready > self._ready:
                self._boxes, self._ready = boxes, ready
            self._lock.notify_all()
        self._update_s += time.perf_counter() - t

    def report(self, stage: str, value: float, maximum: float, message: str, fps: float) -> None:
        with self._lock:
            self._progress = (stage, value, maximum, message, fps)

    # The pose pass's thread.

    def __getitem__(self, frame: int) -> Box:
        if not len(self.frames) or not self.frames[0] <= frame <= self.frames[-1]:
            raise KeyError(frame)
        with self._lock:
            self._next = frame
            while True:
                if self._stale:
                    raise StaleBox()
                if self._done:
                    break
                if frame < self._ready:
                    box = self._boxes[frame]
                    self._used[frame] = box
                    return box
                self._lock.wait(_POLL_S)
                self._while_waiting()
        box = self.final()[frame]
        if not self._verified:
            if not self.matches_final():
                raise StaleBox()
            self._verified = True
        self._used[frame] = box
        return box

    def _while_waiting(self) -> None:
        """Poll the job's cancellation; before the pose pass has begun, report the people pass's progress."""
        self._lock.release()
        try:
            self.ctx.check_cancelled()
            now = time.perf_counter()
            if not self._used and self._progress is not None and now - self._last_report >= _PROGRESS_INTERVAL_S:
                self._last_report = now
                stage, value, maximum, message, fps = self._progress
                self.ctx.progress(stage, value, maximum, message, fps=fps)
        finally:
            self._lock.acquire()

    def __iter__(self) -> Iterator[int]:
        return iter(self.frames.tolist())

    def __len__(self) -> int:
        return len(self.frames)

    def finished(self) -> tuple[People, Track]:
        """The people pass's result and the subject's track, once it has ended (waiting for it)."""
        with self._lock:
            while not self._done:
                self._lock.wait(_POLL_S)
                self._while_waiting()
        if self._error is not None:
            raise self._error
        assert self._people is not None
        if self._final is None:
            track = choose(self._people, self.subject)
            self._final = track, mask_boxes(self._people, track, np.arange(self._people.start, self._people.end))
        return self._people, self._final[0]

    def final(self) -> dict[int, Box]:
        """The final boxes (as the sequential path's), once the people pass has ended."""
        self.finished()
        assert self._final is not None
        return self._final[1]

    def matches_final(self) -> bool:
        """Whether every box read so far is the final one."""
        final = self.final()
        return all(final.get(f) == box for f, box in self._used.items())


class _ThreadContext:
    """What find_people sees of the job on the people pass's thread: progress is handed to the pose
    pass's thread (which reports it), and cancelling the capture (the stop event) ends the pass."""

    def __init__(self, boxes: LiveBoxes, ctx: JobContext) -> None:
        self._boxes, self._ctx = boxes, ctx

    @property
    def job_id(self) -> str:
        return self._ctx.job_id

    @property
    def scratch(self) -> Path:
        return self._ctx.scratch

    @property
    def artifacts(self) -> ArtifactStore:
        return self._ctx.artifacts

    @property
    def tasks(self) -> TaskRunner:
        return self._ctx.tasks

    def progress(self, stage: str, value: float, maximum: float, message: str = "", *, fps: float = 0.0,
                 preview_png: bytes = b"") -> None:
        self._boxes.report(stage, value, maximum, message, fps)

    def check_cancelled(self) -> None:
        if self._boxes.stop.is_set():
            raise JobCancelled("the capture stopped")

    def put_bytes(self, data: bytes, name: str, media_type: str) -> Artifact:
        raise NotImplementedError("the people pass stores no results")

    def put_file(self, path: Path, name: str, media_type: str) -> Artifact:
        raise NotImplementedError("the people pass stores no results")
