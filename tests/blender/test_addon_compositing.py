"""The compositing buttons in the bpy wheel against a real server: a matte over a Movie Clip wired as a
"Keygrip Matte" node tree (5.x compositing_node_group), colour spaces, frame numbers, provenance,
one undo step; the depth and clean-plate trees wired from real EXR files.

Background mode has no event loop, so main_thread.drain() plays the bpy.app.timers tick.
"""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path

import bpy
import numpy as np
import pytest
from addon_helpers import ADDON_MODULE, REPO, enable_addon, new_scene, prefs
from server_process import ServerProcess

from keygrip.compositing import PassFiles

addon_utils = import_module("addon_utils")
VIDEO = REPO / "tests" / "data" / "video" / "pose2sim_cam01.mp4"


@pytest.fixture(scope="module")
def addon(tmp_path_factory: pytest.TempPathFactory):
    srv = ServerProcess(tmp_path_factory.mktemp("comp") / "data", workers=1)
    srv.start()
    module = enable_addon()
    prefs().server_address = srv.address
    yield module
    if ADDON_MODULE in bpy.context.preferences.addons:
        addon_utils.disable(ADDON_MODULE, default_set=True)
    srv.stop()


def _module(name: str):
    return import_module(f"{ADDON_MODULE}.{name}")


def _links(tree) -> set[tuple[str, str, str, str]]:
    return {(link.from_node.bl_idname, link.from_socket.name, link.to_node.bl_idname, link.to_socket.name)
            for link in tree.links}


def test_matte_button_wires_a_keygrip_matte_tree_then_undo(addon) -> None:
    new_scene()
    clip = bpy.data.movieclips.load(str(VIDEO))
    s = bpy.context.scene.keygrip
    s.source, s.clip, s.frame_start, s.frame_end = "CLIP", clip, 40, 42
    bpy.ops.ed.undo_push(message="clip")
    assert bpy.ops.keygrip.comp_matte() == {"FINISHED"}
    session = _module("main_thread").latest()
    _module("main_thread").drain(timeout=240)
    assert session.state == "succeeded", session.error
    tree = bpy.context.scene.compositing_node_group
    assert tree is not None and tree.name == "Keygrip Matte"
    assert _links(tree) == {
        ("CompositorNodeMovieClip", "Image", "CompositorNodeSetAlpha", "Image"),
        ("CompositorNodeImage", "Image", "CompositorNodeSetAlpha", "Alpha"),
        ("CompositorNodeRGB", "Color", "CompositorNodeAlphaOver", "Background"),
        ("CompositorNodeSetAlpha", "Image", "CompositorNodeAlphaOver", "Foreground"),
        ("CompositorNodeAlphaOver", "Image", "NodeGroupOutput", "Image"),
    }
    set_alpha = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeSetAlpha")
    assert set_alpha.inputs["Type"].default_value == "Replace Alpha"
    # The graph's premultiply: Alpha Over premultiplies the straight plate + matte (else the plate shows
    # through at full strength where the matte is 0).
    over = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeAlphaOver")
    assert over.inputs["Straight Alpha"].default_value is True
    graph = json.loads(tree["keygrip_graph"])
    assert [n["type"] for n in graph["nodes"] if n["id"] == "premultiply"] == ["premultiply"]
    matte = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeImage")
    image = matte.image
    assert image.colorspace_settings.name == "Non-Color" and image.source == "SEQUENCE"
    assert Path(image.filepath).name == "matte.0040.exr" and Path(image.filepath).is_file()
    # File number N shows at scene frame N: 40 at 40, 41 at 41.
    assert (matte.frame_start, matte.frame_offset, matte.frame_duration) == (40, 39, 2)
    record = json.loads(tree["keygrip_provenance"])
    assert record["job_id"] == session.job_ids[-1] and record["matte_refine"] == "fast_guided_filter"
    assert record["frame_range"] == "40-41"
    bpy.ops.ed.undo()
    assert "Keygrip Matte" not in bpy.data.node_groups


def test_depth_and_clean_plate_trees(addon, tmp_path: Path) -> None:
    from inference_server.scene.exr import write_exr, write_exr_channels

    compositor = _module("compositor")
    new_scene()
    frames = {}
    for n in (1001, 1002, 1003):
        frames[n] = tmp_path / f"depth.{n}.exr"
        write_exr_channels(frames[n], {"Z": np.full((8, 12), n / 1000.0, np.float32)})
    plate = compositor.PlateRef(scene=bpy.context.scene.name, path=str(tmp_path / "plate.1001.exr"))
    for n in frames:
        write_exr(tmp_path / f"plate.{n}.exr", np.full((8, 12, 3), 0.5, np.float32))
    meta = {"frame_range": "1001-1003", "job_id": "j1"}
    tree = compositor.write_pass("depth", PassFiles(frames=frames, metadata=meta), plate)
    assert bpy.context.scene.compositing_node_group == tree and tree.name == "Keygrip Depth"
    assert _links(tree) == {("CompositorNodeImage", "Image", "CompositorNodeDefocus", "Image"),
                            ("CompositorNodeImage", "Image", "CompositorNodeDefocus", "Z"),
                            ("CompositorNodeDefocus", "Image", "NodeGroupOutput", "Image")}
    by_label = {n.label: n for n in tree.nodes}
    assert by_label["Depth"].image.colorspace_settings.name == "Non-Color"
    assert by_label["Plate"].image.colorspace_settings.name == "Linear Rec.709"
    assert (by_label["Plate"].frame_start, by_label["Plate"].frame_offset) == (1001, 1000)
    clean = tmp_path / "cleanplate.1002.exr"
    write_exr(clean, np.full((8, 12, 3), 0.25, np.float32))
    tree = compositor.write_pass("cleanplate", PassFiles(files=[clean, tmp_path / "coverage.1002.png"], metadata=meta),
                                 plate)
    node = next(n for n in tree.nodes if n.label == "Clean Plate")
    assert node.image.colorspace_settings.name == "Linear Rec.709" and Path(node.image.filepath) == clean
    assert ("CompositorNodeImage", "Image", "NodeGroupOutput", "Image") in _links(tree)
    assert tree["keygrip_pass"] == "cleanplate"
