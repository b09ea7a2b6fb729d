"""The node graph a compositing pass is wired into, as plain data every host maps onto its own nodes.

A pass's result is more useful wired than as files: a matte copied into the plate's alpha,
premultiplied and merged over a background; depth driving a defocus. Which nodes, settings and links
that takes is decided once, here, from the pass's files; each host only maps the small vocabulary
below onto its own node types (Blender: Image, Set Alpha, Alpha Over, Defocus ...; Nuke: Read, Copy,
Premult, Merge2, ZDefocus ...), so Blender and Nuke wire the same thing.

Vocabulary (node type: input sockets -> output socket "image"; settings):

- ``read``: () -> image. An image sequence or file: ``path`` (a pattern in ``####`` style, or one
  file), ``first``, ``last`` (the frames, in the plate's numbers; equal for one file), ``colorspace``
  ("raw": data, never colour-managed, for mattes and depth; "linear": scene-linear EXR; "srgb"),
  ``role`` ("plate", "matte", "depth", "cleanplate").
- ``background``: () -> image. The graph's background input; ``color`` (r, g, b, a) where the host has
  no input to offer (Blender: a colour node; Nuke: the group's "bg" input).
- ``copy_alpha``: (image, alpha) -> image. The image with the alpha input's matte as its alpha; its
  colour untouched (straight). ``channel``: where the matte is in the alpha input ("alpha").
- ``premultiply``: (image) -> image. Colour multiplied by alpha.
- ``merge_over``: (foreground, background) -> image. Premultiplied foreground over background.
- ``defocus``: (image, depth) -> image. Blur growing with depth; ``scale``: blur radius in pixels per
  unit of depth (relative depth runs about 0 near to 1 far), ``max_size``: the largest radius.
- ``output``: (image) -> (). What the graph shows (a group's output).

    graph = pass_graph("matte", files, plate_path="plate.####.exr", plate_range=FrameRange(1009, 1092))
    for node in graph.ordered():            # inputs before the nodes that read them
        ...make the host's node for node.type with node.settings...
    for link in graph.links:
        ...connect link.source's output to link.target's input link.socket...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keygrip.plates import FrameRange

# node type -> its input sockets, in order (every node but "output" has one output, "image").
NODE_INPUTS: dict[str, tuple[str, ...]] = {
    "read": (),
    "background": (),
    "copy_alpha": ("image", "alpha"),
    "premultiply": ("image",),
    "merge_over": ("foreground", "background"),
    "defocus": ("image", "depth"),
    "output": ("image",),
}
COLORSPACES = ("raw", "linear", "srgb")
ROLE_LABELS = {"plate": "Plate", "matte": "Matte", "depth": "Depth", "cleanplate": "Clean Plate"}
ROLES = tuple(ROLE_LABELS)
DEFAULT_BACKGROUND = (0.05, 0.05, 0.05, 1.0)


@dataclass(frozen=True)
class Node:
    """One node: a unique id within its graph, a type from NODE_INPUTS, its settings, a label for people."""

    id: str
    type: str
    settings: dict[str, Any] = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True)
class Link:
    """source's output into target's input socket."""

    source: str
    target: str
    socket: str


@dataclass(frozen=True)
class Graph:
    """A named group of nodes and links (e.g. "Keygrip Matte"), checked on creation."""

    name: str
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]

    def __post_init__(self) -> None:
        ids = [n.id for n in self.nodes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{self.name}: node ids repeat: {ids}")
        for node in self.nodes:
            if node.type not in NODE_INPUTS:
                raise ValueError(f"{self.name}: node {node.id} has unknown type {node.type!r}; "
                                 f"use one of {', '.join(NODE_INPUTS)}")
            if node.type == "read" and node.settings.get("colorspace") not in COLORSPACES:
                raise ValueError(f"{self.name}: read {node.id} needs a colorspace, one of {', '.join(COLORSPACES)}")
        fed: set[tuple[str, str]] = set()
        for link in self.links:
            source, target = self.node(link.source), self.node(link.target)
            if source.type == "output":
                raise ValueError(f"{self.name}: the output node {source.id} has no output to link from")
            if link.socket not in NODE_INPUTS[target.type]:
                raise ValueError(f"{self.name}: {target.type} {target.id} has no input {link.socket!r}")
            if (link.target, link.socket) in fed:
                raise ValueError(f"{self.name}: input {link.socket} of {link.target} is linked twice")
            fed.add((link.target, link.socket))
        self.ordered()  # raises on a cycle

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(f"{self.name}: no node {node_id!r}")

    def inputs(self, node_id: str) -> dict[str, str]:
        """socket -> the id of the node feeding it, for one node."""
        return {link.socket: link.source for link in self.links if link.target == node_id}

    def by_role(self, role: str) -> Node:
        """The read node of a role ("plate", "matte", ...)."""
        for node in self.nodes:
            if node.type == "read" and node.settings.get("role") == role:
                return node
        raise KeyError(f"{self.name}: no read of the {role}")

    def ordered(self) -> list[Node]:
        """Every node after the nodes that feed it (the order to create them in), else ValueError."""
        done: list[Node] = []
        placed: set[str] = set()
        pending = list(self.nodes)
        while pending:
            ready = [n for n in pending if set(self.inputs(n.id).values()) <= placed]
            if not ready:
                raise ValueError(f"{self.name}: the links form a cycle through {[n.id for n in pending]}")
            for node in ready:
                done.append(node)
                placed.add(node.id)
                pending.remove(node)
        return done

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: {"name", "nodes": [{"id", "type", "settings", "label"}], "links": [{...}]}."""
        return {"name": self.name,
                "nodes": [{"id": n.id, "type": n.type, "settings": dict(n.settings), "label": n.label}
                          for n in self.nodes],
                "links": [{"source": k.source, "target": k.target, "socket": k.socket} for k in self.links]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Graph:
        return cls(data["name"], tuple(Node(n["id"], n["type"], dict(n.get("settings", {})), n.get("label", ""))
                                       for n in data["nodes"]),
                   tuple(Link(k["source"], k["target"], k["socket"]) for k in data["links"]))


GROUP_NAMES = {"matte": "Keygrip Matte", "cleanplate": "Keygrip Clean Plate", "depth": "Keygrip Depth"}


def read(node_id: str, path: str | Path, frames: FrameRange, role: str, colorspace: str, label: str = "") -> Node:
    """A read node of a sequence (path a #### pattern) or of one file (first == last)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return Node(node_id, "read", {"path": str(path), "first": frames.first, "last": frames.last,
                                  "colorspace": colorspace, "role": role}, label or ROLE_LABELS[role])


def image_colorspace(path: str | Path) -> str:
    """How a plate or clean plate file is read: EXR is scene-linear, anything else sRGB."""
    return "linear" if Path(path).suffix.lower() == ".exr" else "srgb"


def pass_graph(kind: str, *, plate_path: str | Path, plate_range: FrameRange, result_path: str | Path,
               result_range: FrameRange, background: tuple[float, float, float, float] = DEFAULT_BACKGROUND,
               defocus_scale: float = 8.0) -> Graph:
    """The graph for a finished pass.

    kind: "matte", "depth" or "cleanplate". plate_path: the plate (a #### pattern, one file or a video)
    and plate_range its frames to show. result_path: the pass's sequence as a #### pattern (matte, depth)
    or the clean plate's file, result_range its frames (one frame for a clean plate).

    matte: plate + matte -> copy_alpha -> premultiply -> merge_over a background -> output.
    depth: plate + depth -> defocus -> output. cleanplate: the clean plate -> output (the plate read
    beside it, for comparing).
    """
    plate = read("plate", plate_path, plate_range, "plate", image_colorspace(plate_path))
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    if kind == "matte":
        nodes = (plate, read("matte", result_path, result_range, "matte", "raw"),
                 Node("copy_alpha", "copy_alpha", {"channel": "alpha"}, "Copy Alpha"),
                 Node("premultiply", "premultiply", {}, "Premultiply"),
                 Node("background", "background", {"color": list(background)}, "Background"),
                 Node("over", "merge_over", {}, "Over"),
                 Node("output", "output"))
        links = (Link("plate", "copy_alpha", "image"), Link("matte", "copy_alpha", "alpha"),
                 Link("copy_alpha", "premultiply", "image"), Link("premultiply", "over", "foreground"),
                 Link("background", "over", "background"), Link("over", "output", "image"))
    elif kind == "depth":
        nodes = (plate, read("depth", result_path, result_range, "depth", "raw"),
                 Node("defocus", "defocus", {"scale": defocus_scale, "max_size": 16.0}, "Defocus"),
                 Node("output", "output"))
        links = (Link("plate", "defocus", "image"), Link("depth", "defocus", "depth"),
                 Link("defocus", "output", "image"))
    elif kind == "cleanplate":
        nodes = (plate, read("cleanplate", result_path, result_range, "cleanplate", image_colorspace(result_path)),
                 Node("output", "output"))
        links = (Link("cleanplate", "output", "image"),)
    else:
        raise ValueError(f"unknown pass {kind!r}: use one of {', '.join(GROUP_NAMES)}")
    return Graph(GROUP_NAMES[kind], nodes, links)
