"""The Generate panel end to end, in the bpy wheel against a real server with a tiny random-weight model:
a texture as a material on the selected cube, a world as the scene's World, cancel, undo, provenance;
and the world's direction convention checked with a tiny Cycles render.

Background mode has no event loop, so main_thread.drain() plays the bpy.app.timers tick.
"""

from __future__ import annotations

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
from mathutils import Euler, Vector
from server_process import ServerProcess

addon_utils = import_module("addon_utils")  # Blender's scripts/modules: importable once bpy is
SIZE = 64

# The tiny model is built in a child process: torch stays out of the bpy process, as in Blender.
_MAKE_MODEL = """
import sys
from pathlib import Path
from diffusion_models import save_diffusers, tiny_sd_pipeline
root = Path(sys.argv[1])
save_diffusers(tiny_sd_pipeline(root / "src"), root / "tiny-sd")
"""


@pytest.fixture(scope="module")
def gen_server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("gen")
    subprocess.run([sys.executable, "-c", _MAKE_MODEL, str(root)], check=True, cwd=REPO / "tests", timeout=300,
                   env={**os.environ, "PYTHONPATH": str(REPO / "tests")})
    toml = root / "keygrip.toml"
    toml.write_text(f'[models.tiny]\npath = "{root / "tiny-sd"}"\n')
    srv = ServerProcess(root / "data", "--config", str(toml), workers=1)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def addon(gen_server):
    module = enable_addon()
    prefs().server_address = gen_server.address
    yield module
    if ADDON_MODULE in bpy.context.preferences.addons:
        addon_utils.disable(ADDON_MODULE, default_set=True)


def _module(name: str):
    return import_module(f"{ADDON_MODULE}.{name}")


def _panel(**values) -> None:
    s = bpy.context.scene.keygrip
    base = {"gen_model": "tiny", "gen_prompt": "mossy cobblestones", "gen_seed": 11, "gen_steps": 2,
            "gen_width": SIZE, "gen_height": SIZE}
    for key, value in {**base, **values}.items():
        setattr(s, key, value)


def _cube_scene():
    new_scene()
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    cube.select_set(True)
    bpy.ops.ed.undo_push(message="cube")
    return cube


def _run(op) -> object:
    assert op() == {"FINISHED"}
    session = _module("main_thread").latest()
    _module("main_thread").drain(timeout=240)
    return session


def _links(tree) -> set[tuple[str, str, str, str]]:
    return {(link.from_node.bl_idname, link.from_socket.name, link.to_node.bl_idname, link.to_socket.name)
            for link in tree.links}


def _check_provenance(idb, session, prompt: str, seed: int) -> None:
    record = idb["keygrip"]
    assert record["job_id"] == session.job_ids[-1] == session.value.job_id
    assert record["prompt"] == prompt and record["seed"] == seed and record["model"] == "tiny"
    assert len(record["model_hash"]) == 64 and record["model_hash"] == session.value.model_hash


def test_texture_material_on_selected_cube_then_undo(addon):
    cube = _cube_scene()
    _panel(gen_scale=3.0)
    session = _run(bpy.ops.keygrip.generate_texture)
    assert session.state == "succeeded", session.error
    mat = cube.data.materials[0]
    assert mat.name.startswith("Keygrip texture_mossy_cobblestones")
    tree = mat.node_tree
    assert _links(tree) == {
        ("ShaderNodeTexCoord", "UV", "ShaderNodeMapping", "Vector"),
        ("ShaderNodeMapping", "Vector", "ShaderNodeTexImage", "Vector"),
        ("ShaderNodeTexImage", "Color", "ShaderNodeBsdfPrincipled", "Base Color"),
        ("ShaderNodeBsdfPrincipled", "BSDF", "ShaderNodeOutputMaterial", "Surface"),
    }
    mapping = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeMapping")
    assert tuple(mapping.inputs["Scale"].default_value) == pytest.approx((3.0, 3.0, 3.0))
    image = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeTexImage").image
    assert image.colorspace_settings.name == "sRGB"
    assert tuple(image.size) == (SIZE, SIZE)
    # Referenced by absolute path (not packed), in a temporary folder since this file is unsaved.
    assert image.packed_file is None and Path(image.filepath).is_absolute() and Path(image.filepath).is_file()
    assert Path(image.filepath).suffix == ".png" and Path(session.value.exr_path).is_file()
    _check_provenance(mat, session, "mossy cobblestones", 11)
    _check_provenance(image, session, "mossy cobblestones", 11)
    # The step previews reached the panel.
    assert session.progress.preview_png.startswith(b"\x89PNG")
    assert session.title in _module("previews").latest

    # One undo step takes the whole write-back away.
    bpy.ops.ed.undo()
    cube = bpy.data.objects["Cube"]
    assert len(cube.data.materials) == 0 or cube.data.materials[0] is None or \
        not cube.data.materials[0].name.startswith("Keygrip")
    assert not [m for m in bpy.data.materials if m.name.startswith("Keygrip")]
    assert not [i for i in bpy.data.images if "keygrip" in i]


