"""Projected textures in the bpy wheel: Blender's cameras as keygrip.projection.Camera (against Blender's
own world_to_camera_view), the ray-cast depth render (against analytic depth), the bake into the meshes'
own UV maps seen back through the same camera (a checkerboard, PSNR >= 35 dB), occluded faces left
unpainted, the material, provenance and undo; and the Project button end to end against a real server
with a tiny random-weight SD model and a tiny depth ControlNet.

Background mode has no event loop, so main_thread.drain() plays the bpy.app.timers tick.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from importlib import import_module
from pathlib import Path

import bpy
import numpy as np
import pytest
from addon_helpers import ADDON_MODULE, REPO, enable_addon, new_scene, prefs
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector
from mathutils.bvhtree import BVHTree
from server_process import ServerProcess

from keygrip import bake
from keygrip.generate import Projected, ProjectedImage, ProjectPlan

addon_utils = import_module("addon_utils")  # Blender's scripts/modules: importable once bpy is
W, H = 128, 72


@pytest.fixture(scope="module")
def addon():
    module = enable_addon()
    yield module
    if ADDON_MODULE in bpy.context.preferences.addons:
        addon_utils.disable(ADDON_MODULE, default_set=True)


def _module(name: str):
    return import_module(f"{ADDON_MODULE}.{name}")


def _camera(location, target, name: str = "Camera") -> bpy.types.Object:
    obj = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    bpy.context.scene.collection.objects.link(obj)
    obj.location = location
    obj.rotation_euler = (Vector(target) - Vector(location)).to_track_quat("-Z", "Y").to_euler()
    bpy.context.view_layer.update()
    return obj


def _add(op, **kwargs) -> bpy.types.Object:
    op(**kwargs)
    return bpy.context.active_object


def _resolution(width: int, height: int) -> None:
    render = bpy.context.scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100


# (a) The camera ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("fit", "shift", "size"), [
    ("AUTO", (0.0, 0.0), (128, 72)), ("AUTO", (0.15, -0.1), (72, 128)),
    ("HORIZONTAL", (-0.2, 0.05), (128, 72)), ("HORIZONTAL", (0.0, 0.3), (64, 96)),
    ("VERTICAL", (0.1, 0.1), (128, 72)), ("VERTICAL", (-0.05, -0.25), (80, 120)),
])
def test_camera_agrees_with_blenders_world_to_camera_view(addon, fit, shift, size):
    new_scene()
    width, height = size
    _resolution(width, height)
    obj = _camera((1.0, -6.0, 3.0), (0.3, 0.0, 0.5))
    obj.scale = (2.0, 0.5, 1.5)           # the camera's own scale must not count
    obj.data.lens, obj.data.sensor_width, obj.data.sensor_height = 42.0, 36.0, 20.0
    obj.data.sensor_fit = fit
    obj.data.shift_x, obj.data.shift_y = shift
    bpy.context.view_layer.update()
    cam = _module("projection").camera_from_blender(obj, width, height)
    points = np.random.default_rng(1).uniform((-3, -3, -1), (3, 3, 3), (200, 3))
    u, v, z = cam.project(points)
    ref = np.array([tuple(world_to_camera_view(bpy.context.scene, obj, Vector(p))) for p in points])
    # world_to_camera_view: 0..1 across the frame from its bottom-left corner, and the depth.
    np.testing.assert_allclose(u / width, ref[:, 0], atol=1e-5)
    np.testing.assert_allclose(1.0 - v / height, ref[:, 1], atol=1e-5)
    np.testing.assert_allclose(z, ref[:, 2], rtol=1e-5)


def test_an_orthographic_camera_is_refused(addon):
    new_scene()
    obj = _camera((0.0, -5.0, 0.0), (0.0, 0.0, 0.0))
    obj.data.type = "ORTHO"
    with pytest.raises(ValueError, match="perspective"):
        _module("projection").camera_from_blender(obj, 64, 64)


# (b) The depth render ----------------------------------------------------------------------------


def _plane_and_cube():
    """A 10 m ground plane at z = 0 and a 2 m cube standing on it (z 0..2), both with Blender's own UVs."""
    new_scene()
    _resolution(W, H)
    plane = _add(bpy.ops.mesh.primitive_plane_add, size=10.0)
    cube = _add(bpy.ops.mesh.primitive_cube_add, location=(0.0, 0.0, 1.0))
    return plane, cube


