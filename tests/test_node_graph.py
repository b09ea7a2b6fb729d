"""The node graph of a compositing pass as plain data (keygrip.node_graph), checked on creation, the
same for every host."""

from __future__ import annotations

import json

import pytest

from keygrip.compositing import PassFiles
from keygrip.node_graph import Graph, Link, Node, pass_graph
from keygrip.plates import FrameRange


def _links(graph: Graph) -> set[tuple[str, str, str]]:
    return {(k.source, k.target, k.socket) for k in graph.links}


def test_matte_graph_copies_alpha_premultiplies_and_merges_over_the_background() -> None:
    graph = pass_graph("matte", plate_path="/plates/plate.####.exr", plate_range=FrameRange(1009, 1092),
                       result_path="/out/shot010_matte.####.exr", result_range=FrameRange(1009, 1092),
                       background=(0.1, 0.2, 0.3, 1.0))
    assert graph.name == "Keygrip Matte"
    assert _links(graph) == {("plate", "copy_alpha", "image"), ("matte", "copy_alpha", "alpha"),
                             ("copy_alpha", "premultiply", "image"), ("premultiply", "over", "foreground"),
                             ("background", "over", "background"), ("over", "output", "image")}
    plate, matte = graph.by_role("plate"), graph.by_role("matte")
    assert plate.settings == {"path": "/plates/plate.####.exr", "first": 1009, "last": 1092,
                              "colorspace": "linear", "role": "plate"}
    assert matte.settings["colorspace"] == "raw" and matte.label == "Matte"
    assert graph.node("background").settings["color"] == [0.1, 0.2, 0.3, 1.0]
    order = [n.id for n in graph.ordered()]
    for link in graph.links:  # a host can create nodes in this order and link as it goes
        assert order.index(link.source) < order.index(link.target)
    assert graph.inputs("over") == {"foreground": "premultiply", "background": "background"}
    # Plain data: through JSON (a Nuke knob, a Blender custom property) and back unchanged.
    assert Graph.from_dict(json.loads(json.dumps(graph.to_dict()))) == graph


def test_depth_and_clean_plate_graphs() -> None:
    depth = pass_graph("depth", plate_path="/p/take.mp4", plate_range=FrameRange(0, 9),
                       result_path="/o/depth.####.exr", result_range=FrameRange(0, 9))
    assert _links(depth) == {("plate", "defocus", "image"), ("depth", "defocus", "depth"),
                             ("defocus", "output", "image")}
    assert depth.by_role("plate").settings["colorspace"] == "srgb"  # a movie's pixels are display-referred
    assert depth.by_role("depth").settings["colorspace"] == "raw" and depth.node("defocus").settings["scale"] > 0
    clean = PassFiles(files=["/o/cleanplate.1050.png", "/o/coverage.1050.png"],
                      metadata={"frame_range": "1001-1100", "reference_frame": "1050"}).graph("cleanplate",
                                                                                              "/p/plate.####.exr")
    assert clean.name == "Keygrip Clean Plate" and _links(clean) == {("cleanplate", "output", "image")}
    read = clean.by_role("cleanplate").settings
    assert (read["path"], read["first"], read["last"], read["colorspace"]) == ("/o/cleanplate.1050.png", 1050, 1050,
                                                                               "srgb")
    assert (clean.by_role("plate").settings["first"], clean.by_role("plate").settings["last"]) == (1001, 1100)
    with pytest.raises(ValueError, match="unknown pass 'roto'"):
        pass_graph("roto", plate_path="p.exr", plate_range=FrameRange(1, 1), result_path="r.exr",
                   result_range=FrameRange(1, 1))


def _read(node_id: str) -> Node:
    return Node(node_id, "read", {"path": f"{node_id}.####.exr", "first": 1, "last": 2, "colorspace": "raw",
                                  "role": "matte"})


@pytest.mark.parametrize(("nodes", "links", "message"), [
    ((_read("a"), Node("b", "blur")), (), "node b has unknown type 'blur'"),
    ((_read("a"), Node("p", "premultiply")), (Link("a", "p", "alpha"),), "premultiply p has no input 'alpha'"),
    ((_read("a"), _read("b"), Node("p", "premultiply")), (Link("a", "p", "image"), Link("b", "p", "image")),
     "input image of p is linked twice"),
    ((Node("p", "premultiply"), Node("q", "premultiply")), (Link("p", "q", "image"), Link("q", "p", "image")),
     "the links form a cycle"),
    ((_read("a"), _read("a")), (), "node ids repeat"),
    ((Node("r", "read", {"path": "x.exr"}),), (), "read r needs a colorspace"),
    ((_read("a"), Node("o", "output"), Node("p", "premultiply")), (Link("o", "p", "image"),),
     "the output node o has no output"),
])
def test_a_malformed_graph_is_refused_naming_the_node(nodes: tuple[Node, ...], links: tuple[Link, ...],
                                                      message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Graph("g", nodes, links)
    with pytest.raises(KeyError, match="no node 'zz'"):
        Graph("g", (_read("a"),), ()).node("zz")
