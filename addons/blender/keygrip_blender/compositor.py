"""Compositing passes wired into the scene's compositor, each as ONE undo step with provenance.

"Keygrip Matte": plate + matte -> Set Alpha (Replace Alpha) -> Alpha Over onto a background colour;
"Keygrip Clean Plate": the clean plate as an Image node over the plate; "Keygrip Depth": plate + depth
-> Defocus (Z from the depth pass). Each is a CompositorNodeTree of its own, made the scene's
compositor: `scene.compositing_node_group` in Blender 5.x; up to 4.5 the same nodes go into
`scene.node_tree` with a Composite node. Colour spaces are set explicitly: mattes and depth
Non-Color, EXR plates and clean plates Linear Rec.709, other plates sRGB.

Image sequences line up with the plate's numbers: a sequence node shows file number N at scene
frame N (frame_start = first number, frame_offset = first number - 1), so matte.1001.exr sits on
frame 1001 like plate.1001.exr.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import bpy

from keygrip.compositing import PassFiles

from .shading import LINEAR_NAMES, SRGB, set_colorspace, undo_step

GROUP_NAMES = {"matte": "Keygrip Matte", "cleanplate": "Keygrip Clean Plate", "depth": "Keygrip Depth"}


@dataclass(frozen=True)
class PlateRef:
    """The plate as the scene has it: a Movie Clip's name, or a file (a video, or an image
    sequence's first frame)."""

    scene: str
    clip: str = ""
    path: str = ""


_IMAGE_SUFFIXES = (".exr", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dpx")


def _node(tree: bpy.types.NodeTree, kind: str, x: float, y: float, label: str = "") -> bpy.types.Node:
    node = tree.nodes.new(kind)
    node.location = (x, y)
    if label:
        node.label = label
    return node


def _sequence_node(tree: bpy.types.NodeTree, path: Path, first: int, count: int, colorspaces: tuple[str, ...],
                   x: float, y: float, label: str) -> bpy.types.Node:
    """An Image node showing a numbered sequence (or one file) at the scene frames of its own numbers."""
    image = bpy.data.images.load(str(path.resolve()), check_existing=False)
    set_colorspace(image, *colorspaces)
    node = _node(tree, "CompositorNodeImage", x, y, label)
    node.image = image
    if count > 1:
        image.source = "SEQUENCE"
        node.frame_duration = count
        node.frame_start = first
        node.frame_offset = first - 1
    return node


def _plate_node(tree: bpy.types.NodeTree, plate: PlateRef, first: int, count: int, x: float, y: float
                ) -> bpy.types.Node:
    """The plate, frames first .. first + count - 1 at the scene frames of their numbers."""
    if plate.clip:
        node = _node(tree, "CompositorNodeMovieClip", x, y, "Plate")
        node.clip = bpy.data.movieclips[plate.clip]
        return node
    path = Path(plate.path)
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        linear = path.suffix.lower() == ".exr"
        return _sequence_node(tree, path, first, count, LINEAR_NAMES if linear else (SRGB,), x, y, "Plate")
    image = bpy.data.images.load(str(path.resolve()), check_existing=False)
    set_colorspace(image, SRGB)
    node = _node(tree, "CompositorNodeImage", x, y, "Plate")
    node.image = image
    # A movie's frame 1 is the video's frame 0: video frame N shows at scene frame N.
    node.frame_duration = count
    node.frame_start = first
    node.frame_offset = first
    return node


def _tree(scene: bpy.types.Scene, name: str) -> tuple[bpy.types.NodeTree, bpy.types.NodeSocket]:
    """A fresh compositor tree for the pass, made the scene's, and the socket its result goes into."""
    if hasattr(scene, "compositing_node_group"):  # Blender 5.x
        old = bpy.data.node_groups.get(name)
        if old is not None:
            bpy.data.node_groups.remove(old)
        tree = bpy.data.node_groups.new(name, "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        out = _node(tree, "NodeGroupOutput", 900, 0)
        return tree, out.inputs[0]
    scene.use_nodes = True  # Blender 4.2-4.5: the scene's own tree
    tree = scene.node_tree
    tree.nodes.clear()
    out = _node(tree, "CompositorNodeComposite", 900, 0)
    return tree, out.inputs["Image"]


def write_pass(kind: str, files: PassFiles, plate: PlateRef, *, background: tuple[float, float, float, float]
               = (0.05, 0.05, 0.05, 1.0)) -> bpy.types.NodeTree:
    """Wire a finished pass into the plate's scene (one undo step); returns the node tree."""
    name = GROUP_NAMES[kind]
    with undo_step(f"Keygrip: {name}"):
        scene = bpy.data.scenes[plate.scene]
        tree, result = _tree(scene, name)
        first, last = (int(n) for n in files.metadata["frame_range"].split("-"))
        plate_node = _plate_node(tree, plate, first, last - first + 1, 0, 200)
        numbers = sorted(files.frames)
        if kind == "matte":
            matte = _sequence_node(tree, files.frames[numbers[0]], numbers[0], len(numbers), ("Non-Color",), 0, -150,
                                   "Matte")
            set_alpha = _node(tree, "CompositorNodeSetAlpha", 300, 100)
            set_alpha.inputs["Type"].default_value = "Replace Alpha"
            bg = _node(tree, "CompositorNodeRGB", 300, -150, "Background")
            bg.outputs[0].default_value = background
            over = _node(tree, "CompositorNodeAlphaOver", 600, 0)
            tree.links.new(plate_node.outputs["Image"], set_alpha.inputs["Image"])
            tree.links.new(matte.outputs["Image"], set_alpha.inputs["Alpha"])
            tree.links.new(bg.outputs[0], over.inputs["Background"])
            tree.links.new(set_alpha.outputs["Image"], over.inputs["Foreground"])
            tree.links.new(over.outputs["Image"], result)
        elif kind == "depth":
            depth = _sequence_node(tree, files.frames[numbers[0]], numbers[0], len(numbers), ("Non-Color",), 0, -150,
                                   "Depth")
            defocus = _node(tree, "CompositorNodeDefocus", 400, 0)
            # Relative depth (about 0 near to 1 far), not scene units: Z scales the blur directly.
            defocus.use_zbuffer = False
            defocus.z_scale = 8.0
            tree.links.new(plate_node.outputs["Image"], defocus.inputs["Image"])
            tree.links.new(depth.outputs["Image"], defocus.inputs["Z"])
            tree.links.new(defocus.outputs["Image"], result)
        else:
            clean_path = next(p for p in files.files if Path(p).name.startswith("cleanplate.") and
                              not Path(p).name.startswith("cleanplate_preview"))
            exr = Path(clean_path).suffix.lower() == ".exr"
            clean = _sequence_node(tree, Path(clean_path), 0, 1, LINEAR_NAMES if exr else (SRGB,), 0, -150,
                                   "Clean Plate")
            tree.links.new(clean.outputs["Image"], result)
        tree["keygrip_pass"] = kind
        tree["keygrip_provenance"] = json.dumps(files.metadata, sort_keys=True)
        tree["keygrip_files"] = files.pattern or (str(files.files[0]) if files.files else "")
    return tree
