"""Calibrating cameras from a board: intrinsics per camera, extrinsics from views several cameras share,
refined by bundle adjustment, and a Y-up world in metres standing on the floor the board lies on.

    cameras = [CameraSources("cam01", intrinsics=(Source(Path("cam01/"), "cam01/"),), extrinsics=(...)), ...]
    result = calibrate(board, cameras, ctx)            # ctx: a JobContext (NullContext in scripts)
    text = calibration_json(result)                    # the keygrip.calibration file

Intrinsics: OpenCV's calibrateCamera over every image or sampled video frame where the board is found
(k1, k2, p1, p2; k3 is fixed at 0 because a handful of board views cannot pin it down).
Extrinsics: views are matched across cameras by frame: the same frame number of each camera's
(synchronised) video or image sequence, or the n-th of each camera's separate images. Each camera's
board pose comes from solvePnP; cameras are chained through the board poses they share, starting
from the floor view (the first view the most cameras share, or the one asked for), whose board
defines the world: origin at its first corner, X along its rows, Y up out of the floor (the side the
cameras are on), Z along its columns. scipy's least_squares then adjusts every camera pose and board
pose together (the floor view's board stays fixed: it is the world) over the reprojection error, with
a sparse analytic Jacobian (OpenCV's derivatives of projectPoints and composeRT).

Results are keygrip.projection.VideoCamera (the project's one camera model); the file is
{"format": "keygrip.calibration", "version": 1, "units": "m", "up": "y", "cameras": [{"name",
"width", "height", "matrix" (3x3 K, OpenCV pixel convention), "distortion", "rotation" (Rodrigues,
world to camera), "translation" (m), "reprojection_error_px"}]}.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix

from inference_server.errors import FailedPrecondition, InvalidInput
from inference_server.jobs.context import JobContext
from inference_server.multicam.boards import Board, Detection, detect
from inference_server.multicam.calibration_files import calibration_text
from keygrip.projection import Camera, VideoCamera

MIN_VIEWS = 3  # board views a camera's intrinsics need (fewer leave the focal length and centre loose)
DEFAULT_MAX_FRAMES = 40  # frames sampled from one video
BAD_OBSERVATION_PX = 3.0  # a view this far off after adjustment disagrees with the others (good ones: < 1 px)
MAX_DROPPED = 3  # views left out that way, at most
# The board's axes (x along its rows, y down its columns, z into the floor) as world axes (Y up).
BOARD_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class Source:
    """One input of a camera: an image, a video, or an image sequence (folder or pattern), on this
    machine at `path`; `name` is how the user knows it (for messages)."""

    path: Path
    name: str


@dataclass(frozen=True)
class CameraSources:
    """What one camera saw. intrinsics: views of the board filling the frame at many angles;
    extrinsics: synchronised views of the board that other cameras saw at the same moment (the first of
    them lying on the floor). Without intrinsics views, the extrinsics views serve for both."""

    name: str
    intrinsics: tuple[Source, ...] = ()
    extrinsics: tuple[Source, ...] = ()


@dataclass(frozen=True)
class BoardView:
    """One image or frame a camera saw, and the board in it (None: not found)."""

    camera: str
    key: int  # matches views across cameras: a frame number, or the n-th separate image
    label: str  # "cam01_03.jpg", "cam01.mp4 frame 120"
    size: tuple[int, int]  # width, height
    detection: Detection | None


@dataclass(frozen=True)
class Intrinsics:
    matrix: np.ndarray  # 3x3, OpenCV pixel convention
    distortion: np.ndarray  # k1, k2, p1, p2
    size: tuple[int, int]
    rms_px: float
    used: tuple[str, ...]  # labels of the views it was computed from
    not_found: tuple[str, ...]  # labels of the views without the board
    left_out: tuple[str, ...] = ()  # views with the board left out as far worse than the rest, with why


@dataclass(frozen=True)
class CalibratedCamera:
    camera: VideoCamera
    reprojection_error_px: float  # over the views its pose rests on after adjustment; else the intrinsics'
    intrinsics_error_px: float  # calibrateCamera's RMS
    intrinsics_views: tuple[str, ...]
    not_found: tuple[str, ...]
    extrinsics_views: int  # board views it shares with the others (or the floor view, alone)


@dataclass
class Calibration:
    cameras: list[CalibratedCamera]
    floor: str  # what defines the world, in words
    bundle_rms_px: float = 0.0  # over every observation of the adjustment (0: no adjustment)
    warnings: list[str] = field(default_factory=list)


def calibrate(board: Board, cameras: Sequence[CameraSources], ctx: JobContext, *,
              max_frames: int = DEFAULT_MAX_FRAMES, floor_frame: int | None = None) -> Calibration:
    """Calibrate cameras from their board views (see the module docstring); progress and cancel through ctx.
    Raises InvalidInput/FailedPrecondition naming the camera and its files for what the user must fix."""
    names = [c.name for c in cameras]
    if not cameras:
        raise InvalidInput("no camera to calibrate: give each camera's board images or video")
    if len(set(names)) != len(names):
        raise InvalidInput(f"camera names must differ: {', '.join(names)}")
    for cam in cameras:
        if not cam.intrinsics and not cam.extrinsics:
            raise InvalidInput(f"{cam.name}: no images or video given for this camera")
    if len(cameras) > 1 and not any(c.extrinsics for c in cameras):
        raise InvalidInput(f"{len(cameras)} cameras: placing them needs views of the board that several of them saw "
                           "at the same moment (synchronised videos or photos of the board on the floor), given as "
                           "each camera's extrinsics views; or calibrate each camera on its own")
    if any(c.extrinsics for c in cameras) and not board.orientable:
        raise InvalidInput(f"{board.describe()} looks the same turned half a turn, so the cameras cannot agree on "
                           "its corners: use a board whose corner counts are one odd and one even (e.g. 4x7), "
                           "or a ChArUco board")
    views = read_board_views(board, cameras, ctx, max_frames=max_frames)
    intrinsics = {}
    warnings = []
    for cam in cameras:
        own = [v for v in views[cam.name] if v.key < 0] or [v for v in views[cam.name] if v.key >= 0]
        intrinsics[cam.name] = calibrate_intrinsics(board, cam.name, own)
        warnings += [f"{cam.name}: {view} left out of its lens calibration" for view in intrinsics[cam.name].left_out]
        warnings += _size_warnings(cam.name, intrinsics[cam.name], [v for v in views[cam.name] if v.key >= 0])
        ctx.check_cancelled()
    ctx.progress("extrinsics", 0, 1, "placing the cameras")
    extrinsic = {name: [v for v in vs if v.key >= 0 and v.detection is not None] for name, vs in views.items()}
    cal = place_cameras(board, intrinsics, extrinsic, ctx, floor_frame=floor_frame)
    cal.warnings[:0] = warnings
    return cal


def _size_warnings(camera: str, k: Intrinsics, views: Sequence[BoardView]) -> list[str]:
    """A few pixels' difference between the lens views and the placing views is a crop (Pose2Sim's cam01
    photos are 1088 wide, its videos 1080): warned, the lens kept. A different resolution would need
    another focal length: refused."""
    other = next((v for v in views if v.size != k.size), None)
    if other is None:
        return []
    (w, h), (ow, oh) = k.size, other.size
    if abs(ow - w) <= 0.02 * w and abs(oh - h) <= 0.02 * h:
        return [f"{camera}: {other.label} is {ow}x{oh}, its lens views {w}x{h}; taken as the same lens cropped "
                f"at the right or bottom (principal point unchanged), the calibration written for {w}x{h}"]
    raise InvalidInput(f"{camera}: {other.label} is {ow}x{oh} but its lens was calibrated from {w}x{h} views "
                       f"({k.used[0]}); a camera's lens views and placing views must share one resolution and "
                       "orientation: film both at the same settings, or name them as separate cameras")


def place_cameras(board: Board, intrinsics: dict[str, Intrinsics], views: dict[str, list[BoardView]],
                  ctx: JobContext, *, floor_frame: int | None = None) -> Calibration:
    """Camera poses from the board views with detections (key >= 0) and each camera's intrinsics."""
    names = list(intrinsics)
    warnings: list[str] = []
    if not any(views.values()):
        name = names[0]
        warnings.append(f"{name}: no board view to place it, so the world is this camera's own frame (camera at "
                        "the origin, OpenCV axes: Y down, not up); give a view of the board on the floor to set it")
        k = intrinsics[name]
        return Calibration([_result(name, k, np.zeros(3), np.zeros(3), k.rms_px, 0)], "the camera (no board view)",
                           warnings=warnings)
    objp = board.object_points()
    board_in_cam = {}
    fits = {}
    for vs in views.values():
        for v in vs:
            if v.detection is not None:
                board_in_cam[(v.camera, v.key)], fits[(v.camera, v.key)] = _solve_pnp(objp, v.detection,
                                                                                    intrinsics[v.camera])
    # A grid the detector made up (a lattice along a far, oblique board's diagonals) does not fit the board
    # through the camera's lens as the real ones do.
    typical = float(np.median(list(fits.values())))
    for (name, key), rms in sorted(fits.items(), key=lambda item: (item[0][1], item[0][0])):
        if rms > max(1.0, 5 * typical):
            warnings.append(f"{name}: the board found in frame {key} does not fit its lens ({rms:.1f} px against "
                            f"{typical:.2f} px typically); that view is left out")
            del board_in_cam[(name, key)]
    detections = {(v.camera, v.key): v.detection for vs in views.values() for v in vs}
    for _round in range(MAX_DROPPED + 1):
        cams, floor_key, adjusted, seen_by = _place(board, intrinsics, board_in_cam, detections, floor_frame, ctx)
        errors = adjusted.observation_errors
        worst = max(errors, key=lambda o: errors[o])
        # One view at odds with the others (a board found turned, a stray corner) pulls every camera chained
        # to it. Which camera of a frame is wrong cannot be told from two views, so the whole frame is left
        # out, but for the floor's (it holds the world): there, the worst view only. A camera keeps a view.
        frame = [worst] if worst[1] == floor_key else [o for o in errors if o[1] == worst[1]]
        frame = [o for o in frame if sum(1 for n, _k in board_in_cam if n == o[0]) > 1]
        if errors[worst] <= BAD_OBSERVATION_PX or not frame or _round == MAX_DROPPED:
            break
        views_text = ", ".join(f"{n} {errors[(n, k)]:.1f} px" for n, k in frame)
        warnings.append(f"frame {worst[1]}: the cameras' views of the board disagree after adjustment "
                        f"({views_text}); left out")
        for o in frame:
            del board_in_cam[o]
    floor = f"the board at frame {floor_key}, seen by {', '.join(sorted(seen_by[floor_key]))}"
    return Calibration(cams, floor, bundle_rms_px=adjusted.rms_px, warnings=warnings)


