"""Test characters made here: humanoid skeletons written as glTF 2.0 and VRM files with numpy and struct.

A character is a list of Bone (name, parent, rest head, humanoid role or None), in a T-pose facing
+Z with its left at +X, Y-up metres. write_gltf gives every bone a rest rotation of its own (so
that bone frames are not the identity and children's translations are in rotated parent frames),
puts it under an "Armature" node (the hips are not the root), and, unless asked not to, skins a
small triangle mesh with a material to it, as a DCC's exporter does.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference_server.motion import quat
from keygrip import humanoid

# Rest heads of the canonical body, T-pose (left side; the right mirrors X).
_HEADS = {
    "hips": (0, 1.0, 0), "spine": (0, 1.1, 0), "chest": (0, 1.25, 0), "upperChest": (0, 1.35, 0),
    "neck": (0, 1.5, 0), "head": (0, 1.6, 0),
    "Shoulder": (0.05, 1.45, 0), "UpperArm": (0.18, 1.45, 0), "LowerArm": (0.45, 1.45, 0),
    "Hand": (0.7, 1.45, 0),
    "UpperLeg": (0.1, 0.95, 0), "LowerLeg": (0.1, 0.52, 0.01), "Foot": (0.1, 0.08, 0),
    "Toes": (0.1, 0.0, 0.12),
}
# VRM 1.0 thumb segment names -> VRM 0.x.
VRM0_THUMB = {"ThumbMetacarpal": "ThumbProximal", "ThumbProximal": "ThumbIntermediate"}


@dataclass
class Bone:
    name: str
    parent: str | None
    head: np.ndarray
    role: str | None = None


def _head(role: str) -> np.ndarray:
    if role in _HEADS:
        return np.array(_HEADS[role], dtype=np.float64)
    side = "left" if role.startswith("left") else "right"
    part = role[len(side):]
    if part in _HEADS:
        h = np.array(_HEADS[part], dtype=np.float64)
    else:  # a finger: five fingers fanned in Z beyond the hand, three segments each along X
        finger = next(f for f in humanoid.FINGERS if part.startswith(f))
        seg = humanoid._SEGMENTS[finger].index(part[len(finger):])
        fan = humanoid.FINGERS.index(finger)
        h = np.array(_HEADS["Hand"]) + np.array([0.05 + 0.025 * seg, -0.005 * fan, 0.04 - 0.02 * fan])
    if side == "right":
        h[0] = -h[0]
    return h


def humanoid_bones(name: Callable[[str], str], *, fingers: bool = False, helpers: bool = True,
                   a_pose: bool = False) -> list[Bone]:
    """The canonical body (with fingers) named by name(role), plus helper bones: twist bones on the
    upper arms and thighs, and a "Root" bone at the floor above the hips. a_pose lowers the arms 40°."""
    bones = [Bone("Root", None, np.zeros(3))] if helpers else []
    for role, parent in humanoid.hierarchy(with_fingers=fingers):
        parent_name = name(parent) if parent else ("Root" if helpers else None)
        bones.append(Bone(name(role), parent_name, _head(role), role))
    if a_pose:
        for side, sign in (("left", 1.0), ("right", -1.0)):
            pivot = _head(f"{side}UpperArm")
            turn = quat.from_axis_angle(np.array([0.0, 0.0, 1.0]), np.radians(-40.0 * sign))
            for b in bones:
                below_shoulder = b.role and b.role.startswith(side) and b.role != f"{side}UpperArm" and (
                    "Arm" in b.role or "Hand" in b.role or any(f in b.role for f in humanoid.FINGERS))
                if below_shoulder:
                    b.head = pivot + quat.rotate(turn, b.head - pivot)
    if helpers:
        by_role = {b.role: b for b in bones if b.role}
        for role in ("leftUpperArm", "rightUpperArm", "leftUpperLeg", "rightUpperLeg"):
            child = by_role[role.replace("Upper", "Lower")]
            bones.append(Bone(name(role) + "_twist", name(role), (by_role[role].head + child.head) / 2))
    return bones


def _trs_matrix(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = quat.to_matrix(rotation)
    m[:3, 3] = translation
    return m


class _Binary:
    """The one buffer of a GLB: accessors appended as they are written."""

    def __init__(self, doc: dict) -> None:
        self.doc = doc
        self.data = bytearray()
        doc.setdefault("bufferViews", [])
        doc.setdefault("accessors", [])

    def add(self, array: np.ndarray, component: int, kind: str) -> int:
        while len(self.data) % 4:
            self.data.append(0)
        raw = np.ascontiguousarray(array).tobytes()
        self.doc["bufferViews"].append({"buffer": 0, "byteOffset": len(self.data), "byteLength": len(raw)})
        self.data += raw
        accessor: dict = {"bufferView": len(self.doc["bufferViews"]) - 1, "componentType": component,
                          "count": int(array.shape[0]), "type": kind}
        if kind == "VEC3" and component == 5126:
            accessor["min"] = array.min(axis=0).tolist()
            accessor["max"] = array.max(axis=0).tolist()
        self.doc["accessors"].append(accessor)
        return len(self.doc["accessors"]) - 1


def character_doc(bones: list[Bone], *, facing: float = 1.0, skin: bool = True, seed: int = 0,
                  armature: str = "Armature", doc: dict | None = None) -> tuple[dict, _Binary, dict[str, int]]:
    """The glTF JSON (and its binary) of one character; returns (doc, binary, {bone name: node}).

    facing: +1 faces +Z (glTF, VRM 1.0), -1 faces -Z (VRM 0.x), by turning the armature node.
    doc: add the character to this document (a second character in one file).
    """
    doc = doc if doc is not None else {"asset": {"version": "2.0", "generator": "keygrip tests"}, "nodes": [],
                                       "scenes": [{"nodes": []}], "scene": 0}
    binary = doc.pop("_binary", None) or _Binary(doc)
    rng = np.random.default_rng(seed)
    nodes = doc["nodes"]
    arm_rot = quat.from_axis_angle(np.array([0.0, 1.0, 0.0]), 0.0 if facing > 0 else np.pi)
    arm_node = len(nodes)
    nodes.append({"name": armature, "rotation": arm_rot.tolist(), "children": []})
    doc["scenes"][0]["nodes"].append(arm_node)
    index = {}
    world = {}
    for b in bones:
        r = quat.normalize(rng.normal(size=4))
        world[b.name] = _trs_matrix(r, b.head)
        parent_world = world[b.parent] if b.parent else np.eye(4)
        local = np.linalg.inv(parent_world) @ world[b.name]
        node = {"name": b.name, "rotation": quat.from_matrix(local[:3, :3]).tolist(),
                "translation": local[:3, 3].tolist()}
        index[b.name] = len(nodes)
        nodes.append(node)
        parent_node = nodes[index[b.parent]] if b.parent else nodes[arm_node]
        parent_node.setdefault("children", []).append(index[b.name])
    if skin:
        joints = [index[b.name] for b in bones]
        ibm = np.stack([np.linalg.inv(world[b.name]).T.reshape(16) for b in bones]).astype(np.float32)
        doc.setdefault("skins", []).append({"name": f"{armature}Skin", "joints": joints,
                                            "inverseBindMatrices": binary.add(ibm, 5126, "MAT4")})
        heads = np.stack([b.head for b in bones]).astype(np.float32)
        positions = np.concatenate([heads, heads + np.float32([0.02, 0, 0]), heads + np.float32([0, 0, 0.02])])
        count = len(bones)
        weights = np.zeros((3 * count, 4), dtype=np.float32)
        weights[:, 0] = 1.0
        bone_of = np.tile(np.arange(count), 3)
        joints_attr = np.zeros((3 * count, 4), dtype=np.uint16)
        joints_attr[:, 0] = bone_of
        triangles = np.stack([np.arange(count), np.arange(count) + count, np.arange(count) + 2 * count], 1)
        doc.setdefault("materials", []).append({"name": f"{armature}Skin material",
                                                "pbrMetallicRoughness": {"baseColorFactor": [0.8, 0.3, 0.2, 1]}})
        doc.setdefault("meshes", []).append({"name": f"{armature}Body", "primitives": [{
            "attributes": {"POSITION": binary.add(positions, 5126, "VEC3"),
                           "JOINTS_0": binary.add(joints_attr, 5123, "VEC4"),
                           "WEIGHTS_0": binary.add(weights, 5126, "VEC4")},
            "indices": binary.add(triangles.reshape(-1).astype(np.uint16), 5123, "SCALAR"),
            "material": len(doc["materials"]) - 1}]})
        nodes.append({"name": f"{armature}Body", "mesh": len(doc["meshes"]) - 1, "skin": len(doc["skins"]) - 1})
        nodes[arm_node]["children"].append(len(nodes) - 1)
    doc["_binary"] = binary
    return doc, binary, index


def vrm1(bones: list[Bone], index: dict[str, int]) -> dict:
    """The VRMC_vrm extension declaring every bone's role (VRM 1.0)."""
    return {"specVersion": "1.0", "meta": {"name": "test", "licenseUrl": "https://vrm.dev/licenses/1.0/"},
            "humanoid": {"humanBones": {b.role: {"node": index[b.name]} for b in bones if b.role}}}


