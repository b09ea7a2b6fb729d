"""Carrying what earlier views painted into a later view, through the scene's depth (numpy + OpenCV).

For view k, every pixel with depth is unprojected to a world point and projected into each earlier
view j. The pixel is covered by j when the point lands inside j's image, in front of it, where j's
depth agrees with the point's own depth (relative tolerance: j sees this surface, not an occluder in
front of it), and j's mask says j painted it. Among the views that cover a pixel, the one that faces
the surface best wins (normals from view k's depth map): a surface seen head-on was painted with
more pixels per unit area than one seen at a grazing angle. Its colour is read from j's image with
bilinear interpolation (cv2.remap).

Conventions are keygrip.projection's: pixel (0, 0) is the top-left corner, pixel centres at +0.5,
depth linear along the view axis, NaN (or 0, inf) where there is nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from keygrip.projection import Camera

DEPTH_TOLERANCE = 0.01  # relative: a point 10 m away must meet j's depth within 10 cm
FEATHER_PX = 3          # kept pixels this close to newly generated ones are blended into them


@dataclass(frozen=True, eq=False)
class ViewGeometry:
    """A view as reprojection needs it: its camera, depth (H, W) float64 with NaN where there is
    nothing, and the pixels to paint (H, W) bool (the host's mask, only where there is depth)."""

    camera: Camera
    depth: np.ndarray
    paint: np.ndarray


@dataclass(frozen=True, eq=False)
class Reprojection:
    """What earlier views give view k: covered (H, W) bool, their colours (H, W, 3) float32 (valid where
    covered), and which earlier view each covered pixel came from (-1 where none)."""

    covered: np.ndarray
    colours: np.ndarray
    source: np.ndarray


def normals(camera: Camera, depth: np.ndarray) -> np.ndarray:
    """(H, W, 3) unit world normals from a depth map (cross product of the neighbouring points'
    differences), turned towards the camera; NaN where a neighbour has no depth."""
    points = camera.unproject(depth)
    du = np.gradient(points, axis=1)
    dv = np.gradient(points, axis=0)
    n = np.cross(du, dv)
    with np.errstate(invalid="ignore", divide="ignore"):
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        towards = np.sum(n * (camera.position - points), axis=-1) < 0
    n[towards] *= -1
    return n


def reproject(view: ViewGeometry, earlier: Sequence[tuple[ViewGeometry, np.ndarray]], *,
              tolerance: float = DEPTH_TOLERANCE) -> Reprojection:
    """Which of view's pixels earlier views painted, and with what colour. `earlier` pairs each earlier
    view with its final image ((H_j, W_j, 3) float32 sRGB in 0..1)."""
    import cv2

    h, w = view.depth.shape
    points = view.camera.unproject(view.depth)
    n = normals(view.camera, view.depth)
    best = np.full((h, w), -np.inf)
    source = np.full((h, w), -1, dtype=np.int64)
    colours = np.zeros((h, w, 3), dtype=np.float32)
    for j, (other, image) in enumerate(earlier):
        u, v, z = other.camera.project(points)
        # remap's coordinates are array indices: the pixel whose centre is at u sits at index u - 0.5
        x = np.nan_to_num(u - 0.5, nan=-1.0, posinf=-1.0, neginf=-1.0).astype(np.float32)
        y = np.nan_to_num(v - 0.5, nan=-1.0, posinf=-1.0, neginf=-1.0).astype(np.float32)
        inside = view.paint & (z > 0) & (u >= 0) & (u < other.camera.width) & (v >= 0) & (v < other.camera.height)
        depth_j = np.nan_to_num(other.depth, nan=np.inf).astype(np.float32)
        # The nearest pixel's depth holds at occlusion edges; the bilinear one along slanted surfaces,
        # where the nearest pixel centre can be half a pixel of slope away.
        nearest = cv2.remap(depth_j, x, y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        linear = cv2.remap(depth_j, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        with np.errstate(invalid="ignore"):
            agree = (np.abs(nearest - z) <= tolerance * z) | (np.abs(linear - z) <= tolerance * z)
        painted = cv2.remap(other.paint.astype(np.uint8), x, y, cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0,)) > 0
        ok = inside & agree & painted
        to_camera = other.camera.position - points
        with np.errstate(invalid="ignore", divide="ignore"):
            facing = np.sum(n * to_camera, axis=-1) / np.linalg.norm(to_camera, axis=-1)  # cosine
        facing = np.nan_to_num(facing, nan=0.0)
        better = ok & (facing > best)
        if not better.any():
            continue
        rgb = cv2.remap(np.asarray(image, dtype=np.float32), x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        colours[better] = rgb[better]
        best[better] = facing[better]
        source[better] = j
    return Reprojection(covered=source >= 0, colours=colours, source=source)


def keep_weights(covered: np.ndarray, paint: np.ndarray, feather: int = FEATHER_PX) -> np.ndarray:
    """(H, W) float32 weight of the kept colours in the final image: 1 inside the covered region,
    falling to 0 over `feather` pixels towards the pixels this view generates (pixels without
    anything to paint are not a seam), 0 outside it."""
    import cv2

    seam = paint & ~covered
    if not seam.any():
        return covered.astype(np.float32)
    distance = cv2.distanceTransform(np.where(seam, 0, 255).astype(np.uint8), cv2.DIST_L2, 5)
    return np.where(covered, np.clip(distance / (feather + 1), 0.0, 1.0), 0.0).astype(np.float32)


def extend(colours: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The colours with every unknown pixel set to its nearest known one, so that an encoder looking
    past the known region's edge sees the same colours rather than an artificial edge."""
    import cv2

    if known.all() or not known.any():
        return colours
    _, labels = cv2.distanceTransformWithLabels(np.where(known, 0, 255).astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    # Labels number the zero (known) pixels from 1 in raster order.
    flat = colours.reshape(-1, colours.shape[-1])[np.flatnonzero(known)]
    return flat[labels - 1].reshape(colours.shape)