def _place(board: Board, intrinsics: dict[str, Intrinsics], board_in_cam: dict[tuple[str, int], np.ndarray],
           detections: dict[tuple[str, int], Detection | None], floor_frame: int | None, ctx: JobContext
           ) -> tuple[list[CalibratedCamera], int, Adjusted, dict[int, list[str]]]:
    """Chain the cameras through the board poses they share, from the floor view, then adjust them."""
    names = list(intrinsics)
    seen_by: dict[int, list[str]] = {}
    for name, key in board_in_cam:
        seen_by.setdefault(key, []).append(name)
    floor_key = _floor_key(seen_by, floor_frame)
    # Board poses (board -> world) and camera poses (world -> camera) as 4x4 matrices, chained outwards
    # from the floor view.
    boards = {floor_key: _homogeneous(BOARD_TO_WORLD, np.zeros(3))}
    poses: dict[str, np.ndarray] = {}
    changed = True
    while changed:
        changed = False
        for (name, key), t_cb in sorted(board_in_cam.items(), key=lambda item: (item[0][1], item[0][0])):
            if name not in poses and key in boards:
                poses[name] = t_cb @ np.linalg.inv(boards[key])
                changed = True
            elif key not in boards and name in poses:
                boards[key] = np.linalg.inv(poses[name]) @ t_cb
                changed = True
    lost = [n for n in names if n not in poses]
    if lost:
        raise FailedPrecondition(_no_shared_view_message(lost, names, seen_by), reason="CAMERA_NOT_CONNECTED")
    centres_y = [-(p[:3, :3].T @ p[:3, 3])[1] for p in poses.values()]
    if np.median(centres_y) < 0:
        # The cameras look at the board from below its +Y: the board was upside down for our corner order
        # (a ChArUco board seen from its back, say). Up is the side the cameras are on: turn the world
        # half a turn about X.
        flip = np.diag([1.0, -1.0, -1.0, 1.0])
        poses = {n: p @ flip for n, p in poses.items()}
        boards = {k: flip @ b for k, b in boards.items()}
    # Views one camera alone saw add nothing to where the cameras are; the floor view fixes the world.
    shared = sorted(k for k, who in seen_by.items() if len(who) > 1 or k == floor_key)
    observations = [(n, k) for k in shared for n in sorted(seen_by[k])]
    adjusted = bundle_adjust(board, intrinsics, detections, observations, poses, boards, floor_key, ctx)
    shares = {n: sum(1 for m, _ in observations if m == n) for n in names}
    cams = [_result(n, intrinsics[n], cv2.Rodrigues(adjusted.poses[n][:3, :3])[0].ravel(), adjusted.poses[n][:3, 3],
                    adjusted.errors[n], shares[n]) for n in names]
    return cams, floor_key, adjusted, seen_by


