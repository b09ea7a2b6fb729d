"""Motion capture from several calibrated videos of one take, end to end.

    videos + calibration -> check they fit -> MediaPipe per view (in parallel) -> a view that
    followed someone else tracked again on the person the others see (associate.py) -> labels
    fixed and people matched across views (epipolar.py) -> frame offsets (sync.py) -> triangulation with
    outlier views rejected (triangulate.py) -> the single-view solver's passes (mocap/solve.py:
    solve_world) -> a MotionClip carrying the calibrated cameras.

The clip's world is the calibration's, turned Y-up (calibration_files.py), or, where the calibration
does not say where the floor is or its floor is far from the one the person's feet stand on, that
world levelled onto the feet's floor (floor.py), cameras and all: looking through any of its
cameras, the skeleton lies on the person in that camera's video.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference_server.errors import FailedPrecondition, InvalidInput
from inference_server.jobs.context import JobContext, NullContext
from inference_server.jobs.tasks import Task
from inference_server.media.video import MediaInfo, probe
from inference_server.mocap import filters, skeleton_fit, swaps
from inference_server.mocap.landmarks import Landmarks
from inference_server.mocap.options import SolveOptions, check_solve
from inference_server.mocap.solve import PlacedBody, solve_world
from inference_server.motion import quat
from inference_server.motion.clip import MotionClip
from inference_server.multicam import associate, epipolar, floor, seen_parts, sync
from inference_server.multicam.calibration_files import Calibration, read_calibration
from inference_server.multicam.triangulate import Triangulated, smoothed, triangulate
from keygrip.projection import Camera, VideoCamera

# A video may be this many pixels narrower or shorter than its calibration: codecs pad frames to
# multiples of 16 and some decoders crop the padding (the Pose2Sim trial: 1088 calibrated, 1080
# decoded), which removes columns at the right or rows at the bottom and keeps the principal point.
MAX_CROP_PX = 16
# Frame rates of one take's videos may differ by this fraction (29.97 written as 30).
FPS_TOLERANCE = 0.002
_POLL_S = 0.1


@dataclass
class MulticamOptions:
    """solve: as single-view capture. offsets: per view frame offsets (None: from timecodes or the
    person's motion). start_frame / end_frame: the range in the first view's frames (with offsets
    given, each view's range is shifted by its offset). max_side: frames are downsized to this
    longer side before inference. workers: views inferred at once (None: view_workers). floor: where
    the world's floor and up axis come from, one of floor.MODES ("auto", "calibration", "feet")."""

    solve: SolveOptions = field(default_factory=SolveOptions)
    offsets: list[int] | None = None
    start_frame: int = 0
    end_frame: int | None = None
    max_side: int = 1280
    workers: int | None = None
    floor: str = "auto"


@dataclass
class MulticamOutput:
    """clip: the solved motion with its cameras. views: each used view's landmarks over the clip's
    frames. names: those views' video names. sync: how the views were put in step. points: the
    triangulation. timings: seconds per stage."""

    clip: MotionClip
    views: list[Landmarks]
    names: list[str]
    sync: sync.Sync
    points: Triangulated
    timings: dict[str, float]


def check_options(options: MulticamOptions, views: int) -> None:
    check_solve(options.solve)
    if options.floor not in floor.MODES:
        raise InvalidInput(f"floor {options.floor!r} is not one of {', '.join(floor.MODES)}")
    if options.start_frame < 0 or (options.end_frame is not None and options.end_frame <= options.start_frame):
        raise InvalidInput(f"frame range [{options.start_frame}, {options.end_frame or 0}) is empty")
    if options.offsets is not None:
        if len(options.offsets) != views:
            raise InvalidInput(f"{len(options.offsets)} frame offsets were given for {views} videos; "
                               "give one per video.")
        if min(options.offsets) < 0:
            raise InvalidInput(f"frame offsets must not be negative, got {options.offsets}")
    s = options.solve
    if s.focal_length_px is not None or s.fov_deg is not None or s.subject_height_m is not None:
        raise InvalidInput("focal length, field of view and the subject's height come from the calibration in a "
                           "multi-camera capture; leave them unset.")


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def match_cameras(paths: list[Path], cal: Calibration, names: list[str]) -> list[VideoCamera]:
    """The calibration's camera for each video: by name when every video's file name matches one
    camera's (cam01.mp4 and cam_01), else in the given order."""
    if len(cal.cameras) != len(paths):
        raise InvalidInput(f"the calibration {cal.source} has {len(cal.cameras)} cameras "
                           f"({', '.join(cal.names())}) but {len(paths)} videos were given; give one video per "
                           "calibrated camera, in the calibration's order.")
    by_key = {_key(c.name): c for c in cal.cameras}
    chosen = [by_key.get(_key(Path(n).stem)) for n in names]
    if all(c is not None for c in chosen) and len({id(c) for c in chosen}) == len(chosen):
        return [c for c in chosen if c is not None]
    return list(cal.cameras)


def fit_to_video(cam: VideoCamera, info: MediaInfo, name: str, source: str) -> VideoCamera:
    """The camera for the video as decoded: the same when sizes agree, cropped at the right and
    bottom by up to MAX_CROP_PX (principal point kept), else InvalidInput."""
    c = cam.camera
    dw, dh = c.width - info.width, c.height - info.height
    if (dw, dh) == (0, 0):
        return dataclasses.replace(cam, video=name)
    if 0 <= dw <= MAX_CROP_PX and 0 <= dh <= MAX_CROP_PX:
        cropped = Camera(width=info.width, height=info.height, focal_x=c.focal_x, focal_y=c.focal_y,
                         center_x=c.center_x, center_y=c.center_y, camera_to_world=c.camera_to_world)
        return dataclasses.replace(cam, camera=cropped, video=name)
    raise InvalidInput(f"{name} is {info.width}x{info.height} but camera {cam.name} of the calibration {source} "
                       f"is {c.width}x{c.height}; use the videos that calibration was made for, in their original "
                       "size and orientation, or calibrate these cameras.")


def _detect_view(path: str, start: int, end: int | None, hands: bool, face: bool, max_side: int,
                 ctx: JobContext | None = None) -> Landmarks | None:
    """One view's landmarks, as single-view capture finds them (a task of jobs/tasks.py when ctx is
    None); None when nobody is in it."""
    from inference_server.mocap.inference import detect

    try:
        return detect(path, start=start, end=end, hands=hands, face=face, workers=1, max_side=max_side,
                      ctx=ctx or NullContext())
    except FailedPrecondition:
        return None


def view_workers(views: int) -> int:
    """Views inferred at once by default: one MediaPipe graph keeps about a core busy, so one per core
    but one (measured on 2 shared cores: 4 views in 4 processes ran at 0.67x the views one after the
    other, as capture's chunk workers lose there too); all in this process on two cores or fewer."""
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else max(1, min(views, cores - 1))


def detect_views(paths: list[Path], names: list[str], ranges: list[tuple[int, int | None]],
                 options: MulticamOptions, ctx: JobContext) -> list[Landmarks | None]:
    """Every view's landmarks, options.workers views at a time (None: view_workers): the first in
    this process, the others as tasks of the job; None for a view where nobody was found."""
    hands, face = options.solve.hands, options.solve.face
    n = len(paths)
    workers = options.workers or view_workers(n)
    out: list[Landmarks | None] = [None] * n
    ctx.progress("inference", 0, n, f"tracking the person in {n} videos")
    if workers <= 1:
        for i, p in enumerate(paths):
            out[i] = _detect_view(str(p), *ranges[i], hands, face, options.max_side, ctx)
        return out
    with ctx.tasks.group() as group:
        pending = list(range(1, n))
        running: dict[int, Task[Landmarks | None]] = {}

        def fill() -> None:
            while pending and len(running) < workers - 1:
                i = pending.pop(0)
                running[i] = group.submit(_detect_view, str(paths[i]), *ranges[i], hands, face, options.max_side,
                                          name=f"inference for {names[i]}")

        fill()
        out[0] = _detect_view(str(paths[0]), *ranges[0], hands, face, options.max_side, ctx)
        while running:
            group.wait(list(running.values()), timeout=_POLL_S)
            ctx.check_cancelled()
            for i, task in list(running.items()):
                if task.done():
                    out[i] = task.result()
                    del running[i]
            fill()
            ctx.progress("inference", n - len(running) - len(pending), n, "tracking")
    return out


def run_multicam(videos: Sequence[str | Path], calibration: str | Path, options: MulticamOptions,
                 ctx: JobContext | None = None, *, names: list[str] | None = None,
                 calibration_name: str | None = None) -> MulticamOutput:
    """Capture the person filmed by calibrated cameras (see the module docstring).

    names: the videos as the user knows them (default: their file names), in messages and on the
    clip's cameras. Raises InvalidInput (a calibration or videos that do not fit together, views
    that cannot be synchronised) or FailedPrecondition (fewer than two views see the person).
    """
    ctx = ctx or NullContext()
    paths = [Path(v) for v in videos]
    names = names or [p.name for p in paths]
    if len(paths) < 2:
        raise InvalidInput("a multi-camera capture needs at least two videos; for one, use single-view capture.")
    check_options(options, len(paths))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    cal = read_calibration(calibration)
    if calibration_name:
        cal.source = calibration_name
    infos = [probe(p) for p in paths]
    cams = [fit_to_video(c, info, n, cal.source)
            for c, info, n in zip(match_cameras(paths, cal, names), infos, names, strict=True)]
    fps = infos[0].fps
    for info, n in zip(infos[1:], names[1:], strict=True):
        if abs(info.fps - fps) > FPS_TOLERANCE * fps:
            raise InvalidInput(f"{n} runs at {info.fps:g} fps and {names[0]} at {fps:g} fps: the views of one take "
                               "must share a frame rate. Re-encode them to one rate (or film at one).")
    warnings: list[str] = []
    counts = [info.frame_count for info in infos]
    if len(set(counts)) > 1:
        warnings.append("the videos differ in length (" + ", ".join(f"{n}: {c} frames" for n, c in zip(names, counts,
                        strict=True)) + "): only the frames every view covers are captured")

    offsets = options.offsets
    if offsets is None:
        timecode = sync.from_timecodes(paths, fps)
        offsets = timecode.offsets if timecode is not None else None
    start, end = options.start_frame, options.end_frame
    ranges = [(start + (offsets[i] if offsets else 0), None if end is None else end + (offsets[i] if offsets else 0))
              for i in range(len(paths))]
    t = time.perf_counter()
    found = detect_views(paths, names, ranges, options, ctx)
    found, chosen = associate.follow_subject(paths, names, ranges, found, cams, options.solve.hands,
                                             options.solve.face, options.max_side, ctx)
    warnings.extend(chosen)
    timings["inference"] = time.perf_counter() - t
    never = [n for n, lm in zip(names, found, strict=True) if lm is None]
    if never:
        warnings.append(f"nobody was found in {', '.join(never)}: captured from the other views")
    keep = [i for i, lm in enumerate(found) if lm is not None]
    if len(keep) < 2:
        raise FailedPrecondition("the person was found in fewer than two of the videos "
                                 f"({', '.join(names[i] for i in keep) or 'none'}); a multi-camera capture needs "
                                 "two views of them at least.", reason="NO_PERSON")
    offsets = [offsets[i] for i in keep] if offsets is not None else None
    out = reconstruct([lm for lm in found if lm is not None], [cams[i] for i in keep], [names[i] for i in keep],
                      fps, options, ctx, offsets=offsets, warnings=warnings, calibration_has_floor=cal.has_floor)
    out.clip.metadata["calibration"] = cal.source
    out.timings.update(inference=timings["inference"], total=time.perf_counter() - t0)
    return out


def reconstruct(lms: list[Landmarks], cams: list[VideoCamera], names: list[str], fps: float,
                options: MulticamOptions, ctx: JobContext | None = None, *, offsets: list[int] | None = None,
                warnings: list[str] | None = None, calibration_has_floor: bool = True) -> MulticamOutput:
    """From each view's landmarks to the clip: labels, synchronisation, association, triangulation,
    the floor and the solver. lms, cams and names: one per view, in the same order. offsets (default:
    options.offsets): the views' landmarks already start at these offsets; None: found from the
    person's motion. calibration_has_floor: the cameras' world says where the floor is (its up is
    known), for options.floor "auto"."""
    ctx = ctx or NullContext()
    offsets = offsets if offsets is not None else options.offsets
    warnings = list(warnings or [])
    timings: dict[str, float] = {}
    t = time.perf_counter()
    ctx.check_cancelled()
    # Left/right swaps: first along each view's own tracks (as single view), then against the other views.
    lms = [swaps.unswap(lm, swaps.find_swaps(lm.pose_image[..., :2] * lm.image_size, lm.pose_visibility,
                                             np.asarray(lm.pose_present, bool))) for lm in lms]
    n = min(lm.num_frames for lm in lms)
    xy, conf = epipolar.view_points(cams, lms, n)
    lms = [swaps.unswap(lm, np.concatenate([s, np.zeros(lm.num_frames - n, bool)]))
           for lm, s in zip(lms, epipolar.fix_labels(cams, xy, conf), strict=True)]
    xy, conf = epipolar.view_points(cams, lms, n)
    if offsets is None:
        synced = sync.from_views(cams, xy, conf, fps)
        doubts = synced.doubts()
        if doubts:
            fits = ", ".join(f"{names[v]} could be {synced.spread[v][0]} to {synced.spread[v][1]} frames"
                             for v in doubts)
            warnings.append(f"the frame offsets found from the person's motion ({synced.offsets}) are uncertain "
                            f"(confidence {synced.confidence:.2f}: {fits}): too little motion, or cameras facing "
                            "each other, tell the shifts apart; if the videos are known to be in step, give their "
                            "offsets (--offsets 0,0,...)")
        view_start = synced.offsets
    else:
        synced = sync.Sync(list(offsets), 1.0, "given" if options.offsets is not None else "timecode",
                           [1.0] * len(lms), [(o, o) for o in offsets])
        view_start = [0] * len(lms)  # the ranges were already shifted by the offsets
    n = min(lm.num_frames - s for lm, s in zip(lms, view_start, strict=True))
    if n < 1:
        raise InvalidInput(f"after synchronising (offsets {synced.offsets}) the views share no frame.")
    lms = [_slice(lm, s, n) for lm, s in zip(lms, view_start, strict=True)]
    xy, conf = epipolar.view_points(cams, lms, n)
    agree = epipolar.agreement(cams, xy, conf)
    for v, name in enumerate(names):
        if not agree[v].any():
            warnings.append(f"the person in {name} never lines up with the other views (someone else, or this "
                            "camera's calibration is off): that view was left out")
    weights = np.where(agree[..., None], conf, 0.0)
    pixels = np.stack([lm.pose_image[..., :2] * lm.image_size for lm in lms])
    cutoff = filters.smoothing_cutoff_hz(options.solve.smoothing, fps)
    points = smoothed(triangulate(cams, pixels, weights), fps, cutoff)
    timings["triangulation"] = time.perf_counter() - t
    level = floor.choose(points.points, fps, options.floor, calibration_has_floor)
    if level.warning:
        warnings.append(level.warning)
    if level.transform is not None:
        points, cams = _moved(points, cams, level.transform)

    t = time.perf_counter()
    body, parts = _placed_body(points, lms, cams, options.solve, warnings)
    clip = solve_world(body, fps, options.solve, ctx, warnings)
    timings["solve"] = time.perf_counter() - t
    first = int(lms[0].frame_indices[0])
    clip.cameras = [dataclasses.replace(c, frame_offset=int(lm.frame_indices[0]))
                    for c, lm in zip(cams, lms, strict=True)]
    clip.metadata.update(views=",".join(names), sync_method=synced.method,
                         sync_offsets=",".join(str(o) for o in synced.offsets),
                         sync_confidence=f"{synced.confidence:.2f}",
                         sync_spread=",".join(f"{low}..{high}" for low, high in synced.spread), first_frame=str(first),
                         floor=level.used)
    if parts:  # frames of each part taken from the triangulation: "left hand 40/100, face 0/100"
        clip.metadata["triangulated_parts"] = ", ".join(f"{name.removesuffix('_image').replace('_', ' ')} "
                                                        f"{int(part.used.sum())}/{n}" for name, part in parts.items())
    return MulticamOutput(clip=clip, views=lms, names=names, sync=synced, points=points, timings=timings)


def _moved(points: Triangulated, cams: list[VideoCamera], transform: np.ndarray
           ) -> tuple[Triangulated, list[VideoCamera]]:
    """The points and cameras in the world a (4, 4) rigid transform of theirs makes."""
    p = points.points @ transform[:3, :3].T + transform[:3, 3]
    moved = [dataclasses.replace(c, camera=dataclasses.replace(c.camera, camera_to_world=transform
                                                               @ c.camera.camera_to_world)) for c in cams]
    return dataclasses.replace(points, points=p), moved


# MediaPipe's axes (x right, y down, z away from the camera) as a Camera's (x right, y up, looking down -Z).
_MEDIAPIPE_TO_CAMERA = np.diag([1.0, -1.0, -1.0])


def _one_view_offset(lms: list[Landmarks], cams: list[VideoCamera], j: int) -> np.ndarray:
    """(F, 3) point j from the hips' midpoint in the world, as MediaPipe's world landmarks of the view
    most sure of it place it, turned by that view's camera; gaps filled over time (zero where it never
    saw it)."""
    best = int(np.argmax([float(np.mean(lm.pose_visibility[:, j])) for lm in lms]))
    lm = lms[best]
    offset = lm.pose_world[:, j] - 0.5 * (lm.pose_world[:, 23] + lm.pose_world[:, 24])
    world = offset @ (cams[best].camera.camera_to_world[:3, :3] @ _MEDIAPIPE_TO_CAMERA).T
    ok = np.isfinite(world).all(axis=1)
    if not ok.any():
        return np.zeros_like(world)
    frames = np.arange(len(world))
    return np.stack([np.interp(frames, frames[ok], world[ok, k]) for k in range(3)], axis=1)


def _slice(lm: Landmarks, start: int, n: int) -> Landmarks:
    arrays = {f.name: getattr(lm, f.name)[start:start + n] for f in dataclasses.fields(lm)
              if isinstance(getattr(lm, f.name), np.ndarray)}
    return dataclasses.replace(lm, **arrays)


def _placed_body(points: Triangulated, lms: list[Landmarks], cams: list[VideoCamera],
                 options: SolveOptions, warnings: list[str]) -> tuple[PlacedBody, dict[str, seen_parts.SeenPart]]:
    """The triangulated body as the solver takes it: each point's short gaps filled over time, the
    frames where most points were triangulated placed, hands and face from the view seeing them
    best, triangulated where two views agree on them (seen_parts.py); and those triangulations.
    A point never triangulated takes its partner's place, or where neither was, one view's."""
    p = points.points
    tri = np.isfinite(p).all(axis=-1)  # (F, 33)
    missing = [j for j in range(p.shape[1]) if not tri[:, j].any()]
    core = [11, 12, 23, 24, 25, 26, 27, 28]  # shoulders, hips, knees, ankles
    lost = [j for j in missing if j in core]
    if lost or tri.sum() == 0:
        raise FailedPrecondition("the person's hips, shoulders, knees or ankles were never seen by two views that "
                                 "agree; place the cameras so that at least two see the whole body.",
                                 reason="NO_PERSON")
    filled = p.copy()
    frames = np.arange(len(p))
    for j in range(p.shape[1]):
        if tri[:, j].any():
            for k in range(3):
                filled[:, j, k] = np.interp(frames, frames[tri[:, j]], p[tri[:, j], j, k])
    root = 0.5 * (filled[:, 23] + filled[:, 24])
    alone = []
    for j in missing:
        if tri[:, swaps.MIRROR[j]].any():
            # A point no two views agree on (an ear hidden from all but one camera) takes its partner's.
            filled[:, j] = filled[:, swaps.MIRROR[j]]
        else:
            # Neither it nor its partner (an arm only one camera sees): from the view that sees it best.
            filled[:, j] = root + _one_view_offset(lms, cams, j)
            alone.append(j)
    if alone:
        from mediapipe.python.solutions.pose import PoseLandmark

        warnings.append("no two views agree on the " + ", ".join(PoseLandmark(j).name.lower().replace("_", " ")
                                                                  for j in alone)
                        + ": taken from the one view that sees them best, without depth from the others")
    placed = tri[:, core].all(axis=1)
    if not placed.any():
        placed = tri.mean(axis=1) >= 0.5
    world = filled - root[:, None]
    vis = np.where(placed[:, None], points.confidence, 0.0)
    measures = skeleton_fit.measure_body(world[placed], np.maximum(vis[placed], 0.6 * tri[placed]), per_side=True)
    # Hands and face from the view that sees the person on the most frames (the face, when asked for).
    seen = [np.isfinite(lm.face_image).all(axis=(1, 2)).sum() if options.face and lm.face_image is not None
            else np.asarray(lm.pose_present, bool).sum() for lm in lms]
    best = int(np.argmax(seen))
    view, parts = seen_parts.seen_view(lms, cams, best, filled)
    rot = cams[best].camera.camera_to_world[:3, :3]
    return PlacedBody(world=world, root=root, placed=placed, visibility=vis, measures=measures, calibrated=True,
                      view=dataclasses.replace(view, times=lms[0].times), view_rotation=quat.from_matrix(rot),
                      camera_position=None), parts

