"""Images painted from cameras, baked into a mesh's own UV map: the host-neutral half of a projected
texture (the host supplies the mesh as triangles and the views it rendered; it writes the result).

    tris = Triangles(positions, uvs, normals)   # (T, 3, 3) world, (T, 3, 2) UV, (T, 3, 3) per corner
    baked = bake(tris, [(view, image)], 1024)   # view: keygrip.projection.View, image (H, W, 3) sRGB 0..1
    baked.rgba                                  # (1024, 1024, 4) float32; alpha 1 where a view painted

How a texel gets its colour: its centre's point on the surface (found by rasterising the UV
triangles) is projected into each view and takes the colour of the image pixel it falls in, or the
mean of the pixels under it when the texel is wider than a pixel (see sample()), with a weight that
is the product of
- visibility: none of the four depth samples around the projected point (the 2x2 pixel centres
  around it) is nearer than the texel's own surface would be at that pixel (its triangle's plane,
  so that grazing surfaces are not mistaken for occluded ones), within a relative tolerance; a texel
  next to an occluder's edge is therefore left out rather than painted with the occluder's colour;
- the view's mask at those four samples (the target objects; without a mask, wherever there is depth);
- facing: the cosine of the angle between the normal and the direction to the camera, to the power
  `sharpness`; a triangle turned away from the camera gets nothing (as Blender's projection painting
  culls back faces): near the edge where it meets a visible face, the depth map cannot tell the two
  apart, so the depth test alone would let a few of its texels through. A mesh whose normals point
  inwards therefore gets no paint: recalculate its normals;
- a fade over the outer `border` of the image, so that one view's edge does not show where another
  view also paints.
Colours are blended by weight in the images' own sRGB encoding (the result is a resampling of them,
stored the same way), and the colour of the texels nobody painted is grown `margin` texels from the
painted ones so that filtering and mip-mapping do not pull black into the edges.

Texture rows count from v = 0 (row 0 is the bottom of the image, as UV space and Blender's pixel
buffers count; flip it for a top-down image file). Python 3.9 compatible (Nuke 14).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from keygrip.projection import View, valid_depth

SHARPNESS = 4.0        # facing weight cos^4: a view 60 degrees off the normal counts 1/16 of a head-on one
TOLERANCE = 0.01       # relative depth tolerance of the visibility test (1 cm at 1 m)
BORDER = 0.05          # the image's outer 5% (of its short side) fades out
MARGIN = 4             # texels of colour grown past what was painted
_CANDIDATES = 1 << 22  # texel candidates tested at once (about 100 MB of temporaries)


@dataclass(frozen=True, eq=False)
class Triangles:
    """A mesh as separate triangles: world positions (T, 3, 3), UVs (T, 3, 2) and normals per corner
    (T, 3, 3), all float arrays (the host's loop triangles, in world space)."""

    positions: np.ndarray
    uvs: np.ndarray
    normals: np.ndarray

    def __post_init__(self) -> None:
        for name, last in (("positions", 3), ("uvs", 2), ("normals", 3)):
            a = np.asarray(getattr(self, name), dtype=np.float64)
            if a.ndim != 3 or a.shape[1:] != (3, last) or len(a) != len(np.asarray(self.positions)):
                raise ValueError(f"{name} must be (T, 3, {last}) for T triangles, not {a.shape}")
            object.__setattr__(self, name, a)


@dataclass(frozen=True, eq=False)
class Texels:
    """The texels of a width x height texture whose centres fall inside the mesh's UV triangles.

    index: (N,) flat index row * width + column (row 0 at v = 0). points, normals: (N, 3) the surface
    point and the interpolated unit normal there; planes: (N, 3) the unit normal of its triangle's
    plane; spacing: (N,) the texel's size on the surface (scene units); triangle: (N,) which triangle.
    A texel covered by several triangles (overlapping UV islands) belongs to the first.
    """

    width: int
    height: int
    index: np.ndarray
    points: np.ndarray
    normals: np.ndarray
    planes: np.ndarray
    spacing: np.ndarray
    triangle: np.ndarray


@dataclass(frozen=True, eq=False)
class Baked:
    """rgba: (height, width, 4) float32, sRGB colour and alpha 1 where any view painted (0 elsewhere;
    the colour there is the grown margin, or 0). weight: (height, width) float32, the sum of the
    views' weights (how sure the texel's colour is)."""

    rgba: np.ndarray
    weight: np.ndarray

    @property
    def coverage(self) -> float:
        """The painted fraction of the texels."""
        return float(np.mean(self.rgba[..., 3] > 0))


def texels(triangles: Triangles, width: int, height: int | None = None) -> Texels:
    """Rasterise the UV triangles: every texel centre inside one, with its surface point and normals.

    Texel (row i, column j) has its centre at UV ((j + 0.5) / width, (i + 0.5) / height); UVs outside
    0..1 reach no texel. Degenerate triangles (no UV area, or no surface area) are skipped.
    """
    height = width if height is None else height
    if width <= 0 or height <= 0:
        raise ValueError(f"a texture needs a positive size, not {width}x{height}")
    size = np.array([width, height], dtype=np.float64)
    uv = triangles.uvs * size - 0.5   # texel-centre coordinates: centre (j, i) sits at (j, i)
    p = triangles.positions
    edge1, edge2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    plane = np.cross(edge1, edge2)
    area = np.linalg.norm(plane, axis=1)
    a, b, c = uv[:, 0], uv[:, 1], uv[:, 2]
    ab, ac = b - a, c - a
    den: np.ndarray = ab[:, 0] * ac[:, 1] - ac[:, 0] * ab[:, 1]
    # Barycentrics w1, w2 are affine in the texel's (column, row): w = coef . (column, row, 1).
    with np.errstate(divide="ignore", invalid="ignore"):
        w1 = np.stack([ac[:, 1], -ac[:, 0], ac[:, 0] * a[:, 1] - ac[:, 1] * a[:, 0]], axis=1) / den[:, None]
        w2 = np.stack([-ab[:, 1], ab[:, 0], ab[:, 1] * a[:, 0] - ab[:, 0] * a[:, 1]], axis=1) / den[:, None]
    lo = np.maximum(np.ceil(uv.min(axis=1) - 1e-9), 0).astype(np.int64)
    hi = np.minimum(np.floor(uv.max(axis=1) + 1e-9), size - 1).astype(np.int64)
    nx, ny = np.maximum(hi[:, 0] - lo[:, 0] + 1, 0), np.maximum(hi[:, 1] - lo[:, 1] + 1, 0)
    # Skipped: no UV area (den is twice it, in texels squared), no surface area (relative to the
    # largest triangle's), or no texel centre in the bounding box.
    keep = np.flatnonzero((np.abs(den) > 1e-12) & (area > 1e-12 * max(float(np.max(area, initial=0.0)), 1e-30))
                          & (nx > 0) & (ny > 0))
    counts = (nx * ny)[keep]
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    # Chunks of triangles whose bounding boxes hold about _CANDIDATES texels together, so that one
    # huge triangle or many small ones cost the same bounded memory.
    cum = np.cumsum(counts)
    start = 0
    while start < len(keep):
        base = cum[start - 1] if start else 0
        stop = max(int(np.searchsorted(cum, base + _CANDIDATES, side="right")), start + 1)
        found.append(_rasterise(keep[start:stop], counts[start:stop], lo, nx, w1, w2, width))
        start = stop
    tri = np.concatenate([f[0] for f in found]) if found else np.zeros(0, np.int64)
    flat = np.concatenate([f[1] for f in found]) if found else np.zeros(0, np.int64)
    bary = np.concatenate([f[2] for f in found]) if found else np.zeros((0, 3))
    flat, first = np.unique(flat, return_index=True)
    tri, bary = tri[first], bary[first]
    points = np.einsum("nk,nkd->nd", bary, p[tri])
    normals = _unit(np.einsum("nk,nkd->nd", bary, triangles.normals[tri]))
    planes = plane[tri] / area[tri, None]
    spacing = np.sqrt(area[tri] / np.abs(den[tri]))   # surface area over texel area, both doubled
    return Texels(width, height, flat, points, normals, planes, spacing, tri)


def _rasterise(tris: np.ndarray, counts: np.ndarray, lo: np.ndarray, nx: np.ndarray, w1: np.ndarray,
               w2: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(triangle, flat texel index, barycentrics) of the texel centres inside these triangles."""
    owner = np.repeat(tris, counts)
    local = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    j = lo[owner, 0] + local % nx[owner]
    i = lo[owner, 1] + local // nx[owner]
    c1, c2 = w1[owner], w2[owner]
    b1 = c1[:, 0] * j + c1[:, 1] * i + c1[:, 2]
    b2 = c2[:, 0] * j + c2[:, 1] * i + c2[:, 2]
    b0 = 1.0 - b1 - b2
    # A centre on a shared edge belongs to both triangles (the duplicate is dropped later); the small
    # tolerance keeps rounding from dropping it from both.
    inside = (b0 >= -1e-7) & (b1 >= -1e-7) & (b2 >= -1e-7)
    return owner[inside], (i * width + j)[inside], np.stack([b0, b1, b2], axis=1)[inside]


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, n, out=np.zeros_like(v), where=n > 0)


def view_weights(tex: Texels, view: View, *, sharpness: float = SHARPNESS, tolerance: float = TOLERANCE,
                 border: float = BORDER) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(weight, u, v, footprint): each texel's weight in this view (0: not seen), where it lands in the
    view's image (pixel coordinates, centres at +0.5) and how many pixels wide it is there (the side
    of a square of the same area)."""
    cam = view.camera
    w, h = cam.width, cam.height
    u, v, z = cam.project(tex.points)
    # The 2x2 pixels a bilinear sample at (u, v) reads: x0..x0+1, y0..y0+1 (clamped at the edges).
    x = np.clip(u - 0.5, 0.0, w - 1.0)
    y = np.clip(v - 0.5, 0.0, h - 1.0)
    x0 = np.minimum(np.floor(x), max(w - 2, 0)).astype(np.int64)
    y0 = np.minimum(np.floor(y), max(h - 2, 0)).astype(np.int64)
    inside = (z > 0) & (u >= 0) & (u <= w) & (v >= 0) & (v <= h)

    depth = valid_depth(view.depth)
    mask = np.isfinite(depth) if view.mask is None else np.asarray(view.mask, dtype=bool) & np.isfinite(depth)
    # The texel's triangle plane in camera space: the depth it would have at another pixel centre.
    m = cam.world_to_camera
    n_cam = tex.planes @ m[:3, :3].T
    offset = np.einsum("nd,nd->n", n_cam, tex.points @ m[:3, :3].T + m[:3, 3])
    seen = inside.copy()
    for dy in (0, 1):
        for dx in (0, 1):
            col, row = np.minimum(x0 + dx, w - 1), np.minimum(y0 + dy, h - 1)
            # n . (x, y, -1): the plane normal along the ray through that pixel's centre (depth 1).
            along = (n_cam[:, 0] * ((col + 0.5 - cam.center_x) / cam.focal_x)
                     - n_cam[:, 1] * ((row + 0.5 - cam.center_y) / cam.focal_y) - n_cam[:, 2])
            with np.errstate(divide="ignore", invalid="ignore"):
                expected = np.where(np.abs(along) > 1e-9, offset / along, np.inf)
            sample = depth[row, col]
            # Behind what this pixel sees (an occluder), or the pixel shows no target: not seen. NaN
            # depth compares False, and so does an edge-on plane's inf.
            seen &= mask[row, col] & (expected > 0) & ~(sample < expected * (1.0 - tolerance))
    to_camera = _unit(cam.position - tex.points)
    facing = np.maximum(np.einsum("nd,nd->n", tex.normals, to_camera), 0.0) ** sharpness
    slant = np.einsum("nd,nd->n", tex.planes, to_camera)
    seen &= slant > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        footprint = tex.spacing * np.sqrt(cam.focal_x * cam.focal_y * slant) / z
    edge = np.minimum(np.minimum(u, w - u), np.minimum(v, h - v)) / max(border * min(w, h), 1e-9)
    t = np.clip(np.nan_to_num(edge), 0.0, 1.0)
    fade = t * t * (3.0 - 2.0 * t)   # smoothstep
    return np.where(seen, facing * fade, 0.0), u, v, footprint


def sample(image: np.ndarray, u: np.ndarray, v: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Samples (N, C) of an (H, W, C) image (row 0 at the top) at pixel coordinates (u, v) (pixel
    centres at +0.5), each the mean of the pixels under a square `footprint` pixels wide.

    A footprint up to one pixel reads the one pixel the point falls in: a texel gets the colour of the
    pixel whose area it lies in, so that the texture seen back through the same camera shows each
    pixel as it was (interpolating between pixel centres would blur the image twice, once here and
    once when the texture is filtered). A wider footprint (a texel bigger than a pixel: far or
    grazing surfaces, small textures) averages the pixels it covers, through a summed-area table,
    instead of picking one of them (aliasing).
    """
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape[:2]
    half = np.maximum(np.nan_to_num(footprint), 1.0) / 2.0
    u, v = np.nan_to_num(u), np.nan_to_num(v)
    # Pixel columns x0 <= x < x1 and rows y0 <= y < y1 under the footprint (one pixel at least).
    x0 = np.clip(np.floor(u - half + 0.5), 0, w - 1).astype(np.int64)
    y0 = np.clip(np.floor(v - half + 0.5), 0, h - 1).astype(np.int64)
    x1 = np.clip(np.floor(u + half + 0.5), x0 + 1, w).astype(np.int64)
    y1 = np.clip(np.floor(v + half + 0.5), y0 + 1, h).astype(np.int64)
    table = np.zeros((h + 1, w + 1, img.shape[2]))
    table[1:, 1:] = img.cumsum(axis=0).cumsum(axis=1)
    total = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
    return total / ((x1 - x0) * (y1 - y0))[:, None]


def bake(triangles: Triangles | Texels, views: Sequence[tuple[View, np.ndarray]], width: int,
         height: int | None = None, *, sharpness: float = SHARPNESS, tolerance: float = TOLERANCE,
         border: float = BORDER, margin: int = MARGIN, report: Callable[[float], None] | None = None) -> Baked:
    """Blend the views' images (each (H, W, 3) sRGB 0..1, the view's size, row 0 at the top) into a
    width x height texture in the triangles' UV map (or into already rasterised Texels).
    report(fraction) is called before each view (what it raises, a cancel, stops the bake)."""
    tex = triangles if isinstance(triangles, Texels) else texels(triangles, width, height)
    total = np.zeros(len(tex.index))
    colour = np.zeros((len(tex.index), 3))
    for k, (view, image) in enumerate(views):
        if report is not None:
            report(k / len(views))
        view.check()
        img = np.asarray(image, dtype=np.float64)
        if img.shape[:2] != (view.camera.height, view.camera.width) or img.ndim != 3 or img.shape[2] < 3:
            raise ValueError(f"{view.name}: the image is {img.shape}, the camera "
                             f"{view.camera.width}x{view.camera.height} (RGB)")
        weight, u, v, footprint = view_weights(tex, view, sharpness=sharpness, tolerance=tolerance, border=border)
        seen = weight > 0
        colour[seen] += weight[seen, None] * sample(img[..., :3], u[seen], v[seen], footprint[seen])
        total += weight
    rgba = np.zeros((tex.height * tex.width, 4))
    painted = total > 0
    rgba[tex.index[painted], :3] = colour[painted] / total[painted, None]
    rgba[tex.index[painted], 3] = 1.0
    weight_map = np.zeros(tex.height * tex.width)
    weight_map[tex.index] = total
    rgba = rgba.reshape(tex.height, tex.width, 4)
    rgba[..., :3] = grow(rgba[..., :3], rgba[..., 3] > 0, margin)
    return Baked(rgba.astype(np.float32), weight_map.reshape(tex.height, tex.width).astype(np.float32))


def grow(colour: np.ndarray, known: np.ndarray, steps: int) -> np.ndarray:
    """Colour (H, W, C) spread from the `known` texels into their unknown neighbours, one ring of the
    8-neighbourhood per step (each new texel the mean of its known neighbours); the rest left as is."""
    out = np.array(colour, dtype=np.float32)
    known = np.array(known, dtype=bool)
    h, w = known.shape
    for _ in range(steps):
        if known.all() or not known.any():
            break
        padded = np.pad(out * known[..., None], ((1, 1), (1, 1), (0, 0)))
        weight = np.pad(known.astype(np.float32), 1)
        acc = np.zeros_like(out)
        count = np.zeros((h, w), np.float32)
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                if dy == dx == 1:
                    continue
                acc += padded[dy:dy + h, dx:dx + w]
                count += weight[dy:dy + h, dx:dx + w]
        new = ~known & (count > 0)
        out[new] = acc[new] / count[new, None]
        known |= new
    return out
