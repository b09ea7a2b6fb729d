"""keygrip.bake: views baked into a mesh's UV map, on synthetic planes with analytic depth maps (no host,
no server): which texels a UV map has, visibility (occluded texels get nothing, conservatively at the
occluder's edge), the facing weight, masks, blending, the margin, and the image seen back through
its own camera."""

from __future__ import annotations

import numpy as np
import pytest

from keygrip import bake
from keygrip.bake import Triangles
from keygrip.projection import Camera, View

W, H, FOCAL = 96, 64, 80.0


def look_at(position, target=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A camera-to-world matrix at `position` looking at `target`, +Z up (camera -Z forward, +Y up)."""
    pos = np.asarray(position, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - pos
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    if np.linalg.norm(right) < 1e-9:
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(right, forward), -forward, pos
    return m


def camera(position, target=(0.0, 0.0, 0.0), width: int = W, height: int = H, focal: float = FOCAL) -> Camera:
    return Camera(width, height, focal, focal, width / 2, height / 2, look_at(position, target))


def quad(corners, uv_lo=(0.0, 0.0), uv_hi=(1.0, 1.0), grid: int = 1) -> Triangles:
    """A planar quad (corners in order (0,0), (1,0), (1,1), (0,1) of its UV square) as grid x grid
    cells of two triangles each, UVs spanning uv_lo..uv_hi, flat normals."""
    c = np.asarray(corners, dtype=np.float64)
    s = np.linspace(0.0, 1.0, grid + 1)
    tris, uvs = [], []
    lo, hi = np.asarray(uv_lo, dtype=np.float64), np.asarray(uv_hi, dtype=np.float64)

    def point(a: float, b: float) -> np.ndarray:
        return (1 - a) * (1 - b) * c[0] + a * (1 - b) * c[1] + a * b * c[2] + (1 - a) * b * c[3]

    for i in range(grid):
        for j in range(grid):
            cell = [(s[j], s[i]), (s[j + 1], s[i]), (s[j + 1], s[i + 1]), (s[j], s[i + 1])]
            for k in ((0, 1, 2), (0, 2, 3)):
                tris.append([point(*cell[n]) for n in k])
                uvs.append([lo + (hi - lo) * np.array(cell[n]) for n in k])
    tris_a = np.array(tris)
    normal = np.cross(c[1] - c[0], c[3] - c[0])
    normals = np.broadcast_to(normal / np.linalg.norm(normal), tris_a.shape).copy()
    return Triangles(tris_a, np.array(uvs), normals)


def plane_depth(cam: Camera, planes: list[tuple[np.ndarray, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Analytic depth of axis-aligned squares z = height, |x|, |y| <= half (nearest wins), and the
    index of the square each pixel sees (-1: none)."""
    rays = cam.ray_directions()
    origin = cam.position
    depth = np.full((cam.height, cam.width), np.inf)
    which = np.full((cam.height, cam.width), -1)
    for k, (centre, half, height) in enumerate(planes):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (height - origin[2]) / rays[..., 2]
        p = origin + rays * t[..., None]
        hit = (t > 0) & (np.abs(p[..., 0] - centre[0]) <= half) & (np.abs(p[..., 1] - centre[1]) <= half)
        nearer = hit & (t < depth)
        depth[nearer], which[nearer] = t[nearer], k
    return depth, which


def square(centre, half: float, height: float) -> list[list[float]]:
    x, y = centre
    return [[x - half, y - half, height], [x + half, y - half, height], [x + half, y + half, height],
            [x - half, y + half, height]]


def test_texels_of_a_quad_cover_its_uv_square_once_with_the_surface_points():
    tris = quad(square((0.0, 0.0), 1.0, 0.0), uv_lo=(0.25, 0.0), uv_hi=(0.75, 0.5))
    tex = bake.texels(tris, 16, 8)
    rows, cols = np.divmod(tex.index, 16)
    # Centres (j + 0.5) / 16 inside 0.25..0.75 and (i + 0.5) / 8 inside 0..0.5: columns 4..11, rows 0..3.
    assert sorted(set(cols.tolist())) == list(range(4, 12)) and sorted(set(rows.tolist())) == list(range(4))
    assert len(tex.index) == 8 * 4 == len(np.unique(tex.index))
    u, v = (cols + 0.5) / 16, (rows + 0.5) / 8
    np.testing.assert_allclose(tex.points[:, 0], (u - 0.25) / 0.5 * 2 - 1, atol=1e-12)
    np.testing.assert_allclose(tex.points[:, 1], v / 0.5 * 2 - 1, atol=1e-12)
    np.testing.assert_allclose(tex.normals, np.tile([0.0, 0.0, 1.0], (len(tex.index), 1)))
    # 2 units over 8 texels across, over 4 texels up: the side of a square of the same area.
    np.testing.assert_allclose(tex.spacing, np.sqrt(2.0 / 8 * 2.0 / 4), rtol=1e-12)


def test_many_small_triangles_in_small_chunks_give_the_same_texels_as_two(monkeypatch):
    # A slanted parallelogram: the grid's bilinear patch is the two triangles' affine map exactly.
    c0, c1, c3 = np.array([-1.0, -1.0, 0.3]), np.array([1.2, -0.9, 0.0]), np.array([-0.8, 1.0, 0.1])
    corners = [c0, c1, c1 + c3 - c0, c3]
    coarse = bake.texels(quad(corners), 64)
    monkeypatch.setattr(bake, "_CANDIDATES", 500)   # a few hundred candidates per chunk
    fine = bake.texels(quad(corners, grid=30), 64)  # 1800 triangles
    np.testing.assert_array_equal(fine.index, coarse.index)   # every texel, once
    assert len(fine.index) == 64 * 64
    np.testing.assert_allclose(fine.points, coarse.points, atol=1e-12)
    np.testing.assert_allclose(fine.planes, coarse.planes, atol=1e-12)


def _ground_and_occluder():
    """A 4x4 ground square at z = 0 and a 1x1 square floating at z = 1 between it and the camera."""
    ground, occluder = (np.zeros(2), 2.0, 0.0), (np.array([0.0, -0.3]), 0.5, 1.0)
    cam = camera((0.0, -4.0, 5.0))
    depth, which = plane_depth(cam, [ground, occluder])
    return cam, depth, which


def test_occluded_texels_get_no_weight_and_the_occluders_edge_is_conservative():
    cam, depth, which = _ground_and_occluder()
    tex = bake.texels(quad(square((0.0, 0.0), 2.0, 0.0)), 128)
    weight, u, v, _ = bake.view_weights(tex, View("cam", cam, depth))
    col = np.clip(np.floor(u).astype(int), 0, W - 1)
    row = np.clip(np.floor(v).astype(int), 0, H - 1)
    behind = which[row, col] == 1          # the pixel each ground texel lands in shows the occluder
    assert behind.sum() > 100 and np.all(weight[behind] == 0)
    # Conservative: within one pixel of the occluder's outline, the ground is left out too...
    occ = which == 1
    near = np.zeros_like(occ)
    near[:-1] |= occ[1:]
    near[1:] |= occ[:-1]
    near[:, :-1] |= occ[:, 1:]
    near[:, 1:] |= occ[:, :-1]
    ring = near[row, col] & ~behind
    assert ring.sum() > 20 and np.mean(weight[ring] == 0) > 0.5
    # ...while the ground two pixels away from anything else (the occluder, the ground's own outline)
    # and from the image's border is painted.
    ground = which == 0
    clear = ground.copy()
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            clear &= np.roll(np.roll(ground, dy, 0), dx, 1)
    inner = (u > 6) & (u < W - 6) & (v > 6) & (v < H - 6)
    clear_texels = clear[row, col] & inner
    assert clear_texels.sum() > 1000 and np.all(weight[clear_texels] > 0)


def test_occluded_texels_bake_to_alpha_zero_and_the_rest_to_the_image():
    cam, depth, which = _ground_and_occluder()
    image = np.zeros((H, W, 3))
    image[which == 0] = (0.2, 0.6, 0.9)     # the ground's colour; the occluder's pixels are black
    baked = bake.bake(quad(square((0.0, 0.0), 2.0, 0.0)), [(View("cam", cam, depth, which == 0), image)], 128)
    alpha = baked.rgba[..., 3]
    painted = alpha > 0
    assert 0.3 < painted.mean() < 0.95
    # Every painted texel has exactly the ground's colour: nothing of the occluder leaked in.
    np.testing.assert_allclose(baked.rgba[painted][:, :3], np.tile((0.2, 0.6, 0.9), (painted.sum(), 1)), atol=1e-6)
    assert set(np.unique(alpha).tolist()) == {0.0, 1.0}
    assert np.all(baked.weight[~painted] == 0) and np.all(baked.weight[painted] > 0)


def test_facing_weight_falls_monotonically_with_the_viewing_angle():
    tex = bake.texels(quad(square((0.0, 0.0), 0.5, 0.0)), 8)
    centre = np.argmin(np.linalg.norm(tex.points, axis=1))
    weights = []
    for degrees in (0, 15, 30, 45, 60, 75):
        a = np.radians(degrees)
        cam = camera((0.0, -3.0 * np.sin(a), 3.0 * np.cos(a)))
        depth, _ = plane_depth(cam, [(np.zeros(2), 0.5, 0.0)])
        weight, *_ = bake.view_weights(tex, View("cam", cam, depth), sharpness=4.0)
        weights.append(weight[centre])
        to_camera = cam.position - tex.points[centre]
        assert weight[centre] == pytest.approx((to_camera[2] / np.linalg.norm(to_camera)) ** 4, rel=1e-9)
    assert np.all(np.diff(weights) < 0)
    # Sharpness 0 ignores the angle; from behind (the back face), nothing is painted at all.
    cam = camera((0.0, -3.0 * np.sin(1.0), 3.0 * np.cos(1.0)))
    depth, _ = plane_depth(cam, [(np.zeros(2), 0.5, 0.0)])
    assert bake.view_weights(tex, View("cam", cam, depth), sharpness=0.0)[0][centre] == pytest.approx(1.0)
    below = camera((0.0, -3.0 * np.sin(1.0), -3.0 * np.cos(1.0)))
    depth, _ = plane_depth(below, [(np.zeros(2), 0.5, 0.0)])
    assert np.isfinite(depth).sum() > 100 and np.all(bake.view_weights(tex, View("below", below, depth))[0] == 0)


def test_views_blend_by_weight_and_the_mask_limits_each_view():
    tris = quad(square((0.0, 0.0), 1.0, 0.0))
    tex = bake.texels(tris, 32)
    front, slanted = camera((0.0, 0.0, 4.0), focal=40), camera((0.0, -3.0, 3.0), focal=40)
    views = []
    for cam, colour in ((front, (1.0, 0.0, 0.0)), (slanted, (0.0, 0.0, 1.0))):
        depth, _ = plane_depth(cam, [(np.zeros(2), 1.0, 0.0)])
        views.append((View(str(colour), cam, depth), np.broadcast_to(colour, (H, W, 3))))
    w_front = bake.view_weights(tex, views[0][0], border=0.0)[0]
    w_slant = bake.view_weights(tex, views[1][0], border=0.0)[0]
    baked = bake.bake(tex, views, 32, border=0.0)
    rgb = baked.rgba.reshape(-1, 4)[tex.index, :3]
    both = (w_front > 0) & (w_slant > 0)
    assert both.sum() > 100
    share = w_front[both] / (w_front[both] + w_slant[both])
    np.testing.assert_allclose(rgb[both, 0], share, atol=1e-6)
    np.testing.assert_allclose(rgb[both, 2], 1.0 - share, atol=1e-6)
    # Masked out of the front view on the image's left half: there the slanted view alone paints.
    mask = np.ones((H, W), bool)
    mask[:, : W // 2] = False
    masked = [(View("front", front, views[0][0].depth, mask), views[0][1]), views[1]]
    w_masked = bake.view_weights(tex, masked[0][0], border=0.0)[0]
    x, y = tex.points[:, 0], tex.points[:, 1]
    assert np.all(w_masked[x < -0.05] == 0) and np.all(w_masked[(x > 0.05) & (x < 0.9) & (np.abs(y) < 0.9)] > 0)
    rgb = bake.bake(tex, masked, 32, border=0.0).rgba.reshape(-1, 4)[tex.index, :3]
    left = (tex.points[:, 0] < -0.05) & (w_slant > 0)
    np.testing.assert_allclose(rgb[left], np.tile((0.0, 0.0, 1.0), (left.sum(), 1)), atol=1e-6)


def test_the_margin_grows_colour_past_the_island_but_not_alpha():
    # An island in the texture's middle (UV 0.25..0.75), the middle of a bigger plane (so that its
    # edge is no silhouette), seen head-on through a view filled with one colour.
    tris = quad(square((0.0, 0.0), 1.0, 0.0), uv_lo=(0.25, 0.25), uv_hi=(0.75, 0.75))
    cam = camera((0.0, 0.0, 3.0), focal=30)
    depth, _ = plane_depth(cam, [(np.zeros(2), 10.0, 0.0)])
    image = np.broadcast_to((0.9, 0.5, 0.1), (H, W, 3))
    baked = bake.bake(tris, [(View("cam", cam, depth), image)], 64, margin=3, border=0.0)
    alpha, rgb = baked.rgba[..., 3], baked.rgba[..., :3]
    assert np.all(alpha[16:48, 16:48] == 1) and alpha.sum() == 32 * 32   # texel centres 16..47 inside
    ring = np.zeros((64, 64), bool)
    ring[13:51, 13:51] = True
    ring[16:48, 16:48] = False
    np.testing.assert_allclose(rgb[ring], np.tile((0.9, 0.5, 0.1), (ring.sum(), 1)), atol=1e-6)
    outside = np.ones((64, 64), bool)
    outside[13:51, 13:51] = False
    assert np.all(rgb[outside] == 0) and np.all(alpha[ring | outside] == 0)


def test_a_checkerboard_seen_back_through_its_camera_matches_it():
    """The image baked onto a slanted plane, then each pixel's ray -> the plane's UV -> the texture
    sampled bilinearly (as a renderer filters it): PSNR >= 35 dB over the pixels showing the plane."""
    cam = camera((0.3, -4.0, 2.5))
    depth, which = plane_depth(cam, [(np.zeros(2), 2.0, 0.0)])
    rows, cols = np.mgrid[0:H, 0:W]
    checker = ((cols // 6 + rows // 6) % 2).astype(np.float64)
    image = np.stack([0.1 + 0.8 * checker, 0.2 + 0.5 * checker, 1.0 - 0.7 * checker], axis=-1)
    size = 256
    baked = bake.bake(quad(square((0.0, 0.0), 2.0, 0.0)), [(View("cam", cam, depth), image)], size)
    seen = which == 0
    points = cam.unproject(depth)[seen]
    uv = (points[:, :2] + 2.0) / 4.0
    back = _bilinear(baked.rgba[..., :3], uv * size)
    psnr = 10 * np.log10(1.0 / np.mean((back - image[seen]) ** 2))
    assert psnr >= 35.0, psnr


def test_a_texel_wider_than_a_pixel_averages_the_pixels_under_it():
    # A 1-pixel checkerboard on a plane far smaller in texels than in pixels: each texel gets its
    # footprint's mean (grey), not one pixel's black or white.
    cam = camera((0.0, 0.0, 3.0), focal=90)
    depth, _ = plane_depth(cam, [(np.zeros(2), 1.0, 0.0)])
    rows, cols = np.mgrid[0:H, 0:W]
    image = np.repeat(((rows + cols) % 2).astype(np.float64)[..., None], 3, axis=2)
    baked = bake.bake(quad(square((0.0, 0.0), 1.0, 0.0)), [(View("cam", cam, depth), image)], 8, border=0.0)
    painted = baked.rgba[..., 3] > 0
    assert painted.sum() == 64
    assert np.all(np.abs(baked.rgba[painted][:, :3] - 0.5) < 0.1)


def _bilinear(texture: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """A texture (row 0 at v = 0) sampled bilinearly at texel coordinates xy (centres at +0.5), clamped."""
    h, w = texture.shape[:2]
    x = np.clip(xy[:, 0] - 0.5, 0, w - 1)
    y = np.clip(xy[:, 1] - 0.5, 0, h - 1)
    x0, y0 = np.minimum(x.astype(int), w - 2), np.minimum(y.astype(int), h - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = texture[y0, x0] * (1 - fx) + texture[y0, x0 + 1] * fx
    bottom = texture[y0 + 1, x0] * (1 - fx) + texture[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy
