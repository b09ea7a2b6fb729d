"""MediaPipe landmarks for a clip, in tracking (video) mode, spread over CPU cores.

One MediaPipe graph is sequential and keeps about one core busy, so the frame range is cut into
consecutive chunks run side by side: the calling process runs the first chunk itself (no start-up
cost) and the others run as tasks of the job (jobs/tasks.py: locally, one spawned process each).
Each task decodes its own chunk and first runs the tracker over WARMUP_FRAMES frames before the
chunk (the overlap) so that detection, tracking and landmark smoothing have settled when its own
frames start; the overlap results are discarded.

Several chosen people (detect_each, capturing everyone): each person's pass is a lane of its own
where there are processes for it, several people's passes one after the other in a lane where
there are not, and a person's frames in chunks when there are more processes than people.

Seams: MediaPipe tracks the first person it detects. With several people in view, a chunk could
lock onto someone else than the chunk before it. On the overlap frames both chunks saw the same
images, so the parent compares them, and when they tracked different people it runs that chunk again
with the warm-up frames masked to the previous chunk's person, which the tracker then follows.

Models: Pose (model_complexity=1, smoothed) for the body alone; Holistic (model_complexity=1, no
refined face) when hands or face are asked for. Holistic's left_hand_landmarks is the subject's own
left hand (it is found from the pose's left wrist, landmark 15); checked on real footage, and
tests/test_mocap_inference.py checks it again.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from inference_server.errors import FailedPrecondition, InvalidInput
from inference_server.jobs.context import JobContext
from inference_server.media.video import (
    DEFAULT_SEQUENCE_FPS,
    MediaInfo,
    frame_numbers,
    frames_in_range,
    iter_frames,
    probe,
)
from inference_server.mocap.landmarks import Landmarks

T = TypeVar("T")

NUM_POSE = 33
NUM_HAND = 21
NUM_FACE = 468
WARMUP_FRAMES = 15
# A subject whose box is under this share of the frame's height is tracked in a square around them,
# upscaled to CROP_SIDE pixels (_Crop): MediaPipe Pose's own detector misses people that small.
SMALL_BOX_SHARE = 1 / 3
CROP_SIDE = 512
CHUNK_MIN_FRAMES = 60
# Two chunks tracked the same person when their overlap landmarks agree within this normalised
# distance (mean over the visible landmarks); different people are much further apart.
SAME_PERSON_MAX_DIST = 0.05
_PROGRESS_INTERVAL_S = 0.25
_POLL_S = 0.1


@dataclass(frozen=True)
class _Chunk:
    """Frames [start, end) are kept; [warm_start, start) only warm the tracker up."""

    index: int
    warm_start: int
    start: int
    end: int


@dataclass
class _ChunkResult:
    """Per-frame arrays of one chunk over [warm_start, end); layouts as in Landmarks, float32."""

    frame_indices: np.ndarray
    times: np.ndarray
    pose_image: np.ndarray
    pose_world: np.ndarray
    pose_visibility: np.ndarray
    pose_present: np.ndarray
    left_hand_image: np.ndarray | None = None
    right_hand_image: np.ndarray | None = None
    face_image: np.ndarray | None = None

    def select(self, mask: np.ndarray) -> _ChunkResult:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{k: v[mask] for k, v in values.items() if v is not None})


def detect(
    path: str | Path,
    *,
    start: int = 0,
    end: int | None = None,
    hands: bool = False,
    face: bool = False,
    workers: int | None = None,
    max_side: int = 1280,
    subject: Mapping[int, tuple[float, float, float, float]] | None = None,
    ctx: JobContext,
) -> Landmarks:
    """MediaPipe landmarks of the tracked person over frames start <= index < end of a clip.

    For an image sequence, start and end are frame numbers on disk (a start before the first frame
    means from the first) and the range is trimmed to the frames there are. Numbers missing from
    the sequence inside the range get a row each where nobody was seen, so the result has a frame
    per number and the solver fills the gaps like any lost detection.

    workers: processes to use; None picks 1 on two cores or fewer, else min(cores - 1,
        frames / CHUNK_MIN_FRAMES). A chunk is
        never shorter than WARMUP_FRAMES, which may lower an explicit value on very short ranges.
    max_side: frames are downsized so that their longer side is at most this many pixels before
        inference (normalised landmarks do not depend on it; speed and accuracy do).
    subject: the chosen person's normalised box (x0, y0, x1, y1) per frame number (subject.py);
        everything outside it is blacked out, the whole frame where it is empty or not given. Read
        one frame at a time, in order, as the frame is tracked (subject_pass.py hands boxes over
        as they become known); with more than one worker it must be picklable.
    Progress goes to ctx as stage "inference" (value = frames done of the range); ctx.check_cancelled()
    is polled at least every 0.1 s and cancelling ends the chunk tasks (ctx.tasks).
    Raises InvalidInput for an unreadable clip or an empty range, FailedPrecondition when nobody is
    found in any frame.
    """
    info = probe(path)
    start, end = frames_in_range(info, start, end)
    # The frames there are in the range (a sequence may skip numbers); chunks split them evenly.
    numbers = frame_numbers(info, start, end)
    total = len(numbers)
    chunks = _split(numbers, end, chunk_count(total, workers))
    job = _Job(str(path), hands, face, max_side, subject)
    results = [lane[0] for lane in _run_lanes([[(job, c)] for c in chunks], total, ctx)]
    results = _fix_seams(job, chunks, results, ctx)
    kept = [r.select(r.frame_indices >= c.start) for c, r in zip(chunks, results, strict=True)]
    return _landmarks(kept, info, Path(path).name, start, end)


def detect_each(
    path: str | Path,
    subjects: Mapping[int, Mapping[int, tuple[float, float, float, float]]],
    *,
    start: int = 0,
    end: int | None = None,
    hands: bool = False,
    face: bool = False,
    workers: int | None = None,
    max_side: int = 1280,
    ctx: JobContext,
) -> dict[int, Landmarks | FailedPrecondition]:
    """detect() for each of several chosen people over the same frames, person id -> their boxes
    (`subject` of detect()). The processes (workers; None: inference_processes) are shared out:
    several people side by side, and each person's frames in chunks when there are more processes
    than people.
    Returns per person their landmarks, or the FailedPrecondition saying that nobody was found in
    their box. Progress: stage "inference", frames done over all the people."""
    info = probe(path)
    start, end = frames_in_range(info, start, end)
    numbers = frame_numbers(info, start, end)
    total = len(numbers)
    ids = list(subjects)
    processes = inference_processes(workers, total)
    chunks = _split(numbers, end, max(1, min(processes // len(ids), chunk_count(total, workers))))
    jobs = {i: _Job(str(path), hands, face, max_side, subjects[i]) for i in ids}
    pairs = [(i, c) for i in ids for c in chunks]
    n = min(processes, len(pairs))
    lanes = [pairs[k::n] for k in range(n)]
    done = _run_lanes([[(jobs[i], c) for i, c in lane] for lane in lanes], total * len(ids), ctx)
    tracked = {(i, c.index): r for lane, rs in zip(lanes, done, strict=True)
               for (i, c), r in zip(lane, rs, strict=True)}
    out: dict[int, Landmarks | FailedPrecondition] = {}
    for i in ids:
        results = _fix_seams(jobs[i], chunks, [tracked[i, c.index] for c in chunks], ctx)
        kept = [r.select(r.frame_indices >= c.start) for c, r in zip(chunks, results, strict=True)]
        try:
            out[i] = _landmarks(kept, info, Path(path).name, start, end)
        except FailedPrecondition as exc:
            out[i] = exc
    return out


def _landmarks(kept: list[_ChunkResult], info: MediaInfo, name: str, start: int, end: int) -> Landmarks:
    """The chunks' kept frames, in order, as Landmarks (a sequence's missing numbers filled in).
    Raises FailedPrecondition when nobody is found on any frame."""

    def cat(field: str) -> np.ndarray:
        return np.concatenate([getattr(r, field) for r in kept])

    def cat_tracks(field: str) -> np.ndarray | None:
        """Hand and face tracks, which only Holistic has."""
        return None if getattr(kept[0], field) is None else cat(field)

    present = cat("pose_present")
    if not present.any():
        raise FailedPrecondition(
            f"no person found in frames {start}-{end - 1} of {name}: MediaPipe saw nobody in "
            "any frame. Use a clip where one person is in full view, or pick a frame range that shows them.",
            reason="NO_PERSON",
        )
    landmarks = Landmarks(
        times=cat("times").astype(np.float64),
        frame_indices=cat("frame_indices").astype(np.int64),
        image_size=(info.width, info.height),
        fps=info.fps,
        pose_image=cat("pose_image"),
        pose_world=cat("pose_world"),
        pose_visibility=cat("pose_visibility"),
        pose_present=present,
        left_hand_image=cat_tracks("left_hand_image"),
        right_hand_image=cat_tracks("right_hand_image"),
        face_image=cat_tracks("face_image"),
    )
    return _fill_missing_numbers(landmarks, start, end, info.first_frame) if info.is_image_sequence else landmarks


def inference_processes(workers: int | None, frames: int) -> int:
    """The processes detect_each shares out among people (and their chunks) given its `workers`
    argument, for `frames` frames a person. Unlike chunks, two people side by side gain on two cores
    too (no warm-up frames twice; measured 1.15-1.83x with 2-3 people over 100 frames,
    scripts/bench_everyone.py), while a short clip does not pay for starting a process."""
    if workers is not None:
        return max(1, workers)
    cores = os.cpu_count() or 1
    if cores == 1 or frames < CHUNK_MIN_FRAMES:
        return 1
    return 2 if cores == 2 else cores - 1


def chunk_count(total: int, workers: int | None) -> int:
    """How many chunks (processes) detect() uses for `total` frames given its `workers` argument."""
    if workers is None:
        # One MediaPipe graph keeps about one core busy, and decoding needs some of another; a
        # spawned worker costs 1-2 s to import MediaPipe. Measured on 2 cores, a second worker
        # lost (0.63x), so parallel chunks start at 3 cores and only for clips long enough to pay.
        cores = os.cpu_count() or 1
        workers = 1 if cores <= 2 else min(cores - 1, total // CHUNK_MIN_FRAMES)
    return max(1, min(workers, total // WARMUP_FRAMES))


def _fill_missing_numbers(lm: Landmarks, start: int, end: int, first: int) -> Landmarks:
    """Landmarks with one row per frame number in [start, end): numbers missing on disk become
    frames where nobody was seen (NaN landmarks, visibility 0), at (number - first) / fps."""
    numbers = np.arange(start, end, dtype=np.int64)
    if len(numbers) == lm.num_frames:
        return lm
    rows = lm.frame_indices - start
    values: dict[str, Any] = {}
    for f in fields(lm):
        value = getattr(lm, f.name)
        if not isinstance(value, np.ndarray) or f.name in ("times", "frame_indices"):
            continue
        fill: Any = False if value.dtype == bool else (0 if f.name == "pose_visibility" else np.nan)
        full = np.full((len(numbers), *value.shape[1:]), fill, dtype=value.dtype)
        full[rows] = value
        values[f.name] = full
    fps = lm.fps if lm.fps > 0 else DEFAULT_SEQUENCE_FPS
    return replace(lm, times=(numbers - first) / fps, frame_indices=numbers, **values)


@dataclass(frozen=True)
class _Job:
    path: str
    hands: bool
    face: bool
    max_side: int
    subject: Mapping[int, tuple[float, float, float, float]] | None = None


def _split(numbers: np.ndarray, end: int, n: int) -> list[_Chunk]:
    """n chunks of about as many frames each; numbers: the frames there are before end, ascending."""
    start = int(numbers[0])
    cuts = np.linspace(0, len(numbers), n + 1).round().astype(int)
    bounds = [int(numbers[c]) for c in cuts[:-1]] + [end]
    return [
        _Chunk(i, max(start, int(a) - WARMUP_FRAMES) if i else int(a), int(a), int(b))
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    ]


class _Tracker:
    """One MediaPipe graph in tracking mode; turns its results into arrays."""

    def __init__(self, hands: bool, face: bool) -> None:
        import mediapipe as mp  # heavy: imported where inference runs, not where the module is loaded

        self.hands, self.face = hands, face
        self.holistic = hands or face
        if self.holistic:
            self.graph = mp.solutions.holistic.Holistic(
                static_image_mode=False, model_complexity=1, smooth_landmarks=True,
                refine_face_landmarks=False)
        else:
            self.graph = mp.solutions.pose.Pose(
                static_image_mode=False, model_complexity=1, smooth_landmarks=True,
                enable_segmentation=False)

    def close(self) -> None:
        self.graph.close()

    def run(self, job: _Job, chunk: _Chunk, hint: dict[int, tuple[float, float, float, float]] | None,
            on_frame: Callable[[int], None]) -> _ChunkResult:
        """Track frames [chunk.warm_start, chunk.end); on_frame(kept frames done) after each frame.

        hint: normalised boxes (x0, y0, x1, y1) per warm-up frame; outside them the image is blacked
        out so that the detector can only find the person inside.
        """
        rows: dict[str, list] = {k: [] for k in ("idx", "t", "pi", "pw", "pv", "pp", "lh", "rh", "fc")}
        done = 0
        for frame in prefetch(iter_frames(job.path, chunk.warm_start, chunk.end, job.max_side)):
            # MediaPipe refuses views (a rotated or odd-width frame can be one): pass a contiguous copy.
            image = np.ascontiguousarray(frame.image)
            box = None if job.subject is None else job.subject.get(frame.index, (0.0, 0.0, 0.0, 0.0))
            if box is not None:
                image = _mask_outside(image, box)
            if hint and frame.index in hint:
                image = _mask_outside(image, hint[frame.index])
            crop = None
            if box is not None:
                crop = _Crop.around(box, image.shape)
                if crop is not None:
                    image, box = crop.image(image), crop.box(box)
            image.flags.writeable = False
            r = self.graph.process(image)
            if box is not None and r.pose_landmarks is not None and _off(r.pose_landmarks, box, image.shape):
                # MediaPipe goes on tracking what it tracked on the last frame: after a crossing, the
                # other person's body inside the subject's box. An empty frame makes it lose that, and
                # the frame again makes it look afresh (the frame is dropped later if it is still off).
                self.graph.process(np.zeros_like(image))
                r = self.graph.process(image)
            rows["idx"].append(frame.index)
            rows["t"].append(frame.time)
            pose = r.pose_landmarks
            in_frame = crop.to_frame if crop is not None else (lambda xyz: xyz)
            rows["pp"].append(pose is not None)
            rows["pi"].append(in_frame(_xyz(pose, NUM_POSE)))
            rows["pw"].append(_xyz(r.pose_world_landmarks, NUM_POSE))
            rows["pv"].append(np.array([lm.visibility for lm in pose.landmark], np.float32)
                              if pose is not None else np.zeros(NUM_POSE, np.float32))
            if self.hands:
                rows["lh"].append(in_frame(_xyz(r.left_hand_landmarks, NUM_HAND)))
                rows["rh"].append(in_frame(_xyz(r.right_hand_landmarks, NUM_HAND)))
            if self.face:
                rows["fc"].append(in_frame(_xyz(r.face_landmarks, NUM_FACE)))
            if frame.index >= chunk.start:
                done += 1
            on_frame(done)
        if not rows["idx"]:
            raise InvalidInput(f"{Path(job.path).name}: frames {chunk.warm_start}-{chunk.end - 1} "
                               "could not be decoded; the file may be damaged.")
        return _ChunkResult(
            frame_indices=np.asarray(rows["idx"], np.int64),
            times=np.asarray(rows["t"], np.float64),
            pose_image=np.stack(rows["pi"]),
            pose_world=np.stack(rows["pw"]),
            pose_visibility=np.stack(rows["pv"]),
            pose_present=np.asarray(rows["pp"], bool),
            left_hand_image=np.stack(rows["lh"]) if self.hands else None,
            right_hand_image=np.stack(rows["rh"]) if self.hands else None,
            face_image=np.stack(rows["fc"]) if self.face else None,
        )


def prefetch(frames: Iterator[T], depth: int = 4) -> Iterator[T]:
    """Yield from `frames`, produced by a background thread up to `depth` items ahead.

    Decoding and resizing release the GIL, and so does MediaPipe's graph: overlapping them keeps
    two cores busy where a plain loop alternates between them.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in frames:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as exc:  # handed to the consumer, which raises it
            buffer.put(exc)

    thread = threading.Thread(target=produce, name="keygrip-decode", daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _xyz(landmarks: Any, n: int) -> np.ndarray:
    if landmarks is None:
        return np.full((n, 3), np.nan, np.float32)
    return np.array([(lm.x, lm.y, lm.z) for lm in landmarks.landmark], np.float32)


def _off(pose: Any, box: tuple[float, float, float, float], shape: tuple[int, ...]) -> bool:
    """Whether a pose's hips lie off the chosen subject's box (subject.off_subject)."""
    from inference_server.mocap.subject import off_subject

    hips = pose.landmark[23], pose.landmark[24]
    return off_subject(box, ((hips[0].x + hips[1].x) / 2, (hips[0].y + hips[1].y) / 2), (shape[1], shape[0]))


@dataclass(frozen=True)
class _Crop:
    """A square of the frame (pixels; it may reach past the frame's edges, which read black) that
    MediaPipe Pose sees instead of the whole frame, upscaled to CROP_SIDE: a person far from the
    camera is too small for its detector in the whole frame, as for people.PersonDetector's."""

    x0: float
    y0: float
    side: float
    width: int
    height: int

    @classmethod
    def around(cls, box: tuple[float, float, float, float], shape: tuple[int, ...]) -> _Crop | None:
        """The square around a subject's box (normalised, subject.mask_boxes), as high as the box and
        centred on it, when the box is under SMALL_BOX_SHARE of the frame's height; else None."""
        h, w = shape[:2]
        x0, y0, x1, y1 = box
        side = (y1 - y0) * h
        if side <= 0 or side >= SMALL_BOX_SHARE * h:
            return None
        return cls((x0 + x1) / 2 * w - side / 2, (y0 + y1) / 2 * h - side / 2, side, w, h)

    def image(self, image: np.ndarray) -> np.ndarray:
        import cv2

        scale = CROP_SIDE / self.side
        matrix = np.array([[scale, 0, -self.x0 * scale], [0, scale, -self.y0 * scale]], np.float32)
        return cv2.warpAffine(image, matrix, (CROP_SIDE, CROP_SIDE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))

    def box(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A box normalised to the frame, normalised to the square."""
        x0, y0, x1, y1 = box
        return ((x0 * self.width - self.x0) / self.side, (y0 * self.height - self.y0) / self.side,
                (x1 * self.width - self.x0) / self.side, (y1 * self.height - self.y0) / self.side)

    def to_frame(self, xyz: np.ndarray) -> np.ndarray:
        """Landmarks normalised to the square (x, y; z on x's scale), normalised to the frame."""
        out = xyz.copy()
        out[:, 0] = (self.x0 + xyz[:, 0] * self.side) / self.width
        out[:, 1] = (self.y0 + xyz[:, 1] * self.side) / self.height
        out[:, 2] = xyz[:, 2] * self.side / self.width
        return out


def _mask_outside(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    out = np.zeros_like(image)
    ys, ye = max(0, int(y0 * h)), min(h, int(np.ceil(y1 * h)))
    xs, xe = max(0, int(x0 * w)), min(w, int(np.ceil(x1 * w)))
    out[ys:ye, xs:xe] = image[ys:ye, xs:xe]
    return out


def _track_lane(lane: list[tuple[_Job, _Chunk]], *, report: Callable[[int], None]) -> list[_ChunkResult]:
    """A task (jobs/tasks.py): track a lane's chunks one after the other, reporting now and then the
    kept frames done over all of them."""
    last, before = 0.0, 0
    results: list[_ChunkResult] = []

    def on_frame(done: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= _PROGRESS_INTERVAL_S:
            last = now
            report(before + done)

    for job, chunk in lane:
        results.append(_run_tracker(job, chunk, None, on_frame))
        before += int((results[-1].frame_indices >= chunk.start).sum())
    return results


def _run_tracker(job: _Job, chunk: _Chunk, hint: dict[int, tuple[float, float, float, float]] | None,
                 on_frame: Callable[[int], None]) -> _ChunkResult:
    tracker = _Tracker(job.hands, job.face)
    try:
        return tracker.run(job, chunk, hint, on_frame)
    finally:
        tracker.close()


class _Progress:
    """Sums the frames done by every chunk and reports them to the job context, throttled."""

    def __init__(self, ctx: JobContext, n_chunks: int, total: int) -> None:
        self.ctx, self.total = ctx, total
        self.done = [0] * n_chunks
        self.t0 = time.monotonic()
        self.last = 0.0

    def update(self, chunk: int, done: int, force: bool = False) -> None:
        self.done[chunk] = done
        now = time.monotonic()
        if force or now - self.last >= _PROGRESS_INTERVAL_S:
            self.last = now
            n = sum(self.done)
            fps = n / max(now - self.t0, 1e-6)
            self.ctx.progress("inference", n, self.total, f"tracking frame {n} of {self.total}", fps=fps)


def _run_lanes(lanes: list[list[tuple[_Job, _Chunk]]], total: int, ctx: JobContext) -> list[list[_ChunkResult]]:
    """Lanes of chunks to track, each lane's one after the other: lane 0 in this process, the others
    as tasks running meanwhile. total: the kept frames of all of them, for progress."""
    progress = _Progress(ctx, len(lanes), total)
    results: list[list[_ChunkResult] | None] = [None] * len(lanes)

    def lane_name(lane: list[tuple[_Job, _Chunk]]) -> str:
        chunk = lane[0][1]
        people = f" for {len(lane)} people" if len(lane) > 1 else ""
        return f"inference worker for frames {chunk.start}-{chunk.end - 1}{people}"

    with ctx.tasks.group() as group:
        tasks = [group.submit(_track_lane, lane, name=lane_name(lane),
                              on_progress=functools.partial(progress.update, k))
                 for k, lane in enumerate(lanes[1:], 1)]

        def collect() -> None:
            """Take the results that arrived (raising a task's error here)."""
            for k, task in enumerate(tasks, 1):
                if results[k] is None and task.done():
                    done: list[_ChunkResult] = task.result()
                    results[k] = done
                    progress.update(k, sum(int((r.frame_indices >= c.start).sum())
                                           for r, (_, c) in zip(done, lanes[k], strict=True)))

        last_check, before = 0.0, 0

        def on_frame(done: int) -> None:
            nonlocal last_check
            progress.update(0, before + done)
            now = time.monotonic()
            if now - last_check >= _POLL_S:
                last_check = now
                ctx.check_cancelled()
                group.wait(tasks, timeout=0)
                collect()

        own = []
        for job, chunk in lanes[0]:
            own.append(_run_tracker(job, chunk, None, on_frame))
            before += int((own[-1].frame_indices >= chunk.start).sum())
        results[0] = own
        while any(r is None for r in results):
            ctx.check_cancelled()
            group.wait(tasks, timeout=_POLL_S)
            collect()
        progress.update(0, progress.done[0], force=True)
    return [r for r in results if r is not None]


def _fix_seams(job: _Job, chunks: list[_Chunk], results: list[_ChunkResult], ctx: JobContext
               ) -> list[_ChunkResult]:
    """Re-run any chunk that tracked a different person than the chunk before it (see module doc).

    First the chunk runs again with a longer warm-up masked to the previous chunk's person (people
    may overlap in the image at the seam but stand apart a little earlier). If it still disagrees,
    the two chunks run as one, sequentially, which is exactly what a single process would do.
    """
    hints: list[dict[int, tuple[float, float, float, float]] | None] = [None] * len(chunks)
    for k in range(1, len(chunks)):
        prev, chunk = chunks[k - 1], chunks[k]
        if _same_person(results[k - 1], results[k], np.arange(chunk.warm_start, chunk.start)):
            continue
        longer = _Chunk(k, max(prev.start, chunk.start - 4 * WARMUP_FRAMES), chunk.start, chunk.end)
        hint = _person_boxes(results[k - 1], np.arange(longer.warm_start, longer.start))
        if not hint:
            continue  # the previous chunk lost its person at the seam: nobody to follow
        retry = _track(job, longer, hint, ctx)
        if _same_person(results[k - 1], retry, np.arange(chunk.warm_start, chunk.start)):
            results[k], hints[k] = retry, hint
            continue
        merged = _track(job, _Chunk(k, prev.warm_start, prev.start, chunk.end), hints[k - 1], ctx)
        results[k - 1] = merged.select(merged.frame_indices < chunk.start)
        results[k] = merged.select(merged.frame_indices >= chunk.warm_start)
        hints[k] = hints[k - 1]
    return results


def _track(job: _Job, chunk: _Chunk, hint: dict[int, tuple[float, float, float, float]] | None,
           ctx: JobContext) -> _ChunkResult:
    """Run one chunk in this process, checking for cancellation every frame."""
    return _run_tracker(job, chunk, hint, lambda _done: ctx.check_cancelled())


def _rows(result: _ChunkResult, frames: np.ndarray) -> np.ndarray:
    return np.searchsorted(result.frame_indices, frames).clip(0, len(result.frame_indices) - 1)


def _same_person(prev: _ChunkResult, cur: _ChunkResult, frames: np.ndarray) -> bool:
    """Whether both chunks tracked the same person on the last overlap frames (True if undecidable)."""
    # The first overlap frames of cur are still settling; judge on the last third.
    frames = frames[len(frames) * 2 // 3:]
    a, b = prev.pose_image[_rows(prev, frames), :, :2], cur.pose_image[_rows(cur, frames), :, :2]
    vis = np.minimum(prev.pose_visibility[_rows(prev, frames)], cur.pose_visibility[_rows(cur, frames)]) > 0.5
    both = vis & ~np.isnan(a).any(-1) & ~np.isnan(b).any(-1)
    if both.sum() < 5:
        return True
    return float(np.linalg.norm(a - b, axis=-1)[both].mean()) <= SAME_PERSON_MAX_DIST


def _person_boxes(result: _ChunkResult, frames: np.ndarray) -> dict[int, tuple[float, float, float, float]]:
    """Padded normalised bounding boxes of the tracked person on the given frames, where present."""
    boxes = {}
    for f, row in zip(frames, _rows(result, frames), strict=True):
        if not result.pose_present[row]:
            continue
        xy = result.pose_image[row, :, :2]
        (x0, y0), (x1, y1) = np.nanmin(xy, axis=0), np.nanmax(xy, axis=0)
        pad_x, pad_y = 0.25 * (x1 - x0) + 0.02, 0.15 * (y1 - y0) + 0.02
        boxes[int(f)] = (float(x0 - pad_x), float(y0 - pad_y), float(x1 + pad_x), float(y1 + pad_y))
    return boxes