def _analytic_depth(cam, boxes):
    """Depth along the view axis of the first hit among axis-aligned boxes (lo, hi), and which box."""
    rays = cam.ray_directions().reshape(-1, 3)
    origin = cam.position
    best = np.full(len(rays), np.inf)
    which = np.full(len(rays), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k, (lo, hi) in enumerate(boxes):
            t0, t1 = (np.asarray(lo) - origin) / rays, (np.asarray(hi) - origin) / rays
            near = np.nanmax(np.minimum(t0, t1), axis=1)
            far = np.nanmin(np.maximum(t0, t1), axis=1)
            hit = (near <= far) & (far > 0) & (near < best)
            best[hit], which[hit] = near[hit], k
    return best.reshape(cam.height, cam.width), which.reshape(cam.height, cam.width)


def test_depth_render_is_the_analytic_depth_and_the_mask_the_targets_pixels(addon):
    plane, cube = _plane_and_cube()
    hidden = _add(bpy.ops.mesh.primitive_uv_sphere_add, location=(0.0, -4.0, 2.0))
    hidden.hide_set(True)                  # hidden objects do not occlude
    obj = _camera((2.0, -7.0, 4.0), (0.0, 0.0, 0.7))
    proj = _module("projection")
    rays = proj.SceneRays(bpy.context.evaluated_depsgraph_get(), ["Cube"])
    assert rays.triangles == 2 + 12
    view = rays.render(proj.shot(obj, W, H))
    cam = view.camera
    expected, which = _analytic_depth(cam, [((-5, -5, 0), (5, 5, 0)), ((-1, -1, 0), (1, 1, 2))])
    agree = np.isclose(view.depth, expected, rtol=1e-5) | (np.isinf(view.depth) & np.isinf(expected))
    # Only rays through an edge itself may differ (float32 BVH against float64 here).
    assert agree.mean() > 0.995, agree.mean()
    assert np.isinf(expected).sum() > 100 and np.isinf(view.depth[np.isinf(expected)]).mean() > 0.99
    assert np.mean(view.mask == (which == 1)) > 0.995
    assert view.mask.sum() > 500 and view.name == "Camera"
    # The clip end hides what is beyond it.
    obj.data.clip_end = 7.5
    far = rays.render(proj.shot(obj, W, H))
    assert np.all(np.isinf(far.depth[expected > 7.5 + 1e-3])) and np.nanmax(far.depth[np.isfinite(far.depth)]) <= 7.5


def test_depth_render_reports_progress_and_stops_when_cancelled(addon):
    """The ray casts run on the worker thread: they report between rows and stop at a cancel."""
    _plane_and_cube()
    obj = _camera((2.0, -7.0, 4.0), (0.0, 0.0, 0.7))
    proj = _module("projection")
    rays = proj.SceneRays(bpy.context.evaluated_depsgraph_get(), ["Cube"])
    big = proj.shot(obj, 400, 225)
    fractions: list[float] = []
    whole = rays.render(big, fractions.append)
    assert len(fractions) >= 4 and fractions[0] == 0 and fractions == sorted(fractions) and fractions[-1] < 1
    assert whole.depth.shape == (225, 400) and np.isfinite(whole.depth).mean() > 0.5

    def cancel_soon(fraction: float) -> None:
        if fraction > 0.2:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        rays.render(big, cancel_soon)


# (c), (d) The bake, seen back ------------------------------------------------------------------------


def _checkerboard(path: Path) -> np.ndarray:
    """An 8-bit checkerboard PNG of 6-pixel squares in two colours, saved by Blender; its (H, W, 3)."""
    rows, cols = np.mgrid[0:H, 0:W]
    check = ((rows // 6 + cols // 6) % 2).astype(np.float32)[..., None]
    rgb = (np.array([51, 204, 102]) + check * np.array([153, -153, 51])) / 255.0
    image = bpy.data.images.new("checker", W, H)
    rgba = np.concatenate([rgb, np.ones((H, W, 1))], axis=2)[::-1]   # Blender's rows start at the bottom
    image.pixels.foreach_set(rgba.astype(np.float32).reshape(-1))
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    return rgb.astype(np.float64)


def _projected(view, image_path: Path, plan: ProjectPlan) -> Projected:
    """The worker step's result for one view whose image is `image_path`, as the server would hand it."""
    return Projected(plan=plan, job_id="0123456789abcdef", views=(ProjectedImage(view, image_path, image_path, 7),),
                     seed=7, model="tiny", model_hash="f" * 64, controlnet="tiny-depth", metadata={"steps": "2"})


def _pixels(image) -> np.ndarray:
    """A Blender image's pixels (H, W, 4), row 0 at the bottom (v = 0)."""
    width, height = image.size
    out = np.empty(width * height * 4, np.float32)
    image.pixels.foreach_get(out)
    return out.reshape(height, width, 4).astype(np.float64)


def _bilinear(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """As a renderer samples a texture with Linear interpolation, clamped (row 0 at v = 0)."""
    h, w = texture.shape[:2]
    x = np.clip(uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip(uv[:, 1] * h - 0.5, 0, h - 1)
    x0, y0 = np.minimum(x.astype(int), w - 2), np.minimum(y.astype(int), h - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = texture[y0, x0] * (1 - fx) + texture[y0, x0 + 1] * fx
    bottom = texture[y0 + 1, x0] * (1 - fx) + texture[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _seen_back(view, snaps, textures) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel of the view whose first hit is a target: its ray -> the target's triangle -> UV ->
    the target's baked texture. (colours (N, 3), pixel mask (H, W))."""
    cam = view.camera
    origin = Vector(cam.position)
    rays = cam.ray_directions()
    forward = -cam.camera_to_world[:3, 2]
    out = np.zeros((cam.height, cam.width, 3))
    for snap in snaps:
        tris = snap.positions
        tree = BVHTree.FromPolygons(tris.reshape(-1, 3).tolist(), np.arange(len(tris) * 3).reshape(-1, 3).tolist(),
                                    all_triangles=True)
        for i, j in zip(*np.nonzero(view.mask), strict=True):
            location, _, face, _ = tree.ray_cast(origin, Vector(rays[i, j]))
            if face is None or abs(np.dot(np.array(location) - cam.position, forward) - view.depth[i, j]) > \
                    1e-4 * view.depth[i, j]:
                continue    # this target is not the first hit here
            a, b, c = tris[face]
            # Barycentrics of the hit in its triangle, then its UV.
            m = np.array([b - a, c - a]).T
            w1, w2 = np.linalg.lstsq(m, np.array(location) - a, rcond=None)[0]
            uv = (1 - w1 - w2) * snap.uvs[face, 0] + w1 * snap.uvs[face, 1] + w2 * snap.uvs[face, 2]
            out[i, j] = _bilinear(textures[snap.name], uv[None])[0, :3]
    return out[view.mask], view.mask


def _target_scene():
    """The plane and the cube (targets), a sphere partly in front of them (not a target), a small
    plane hidden behind the cube (a target no camera ray reaches), and the camera."""
    plane, cube = _plane_and_cube()
    _add(bpy.ops.mesh.primitive_uv_sphere_add, radius=0.6, location=(-1.6, -2.2, 0.8))
    hidden = _add(bpy.ops.mesh.primitive_plane_add, size=0.8, location=(0.0, 1.8, 1.0), rotation=(math.pi / 2, 0, 0))
    hidden.name = "Hidden"
    obj = _camera((1.5, -7.0, 3.5), (0.0, 0.0, 0.6))
    bpy.context.scene.camera = obj
    return [plane, cube, hidden], obj


def test_checkerboard_baked_and_seen_back_through_its_camera_matches_it(addon, tmp_path: Path):
    # 512 texels over the 10 m plane: about two texels per pixel where the plane is nearest. The image
    # comes back exactly where texels are denser than pixels; at one texel per pixel (256) the plane's
    # far half would blur (about 26 dB).
    targets, obj = _target_scene()
    proj = _module("projection")
    source = _checkerboard(tmp_path / "checker.png")
    plan = ProjectPlan(model="tiny", prompt="checker board", cameras=(obj.name,),
                       objects=tuple(o.name for o in targets), long_side=W, texture_size=512)
    view = proj.SceneRays(bpy.context.evaluated_depsgraph_get(), plan.objects).render(proj.shot(obj, W, H))
    snaps = [proj.mesh_snapshot(o, bpy.context.evaluated_depsgraph_get()) for o in targets]
    # As the Project button does: the PNGs read on the main thread, the bake on the worker thread
    # (reporting before each view of each mesh), the write back on the main thread.
    baking = proj.read_views(_projected(view, tmp_path / "checker.png", plan))
    reports: list[tuple[str, float]] = []
    baked = proj.bake_meshes(snaps, baking.views, plan.texture_size, lambda name, f: reports.append((name, f)))
    assert [name for name, _ in reports] == [o.name for o in targets] and reports[0][1] == 0
    assert [f for _, f in reports] == sorted(f for _, f in reports)

    def cancel(name: str, fraction: float) -> None:
        if fraction > 0:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        proj.bake_meshes(snaps, baking.views, plan.texture_size, cancel)
    painted = proj.write_projection(baking.done, snaps, tmp_path / "out", baking.views, baked)
    textures = {name: _pixels(bpy.data.images[image]) for name, image in painted.images.items()}
    back, mask = _seen_back(view, snaps, textures)
    assert mask.sum() > 0.4 * W * H
    psnr = 10 * np.log10(1.0 / np.mean((back - source[mask]) ** 2))
    print(f"seen back through its camera: PSNR {psnr:.1f} dB over {mask.sum()} pixels")
    assert psnr >= 35.0


def test_occluded_faces_get_nothing_and_the_material_is_wired(addon, tmp_path: Path):
    targets, obj = _target_scene()
    plane, cube, hidden = targets
    plane.data.materials.append(bpy.data.materials.new("old"))
    bpy.ops.ed.undo_push(message="scene")
    proj = _module("projection")
    _checkerboard(tmp_path / "checker.png")
    plan = ProjectPlan(model="tiny", prompt="checker board", cameras=(obj.name,),
                       objects=tuple(o.name for o in targets), long_side=W, texture_size=128)
    view = proj.SceneRays(bpy.context.evaluated_depsgraph_get(), plan.objects).render(proj.shot(obj, W, H))
    snaps = [proj.mesh_snapshot(o, bpy.context.evaluated_depsgraph_get()) for o in targets]
    done = _projected(view, tmp_path / "checker.png", plan)
    painted = proj.write_projection(done, snaps, tmp_path / "out")
    assert painted.unwrapped == ()
    # The hidden plane: not one texel painted. The cube: none on the faces turned away from the camera.
    hidden_alpha = _pixels(bpy.data.images[painted.images["Hidden"]])[..., 3]
    assert painted.coverage["Hidden"] == 0.0 and np.all(hidden_alpha == 0)
    cube_snap = snaps[1]
    tex = bake.texels(cube_snap.triangles(), 128)
    away = np.einsum("nd,nd->n", tex.planes, view.camera.position - tex.points) < 0
    cube_alpha = _pixels(bpy.data.images[painted.images["Cube"]])[..., 3].reshape(-1)
    assert away.sum() > 1000 and np.all(cube_alpha[tex.index[away]] == 0)
    assert np.mean(cube_alpha[tex.index[~away]] > 0) > 0.5 and 0.05 < painted.coverage["Cube"] < 0.5
    assert painted.coverage["Plane"] > 0.15       # the camera sees part of the 10 m plane

    for target in (plane, cube):
        mat = target.material_slots[0].material
        assert [s.material for s in target.material_slots] == [mat]
        assert mat.name == painted.materials[target.name] == f"Keygrip {target.name} projection_checker_board"
        links = {(lk.from_node.bl_idname, lk.from_socket.name, lk.to_node.bl_idname, lk.to_socket.name)
                 for lk in mat.node_tree.links}
        assert links == {("ShaderNodeUVMap", "UV", "ShaderNodeTexImage", "Vector"),
                         ("ShaderNodeTexImage", "Color", "ShaderNodeBsdfPrincipled", "Base Color"),
                         ("ShaderNodeBsdfPrincipled", "BSDF", "ShaderNodeOutputMaterial", "Surface")}
        nodes = {n.bl_idname: n for n in mat.node_tree.nodes}
        assert nodes["ShaderNodeUVMap"].uv_map == target.data.uv_layers.active.name == "UVMap"
        image = nodes["ShaderNodeTexImage"].image
        assert image.name == painted.images[target.name] and tuple(image.size) == (128, 128)
        assert image.colorspace_settings.name == "sRGB" and image.alpha_mode == "CHANNEL_PACKED"
        assert not image.is_float and image.packed_file is None and image.source == "FILE"
        assert Path(image.filepath).is_absolute() and Path(image.filepath).suffix == ".png"
        assert Path(image.filepath).is_file() and Path(image.filepath).parent == (tmp_path / "out").resolve()
        for idb in (mat, image):
            record = idb["keygrip"]
            assert record["job_id"] == done.job_id and record["kind"] == "projection"
            assert record["object"] == target.name and record["uv_map"] == "UVMap"
            # Lists and dicts are stored as JSON, ready to feed back into a job.
            assert record["controlnet"] == "tiny-depth" and json.loads(record["cameras"]) == [obj.name]
    # The texture belongs to the UV map, not to the camera: moving the camera changes nothing.
    before = _pixels(bpy.data.images[painted.images["Plane"]])
    obj.location.x += 3.0
    bpy.context.view_layer.update()
    assert np.array_equal(_pixels(bpy.data.images[painted.images["Plane"]]), before)

    # One undo step takes the whole write-back away.
    bpy.ops.ed.undo()
    assert not [m for m in bpy.data.materials if m.name.startswith("Keygrip")]
    assert not [i for i in bpy.data.images if i.name.startswith("Keygrip")]
    assert bpy.data.objects["Plane"].material_slots[0].material.name == "old"


def test_a_mesh_without_uv_map_gets_one(addon, tmp_path: Path):
    targets, obj = _target_scene()
    cube = targets[1]
    cube.data.uv_layers.remove(cube.data.uv_layers[0])
    proj = _module("projection")
    _checkerboard(tmp_path / "checker.png")
    plan = ProjectPlan(model="tiny", prompt="checker", cameras=(obj.name,), objects=("Cube",), long_side=W,
                       texture_size=64)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    view = proj.SceneRays(depsgraph, plan.objects).render(proj.shot(obj, W, H))
    snap = proj.mesh_snapshot(cube, depsgraph)
    assert snap.uvs is None and len(cube.data.uv_layers) == 0      # the snapshot changes nothing
    targets[0].select_set(True)
    bpy.context.view_layer.objects.active = targets[0]
    selected = sorted(o.name for o in bpy.context.selected_objects)
    assert "Cube" not in selected
    painted = proj.write_projection(_projected(view, tmp_path / "checker.png", plan), [snap], tmp_path / "out")
    assert painted.unwrapped == ("Cube",) and len(cube.data.uv_layers) == 1 and painted.coverage["Cube"] > 0.05
    # Only the cube was unwrapped, and the artist's selection is as it was.
    assert [len(o.data.uv_layers) for o in targets] == [1, 1, 1]
    assert bpy.context.view_layer.objects.active == targets[0] and not cube.select_get()
    assert sorted(o.name for o in bpy.context.selected_objects) == selected
    assert cube.material_slots[0].material.node_tree.nodes["UV Map"].uv_map == cube.data.uv_layers[0].name


# (e) The Project button end to end -----------------------------------------------------------------

# The tiny models are built in a child process: torch stays out of the bpy process, as in Blender.
_MAKE_MODELS = """
import sys
from pathlib import Path
from diffusion_models import save_diffusers, tiny_controlnet, tiny_sd_pipeline
root = Path(sys.argv[1])
pipe = tiny_sd_pipeline(root / "src")
save_diffusers(pipe, root / "tiny-sd")
tiny_controlnet(pipe, root / "tiny-depth-controlnet")
"""


@pytest.fixture(scope="module")
def project_server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("project")
    subprocess.run([sys.executable, "-c", _MAKE_MODELS, str(root)], check=True, cwd=REPO / "tests", timeout=300,
                   env={**os.environ, "PYTHONPATH": str(REPO / "tests")})
    toml = root / "keygrip.toml"
    toml.write_text(f'[models.tiny]\npath = "{root / "tiny-sd"}"\n'
                    f'[models.tiny-depth]\npath = "{root / "tiny-depth-controlnet"}"\n')
    srv = ServerProcess(root / "data", "--config", str(toml), workers=1)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def served(addon, project_server):
    prefs().server_address = project_server.address
    return project_server


def _project_scene():
    """The plane and cube selected, a camera as the scene's camera, a 64x64 render (one 64x64 view)."""
    new_scene()
    _resolution(64, 64)
    plane = _add(bpy.ops.mesh.primitive_plane_add, size=10.0)
    cube = _add(bpy.ops.mesh.primitive_cube_add, location=(0.0, 0.0, 1.0))
    bpy.context.scene.camera = _camera((1.5, -7.0, 3.5), (0.0, 0.0, 0.6))
    for obj in (plane, cube):
        obj.select_set(True)
    bpy.context.view_layer.objects.active = cube
    bpy.ops.ed.undo_push(message="scene")
    return plane, cube


def _panel(**values) -> None:
    s = bpy.context.scene.keygrip
    base = {"gen_model": "tiny", "gen_controlnet": "tiny-depth", "gen_prompt": "mossy stone wall", "gen_seed": 3,
            "gen_steps": 2, "gen_view_size": 64, "gen_texture_size": 64, "gen_all_cameras": False}
    for key, value in {**base, **values}.items():
        setattr(s, key, value)


def _datablocks() -> dict[str, list[str]]:
    return {k: sorted(x.name for x in getattr(bpy.data, k)) for k in ("materials", "images")}


def test_project_button_paints_the_selected_meshes_then_undo(served):
    plane, cube = _project_scene()
    _panel()
    assert bpy.ops.keygrip.project_texture() == {"FINISHED"}
    main_thread = _module("main_thread")
    session = main_thread.latest()
    main_thread.drain(timeout=240)
    assert session.state == "succeeded", session.error
    painted = session.value
    assert set(painted.materials) == {"Plane", "Cube"} and painted.unwrapped == ()
    for obj in (plane, cube):
        mat = obj.material_slots[0].material
        assert mat.name == painted.materials[obj.name]
        image = mat.node_tree.nodes["Image Texture"].image
        assert tuple(image.size) == (64, 64) and Path(image.filepath).is_file()
        record = mat["keygrip"]
        assert record["job_id"] == session.job_ids[-1] and record["model"] == "tiny"
        assert record["controlnet"] == "tiny-depth" and len(record["model_hash"]) == 64
        assert json.loads(record["cameras"]) == ["Camera"] and json.loads(record["view_seeds"]) == [3]
        assert painted.coverage[obj.name] > 0.05
    # The step previews reached the panel; the view's own image was downloaded next to the textures.
    assert session.progress.preview_png.startswith(b"\x89PNG")
    assert session.title in _module("previews").latest

    bpy.ops.ed.undo()
    assert not [m for m in bpy.data.materials if m.name.startswith("Keygrip")]
    assert not [i for i in bpy.data.images if i.name.startswith("Keygrip")]


def test_two_cameras_paint_more_of_the_cube_than_one(served):
    plane, cube = _project_scene()
    _panel()
    assert bpy.ops.keygrip.project_texture() == {"FINISHED"}
    main_thread = _module("main_thread")
    one = main_thread.latest()
    main_thread.drain(timeout=240)
    assert one.state == "succeeded", one.error
    # A second camera on the other side of the cube sees faces the first cannot.
    back = _camera((-1.5, 7.0, 3.5), (0.0, 0.0, 0.6), "Back")
    back.select_set(True)
    _panel(gen_all_cameras=True)
    assert bpy.ops.keygrip.project_texture() == {"FINISHED"}
    two = main_thread.latest()
    main_thread.drain(timeout=240)
    assert two.state == "succeeded", two.error
    record = cube.material_slots[0].material["keygrip"]
    assert json.loads(record["cameras"]) == ["Camera", "Back"] and json.loads(record["view_seeds"]) == [3, 4]
    assert two.value.coverage["Cube"] > one.value.coverage["Cube"] + 0.1


def test_cancel_mid_job_leaves_the_scene_unchanged(served):
    from keygrip import Client

    _project_scene()
    before = _datablocks()
    _panel(gen_steps=400)      # slow steps: the job outlasts the cancel
    assert bpy.ops.keygrip.project_texture() == {"FINISHED"}
    main_thread = _module("main_thread")
    session = main_thread.latest()
    deadline = time.monotonic() + 120
    while "denoise" not in session.progress.stage or session.progress.fraction <= 0:
        assert session.busy and time.monotonic() < deadline, (session.state, session.error)
        main_thread.poll_all(wait=0.05)
    assert bpy.ops.keygrip.cancel() == {"FINISHED"}
    main_thread.drain(timeout=60)
    assert session.state == "cancelled"
    assert _datablocks() == before
    with Client(served.address) as client:
        job = client.get_job(session.job_ids[-1])
        job.wait(timeout=60)
        assert job.state == "cancelled"


def test_a_model_that_cannot_paint_from_depth_says_what_to_pick(served):
    _project_scene()
    before = _datablocks()
    main_thread = _module("main_thread")
    for controlnet, message in (("", "'tiny' cannot paint from depth on its own"),
                                ("nonesuch", "no model named 'nonesuch'"),
                                ("tiny", "'tiny' cannot condition on depth")):
        _panel(gen_controlnet=controlnet)
        assert bpy.ops.keygrip.project_texture() == {"FINISHED"}
        session = main_thread.latest()
        main_thread.drain(timeout=60)
        assert session.state == "failed" and message in session.error, session.error
        assert "tiny-depth" in session.error and not session.job_ids   # it names what to use; no job ran
    assert _datablocks() == before


def test_without_a_camera_or_a_selected_mesh_it_says_what_to_do(addon):
    new_scene()
    _panel()
    bpy.ops.mesh.primitive_cube_add()
    bpy.ops.ed.undo_push(message="scene")
    with pytest.raises(RuntimeError, match="add a camera"):
        bpy.ops.keygrip.project_texture()
    bpy.context.scene.camera = _camera((0.0, -5.0, 0.0), (0.0, 0.0, 0.0))
    bpy.ops.object.select_all(action="DESELECT")
    with pytest.raises(RuntimeError, match="select the mesh objects"):
        bpy.ops.keygrip.project_texture()


def test_cameras_come_in_order_scene_camera_then_active_then_by_name(addon):
    new_scene()
    _panel(gen_all_cameras=True)
    cube = _add(bpy.ops.mesh.primitive_cube_add)
    cams = {n: _camera((i, -5.0, 0.0), (0.0, 0.0, 0.0), n) for i, n in enumerate(("Main", "Cam B", "Cam A", "Cam C"))}
    bpy.context.scene.camera = cams["Main"]
    for obj in (cube, cams["Cam A"], cams["Cam B"], cams["Cam C"]):
        obj.select_set(True)
    bpy.context.view_layer.objects.active = cams["Cam C"]
    plan = _module("operators").project_plan_from_panel(bpy.context)
    assert plan.cameras == ("Main", "Cam C", "Cam A", "Cam B") and plan.objects == ("Cube",)
    bpy.context.scene.keygrip.gen_all_cameras = False
    assert _module("operators").project_plan_from_panel(bpy.context).cameras == ("Main",)
