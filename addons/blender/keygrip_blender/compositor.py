"""Compositing passes wired into the scene's compositor, each as ONE undo step with provenance.

The nodes and links come from keygrip.node_graph (the same description the Nuke plugin builds); this
module maps its vocabulary onto Blender's nodes: read -> Image (a sequence) or Movie Clip (the plate),
background -> RGB, copy_alpha -> Set Alpha (Replace Alpha), premultiply -> the Alpha Over it feeds
treats its foreground as straight and premultiplies it (the "Straight Alpha" input from 4.5, "Convert
Premultiplied" before), merge_over -> Alpha Over, defocus -> Defocus (Z from the depth pass), output ->
the tree's output. "Keygrip Matte": plate + matte -> Set Alpha -> Alpha Over onto a background colour;
"Keygrip Clean Plate": the clean plate to the output, the plate beside it; "Keygrip Depth": plate +
depth -> Defocus. Each is a CompositorNodeTree of its own, made the scene's compositor:
`scene.compositing_node_group` in Blender 5.x; up to 4.5 the same nodes go into `scene.node_tree` with a
Composite node. Colour spaces are set explicitly from the graph: mattes and depth Non-Color ("raw"), EXR
plates and clean plates Linear Rec.709, other plates sRGB.

Image sequences line up with the plate's numbers: a sequence node shows file number N at scene
frame N (frame_start = first number, frame_offset = first number - 1), so matte.1001.exr sits on
frame 1001 like plate.1001.exr.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import bpy

from keygrip import node_graph, sequences
from keygrip.compositing import PassFiles

from .shading import LINEAR_NAMES, SRGB, set_colorspace, undo_step


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


def _plate_node(tree: bpy.types.NodeTree, plate: PlateRef, first: int, count: int, colorspaces: tuple[str, ...],
                x: float, y: float, label: str) -> bpy.types.Node:
    """The plate, frames first .. first + count - 1 at the scene frames of their numbers."""
    if plate.clip:
        node = _node(tree, "CompositorNodeMovieClip", x, y, label)
        node.clip = bpy.data.movieclips[plate.clip]
        return node
    path = Path(plate.path)
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        return _sequence_node(tree, path, first, count, colorspaces, x, y, label)
    image = bpy.data.images.load(str(path.resolve()), check_existing=False)
    set_colorspace(image, *colorspaces)
    node = _node(tree, "CompositorNodeImage", x, y, label)
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


COLORSPACES = {"raw": ("Non-Color",), "linear": LINEAR_NAMES, "srgb": (SRGB,)}


def _read_node(tree: bpy.types.NodeTree, node: node_graph.Node, plate: PlateRef, x: float, y: float
               ) -> bpy.types.Node:
    """A graph's read node: the plate as the scene has it, or a pass's sequence (or one file)."""
    settings = node.settings
    first, last = int(settings["first"]), int(settings["last"])
    colorspaces = COLORSPACES[settings["colorspace"]]
    if settings["role"] == "plate":
        return _plate_node(tree, plate, first, last - first + 1, colorspaces, x, y, node.label)
    path = str(settings["path"])
    file = sequences.SequencePath.parse(path).path(first) if sequences.is_pattern(path) else Path(path)
    return _sequence_node(tree, file, first, last - first + 1, colorspaces, x, y, node.label)


def _build(tree: bpy.types.NodeTree, result: bpy.types.NodeSocket, graph: node_graph.Graph, plate: PlateRef) -> None:
    """Blender nodes and links for a graph (see the module's docstring for the mapping)."""
    made: dict[str, bpy.types.Node] = {}
    folded: dict[str, str] = {}         # a premultiply's id -> the node feeding it (see _set_straight_alpha)
    levels: dict[str, int] = {}
    for node in graph.ordered():
        feeds = graph.inputs(node.id)
        for socket, feed in feeds.items():
            if feed in folded and (node.type, socket) != ("merge_over", "foreground"):
                raise ValueError(f"{graph.name}: Blender folds a premultiply only into the Alpha Over it feeds")
        level = levels[node.id] = 1 + max((levels[f] for f in feeds.values()), default=-1)
        x, y = 300.0 * level, 200.0 - 220.0 * sum(1 for v in levels.values() if v == level)
        if node.type == "premultiply":
            folded[node.id] = feeds["image"]
            continue
        if node.type == "read":
            made[node.id] = _read_node(tree, node, plate, x, y)
        elif node.type == "background":
            made[node.id] = _node(tree, "CompositorNodeRGB", x, y, node.label)
            made[node.id].outputs[0].default_value = tuple(node.settings["color"])
        elif node.type == "copy_alpha":
            made[node.id] = _node(tree, "CompositorNodeSetAlpha", x, y)
            made[node.id].inputs["Type"].default_value = "Replace Alpha"
        elif node.type == "merge_over":
            made[node.id] = _node(tree, "CompositorNodeAlphaOver", x, y)
            if feeds.get("foreground") in folded:
                _set_straight_alpha(made[node.id])
        elif node.type == "defocus":
            defocus = made[node.id] = _node(tree, "CompositorNodeDefocus", x, y)
            # Relative depth (about 0 near to 1 far), not scene units: Z scales the blur directly.
            defocus.use_zbuffer = False
            defocus.z_scale = float(node.settings["scale"])
            defocus.blur_max = float(node.settings["max_size"])
        elif node.type != "output":
            raise ValueError(f"{graph.name}: the Blender compositor has no node for {node.type} {node.id}")
        for socket, feed in feeds.items():
            target = result if node.type == "output" else made[node.id].inputs[_SOCKETS[node.type][socket]]
            tree.links.new(made[folded.get(feed, feed)].outputs[0], target)


# graph input socket -> the Blender node's input socket, per node type.
_SOCKETS = {"copy_alpha": {"image": "Image", "alpha": "Alpha"},
            "merge_over": {"foreground": "Foreground", "background": "Background"},
            "defocus": {"image": "Image", "depth": "Z"}}


def _set_straight_alpha(over: bpy.types.Node) -> None:
    """Alpha Over premultiplies its foreground: an input socket from 4.5, a property before."""
    if "Straight Alpha" in over.inputs:
        over.inputs["Straight Alpha"].default_value = True
    else:
        over.use_premultiply = True


def write_pass(kind: str, files: PassFiles, plate: PlateRef, *, background: tuple[float, float, float, float]
               = node_graph.DEFAULT_BACKGROUND) -> bpy.types.NodeTree:
    """Wire a finished pass into the plate's scene (one undo step); returns the node tree."""
    graph = files.graph(kind, plate.path or plate.clip, background=background)
    with undo_step(f"Keygrip: {graph.name}"):
        scene = bpy.data.scenes[plate.scene]
        tree, result = _tree(scene, graph.name)
        _build(tree, result, graph, plate)
        tree["keygrip_pass"] = kind
        tree["keygrip_provenance"] = json.dumps(files.metadata, sort_keys=True)
        tree["keygrip_graph"] = json.dumps(graph.to_dict(), sort_keys=True)
        tree["keygrip_files"] = files.pattern or (str(files.files[0]) if files.files else "")
    return tree