def test_texture_maps_wired_into_normal_and_displacement(addon):
    cube = _cube_scene()
    _panel(gen_maps=True, gen_prompt="rough slate")
    session = _run(bpy.ops.keygrip.generate_texture)
    assert session.state == "succeeded", session.error
    mat = cube.data.materials[0]
    tree = mat.node_tree
    assert {
        ("ShaderNodeTexImage", "Color", "ShaderNodeNormalMap", "Color"),
        ("ShaderNodeNormalMap", "Normal", "ShaderNodeBsdfPrincipled", "Normal"),
        ("ShaderNodeTexImage", "Color", "ShaderNodeDisplacement", "Height"),
        ("ShaderNodeDisplacement", "Displacement", "ShaderNodeOutputMaterial", "Displacement"),
    } <= _links(tree)
    assert mat.displacement_method == "DISPLACEMENT"  # relief shaded once, by the normal map
    images = {link.to_node.bl_idname: link.from_node.image for link in tree.links
              if link.from_node.bl_idname == "ShaderNodeTexImage"}
    for kind in ("ShaderNodeNormalMap", "ShaderNodeDisplacement"):
        assert images[kind].colorspace_settings.name == "Non-Color" and tuple(images[kind].size) == (SIZE, SIZE)
        assert images[kind]["keygrip"]["job_id"] == session.value.job_id
    assert images["ShaderNodeBsdfPrincipled"].colorspace_settings.name == "sRGB"
    assert Path(session.value.height_path).name.endswith("_height.png")
    # The maps repeat with the texture: all three images read through the one Mapping node.
    mapping = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeMapping")
    assert sum(1 for link in tree.links if link.from_node == mapping) == 3


def test_world_node_tree_then_undo(addon):
    new_scene()
    bpy.ops.ed.undo_push(message="empty")
    worlds_before = sorted(w.name for w in bpy.data.worlds)
    _panel(gen_prompt="overcast sky over hills", gen_seed=5, gen_rotation=math.radians(30))
    session = _run(bpy.ops.keygrip.generate_world)
    assert session.state == "succeeded", session.error
    world = bpy.context.scene.world
    assert world.name.startswith("Keygrip world_overcast")
    tree = world.node_tree
    assert _links(tree) == {
        ("ShaderNodeTexCoord", "Generated", "ShaderNodeMapping", "Vector"),
        ("ShaderNodeMapping", "Vector", "ShaderNodeTexEnvironment", "Vector"),
        ("ShaderNodeTexEnvironment", "Color", "ShaderNodeBackground", "Color"),
        ("ShaderNodeBackground", "Background", "ShaderNodeOutputWorld", "Surface"),
    }
    mapping = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeMapping")
    assert mapping.vector_type == "TEXTURE"
    assert tuple(mapping.inputs["Rotation"].default_value) == pytest.approx((0.0, 0.0, math.radians(30)))
    env = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeTexEnvironment")
    assert env.projection == "EQUIRECTANGULAR"
    image = env.image
    assert image.colorspace_settings.name == "Linear Rec.709"
    assert Path(image.filepath).suffix == ".exr" and image.is_float
    assert tuple(image.size) == (2 * SIZE, SIZE)
    _check_provenance(world, session, "overcast sky over hills", 5)

    bpy.ops.ed.undo()
    assert sorted(w.name for w in bpy.data.worlds) == worlds_before


