"""Hands and face in a multi-camera capture: triangulated where two views see them and agree.

The solver's hand and face passes (mocap/hands.py, mocap/face.py) read one view's image landmarks:
normalised x and y, and MediaPipe's relative depth z on the x scale. A single view guesses that
depth; where two or more views see a hand (or the face), triangulate.py's confidence-weighted DLT
with its reprojection gate gives each landmark in 3D. Those points reach the solver unchanged in
form: as the view it reads would see them (projected through its calibrated camera, the depth
relative to the wrist or the nose at the projection's scale), so its passes need no change. A
frame where no two views agree on every landmark of a hand (or on FACE_SHARE of the face's, the
rest taken from the view), or where the triangulated wrist is far from the body's, keeps that view's
own landmarks, as a capture from one view would.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from inference_server.mocap.landmarks import Landmarks
from inference_server.multicam.triangulate import Triangulated, normalized_points, triangulate
from keygrip.projection import VideoCamera

# MediaPipe's hand and face landmarks carry no confidence of their own: a detected one weighs this.
LANDMARK_CONFIDENCE = 0.9
# A triangulated hand whose wrist lies farther than this from the body's triangulated wrist is
# another hand, or a wrong one (metres).
MAX_WRIST_GAP_M = 0.1
# A face frame is taken from the triangulation when this share of its points is triangulated (views
# at the side see the far cheek's points guessed, which the gate rightly leaves out).
FACE_SHARE = 0.8
# The anchor of each part: the hand's wrist (hand landmark 0) and the body's wrist; the face's
# nose tip (face mesh 1) and the body's nose.
_PARTS = {"left_hand_image": (0, 15), "right_hand_image": (0, 16), "face_image": (1, 0)}


@dataclass
class SeenPart:
    """One part's triangulation: points (F, N, 3) world points where taken (NaN elsewhere), used
    (F,) the frames taken from the triangulation, triangulated (the raw triangulation)."""

    points: np.ndarray
    used: np.ndarray
    triangulated: Triangulated


def pixels_of(cam: VideoCamera, points: np.ndarray) -> np.ndarray:
    """World points (..., 3) -> (..., 2) pixels of the projection model (centres at +0.5), with the
    camera's lens distortion as the detector saw it; NaN where a point is missing or behind."""
    import cv2

    k, r, t = cam.camera.to_opencv()
    flat = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    out = np.full((len(flat), 2), np.nan)
    ok = np.isfinite(flat).all(axis=1) & ((flat @ r.T + t)[:, 2] > 0)
    if ok.any():
        dist = np.asarray(cam.distortion or (0.0, 0.0, 0.0, 0.0), dtype=np.float64)
        out[ok] = cv2.projectPoints(flat[ok], cv2.Rodrigues(r)[0], t, k, dist)[0].reshape(-1, 2) + 0.5
    return out.reshape(*np.shape(points)[:-1], 2)


def triangulate_part(lms: list[Landmarks], cams: list[VideoCamera], name: str,
                     body: np.ndarray) -> SeenPart | None:
    """A part (a Landmarks field name of _PARTS) triangulated over the views that have it; None
    when fewer than two views tracked it. body: (F, 33, 3) the triangulated body, for the anchor."""
    arrays = [getattr(lm, name) for lm in lms]
    if sum(a is not None for a in arrays) < 2:
        return None
    n = next(a for a in arrays if a is not None).shape[1]
    frames = body.shape[0]
    pixels = np.full((len(lms), frames, n, 2), np.nan)
    for v, (a, lm) in enumerate(zip(arrays, lms, strict=True)):
        if a is not None:
            pixels[v] = a[:frames, :, :2] * np.asarray(lm.image_size, dtype=np.float64)
    conf = np.where(np.isfinite(pixels).all(axis=-1), LANDMARK_CONFIDENCE, 0.0)
    tri = triangulate(cams, pixels, conf)
    found = np.isfinite(tri.points).all(axis=-1)  # (F, N)
    own, anchor = _PARTS[name]
    share = 1.0 if name != "face_image" else FACE_SHARE
    used = (found.mean(axis=1) >= share) & found[:, own]
    gap = np.linalg.norm(tri.points[:, own] - body[:, anchor], axis=-1)
    if name != "face_image":
        used &= gap < MAX_WRIST_GAP_M
    points = np.where(used[:, None, None], tri.points, np.nan)
    return SeenPart(points=points, used=used, triangulated=tri)


def lifted(lm: Landmarks, cam: VideoCamera, name: str, body: np.ndarray) -> np.ndarray:
    """A view's own landmarks of a part as world points (F, N, 3): its anchor at the body's
    triangulated anchor, the others at the depth MediaPipe's relative z gives them (what the solver
    makes of one view). NaN where the view has no landmarks."""
    image = getattr(lm, name)
    own, anchor = _PARTS[name]
    frames = body.shape[0]
    k, r, t = cam.camera.to_opencv()
    w, h = lm.image_size
    depth = (body[:, anchor] @ r.T + t)[:, 2]  # (F,) the anchor's depth in the view
    rel = (image[:frames, :, 2] - image[:frames, own:own + 1, 2]) * w  # relative depth in pixels
    z = depth[:, None] * (1.0 + rel / k[0, 0])
    xy = normalized_points(cam, image[:frames, :, :2] * (w, h))
    cam_pts = np.concatenate([xy * z[..., None], z[..., None]], axis=-1)
    return (cam_pts - t) @ r  # camera -> world: R^T (x - t)


def as_seen_by(points: np.ndarray, cam: VideoCamera, name: str, image_size: tuple[int, int]) -> np.ndarray:
    """World points of a part (F, N, 3) as a view's image landmarks (F, N, 3): x and y its pixels
    normalised, z the depth relative to the part's anchor on the x scale, as MediaPipe gives."""
    own, _ = _PARTS[name]
    w, h = image_size
    k, r, t = cam.camera.to_opencv()
    depth = (points @ r.T + t)[..., 2]
    px = pixels_of(cam, points)
    rel = (depth - depth[:, own:own + 1]) * k[0, 0] / depth[:, own:own + 1] / w
    return np.concatenate([px / (w, h), rel[..., None]], axis=-1)


def seen_view(lms: list[Landmarks], cams: list[VideoCamera], best: int, body: np.ndarray
              ) -> tuple[Landmarks, dict[str, SeenPart]]:
    """The view the solver reads hands and face from (lms[best]), with each part replaced by its
    triangulation in the frames two views agree on; and those triangulations by part name."""
    view = lms[best]
    parts: dict[str, SeenPart] = {}
    replaced = {}
    for name in _PARTS:
        own = getattr(view, name)
        if own is None:
            continue
        part = triangulate_part(lms, cams, name, body)
        if part is None or not part.used.any():
            continue
        parts[name] = part
        used = part.used
        points = part.triangulated.points[used]
        if name == "face_image":
            # Points no two views agreed on keep the view's own, at the triangulated nose's depth.
            single = lifted(view, cams[best], name, body)[used]
            points = np.where(np.isfinite(points), points, single)
        out = own.copy()
        out[:len(used)][used] = as_seen_by(points, cams[best], name, view.image_size)
        replaced[name] = out
    return dataclasses.replace(view, **replaced), parts
