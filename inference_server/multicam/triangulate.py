"""3D points from their 2D detections in calibrated views: weighted DLT with outlier views rejected.

Each point (a joint in a frame) is seen by up to V views, each with a confidence. A detector's wrong
answer in one view (a left/right swap, a limb hidden behind the body, another person) must not drag
the 3D point, so every pair of views proposes a point (RANSAC over the view pairs, which for 2 to 8
cameras is cheap enough to try exhaustively), the views whose reprojection error of that point is
under the gate vote for it with their confidence, and the point with the most support is solved
again from its inlier views alone, each row of the DLT weighted by its view's confidence.

Pixels: image points are in the projection model's convention (keygrip.projection: pixel centres
at +0.5, as MediaPipe's normalised coordinates times the image size give); they are undistorted
with cv2.undistortPoints before the linear solve, so the error gate is in undistorted pixels.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np

from keygrip.projection import VideoCamera

# A view's detection below this confidence takes no part.
MIN_CONFIDENCE = 0.3
# Reprojection error gate, as a fraction of the image height (about 29 px on a 1920 px high image):
# MediaPipe's joints wander by up to this much between views on the same body.
GATE_PER_HEIGHT = 0.015
# Points no two views agree on within the gate may be taken within this many gates (see triangulate).
FALLBACK_GATE_FACTOR = 2.0


@dataclass
class Triangulated:
    """points: (F, J, 3) world points, NaN where fewer than two views agree. confidence: (F, J) the
    mean confidence of the inlier views (0 where no point). inliers: (V, F, J) which views the
    point was solved from. error_px: (F, J) the inliers' mean reprojection error in pixels."""

    points: np.ndarray
    confidence: np.ndarray
    inliers: np.ndarray
    error_px: np.ndarray


def normalized_points(camera: VideoCamera, pixels: np.ndarray) -> np.ndarray:
    """(..., 2) pixels of one view -> (..., 2) undistorted normalised image coordinates (OpenCV
    camera axes: x right, y down, at depth 1); NaN stays NaN."""
    import cv2

    k, _, _ = camera.camera.to_opencv()
    flat = np.asarray(pixels, dtype=np.float64).reshape(-1, 2) - 0.5  # OpenCV: pixel centres on integers
    ok = np.all(np.isfinite(flat), axis=1)
    out = np.full_like(flat, np.nan)
    if ok.any():
        dist = np.asarray(camera.distortion or (0.0, 0.0, 0.0, 0.0), dtype=np.float64)
        out[ok] = cv2.undistortPoints(flat[ok].reshape(-1, 1, 2), k, dist).reshape(-1, 2)
    return out.reshape(np.shape(pixels))


def _projections(cameras: list[VideoCamera], origin: np.ndarray | None = None) -> np.ndarray:
    """(V, 3, 4) world -> OpenCV normalised camera matrices [R | t], for points given relative to
    origin (3,) when one is given."""
    mats = []
    for c in cameras:
        _, r, t = c.camera.to_opencv()
        if origin is not None:
            t = t + r @ origin
        mats.append(np.hstack([r, t[:, None]]))
    return np.stack(mats)