def vrm0(bones: list[Bone], index: dict[str, int]) -> dict:
    """The VRM extension declaring every bone's role (VRM 0.x names: thumbs shifted by one segment)."""
    out = []
    for b in bones:
        if not b.role:
            continue
        role = b.role
        for new, old in VRM0_THUMB.items():
            if role.endswith(new):
                role = role[:-len(new)] + old
                break
        out.append({"bone": role, "node": index[b.name], "useDefaultValues": True})
    return {"specVersion": "0.0", "meta": {"title": "test"}, "humanoid": {"humanBones": out}}


def write_glb(path: Path, doc: dict) -> Path:
    """doc (with the binary character_doc keeps in it) as a GLB container (.glb, .vrm)."""
    doc = dict(doc)
    binary: _Binary = doc.pop("_binary")
    while len(binary.data) % 4:
        binary.data.append(0)
    if binary.data:
        doc["buffers"] = [{"byteLength": len(binary.data)}]
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<I4s", len(text), b"JSON") + text
    if binary.data:
        body += struct.pack("<I4s", len(binary.data), b"BIN\x00") + bytes(binary.data)
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body)
    return path


def write_gltf_json(path: Path, doc: dict) -> Path:
    """doc as a .gltf JSON whose buffer is a file beside it."""
    doc = dict(doc)
    binary: _Binary = doc.pop("_binary")
    if binary.data:
        bin_path = path.with_suffix(".bin")
        bin_path.write_bytes(bytes(binary.data))
        doc["buffers"] = [{"byteLength": len(binary.data), "uri": bin_path.name}]
    path.write_text(json.dumps(doc))
    return path


