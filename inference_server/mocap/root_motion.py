"""Where the subject is in space: camera-relative root translation through a pinhole camera, and
the floor.

MediaPipe's world landmarks give body shape in metres around the hips but no position; its image
landmarks give where the body is in the picture. A pinhole camera ties the two together: the depth
at which the metric body projects onto its image extent is the one the scale of the two implies.
"""

from __future__ import annotations

import math

import numpy as np

# Enough confident landmarks to fix the three unknowns of a placement (with some redundancy).
_MIN_PLACEMENT_LANDMARKS = 3
# Frames of a confidently seen upright body estimate_up needs before it trusts the body over the camera.
MIN_UP_FRAMES = 3


def focal_length_px(image_size: tuple[int, int], focal_length: float | None = None,
                    fov_deg: float | None = None) -> float:
    """Focal length in pixels: given, from a field of view across the larger image side (Blender's
    automatic sensor fit), or by default the image diagonal (about a 53 degree diagonal view,
    typical of phones and consumer cameras). The values are checked by options.check_solve."""
    w, h = image_size
    if focal_length is not None:
        return float(focal_length)
    if fov_deg is not None:
        return 0.5 * max(w, h) / math.tan(math.radians(fov_deg) / 2.0)
    return float(math.hypot(w, h))


def camera_translation(pose_image: np.ndarray, pose_world: np.ndarray, visibility: np.ndarray,
                       image_size: tuple[int, int], focal: float) -> np.ndarray:
    """Position of the world-landmark origin (the hips midpoint) in camera space, per frame.

    pose_image: (F, 33, 3) normalised image landmarks; pose_world: (F, 33, 3) metric landmarks in
    MediaPipe axes; visibility: (F, 33). Returns (F, 3) in MediaPipe / OpenCV camera axes (x right,
    y down, z forward), metres; NaN where a frame has no usable landmarks.

    For each landmark j, projecting T + X_j must land on its pixel (u_j, v_j):
        f (T_x + X_j) = (u_j - c_x)(T_z + Z_j)   and the same for y,
    linear in T, so every frame is a weighted 3x3 least-squares solve, done for all frames at once.
    """
    w, h = image_size
    du = pose_image[..., 0] * w - 0.5 * w
    dv = pose_image[..., 1] * h - 0.5 * h
    xw, yw, zw = (pose_world[..., k] for k in range(3))
    # Every visible landmark helps: a head-and-shoulders shot has no legs to place by.
    weight = np.where(np.isfinite(du) & np.isfinite(xw), np.clip(visibility, 0.0, 1.0), 0.0)
    du, dv, xw, yw, zw = (np.nan_to_num(a) for a in (du, dv, xw, yw, zw))

    zeros = np.zeros_like(du)
    fcol = np.full_like(du, focal)
    # Rows of A (F, 2N, 3) and b (F, 2N).
    a = np.concatenate([np.stack([fcol, zeros, -du], -1), np.stack([zeros, fcol, -dv], -1)], axis=1)
    b = np.concatenate([du * zw - focal * xw, dv * zw - focal * yw], axis=1)
    wt = np.concatenate([weight, weight], axis=1)
    ata = np.einsum("fni,fn,fnj->fij", a, wt, a)
    atb = np.einsum("fni,fn,fn->fi", a, wt, b)
    usable = (weight > 0.5).sum(axis=1) >= _MIN_PLACEMENT_LANDMARKS
    ata[~usable] = np.eye(3)
    out = np.linalg.solve(ata, atb[..., None])[..., 0]
    out[~usable] = np.nan
    # A solution behind the camera means the landmarks were inconsistent for that frame.
    out[out[:, 2] <= 0.05] = np.nan
    return out


def floor_height(foot_heights: np.ndarray) -> float:
    """Floor height from foot point heights (F, C): a low percentile of the lowest foot point per
    frame, so that frames in the air (jumps) and single outliers do not lift or sink it."""
    lowest = np.nanmin(foot_heights, axis=1)
    return float(np.nanpercentile(lowest, 10.0))


def estimate_up(points: np.ndarray, visibility: np.ndarray) -> np.ndarray:
    """Gravity's up direction (3,) in the Y-up camera frame, from the body over the clip.

    points: (F, 33, 3) Y-up world landmarks of tracked frames; visibility (F, 33). Cameras are
    rarely level (the Pose2Sim lab cameras pitch down about 20 degrees), so the camera's own up
    is a poor floor normal. A standing or walking body is upright on average along the line
    from its lower ankle to its shoulders (the trunk alone leans too much); the median of that
    direction came within 7 to 11 degrees of the calibrated vertical in all four Pose2Sim views,
    against 18 to 33 degrees for the camera's up. Falls back to the camera's up when the
    landmarks cannot tell.
    """
    camera_up = np.array([0.0, 1.0, 0.0])
    if len(points) == 0:
        return camera_up
    shoulders = 0.5 * (points[:, 11] + points[:, 12])
    left_lower = points[:, 27, 1] < points[:, 28, 1]
    ankle = np.where(left_lower[:, None], points[:, 27], points[:, 28])
    vis = np.minimum(np.minimum(visibility[:, 11], visibility[:, 12]),
                     np.where(left_lower, visibility[:, 27], visibility[:, 28]))
    line = shoulders - ankle
    line = line / np.maximum(np.linalg.norm(line, axis=-1, keepdims=True), 1e-9)
    ok = np.all(np.isfinite(line), axis=1) & (vis > 0.5)
    if ok.sum() < MIN_UP_FRAMES:
        return camera_up
    up = np.median(line[ok], axis=0)
    up = up / max(float(np.linalg.norm(up)), 1e-9)
    # A body lying down or upside down says nothing about gravity.
    return up if up[1] > 0.5 else camera_up


def snap_to_rays(pose_image: np.ndarray, pose_world: np.ndarray, translation: np.ndarray,
                 image_size: tuple[int, int], focal: float) -> np.ndarray:
    """World landmarks (F, 33, 3, MediaPipe axes) moved onto their image rays at unchanged depth.

    MediaPipe's 2D landmarks are more precise than the x and y of its world landmarks; keeping
    each landmark's depth (translation z + world z) and taking x, y from its pixel through the
    pinhole lowered the Procrustes-aligned joint error by about 5% on three of the four Pose2Sim
    views (and raised it 2% on the fourth). Frames without a translation, and landmarks without an
    image position, keep the world landmarks.
    """
    w, h = image_size
    depth = translation[:, None, 2] + pose_world[..., 2]
    cam = np.stack([(pose_image[..., 0] * w - 0.5 * w) * depth / focal,
                    (pose_image[..., 1] * h - 0.5 * h) * depth / focal, depth], axis=-1)
    snapped = cam - translation[:, None]
    return np.where(np.isfinite(snapped), snapped, pose_world)
