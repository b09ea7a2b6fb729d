"""Capture options, and the one place where they are checked.

MocapOptions (with its SolveOptions) is what capture.run_mocap and solve.solve take, and
options_from_request turns a keygrip.v1.CaptureMotionRequest into one. Every rule about the
options' values lives in check() and check_solve() below: the MotionCapture service applies them
when a job is submitted (check_request), so that a bad option fails at once with INVALID_ARGUMENT;
run_mocap and solve apply them again for scripts that build options themselves. Messages name the
request's fields, which is what users set.

This module stays light (no numpy): the gRPC front imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inference_server.errors import InvalidInput
from keygrip.v1 import mocap_pb2

# The most people one pass tracks at once (people.py keeps the same limit; this module stays light).
MAX_PEOPLE_LIMIT = 32


@dataclass
class SolveOptions:
    """How to solve a capture.

    smoothing: 0..1 strength of the zero-phase low-pass filter (0 = none).
    foot_lock: pin feet in contact with the floor (removes sliding).
    root_motion: keep the horizontal travel of the hips; off keeps the hips above the origin.
    subject_height_m: the subject's standing height, to scale the skeleton and its travel; None
        keeps MediaPipe's metric estimate (an average adult).
    focal_length_px / fov_deg: the camera, in pixels or as the field of view across the longer
        image side (the request's fov_degrees); neither given means a focal length equal to the
        image diagonal.
    hands: solve 15 finger joints per hand (needs hand landmarks).
    face: solve ARKit face curves (needs face landmarks).
    """

    smoothing: float = 0.5
    foot_lock: bool = True
    root_motion: bool = True
    subject_height_m: float | None = None
    focal_length_px: float | None = None
    fov_deg: float | None = None
    hands: bool = False
    face: bool = False


@dataclass
class MocapOptions:
    """What to capture and how.

    start_frame / end_frame: frames start_frame <= index < end_frame of the clip (end None: to the end).
    fps_override: frame rate to use instead of the file's (image sequences have none; None keeps it).
        Frame times become frame index / fps_override.
    solve: how to solve the skeleton; its hands / face switches also choose Holistic over Pose.
    workers: inference processes; None picks a count for this machine (see inference.detect).
    preview: also write the QA preview video (skeleton over footage).
    subject: who to capture in a shot with several people (a track id, a point, a box, the most visible);
        None: whoever MediaPipe finds first, without a people pass.
    everyone: capture every person found (capture.run_mocap_everyone), not with subject.
    """

    start_frame: int = 0
    end_frame: int | None = None
    fps_override: float | None = None
    solve: SolveOptions = field(default_factory=SolveOptions)
    workers: int | None = None
    preview: bool = False
    subject: mocap_pb2.Subject | None = None
    everyone: bool = False


def options_from_request(req: mocap_pb2.CaptureMotionRequest) -> MocapOptions:
    """The options a request asks for (0 and unset fields mean automatic); check() them before use."""
    defaults = SolveOptions()
    solve = SolveOptions(
        hands=req.hands, face=req.face,
        smoothing=req.smoothing if req.HasField("smoothing") else defaults.smoothing,
        foot_lock=req.foot_lock if req.HasField("foot_lock") else defaults.foot_lock,
        root_motion=req.root_motion if req.HasField("root_motion") else defaults.root_motion,
        subject_height_m=req.subject_height_m or None,
        focal_length_px=req.focal_length_px or None,
        fov_deg=req.fov_degrees or None,
    )
    return MocapOptions(
        start_frame=req.frame_range.start,
        end_frame=req.frame_range.end if req.frame_range.end > 0 else None,
        fps_override=req.fps_override or None,
        solve=solve, workers=req.workers or None, preview=req.preview,
        subject=req.subject if req.HasField("subject") else None, everyone=req.everyone,
    )


def check_request(req: mocap_pb2.CaptureMotionRequest) -> None:
    """Raise InvalidInput for a request whose options cannot be captured (see check())."""
    check(options_from_request(req))
    if req.HasField("people_tracks") and not (req.HasField("subject") or req.everyone):
        raise InvalidInput("people_tracks are for a capture with a subject or everyone: say who to capture")


def check_people_request(req: mocap_pb2.DetectPeopleRequest) -> None:
    """Raise InvalidInput for a DetectPeople request that cannot run (a bad frame range or max_people)."""
    start, end = req.frame_range.start, req.frame_range.end
    if start < 0 or (end > 0 and end <= start):
        raise InvalidInput(f"frame range [{start}, {end}) is empty")
    if not 0 <= req.max_people <= MAX_PEOPLE_LIMIT:
        raise InvalidInput(f"max_people must lie in 1..{MAX_PEOPLE_LIMIT} (0: 10), got {req.max_people}")


def check(options: MocapOptions) -> None:
    """Raise InvalidInput, naming the request field, for options that cannot be captured.

    Whether the frame range lies inside the clip is known only once the clip is opened
    (inference.detect checks it).
    """
    _check_smoothing(options.solve)
    _check_positive("fps_override", options.fps_override)
    _check_camera_and_height(options.solve)
    start, end = options.start_frame, options.end_frame
    if start < 0 or (end is not None and end <= start):
        raise InvalidInput(f"frame range [{start}, {end or 0}) is empty")
    if options.workers is not None and options.workers < 0:
        raise InvalidInput("workers must not be negative")
    if options.subject is not None:
        _check_subject(options.subject)
        if options.everyone:
            raise InvalidInput("subject and everyone exclude each other: capture one person or all of them")


def _check_subject(subject: mocap_pb2.Subject) -> None:
    kind = subject.WhichOneof("choice")
    if kind is None:
        raise InvalidInput("subject is set but empty: give a track_id, a point, a box or most_visible")
    if kind == "track_id" and subject.track_id < 1:
        raise InvalidInput("subject track_id must be a person's id from DetectPeople (1 or more), "
                           f"got {subject.track_id}")
    if kind == "point":
        p = subject.point
        if not (0 <= p.x < float("inf") and 0 <= p.y < float("inf")):
            raise InvalidInput(f"subject point ({p.x}, {p.y}) must be in pixels inside the image")
    if kind == "box":
        b = subject.box
        if not (0 <= b.x0 < b.x1 < float("inf") and 0 <= b.y0 < b.y1 < float("inf")):
            raise InvalidInput(f"subject box ({b.x0}, {b.y0}, {b.x1}, {b.y1}) must be left, top, right, bottom in "
                               "pixels inside the image, right of left and below top")
    if kind == "most_visible" and not subject.most_visible:
        raise InvalidInput("subject most_visible must be true when set")


def check_solve(options: SolveOptions) -> None:
    """The rules of check() that concern solving (for solve.solve, which takes SolveOptions alone)."""
    _check_smoothing(options)
    _check_camera_and_height(options)


def _check_smoothing(options: SolveOptions) -> None:
    if not 0.0 <= options.smoothing <= 1.0:
        raise InvalidInput(f"smoothing must lie in 0..1, got {options.smoothing}")


def _check_positive(name: str, value: float | None) -> None:
    """None is automatic (0 in the request); anything else must be a positive number."""
    if value is not None and not 0 < value < float("inf"):  # also refuses NaN
        raise InvalidInput(f"{name} must be positive (or 0 for automatic), got {value}")


def _check_camera_and_height(options: SolveOptions) -> None:
    for name, value in (("subject_height_m", options.subject_height_m),
                        ("focal_length_px", options.focal_length_px), ("fov_degrees", options.fov_deg)):
        _check_positive(name, value)
    height = options.subject_height_m
    if height is not None and not 0.5 <= height <= 2.6:
        raise InvalidInput(f"subject_height_m is in metres: {height} is not a person's height")
    fov = options.fov_deg
    if fov is not None and fov >= 180:
        raise InvalidInput(f"fov_degrees must be below 180, got {fov}")
    if fov is not None and not 1.0 <= fov < 179.0:  # a pinhole camera's usable range
        raise InvalidInput(f"fov_degrees must be between 1 and 179 degrees, got {fov}")