def read_glb(path: Path) -> tuple[dict, bytes]:
    """(JSON, binary chunk) of a GLB file."""
    data = path.read_bytes()
    json_length = struct.unpack_from("<I", data, 12)[0]
    doc = json.loads(data[20:20 + json_length])
    offset = 20 + json_length
    bin_length = struct.unpack_from("<I", data, offset)[0]
    return doc, data[offset + 8:offset + 8 + bin_length]


def accessor(doc: dict, binary: bytes, index: int) -> np.ndarray:
    """A float accessor's values, (count, components)."""
    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc["type"]]
    assert acc["componentType"] == 5126
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    return np.frombuffer(binary, "<f4", acc["count"] * width, start).reshape(acc["count"], width)


def posed_node_worlds(doc: dict, binary: bytes, animation: int = 0) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """(key times, {node: (F, 4, 4) world matrix}) of every node, at the animation's keys, as a glTF
    viewer would pose them: animated channels replace the node's TRS, the rest keep their own."""
    anim = doc["animations"][animation]
    times = accessor(doc, binary, anim["samplers"][0]["input"])[:, 0]
    frames = len(times)
    channels: dict[int, dict[str, np.ndarray]] = {}
    for ch in anim["channels"]:
        values = accessor(doc, binary, anim["samplers"][ch["sampler"]]["output"]).astype(np.float64)
        channels.setdefault(ch["target"]["node"], {})[ch["target"]["path"]] = values
    nodes = doc["nodes"]
    parent = {c: i for i, n in enumerate(nodes) for c in n.get("children", [])}
    world: dict[int, np.ndarray] = {}

    def world_of(i: int) -> np.ndarray:
        if i in world:
            return world[i]
        n, got = nodes[i], channels.get(i, {})
        if "matrix" in n:   # glTF forbids animating a node given by a matrix
            assert not got
            local = np.tile(np.asarray(n["matrix"], float).reshape(4, 4).T, (frames, 1, 1))
            world[i] = world_of(parent[i]) @ local if i in parent else local
            return world[i]
        local = np.tile(np.eye(4), (frames, 1, 1))
        rot = got.get("rotation", np.tile(np.asarray(n.get("rotation", [0, 0, 0, 1]), float), (frames, 1)))
        local[:, :3, :3] = quat.to_matrix(rot) * np.asarray(n.get("scale", [1, 1, 1]), float)
        local[:, :3, 3] = got.get("translation", np.tile(np.asarray(n.get("translation", [0, 0, 0]), float),
                                                         (frames, 1)))
        world[i] = world_of(parent[i]) @ local if i in parent else local
        return world[i]

    return times, {i: world_of(i) for i in range(len(nodes))}
