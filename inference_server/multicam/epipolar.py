"""Epipolar consistency between calibrated views: is it the same person, labelled the same way, at
the same instant?

A body point seen in view a must lie on the epipolar line that its image in view b draws in a;
the distance to that line (symmetric, in pixels) is small only when both views see the same point
of the same person at the same time. That one measure answers three questions here:

- labels: MediaPipe sometimes takes a person seen from behind for one facing the camera and labels
  their left side as the right: per frame and view, the labelling (as given or mirrored) that fits
  the other views better is kept;
- association: a view whose person does not fit any other view on a frame saw someone else (or
  nobody) there, and takes no part in that frame;
- timing: the frame offset between two views that minimises the distance (sync.py uses it when
  the files carry no timecode).
"""

from __future__ import annotations

import numpy as np

from inference_server.mocap.landmarks import Landmarks
from inference_server.mocap.swaps import MIRROR
from inference_server.multicam.triangulate import normalized_points
from keygrip.projection import VideoCamera

MIN_CONFIDENCE = 0.5
# A person in two views is the same when their confident points lie within this fraction of the
# image height of each other's epipolar lines (median over the points; about 48 px at 1920 px).
SAME_PERSON_PER_HEIGHT = 0.025


def view_points(cams: list[VideoCamera], lms: list[Landmarks], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The views' body points over their first n frames as the checks here take them: (V, n, 33, 2)
    undistorted normalised coordinates and (V, n, 33) confidences (0 where nobody was found)."""
    xy = np.stack([normalized_points(c, lm.pose_image[:n, :, :2] * lm.image_size) for c, lm in
                   zip(cams, lms, strict=True)])
    conf = np.stack([np.where(np.asarray(lm.pose_present[:n], bool)[:, None], np.nan_to_num(lm.pose_visibility[:n]),
                              0.0) for lm in lms])
    return xy, conf


def _skew(t: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -t[2], t[1]], [t[2], 0.0, -t[0]], [-t[1], t[0], 0.0]])


def essential(a: VideoCamera, b: VideoCamera) -> np.ndarray:
    """E with x_b^T E x_a = 0 for normalised (OpenCV) image points of the same world point."""
    _, ra, ta = a.camera.to_opencv()
    _, rb, tb = b.camera.to_opencv()
    r = rb @ ra.T
    t = tb - r @ ta
    return _skew(t) @ r


def distance(e: np.ndarray, xa: np.ndarray, xb: np.ndarray, focal: float) -> np.ndarray:
    """Symmetric epipolar distance (...,) in pixels (focal: pixels per normalised unit) of normalised
    points xa (..., 2) in view a and xb (..., 2) in view b; NaN where either is missing."""
    ha = np.concatenate([xa, np.ones(xa.shape[:-1] + (1,))], axis=-1)
    hb = np.concatenate([xb, np.ones(xb.shape[:-1] + (1,))], axis=-1)
    lb = ha @ e.T  # epipolar lines in b
    la = hb @ e    # epipolar lines in a
    num = np.abs(np.sum(hb * lb, axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        d = 0.5 * num * (1.0 / np.linalg.norm(lb[..., :2], axis=-1) + 1.0 / np.linalg.norm(la[..., :2], axis=-1))
    return d * focal


def _focal(c: VideoCamera) -> float:
    return 0.5 * (c.camera.focal_x + c.camera.focal_y)


def pair_cost(cams: list[VideoCamera], xy: np.ndarray, conf: np.ndarray, a: int, b: int,
              index_a: np.ndarray | None = None) -> np.ndarray:
    """(F,) median epipolar distance in pixels between views a and b over the points both see
    confidently (NaN where fewer than 4); index_a relabels view a's points (MIRROR: swapped)."""
    pa, ca = (xy[a], conf[a]) if index_a is None else (xy[a][:, index_a], conf[a][:, index_a])
    d = distance(essential(cams[a], cams[b]), pa, xy[b], 0.5 * (_focal(cams[a]) + _focal(cams[b])))
    ok = (np.minimum(ca, conf[b]) >= MIN_CONFIDENCE) & np.isfinite(d)
    med = np.full(len(ok), np.nan)
    rows = ok.sum(axis=1) >= 4
    if rows.any():
        med[rows] = np.nanmedian(np.where(ok[rows], d[rows], np.nan), axis=1)
    return med


def fix_labels(cams: list[VideoCamera], xy: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """(V, F) bool: the frames of each view whose left and right labels should be exchanged, because
    the mirrored labelling fits the other views better. xy: (V, F, 33, 2) normalised points."""
    v = len(cams)
    swap = np.zeros(xy.shape[:2], dtype=bool)
    for i in range(v):
        as_is = np.zeros(xy.shape[1])
        mirrored = np.zeros(xy.shape[1])
        for k in range(v):
            if k == i:
                continue
            as_is += np.nan_to_num(pair_cost(cams, xy, conf, i, k), nan=0.0)
            mirrored += np.nan_to_num(pair_cost(cams, xy, conf, i, k, MIRROR), nan=0.0)
        swap[i] = mirrored < 0.5 * as_is  # clearly better, not a coin toss on a side view
    return swap


def agreement(cams: list[VideoCamera], xy: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """(V, F) bool: whether each view's person fits at least one other view's on each frame."""
    v, f = xy.shape[:2]
    ok = np.zeros((v, f), dtype=bool)
    for a in range(v):
        gate = SAME_PERSON_PER_HEIGHT * cams[a].camera.height
        for b in range(v):
            if a != b:
                ok[a] |= pair_cost(cams, xy, conf, a, b) < gate
    return ok