def _dlt(proj: np.ndarray, xy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted DLT. proj (V, 3, 4), xy (V, N, 2) normalised, w (V, N) weights (0: view unused)
    -> (N, 3); NaN where fewer than two views have weight."""
    x = np.nan_to_num(xy[..., 0])
    y = np.nan_to_num(xy[..., 1])
    rows_x = x[..., None] * proj[:, None, 2] - proj[:, None, 0]  # (V, N, 4)
    rows_y = y[..., None] * proj[:, None, 2] - proj[:, None, 1]
    a = np.concatenate([rows_x * w[..., None], rows_y * w[..., None]], axis=0)  # (2V, N, 4)
    a = np.transpose(a, (1, 0, 2))  # (N, 2V, 4)
    _, _, vt = np.linalg.svd(a)
    h = vt[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        pts = h[:, :3] / h[:, 3:4]
    pts[(w > 0).sum(axis=0) < 2] = np.nan
    return pts


def _errors(proj: np.ndarray, focal: np.ndarray, xy: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """(V, N) reprojection errors in (undistorted) pixels; inf behind a camera or where missing."""
    cam = np.einsum("vij,nj->vni", proj[:, :, :3], pts) + proj[:, None, :, 3]
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.linalg.norm(cam[..., :2] / z[..., None] - xy, axis=-1) * focal[:, None]
    return np.where((z > 0) & np.isfinite(err), err, np.inf)


def joint_errors(cameras: list[VideoCamera], xy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(V, N) reprojection errors in pixels of the points (N) triangulated from every view at once
    (weighted DLT, no view rejected): xy (V, N, 2) normalised image points, w (V, N) weights; inf
    where a view has no weight or the point could not be solved. A view out of step with the others
    pulls every point off and is pulled off in turn, so the errors grow with any view's timing error
    (sync.py scores frame offsets by them)."""
    proj = _projections(cameras)
    focal = np.array([0.5 * (c.camera.focal_x + c.camera.focal_y) for c in cameras])
    err = _errors(proj, focal, xy, _dlt(proj, xy, w))
    return np.where(w > 0, err, np.inf)


def _consensus(proj: np.ndarray, focal: np.ndarray, xy: np.ndarray, w: np.ndarray, gate: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RANSAC over view pairs and the inliers' weighted DLT: points (N, 3) (NaN without two
    agreeing views), inliers (V, N), reprojection errors (V, N)."""
    v, n = w.shape
    best_score = np.full(n, -1.0)
    best_inliers = np.zeros((v, n), dtype=bool)
    for a, b in itertools.combinations(range(v), 2):
        pair = np.zeros_like(w)
        pair[[a, b]] = w[[a, b]]
        pts = _dlt(proj, xy, pair)
        inl = (_errors(proj, focal, xy, pts) < gate) & (w > 0)
        inl[:, ~np.isfinite(pts).all(axis=1)] = False
        # Support: the inliers' summed confidence; the pair itself must be among them.
        score = np.where(inl[a] & inl[b], (w * inl).sum(axis=0), -1.0)
        better = score > best_score
        best_score[better] = score[better]
        best_inliers[:, better] = inl[:, better]

    pts = _dlt(proj, xy, w * best_inliers)
    # One refinement: views the consensus point fits join, views it does not fit leave.
    inl = (_errors(proj, focal, xy, pts) < gate) & (w > 0)
    refit = inl.sum(axis=0) >= 2
    pts[refit] = _dlt(proj, xy[:, refit], (w * inl)[:, refit])
    err = _errors(proj, focal, xy, pts)
    inl = (err < gate) & (w > 0) & np.isfinite(pts).all(axis=1)
    ok = inl.sum(axis=0) >= 2
    pts[~ok] = np.nan
    inl[:, ~ok] = False
    return pts, inl, err


def triangulate(cameras: list[VideoCamera], pixels: np.ndarray, confidence: np.ndarray,
                gate_px: float | None = None) -> Triangulated:
    """Triangulate (V, F, J, 2) pixels with (V, F, J) confidences seen by V calibrated cameras.

    gate_px: the reprojection error above which a view is an outlier for a point (default:
    GATE_PER_HEIGHT of the tallest image).
    """
    v, f, j = confidence.shape
    if len(cameras) != v or pixels.shape[:3] != (v, f, j):
        raise ValueError(f"{len(cameras)} cameras, pixels {pixels.shape}, confidence {confidence.shape}")
    gate = gate_px if gate_px is not None else GATE_PER_HEIGHT * max(c.camera.height for c in cameras)
    # The DLT's algebraic error is not invariant to where the world's origin lies: solved about the
    # cameras' centre, the points are the same whatever rigid world the calibration is in (a world
    # turned and moved gives the same points turned and moved, which floor.py relies on).
    origin = np.mean([c.camera.position for c in cameras], axis=0)
    proj = _projections(cameras, origin)
    focal = np.array([0.5 * (c.camera.focal_x + c.camera.focal_y) for c in cameras])
    xy = np.stack([normalized_points(c, pixels[i]) for i, c in enumerate(cameras)]).reshape(v, f * j, 2)
    w = np.where((confidence.reshape(v, -1) >= MIN_CONFIDENCE) & np.all(np.isfinite(xy), axis=-1),
                 confidence.reshape(v, -1), 0.0)

    pts, inl, err = _consensus(proj, focal, xy, w, gate)
    conf = (w * inl).sum(axis=0) / np.maximum(inl.sum(axis=0), 1)
    # Where no two views agree within the gate, accept agreement within twice the gate, at half
    # the confidence: rather a coarse point than a gap bridged over many frames (two views that
    # face each other, or a detector that disagrees with itself across views for a while).
    lost = ~np.isfinite(pts).all(axis=1) & ((w > 0).sum(axis=0) >= 2)
    if lost.any():
        p2, i2, e2 = _consensus(proj, focal, xy[:, lost], w[:, lost], FALLBACK_GATE_FACTOR * gate)
        pts[lost], inl[:, lost], err[:, lost] = p2, i2, e2
        conf[lost] = 0.5 * (w[:, lost] * i2).sum(axis=0) / np.maximum(i2.sum(axis=0), 1)
    ok = inl.sum(axis=0) >= 2
    n = np.maximum(inl.sum(axis=0), 1)
    conf = np.where(ok, conf, 0.0)
    mean_err = np.where(ok, np.where(inl, err, 0.0).sum(axis=0) / n, np.nan)
    return Triangulated(points=pts.reshape(f, j, 3) + origin, confidence=conf.reshape(f, j),
                        inliers=inl.reshape(v, f, j), error_px=mean_err.reshape(f, j))


def smoothed(points: Triangulated, fps: float, cutoff_hz: float | None) -> Triangulated:
    """The points low-passed along time (mocap.filters.lowpass, zero-phase), each joint's gaps
    bridged for the filter and left empty after it. The solver filters its joint angles too, but
    the points it measures bone lengths and places the root from, and the points a caller reads,
    jitter in depth frame to frame (about 3-4 cm on the Pose2Sim trial's hips): filtering them at
    the solve's cut-off took the 4-view points from 44.2 / 36.9 to 42.0 / 34.4 mm MPJPE / PA-MPJPE."""
    from inference_server.mocap import filters

    p = points.points.copy()
    frames = np.arange(len(p))
    for j in range(p.shape[1]):
        ok = np.isfinite(p[:, j]).all(axis=-1)
        if ok.sum() < 2:
            continue
        bridged = np.stack([np.interp(frames, frames[ok], p[ok, j, k]) for k in range(3)], axis=-1)
        p[ok, j] = filters.lowpass(bridged, fps, cutoff_hz)[ok]
    return dataclasses.replace(points, points=p)
