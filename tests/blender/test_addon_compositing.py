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


def _png_sequence(folder: Path, numbers: tuple[int, ...]) -> Path:
    """Frames of the test video, small, as plate.NNNN.png numbered like a plate."""
    import cv2

    from inference_server.media.video import iter_frames

    folder.mkdir(parents=True, exist_ok=True)
    for n, f in zip(numbers, iter_frames(VIDEO, 40, 40 + len(numbers)), strict=True):
        small = cv2.resize(f.image, (72, 128), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"plate.{n:04d}.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    return folder / f"plate.{numbers[0]:04d}.png"


def _run_matte() -> tuple[object, object]:
    assert bpy.ops.keygrip.comp_matte() == {"FINISHED"}
    session = _module("main_thread").latest()
    _module("main_thread").drain(timeout=240)
    assert session.state == "succeeded", session.error
    return session, bpy.context.scene.compositing_node_group


def test_matte_of_an_image_sequence_datablock(addon, tmp_path: Path) -> None:
    """An Image of source Sequence as the plate: only the panel's range is sent, the matte is numbered
    like the plate's files, and both show file N at scene frame N (the artist's Image untouched but for
    the node's timing)."""
    new_scene()
    first = _png_sequence(tmp_path / "seq", (1001, 1002, 1003, 1004))
    image = bpy.data.images.load(str(first))
    image.source = "SEQUENCE"
    image.colorspace_settings.name = "sRGB"
    s = bpy.context.scene.keygrip
    s.source, s.plate_image, s.frame_start, s.frame_end = "IMAGE", image, 1002, 1004
    session, tree = _run_matte()
    assert tree.name == "Keygrip Matte"
    plate_node = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeImage" and n.image == image)
    assert (plate_node.frame_start, plate_node.frame_offset, plate_node.frame_duration) == (1002, 1001, 2)
    matte = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeImage" and n.image != image)
    assert Path(matte.image.filepath).name == "matte.1002.exr" and matte.image.colorspace_settings.name == "Non-Color"
    assert (matte.frame_start, matte.frame_offset, matte.frame_duration) == (1002, 1001, 2)
    out = Path(matte.image.filepath).parent
    assert sorted(p.name for p in out.glob("matte.*.exr")) == ["matte.1002.exr", "matte.1003.exr"]
    assert ("CompositorNodeImage", "Image", "CompositorNodeSetAlpha", "Image") in _links(tree)
    assert json.loads(tree["keygrip_provenance"])["frame_range"] == "1002-1003"
    assert image.colorspace_settings.name == "sRGB" and image.source == "SEQUENCE"
    # The panel's matte model goes to the server, which says it has none of that name.
    s.comp_matte_model = "tiny-seg"
    assert bpy.ops.keygrip.comp_matte() == {"FINISHED"}
    session = _module("main_thread").latest()
    _module("main_thread").drain(timeout=60)
    assert session.state == "failed" and "no model named 'tiny-seg'" in session.error
    s.comp_matte_model = ""
    # A range outside the plate is refused before anything is sent, naming the plate's frames.
    s.frame_start, s.frame_end = 2001, 2003
    with pytest.raises(RuntimeError, match=r"not inside plate\.####\.png \(frames 1001-1004\)"):
        bpy.ops.keygrip.comp_matte()


def test_matte_of_a_movie_clip_of_an_image_sequence(addon, tmp_path: Path) -> None:
    """A Movie Clip of PNG frames: the plate node reads the same files at their numbers (the clip itself,
    which plays from its own start frame, is left as it is)."""
    new_scene()
    first = _png_sequence(tmp_path / "clipseq", (11, 12, 13))
    clip = bpy.data.movieclips.load(str(first))
    assert clip.source == "SEQUENCE"
    s = bpy.context.scene.keygrip
    s.source, s.clip, s.frame_start, s.frame_end = "CLIP", clip, 0, 0
    _, tree = _run_matte()
    images = {Path(n.image.filepath).name: n for n in tree.nodes if n.bl_idname == "CompositorNodeImage"}
    assert set(images) == {"plate.0011.png", "matte.0011.exr"}
    for node in images.values():
        assert (node.frame_start, node.frame_offset, node.frame_duration) == (11, 10, 3)
    assert images["plate.0011.png"].image.colorspace_settings.name == clip.colorspace_settings.name
    assert clip.frame_start == 1 and not any(n.bl_idname == "CompositorNodeMovieClip" for n in tree.nodes)
