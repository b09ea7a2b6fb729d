"""A finished pass wired into its Keygrip node (main thread only, one undo step).

The nodes and links come from keygrip.node_graph (the same description Blender builds); this module
maps its vocabulary onto Nuke's nodes inside the group:
- read: the plate is the group's Plate input (the artist's own Read); a pass's sequence or file is a
  Read (colorspace "raw": Raw Data, no colour conversion, for mattes and depth; "linear" and "srgb":
  Nuke's default for the file type, linear for EXR), one file held on every frame;
- background: the group's Background input;
- copy_alpha: Copy (A: the matte's rgba.alpha -> B: the image's rgba.alpha);
- premultiply: Premult; merge_over: Merge2 "over" (A: foreground, B: background);
- defocus: Copy the depth's depth.Z onto the image, then ZDefocus2 ("direct": the depth value times
  the size is the blur, as relative depth needs; size and max_size from the graph);
- output: the group's Output.
Reads show the files at the plate's own frame numbers (matte.1001.exr on frame 1001).
"""

from __future__ import annotations

import json

from keygrip import node_graph

from .host import nuke

PLATE_INPUT = "Plate"
BACKGROUND_INPUT = "Background"
OUTPUT = "Output1"
_KEPT = (PLATE_INPUT, BACKGROUND_INPUT, OUTPUT)   # what node.create made; the rest is a pass's result


def _io_nodes(group: nuke.Group) -> dict[str, nuke.Node]:
    found = {n.name(): n for n in group.nodes() if n.name() in _KEPT}
    missing = [name for name in _KEPT if name not in found]
    if missing:
        raise ValueError(f"{group.name()} has no {', '.join(missing)} inside: make a new Keygrip node "
                         "(Keygrip > Keygrip Node)")
    return found


def clear_result(group: nuke.Group) -> None:
    """Remove what an earlier pass built; the Output shows the plate again."""
    with group:
        kept = _io_nodes(group)
        for node in group.nodes():
            if node.name() not in _KEPT:
                nuke.delete(node)
        kept[OUTPUT].setInput(0, kept[PLATE_INPUT])


def _read(node: node_graph.Node) -> nuke.Node:
    s = node.settings
    first, last = int(s["first"]), int(s["last"])
    read = nuke.nodes.Read(file=str(s["path"]), first=first, last=last, origfirst=first, origlast=last)
    read["raw"].setValue(s["colorspace"] == "raw")
    if first == last:   # one file (a clean plate): on every frame
        read["before"].setValue("hold")
        read["after"].setValue("hold")
    return read


def build(group: nuke.Group, graph: node_graph.Graph, metadata: dict[str, str]) -> dict[str, nuke.Node]:
    """Nuke nodes for a pass's graph inside the group, replacing an earlier result (one undo step);
    returns graph node id -> the Nuke node that gives its output. The graph and the pass's metadata
    (job, settings, model) go into the group's provenance knob, for a TD to re-run it."""
    nuke.Undo.begin(graph.name)
    try:
        clear_result(group)
        with group:
            io = _io_nodes(group)
            made: dict[str, nuke.Node] = {}
            for level, node in enumerate(graph.ordered()):
                feeds = {socket: made[source] for socket, source in graph.inputs(node.id).items()}
                made[node.id] = _make(node, feeds, io)
                if made[node.id] not in io.values():
                    made[node.id].setXYpos(200 * (level % 2), 100 * level)
                    made[node.id]["label"].setValue(node.label)
        group["provenance"].setValue(json.dumps({"graph": graph.to_dict(), "metadata": metadata}, sort_keys=True))
        return made
    finally:
        nuke.Undo.end()


def _make(node: node_graph.Node, feeds: dict[str, nuke.Node], io: dict[str, nuke.Node]) -> nuke.Node:
    """The Nuke node for one graph node, its inputs connected (Nuke's input 0 is B, input 1 is A)."""
    if node.type == "read":
        return io[PLATE_INPUT] if node.settings["role"] == "plate" else _read(node)
    if node.type == "background":
        return io[BACKGROUND_INPUT]
    if node.type == "copy_alpha":
        copy = nuke.nodes.Copy(from0="rgba.alpha", to0="rgba.alpha")
        copy.setInput(0, feeds["image"])
        copy.setInput(1, feeds["alpha"])
        return copy
    if node.type == "premultiply":
        premult = nuke.nodes.Premult()
        premult.setInput(0, feeds["image"])
        return premult
    if node.type == "merge_over":
        over = nuke.nodes.Merge2(operation="over")
        over.setInput(0, feeds["background"])
        over.setInput(1, feeds["foreground"])
        return over
    if node.type == "defocus":
        copy = nuke.nodes.Copy(from0="depth.Z", to0="depth.Z")
        copy.setInput(0, feeds["image"])
        copy.setInput(1, feeds["depth"])
        defocus = nuke.nodes.ZDefocus2(math="direct", size=float(node.settings["scale"]),
                                       max_size=float(node.settings["max_size"]))
        defocus.setInput(0, copy)
        return defocus
    if node.type == "output":
        io[OUTPUT].setInput(0, feeds["image"])
        return io[OUTPUT]
    raise ValueError(f"the Nuke plugin has no node for {node.type} {node.id}: update the plugin to match the SDK")