def test_cancel_mid_job_leaves_the_scene_unchanged(addon, gen_server):
    from keygrip import Client

    cube = _cube_scene()
    before = {k: sorted(x.name for x in getattr(bpy.data, k)) for k in ("materials", "images", "worlds")}
    _panel(gen_steps=400, gen_width=2 * SIZE, gen_height=2 * SIZE)  # slow steps: the job outlasts the cancel
    assert bpy.ops.keygrip.generate_texture() == {"FINISHED"}
    main_thread = _module("main_thread")
    session = main_thread.latest()
    deadline = time.monotonic() + 120
    while "denoise" not in session.progress.stage or session.progress.fraction <= 0:
        assert session.busy and time.monotonic() < deadline, (session.state, session.error)
        main_thread.poll_all(wait=0.05)
    assert session.busy, (session.state, session.error)
    assert bpy.ops.keygrip.cancel() == {"FINISHED"}
    main_thread.drain(timeout=60)
    assert session.state == "cancelled"
    assert {k: sorted(x.name for x in getattr(bpy.data, k)) for k in before} == before
    assert len(cube.data.materials) == 0
    with Client(gen_server.address) as client:
        job = client.get_job(session.job_ids[-1])
        job.wait(timeout=60)
        assert job.state == "cancelled" and job.proto.progress.value < 400


def test_world_direction_lands_where_expected(addon, tmp_path: Path):
    """A bright spot painted into a synthetic EXR at the (u, v) that shading.direction_to_equirectangular
    gives for a direction d, wired by the same build_world as the write-back: a 4x4 Cycles render (CPU,
    one sample) of a 4-degree camera looking along d sees it; looking the opposite way, or along d
    mirrored in Y or in Z, does not; with the world's Mapping rotated by 90 degrees about Z, the spot
    is seen along Rz(90) d instead of d."""
    from inference_server.scene.exr import write_exr

    shading = _module("shading")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("cycles", default_set=True)
    w, h = 128, 64
    d = Vector((0.6, -1.0, 0.45)).normalized()
    u, v = shading.direction_to_equirectangular(*d)
    col, row = int(u * w), int((1.0 - v) * h)      # the EXR's rows run top to bottom, v bottom to top
    pixels = np.zeros((h, w, 3), np.float32)
    pixels[row - 3:row + 4, col - 3:col + 4] = 50.0
    exr = tmp_path / "spot.exr"
    write_exr(exr, pixels, half=False)
    image = bpy.data.images.load(str(exr))
    shading.set_colorspace(image, *shading.LINEAR_NAMES)

    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = 4
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "OPEN_EXR"
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    cam.data.angle = math.radians(4.0)
    scene.collection.objects.link(cam)
    scene.camera = cam

    def seen(direction: Vector) -> float:
        cam.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
        scene.render.filepath = str(tmp_path / "render.exr")
        bpy.ops.render.render(write_still=True)
        out = bpy.data.images.load(scene.render.filepath, check_existing=False)
        values = np.empty(4 * 4 * 4, np.float32)
        out.pixels.foreach_get(values)
        bpy.data.images.remove(out)
        return float(values.reshape(-1, 4)[:, :3].mean())

    scene.world = shading.build_world("spot", image, rotation=0.0)
    assert seen(d) > 1.0 and seen(-d) < 0.01
    # Not mirrored left-right (the sign of u) nor upside down (the sign of v).
    assert seen(Vector((d.x, -d.y, d.z))) < 0.01 and seen(Vector((d.x, d.y, -d.z))) < 0.01
    turned = Euler((0.0, 0.0, math.radians(90)), "XYZ").to_matrix() @ d
    scene.world = shading.build_world("spot turned", image, rotation=math.radians(90))
    assert seen(turned) > 1.0 and seen(d) < 0.01