@dataclass(frozen=True)
class Adjusted:
    poses: dict[str, np.ndarray]  # world -> camera, 4x4
    boards: dict[int, np.ndarray]  # board -> world, 4x4
    errors: dict[str, float]  # each camera's RMS reprojection error, px
    rms_px: float  # over every corner
    observation_errors: dict[tuple[str, int], float]  # (camera, frame) -> RMS reprojection error, px


def bundle_adjust(board: Board, intrinsics: dict[str, Intrinsics], detections: dict[tuple[str, int], Detection | None],
                  observations: list[tuple[str, int]], poses: dict[str, np.ndarray], boards: dict[int, np.ndarray],
                  fixed_key: int, ctx: JobContext) -> Adjusted:
    """Adjust camera poses and board poses (all but fixed_key's: it holds the world) to the observed corners."""
    names = sorted({n for n, _ in observations})
    keys = sorted({k for _, k in observations if k != fixed_key})
    cam_col = {n: 6 * i for i, n in enumerate(names)}
    key_col = {k: 6 * (len(names) + i) for i, k in enumerate(keys)}
    objp = board.object_points().astype(np.float64)
    obs = []  # (camera, key, object points, image points, first residual row)
    rows = 0
    for n, k in observations:
        det = detections[(n, k)]
        assert det is not None  # observations come from views with a detection
        obs.append((n, k, objp[det.ids], det.points.astype(np.float64), rows))
        rows += 2 * len(det.ids)
    x0 = np.concatenate([_pose_vector(poses[n]) for n in names] + [_pose_vector(boards[k]) for k in keys])
    fixed = _pose_vector(boards[fixed_key])
    n_params = len(x0)

    def project(x: np.ndarray, with_jacobian: bool) -> tuple[np.ndarray, coo_matrix | None]:
        """Residuals (reprojected - observed corners, px) and, when asked, their Jacobian: OpenCV gives
        the derivatives of projectPoints by the composed board -> camera pose and those of composeRT by
        its two poses; the chain rule joins them."""
        ctx.check_cancelled()
        out = np.empty(rows)
        blocks: list[tuple[int, int, np.ndarray]] = []  # (first row, first column, dense block)
        for n, k, obj, img, row in obs:
            c = cam_col[n]
            b = fixed if k == fixed_key else x[key_col[k]:key_col[k] + 6]
            r, t, dr_db_r, dr_db_t, dr_dc_r, dr_dc_t, dt_db_r, dt_db_t, dt_dc_r, dt_dc_t = cv2.composeRT(
                b[:3], b[3:], x[c:c + 3], x[c + 3:c + 6])
            proj, jp = cv2.projectPoints(obj, r, t, intrinsics[n].matrix, intrinsics[n].distortion)
            out[row:row + 2 * len(obj)] = (proj.reshape(-1, 2) - img).ravel()
            if with_jacobian:
                d_rt = jp[:, :6]  # by the composed rvec and tvec
                blocks.append((row, c, d_rt @ np.block([[dr_dc_r, dr_dc_t], [dt_dc_r, dt_dc_t]])))
                if k != fixed_key:
                    blocks.append((row, key_col[k], d_rt @ np.block([[dr_db_r, dr_db_t], [dt_db_r, dt_db_t]])))
        if not with_jacobian:
            return out, None
        r_idx = np.concatenate([np.repeat(np.arange(r0, r0 + len(b)), 6) for r0, _c, b in blocks])
        c_idx = np.concatenate([np.tile(np.arange(c0, c0 + 6), len(b)) for _r, c0, b in blocks])
        values = np.concatenate([b.ravel() for _r, _c, b in blocks])
        return out, coo_matrix((values, (r_idx, c_idx)), shape=(rows, n_params))

    ctx.progress("bundle adjustment", 0, 1, f"{len(names)} cameras, {len(keys) + 1} board poses, {rows // 2} corners")
    # Plain least squares: the chained poses start within a few pixels, and board corners have no gross
    # outliers once found. ftol 1e-6: later steps move the cameras by micrometres.
    fit = least_squares(lambda x: project(x, False)[0], x0, jac=lambda x: project(x, True)[1].tocsr(),  # type: ignore[union-attr]
                        method="trf", tr_solver="lsmr", ftol=1e-6)
    res = fit.fun.reshape(-1, 2)
    errors = {}
    for n in names:
        sel = np.concatenate([np.arange(row // 2, row // 2 + len(obj)) for m, _k, obj, _i, row in obs if m == n])
        errors[n] = float(np.sqrt(np.mean(np.sum(res[sel] ** 2, axis=1))))
    out_boards = {k: _pose_matrix(fit.x[key_col[k]:key_col[k] + 6]) for k in keys}
    out_boards[fixed_key] = boards[fixed_key]
    rms = float(np.sqrt(np.mean(np.sum(res ** 2, axis=1))))
    per_observation = {(n, k): float(np.sqrt(np.mean(np.sum(res[row // 2:row // 2 + len(obj)] ** 2, axis=1))))
                       for n, k, obj, _i, row in obs}
    ctx.progress("bundle adjustment", 1, 1, f"RMS {rms:.2f} px after {fit.nfev} steps")
    return Adjusted({n: _pose_matrix(fit.x[cam_col[n]:cam_col[n] + 6]) for n in names}, out_boards, errors, rms,
                    per_observation)


def calibrate_intrinsics(board: Board, camera: str, views: Sequence[BoardView]) -> Intrinsics:
    """calibrateCamera over the views with the board; clear errors for too few of them or mixed sizes."""
    if not views:
        raise InvalidInput(f"{camera}: no image or video frame to calibrate it from")
    sizes = {v.size for v in views}
    if len(sizes) > 1:
        first = views[0]
        other = next(v for v in views if v.size != first.size)
        raise InvalidInput(f"{camera}: its images differ in size ({other.label} is {other.size[0]}x{other.size[1]}, "
                           f"{first.label} {first.size[0]}x{first.size[1]}); one camera's images must share one "
                           "resolution and orientation: split them into separate cameras or re-export them")
    found = [v for v in views if v.detection is not None]
    missed = tuple(v.label for v in views if v.detection is None)
    if not found:
        raise FailedPrecondition(
            f"{camera}: {board.describe()} was found in none of its {len(views)} images ({_some(missed)}). Check the "
            "board size (a checkerboard counts its inner corners: 5x8 squares are 4x7) and that the whole board is "
            "in the picture, sharp and well lit", reason="BOARD_NOT_FOUND")
    if len(found) < MIN_VIEWS:
        raise FailedPrecondition(
            f"{camera}: {board.describe()} was found in only {len(found)} of {len(views)} images "
            f"({_some(tuple(v.label for v in found))}; not in {_some(missed)}); its lens needs at least {MIN_VIEWS}: "
            "add pictures of the whole board at different angles and places in the frame", reason="TOO_FEW_VIEWS")
    size = views[0].size
    rms, k, dist, per_view = _calibrate_camera(board, found, size)
    # A view far worse than the others (a stray corner, motion blur) bends the lens for all of them:
    # left out once, while enough views remain.
    typical = float(np.median(per_view))
    keep = [v for v, e in zip(found, per_view, strict=True) if e <= max(1.0, 3 * typical)]
    left_out = tuple(f"{v.label} ({e:.1f} px against {typical:.2f} px typically)"
                     for v, e in zip(found, per_view, strict=True) if e > max(1.0, 3 * typical))
    if left_out and len(keep) >= MIN_VIEWS:
        rms, k, dist, _ = _calibrate_camera(board, keep, size)
        found = keep
    else:
        left_out = ()
    return Intrinsics(matrix=k, distortion=dist.ravel()[:4].copy(), size=size, rms_px=float(rms),
                      used=tuple(v.label for v in found), not_found=missed, left_out=left_out)


def _calibrate_camera(board: Board, views: Sequence[BoardView], size: tuple[int, int]
                      ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's calibrateCamera (k3 fixed at 0): RMS, K, distortion and each view's RMS error."""
    objp = board.object_points()
    obj = [objp[v.detection.ids] for v in views if v.detection is not None]
    img = [v.detection.points.reshape(-1, 1, 2) for v in views if v.detection is not None]
    rms, k, dist, _r, _t, _sd_i, _sd_e, per_view = cv2.calibrateCameraExtended(
        obj, img, size, np.eye(3), np.zeros(5), flags=cv2.CALIB_FIX_K3)
    return float(rms), np.asarray(k), np.asarray(dist), np.asarray(per_view).ravel()


def read_board_views(board: Board, cameras: Sequence[CameraSources], ctx: JobContext, *,
                     max_frames: int = DEFAULT_MAX_FRAMES) -> dict[str, list[BoardView]]:
    """Every camera's images and sampled frames with the board found in them. Intrinsics views get
    negative keys (they are never matched across cameras); extrinsics views their frame keys."""
    plans = [(cam.name, src, role) for cam in cameras for role, srcs in (("i", cam.intrinsics), ("e", cam.extrinsics))
             for src in srcs]
    counts = {id(src): _frame_count(src) for _n, src, _r in plans}
    longest = max([counts[id(s)] for _n, s, r in plans if r == "e" and counts[id(s)] > 1], default=1)
    step = max(1, math.ceil(longest / max_frames))  # the same frames of every synchronised video
    total = sum(_sampled(counts[id(s)], r, step, max_frames) for _n, s, r in plans)
    out: dict[str, list[BoardView]] = {cam.name: [] for cam in cameras}
    done = 0
    singles: dict[tuple[str, str], int] = {}
    for name, src, role in plans:
        n = counts[id(src)]
        frames = (_spread(n, max_frames) if role == "i" else list(range(0, n, step))) if n > 1 else None
        for number, label, gray in _read(src, frames):
            if number is None:  # a separate image: matched by its place among the camera's images
                number = singles.get((name, role), 0)
                singles[(name, role)] = number + 1
            key = number if role == "e" else -1 - len(out[name])
            out[name].append(BoardView(name, key, label, (gray.shape[1], gray.shape[0]), detect(board, gray)))
            done += 1
            ctx.progress("finding the board", done, total, label)
            ctx.check_cancelled()
    return out


def calibration_json(cal: Calibration) -> str:
    """The keygrip.calibration file of a calibration."""
    return calibration_text([c.camera for c in cal.cameras], [c.reprojection_error_px for c in cal.cameras])


# Internals --------------------------------------------------------------------------------------


def _result(name: str, k: Intrinsics, rvec: np.ndarray, tvec: np.ndarray, error: float,
            shares: int) -> CalibratedCamera:
    cam = Camera.from_opencv(k.matrix, rvec, tvec, k.size[0], k.size[1])
    return CalibratedCamera(VideoCamera(name=name, camera=cam, distortion=tuple(float(d) for d in k.distortion)),
                            float(error), k.rms_px, k.used, k.not_found, shares)


def _solve_pnp(objp: np.ndarray, det: Detection, k: Intrinsics) -> tuple[np.ndarray, float]:
    """Board -> camera (4x4) from one view (IPPE: made for planar targets) and its RMS reprojection error."""
    obj = objp[det.ids]
    ok, rvec, tvec = cv2.solvePnP(obj, det.points, k.matrix, k.distortion, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        ok, rvec, tvec = cv2.solvePnP(obj, det.points, k.matrix, k.distortion)
    px, _ = cv2.projectPoints(obj, rvec, tvec, k.matrix, k.distortion)
    rms = float(np.sqrt(np.mean(np.sum((px.reshape(-1, 2) - det.points) ** 2, axis=1))))
    return _homogeneous(cv2.Rodrigues(rvec)[0], tvec.ravel()), rms


def _floor_key(seen_by: dict[int, list[str]], floor_frame: int | None) -> int:
    if floor_frame is not None:
        if floor_frame not in seen_by:
            found = sorted(seen_by)
            raise InvalidInput(f"floor frame {floor_frame}: no camera found the board in that frame (it was found in "
                               f"frames {_some(tuple(str(f) for f in found))}); pick one where it lies on the floor")
        return floor_frame
    most = max(len(v) for v in seen_by.values())
    return min(k for k, v in seen_by.items() if len(v) == most)


def _no_shared_view_message(lost: list[str], names: list[str], seen_by: dict[int, list[str]]) -> str:
    placed = [n for n in names if n not in lost]
    parts = []
    for n in lost:
        own = sorted(k for k, who in seen_by.items() if n in who)
        where = f"it found the board in frames {_some(tuple(str(k) for k in own))}" if own else "it found no board view"
        parts.append(f"{n} ({where})")
    one = len(lost) == 1
    return (f"{', '.join(parts)} {'shares' if one else 'share'} no board view with {', '.join(placed)}, so "
            f"{'it' if one else 'they'} cannot be placed beside them. Film the board where "
            f"{'this camera' if one else 'each of these cameras'} and at least one other see it at the same moment "
            "(the same frame of synchronised videos, or the same place in each camera's list of photos)")


def _some(labels: tuple[str, ...], limit: int = 6) -> str:
    if not labels:
        return "none"
    shown = ", ".join(labels[:limit])
    return shown if len(labels) <= limit else f"{shown} and {len(labels) - limit} more"


def _homogeneous(r: np.ndarray, t: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = t
    return m


def _pose_vector(m: np.ndarray) -> np.ndarray:
    return np.concatenate([cv2.Rodrigues(m[:3, :3])[0].ravel(), m[:3, 3]])


def _pose_matrix(x: np.ndarray) -> np.ndarray:
    return _homogeneous(cv2.Rodrigues(np.asarray(x[:3], dtype=np.float64))[0], x[3:6])


def _is_image(path: Path) -> bool:
    return path.is_file() and cv2.haveImageReader(str(path))


def _frame_count(src: Source) -> int:
    """1 for a separate image, else the frames of the video or sequence."""
    from inference_server.media import video

    if _is_image(src.path):
        return 1
    return video.probe(src.path).frame_count


def _sampled(count: int, role: str, step: int, max_frames: int) -> int:
    if count <= 1:
        return 1
    return len(_spread(count, max_frames)) if role == "i" else len(range(0, count, step))


def _spread(count: int, most: int) -> list[int]:
    """Up to `most` frame offsets spread evenly over a clip of `count` frames."""
    return sorted({int(round(x)) for x in np.linspace(0, count - 1, min(count, most))})


def _read(src: Source, offsets: list[int] | None) -> Iterator[tuple[int | None, str, np.ndarray]]:
    """(frame number or None for a separate image, label, grey image) of the frames at these offsets
    from the clip's first (None: a separate image)."""
    from inference_server.media import video

    if offsets is None:
        gray = cv2.imread(str(src.path), cv2.IMREAD_GRAYSCALE) if _is_image(src.path) else None
        if gray is None:  # a one-frame video or sequence
            frame = next(video.iter_frames(src.path), None)
            if frame is None:
                raise InvalidInput(f"{src.name}: no frame could be read")
            gray = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)
        yield None, src.name, gray
        return
    info = video.probe(src.path)
    wanted = {info.first_frame + o for o in offsets}
    seq = video.image_sequence(src.path)
    for frame in video.iter_frames(src.path, start=info.first_frame, end=info.first_frame + max(offsets) + 1):
        if frame.index in wanted:
            label = seq.name(frame.index) if seq is not None else f"{src.name} frame {frame.index}"
            yield frame.index, label, cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)
