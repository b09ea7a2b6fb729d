"""Motion capture from video, end to end: decode + MediaPipe inference, solve, optional QA preview."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference_server.errors import FailedPrecondition
from inference_server.jobs.context import JobContext
from inference_server.media.video import first_frame_number, probe
from inference_server.mocap.inference import detect, detect_each
from inference_server.mocap.landmarks import Landmarks
from inference_server.mocap.options import MocapOptions, check
from inference_server.mocap.people import People, discover_interval, find_people, sample_stride
from inference_server.mocap.solve import solve
from inference_server.mocap.subject import choose, keep_subject, mask_boxes
from inference_server.mocap.subject_pass import capture_subject
from inference_server.mocap.tracks import Track
from inference_server.motion.clip import MotionClip


@dataclass
class MocapOutput:
    """landmarks: the raw capture; clip: the solved motion; timings: seconds per stage
    ("people" when a subject was chosen, which for one subject ran beside "inference", "solve",
    "preview", "total"); preview_path:
    the QA video when asked for; subject_id: the track captured (0: no subject asked for)."""

    landmarks: Landmarks
    clip: MotionClip
    timings: dict[str, float] = field(default_factory=dict)
    preview_path: Path | None = None
    subject_id: int = 0


def run_mocap(
    path: str | Path, options: MocapOptions, ctx: JobContext, *, out_dir: str | Path | None = None,
    name: str | None = None, people: People | None = None,
) -> MocapOutput:
    """Capture the person in a video file or image sequence and solve their motion.

    out_dir: where the preview video goes (a new temporary folder when None). name: the footage as
    the user knows it, for messages about the people in it (default: the file's name). people: with a
    subject, DetectPeople's tracks over the same frames (people_from_proto): the subject is chosen among
    them and followed without looking for people again. Raises InvalidInput
    (bad options, not a video), FailedPrecondition (nobody in the frames) or JobCancelled.
    """
    check(options)  # before the expensive part, so bad options fail at once
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    track, landmarks = None, None
    if options.subject is not None and people is not None:
        track = choose(people, options.subject)
        timings["people"] = 0.0  # found before, by DetectPeople
    elif options.subject is not None:
        t = time.perf_counter()
        fps = options.fps_override or probe(path).fps
        # A subject by id must be looked for as DetectPeople does, so that the ids are its ids; by a
        # point, a box or `auto`, quick looks 10 times a second do (a single-person capture pays little).
        by_id = options.subject.HasField("track_id")
        people, track, landmarks, _ = capture_subject(
            path, options.subject, start=options.start_frame, end=options.end_frame, hands=options.solve.hands,
            face=options.solve.face, workers=options.workers, name=name,
            stride=1 if by_id else sample_stride(fps), discover_every=1 if by_id else discover_interval(fps),
            ctx=ctx)
        # The people pass ran beside the pose pass: its own seconds, and both passes together.
        timings["people"] = people.seconds
        timings["inference"] = time.perf_counter() - t
    landmarks, clip, preview_path = _capture(path, options, ctx, people, track, timings, out_dir, landmarks=landmarks)
    timings["total"] = time.perf_counter() - t_start
    return MocapOutput(landmarks=landmarks, clip=clip, timings=timings, preview_path=preview_path,
                       subject_id=track.id if track is not None else 0)


def run_mocap_everyone(
    path: str | Path, options: MocapOptions, ctx: JobContext, *, out_dir: str | Path | None = None,
    name: str | None = None, people: People | None = None,
) -> tuple[People, list[MocapOutput], list[str]]:
    """Capture every person in the footage, each as run_mocap captures a subject (ids as DetectPeople's
    over the same frames; people: its tracks, so that it need not look for them again), several
    people's pose passes side by side where cores allow (inference.detect_each). Returns the people, one output per
    person, the person seen on the most frames first, and a warning for each person the detector
    found but the pose model never did (not captured). Raises FailedPrecondition when nobody is found."""
    check(options)
    t = time.perf_counter()
    if people is None:
        people = find_people(path, start=options.start_frame, end=options.end_frame, ctx=ctx, name=name)
    people_s = time.perf_counter() - t
    if not people.tracks:
        raise FailedPrecondition(f"no person found in frames {people.start}-{people.end - 1} of {people.name}; "
                                 "pick a frame range that shows someone.", reason="NO_PERSON")
    tracks = sorted(people.tracks, key=lambda tr: (-len(tr.frames), tr.id))
    t = time.perf_counter()
    frames = np.arange(people.start, people.end)
    found = detect_each(path, {tr.id: mask_boxes(people, tr, frames) for tr in tracks}, start=options.start_frame,
                        end=options.end_frame, hands=options.solve.hands, face=options.solve.face,
                        workers=options.workers, ctx=ctx)
    inference_s = time.perf_counter() - t  # everyone's, tracked side by side where cores allow
    outputs, missed = [], []
    for track in tracks:
        t_start = time.perf_counter()
        timings = {"people": people_s, "inference": inference_s}
        try:
            landmarks = found[track.id]
            if isinstance(landmarks, FailedPrecondition):
                raise landmarks
            landmarks, clip, preview = _capture(path, options, ctx, people, track, timings, out_dir,
                                                suffix=f"_person{track.id}", landmarks=landmarks)
        except FailedPrecondition:  # found by the detector but never by the pose model: nobody to capture
            missed.append(f"person {track.id} (seen on {len(track.frames)} of {len(people.frames)} frames) was "
                          "not captured: the pose model found nobody in their box")
            continue
        timings["total"] = time.perf_counter() - t_start + people_s + inference_s
        outputs.append(MocapOutput(landmarks=landmarks, clip=clip, timings=timings, preview_path=preview,
                                   subject_id=track.id))
    if not outputs:
        raise FailedPrecondition(f"no person in {people.name} could be captured: the pose model found nobody "
                                 "where the detector did; pick a frame range where people are in full view.",
                                 reason="NO_PERSON")
    return people, outputs, missed


def _capture(path: str | Path, options: MocapOptions, ctx: JobContext, people: People | None,
             track: Track | None, timings: dict[str, float], out_dir: str | Path | None,
             suffix: str = "", landmarks: Landmarks | None = None) -> tuple[Landmarks, MotionClip, Path | None]:
    """Inference (on the chosen person alone when a track is given; landmarks: already made on
    them, see capture_subject), solve and preview."""
    solve_options = options.solve
    subject_warnings: list[str] = []
    t = time.perf_counter()
    if landmarks is None:
        boxes = None
        if people is not None and track is not None:
            boxes = mask_boxes(people, track, np.arange(people.start, people.end))
        landmarks = detect(
            path, start=options.start_frame, end=options.end_frame, hands=solve_options.hands,
            face=solve_options.face,
            workers=options.workers, subject=boxes, ctx=ctx,
        )
    if people is not None and track is not None:
        landmarks, subject_warnings = keep_subject(landmarks, people, track)
    if options.fps_override:
        # Times count from the source's first frame: 0 for a video, e.g. 1001 for a plate.
        first = first_frame_number(path)
        landmarks = dataclasses.replace(
            landmarks, fps=float(options.fps_override),
            times=(landmarks.frame_indices - first).astype(np.float64) / options.fps_override,
        )
    timings["inference"] = timings.get("inference", 0.0) + time.perf_counter() - t

    ctx.check_cancelled()
    t = time.perf_counter()
    clip = solve(landmarks, solve_options, ctx)
    clip.warnings[:0] = subject_warnings
    timings["solve"] = time.perf_counter() - t

    preview_path = None
    if options.preview:
        ctx.check_cancelled()
        t = time.perf_counter()
        folder = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="keygrip_mocap_"))
        folder.mkdir(parents=True, exist_ok=True)
        ctx.progress("preview", 0, 1, "writing the preview video")
        from inference_server.mocap.preview import write_preview

        preview_path = write_preview(path, landmarks, folder / f"{Path(path).stem}{suffix}_preview.mp4", clip=clip,
                                     people=people, subject_id=track.id if track is not None else 0)
        ctx.progress("preview", 1, 1, "preview written")
        timings["preview"] = time.perf_counter() - t
    return landmarks, clip, preview_path
