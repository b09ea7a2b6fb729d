"""Read a glTF 2.0 or VRM character's skeleton (.glb, .vrm or .gltf JSON) as a Rig, in plain numpy.

Skeletons: the joints of the file's skins, grouped by the top joint they hang from (a character
whose body, face and hair meshes each have their own skin is one skeleton); a file without skins
is read as its hierarchies of plain nodes (no mesh, no camera), so a bare skeleton is a rig too.
When there are several, the caller picks one by name (the node above the top joint, as Blender
names its armature object, a skin's name, or the top joint's) or by index; the default is the one
with the most bones.

The rest pose is the nodes' own transforms (the default scene pose), composed through every
ancestor node, so axis-conversion nodes above the skeleton (CesiumMan's Z_UP) are applied and the
result is in glTF's Y-up metres. Only the JSON is read: no buffers are needed.

Declared humanoid maps, which win over guessing (mapping.resolve_map): VRM 1.0
`VRMC_vrm.humanoid.humanBones` ({role: {node}}), VRM 0.x `VRM.humanoid.humanBones`
([{bone, node}], whose thumb names are shifted by one segment against VRM 1.0's), and otherwise a
`keygrip_role` in a bone node's `extras` (what Blender exports from a bone custom property).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference_server.animation.rig import Rig
from inference_server.errors import InvalidInput
from inference_server.motion import quat
from keygrip import humanoid

EXTRAS_ROLE = "keygrip_role"
# VRM 0.x thumbs: Proximal, Intermediate, Distal; VRM 1.0: Metacarpal, Proximal, Distal.
_VRM0_THUMB = {"ThumbProximal": "ThumbMetacarpal", "ThumbIntermediate": "ThumbProximal"}


@dataclass
class Character:
    """A character file's skeleton as a Rig, with what the file declares about it.

    nodes: the glTF node index of each rig bone (rig order), for writing animation back.
    declared: {bone name: humanoid role} the file declares; declared_by says by what ("" if nothing);
        map_warnings: conflicts found putting it together (a sidecar preset over the file's own map).
    skeletons: every skeleton the file has, by name, for messages and a picker.
    glb: for a character read from another format (FBX), the GLB it was read from (nodes index it).
    """

    name: str
    rig: Rig
    nodes: list[int] = field(default_factory=list)
    declared: dict[str, str] = field(default_factory=dict)
    declared_by: str = ""
    skeletons: list[str] = field(default_factory=list)
    glb: bytes | None = None
    map_warnings: list[str] = field(default_factory=list)


def gltf_json(data: bytes, name: str) -> dict:
    """The JSON of a .glb/.vrm (binary container) or .gltf file's bytes; `name` names it in errors."""
    if data[:4] == b"glTF":
        if len(data) < 20 or data[16:20] != b"JSON":
            raise InvalidInput(f"{name}: the first GLB chunk is not JSON; re-export the file")
        length = struct.unpack_from("<I", data, 12)[0]
        text = data[20:20 + length]
    else:
        text = data
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict) or "asset" not in doc:
        raise InvalidInput(f"{name} is neither a .glb/.vrm nor a .gltf file")
    return doc


def _node_matrix(node: dict) -> np.ndarray:
    if "matrix" in node:
        return np.asarray(node["matrix"], dtype=np.float64).reshape(4, 4).T  # glTF is column-major
    m = np.eye(4)
    m[:3, :3] = quat.to_matrix(np.asarray(node.get("rotation", [0, 0, 0, 1]), dtype=np.float64))
    m[:3, :3] = m[:3, :3] * np.asarray(node.get("scale", [1, 1, 1]), dtype=np.float64)
    m[:3, 3] = node.get("translation", [0, 0, 0])
    return m


class NodeForest:
    """The node forest of a glTF document: parents and rest world matrices."""

    def __init__(self, doc: dict) -> None:
        self.nodes: list[dict] = doc.get("nodes", [])
        self.parent = {c: i for i, n in enumerate(self.nodes) for c in n.get("children", [])}
        self._world: dict[int, np.ndarray] = {}

    def world(self, i: int) -> np.ndarray:
        if i not in self._world:
            local = _node_matrix(self.nodes[i])
            self._world[i] = self.world(self.parent[i]) @ local if i in self.parent else local
        return self._world[i]

    def ancestors(self, i: int) -> list[int]:
        out = []
        while i in self.parent:
            i = self.parent[i]
            out.append(i)
        return out

    def name(self, i: int) -> str:
        return str(self.nodes[i].get("name", f"node{i}"))


@dataclass
class _Skeleton:
    name: str
    bones: set[int]
    skins: list[str]


def _skeletons(doc: dict, nodes: NodeForest) -> list[_Skeleton]:
    skins = doc.get("skins", [])
    if skins:
        joints = {int(j) for s in skins for j in s.get("joints", [])}
        plain = joints
    else:
        plain = {i for i, n in enumerate(nodes.nodes) if "mesh" not in n and "camera" not in n}
    # Every bone belongs to the skeleton of its top-most bone ancestor.
    groups: dict[int, _Skeleton] = {}
    for b in sorted(plain):
        top = next((a for a in reversed(nodes.ancestors(b)) if a in plain), b)
        if top not in groups:
            above = nodes.parent.get(top)
            groups[top] = _Skeleton(nodes.name(top if above is None else above), set(), [])
        groups[top].bones.add(b)
    for s in skins:
        if s.get("joints"):
            top_of = next((t for t, g in groups.items() if int(s["joints"][0]) in g.bones), None)
            if top_of is not None:
                groups[top_of].skins.append(str(s.get("name", "")))
    found = [g for g in groups.values() if len(g.bones) >= 2]
    found.sort(key=lambda g: -len(g.bones))
    return found


def _pick(skeletons: list[_Skeleton], skeleton: str, name: str) -> _Skeleton:
    if not skeletons:
        raise InvalidInput(f"{name} has no skeleton (no skin and no hierarchy of plain nodes): "
                           "export the character with its armature")
    if not skeleton:
        return skeletons[0]
    for s in skeletons:
        if skeleton == s.name or skeleton in s.skins:
            return s
    if skeleton.isdigit() and int(skeleton) < len(skeletons):
        return skeletons[int(skeleton)]
    names = ", ".join(f"{i}: {s.name} ({len(s.bones)} bones)" for i, s in enumerate(skeletons))
    raise InvalidInput(f"{name} has no skeleton {skeleton!r}; it has {names}")


def _declared(doc: dict, nodes: NodeForest, name: str) -> tuple[dict[int, str], str]:
    """{node: role} the file declares, and what declared it."""
    ext = doc.get("extensions", {})
    pairs: list[tuple[object, str]] = []
    if "VRMC_vrm" in ext:
        by = "VRM 1.0 humanoid"
        bones = ext["VRMC_vrm"].get("humanoid", {}).get("humanBones", {})
        pairs = [(v.get("node") if isinstance(v, dict) else None, str(role)) for role, v in bones.items()]
    elif "VRM" in ext:
        by = "VRM 0.x humanBones"
        for entry in ext["VRM"].get("humanoid", {}).get("humanBones", []):
            role = str(entry.get("bone", ""))
            for old, new in _VRM0_THUMB.items():
                if role.endswith(old):
                    role = role[:-len(old)] + new
                    break
            pairs.append((entry.get("node"), role))
    else:
        by = f"glTF node extras ({EXTRAS_ROLE})"
        pairs = [(i, str(n["extras"][EXTRAS_ROLE])) for i, n in enumerate(nodes.nodes)
                 if isinstance(n.get("extras"), dict) and n["extras"].get(EXTRAS_ROLE)]
    out: dict[int, str] = {}
    for node, role in pairs:
        if role not in humanoid.ROLES:
            continue  # eyes, jaw: roles retargeting does not animate
        if not isinstance(node, int) or not 0 <= node < len(nodes.nodes):
            raise InvalidInput(f"{name}: its {by} map gives {role} the node {node!r}, which the file does not "
                               f"have (it has {len(nodes.nodes)} nodes); fix the humanoid map and export again")
        out[node] = role
    return out, by if out else ""


def read_gltf_character(data: bytes, name: str, skeleton: str = "") -> Character:
    """The character in a glTF/VRM file's bytes; `name` (the user's file name) names it in errors.

    skeleton: which one, by name or index (see the module docstring); empty: the one with most bones.
    """
    doc = gltf_json(data, name)
    nodes = NodeForest(doc)
    skeletons = _skeletons(doc, nodes)
    chosen = _pick(skeletons, skeleton, name)
    declared_nodes, declared_by = _declared(doc, nodes, name)
    bones = set(chosen.bones)
    root = min(chosen.bones, key=lambda b: len(nodes.ancestors(b)))
    for node, role in declared_nodes.items():
        if node in bones:
            continue
        if root not in nodes.ancestors(node):
            raise InvalidInput(f"{name}: its {declared_by} map gives {role} the node {nodes.name(node)!r}, which is "
                               f"not in the skeleton {chosen.name}; fix the humanoid map or pick another skeleton")
        bones.add(node)  # a declared bone no skin lists is still a bone of this skeleton
    order = sorted(bones, key=lambda b: (len(nodes.ancestors(b)), b))
    index = {b: k for k, b in enumerate(order)}
    parents = [next((index[a] for a in nodes.ancestors(b) if a in index), -1) for b in order]
    names = _unique([nodes.name(b) for b in order])
    rig = Rig(names, np.array(parents), np.stack([nodes.world(b) for b in order]))
    declared = {names[index[n]]: r for n, r in declared_nodes.items() if n in index}
    return Character(chosen.name, rig, order, declared, declared_by if declared else "",
                     [s.name for s in skeletons])


def _unique(names: list[str]) -> list[str]:
    """glTF does not require unique node names; bones need them: repeats get .001, .002 as Blender does."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            n = f"{n}.{seen[n]:03d}"
        seen.setdefault(n, 0)
        out.append(n)
    return out


def read_gltf_rig(path: str | Path, skeleton: str = "") -> Rig:
    """The rig of a glTF/VRM file on disk (see read_gltf_character)."""
    path = Path(path)
    return read_gltf_character(path.read_bytes(), path.name, skeleton).rig
