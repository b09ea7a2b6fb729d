"""A retarget result written into the character's own GLB (.glb or .vrm): one glTF animation.

Everything already in the file stays byte for byte where it was: the new keys are appended to the
binary chunk, and the JSON only gains buffer views, accessors and one entry in `animations`, so the
mesh, skin, materials and extensions (VRM's humanoid, expressions, springs) are untouched.

Channels: a rotation for every bone of the skeleton and a translation for the bones that move (the
hips, a root bone), sampled LINEAR at the clip's own times. The keys are the nodes' local TRS: each
bone's posed world frame is its rest world frame turned by its posed-vs-rest rotation and moved to
its posed head, expressed in its parent node's posed frame (a node between two bones follows the
bone above it). Node scales are kept as they are (a uniform scale, as a cm-to-m armature has, is
exact; a non-uniform one is taken at its nearest rotation, as the Rig does). In quaternions, all
frames at once, looping over bones only. Most bones hang straight from their parent bone and have no
location: their keys need one quaternion product and no forward kinematics (the write of 36,000
frames x 60 bones went from 9.1 s to 2.2 s on a loaded machine); forward kinematics runs only for
the others (the hips, a root bone, a bone under a node that is no bone) and what they hang from.
"""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING

import numpy as np

from inference_server.animation.gltf_rig import Character, NodeForest, gltf_json
from inference_server.errors import InvalidInput
from inference_server.motion import quat

if TYPE_CHECKING:
    from inference_server.animation.retarget import RetargetResult

_FLOAT = 5126
_MOVES = 1e-6   # metres: a bone whose local translation varies less keeps its rest translation


def require_glb(head: bytes, name: str) -> None:
    """Refuse a character that is not a binary glTF (`head`: its first bytes): the animation goes into its GLB."""
    if head[:4] != b"glTF":
        raise InvalidInput(f"{name} is a .gltf JSON file: an animated file is written into a binary glTF; export "
                           "the character as .glb (or .vrm) and use that")


def _glb_chunks(data: bytes, name: str) -> tuple[dict, bytes]:
    require_glb(data, name)
    doc = gltf_json(data, name)
    json_length = struct.unpack_from("<I", data, 12)[0]
    offset = 20 + json_length
    binary = b""
    if offset + 8 <= len(data) and data[offset + 4:offset + 8] == b"BIN\x00":
        length = struct.unpack_from("<I", data, offset)[0]
        binary = data[offset + 8:offset + 8 + length]
    if doc.get("buffers") and "uri" in doc["buffers"][0]:
        raise InvalidInput(f"{name} keeps its first buffer in another file; export it as one self-contained .glb")
    return doc, binary


def _node_keys(character: Character, doc: dict, result: RetargetResult
               ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """(F, B, 4) local rotations of the bones' nodes (rig order), and {bone: (F, 3) local translation}
    for the bones whose node may move (the others keep their rest translation)."""
    rig = character.rig
    forest = NodeForest(doc)
    bone_of = {node: b for b, node in enumerate(character.nodes)}
    moved = {rig.index(n) for n in result.locations}
    frames = result.rotations.shape[0]
    rotations = np.empty_like(result.rotations)
    # A bone whose node hangs straight from its parent bone's node and that has no location: its node
    # turns by rest_a^-1 rest_b q_b (Blender's rule with the parent's frame cancelled) and keeps its
    # rest translation; no forward kinematics is needed. Every other bone takes the general path.
    general = []
    for b, node in enumerate(character.nodes):
        a = bone_of.get(forest.parent.get(node, -1))
        if a is not None and b not in moved:
            rel = quat.multiply(quat.conjugate(rig.rest_rotations[a]), rig.rest_rotations[b])
            rotations[:, b] = quat.multiply(rel, result.rotations[:, b])
        else:
            general.append(b)
    aboves = {}
    for b in general:
        parent = forest.parent.get(character.nodes[b])
        aboves[b] = next((bone_of[n] for n in [parent, *forest.ancestors(parent)] if n in bone_of), None) \
            if parent is not None else None
    needed = set(general) | {a for a in aboves.values() if a is not None}
    world_rot, heads = rig.forward_kinematics(result.rotations, {rig.index(n): v for n, v in result.locations.items()},
                                              bones=needed)
    translations = {}
    for b in general:
        # The parent node's posed frame is [turn_a K | turn_a k + head_a]: K, k its rest world linear
        # part and its offset from the bone above it (a), which carries it; the identity at the top.
        parent = forest.parent.get(character.nodes[b])
        rest_parent = forest.world(parent) if parent is not None else np.eye(4)
        above = aboves[b]
        turn_b = quat.multiply(world_rot[:, b], quat.conjugate(rig.rest_rotations[b]))
        if above is None:
            turn_a, head_a, k = quat.identity((frames,)), np.zeros(3), rest_parent[:3, 3]
        else:
            turn_a = quat.multiply(world_rot[:, above], quat.conjugate(rig.rest_rotations[above]))
            head_a, k = heads[:, above], rest_parent[:3, 3] - rig.heads[above]
        k_inv = np.linalg.inv(rest_parent[:3, :3])
        k_rot = quat.from_matrix(_rotation_part(rest_parent[:3, :3]))
        rel = quat.multiply(quat.conjugate(turn_a), turn_b)
        rotations[:, b] = quat.multiply(quat.conjugate(k_rot), quat.multiply(rel, rig.rest_rotations[b]))
        translations[b] = (quat.rotate(quat.conjugate(turn_a), heads[:, b] - head_a) - k) @ k_inv.T
    return quat.make_continuous(quat.normalize(rotations), axis=0), translations


def _to_trs(node: dict) -> None:
    """A node given by a matrix as translation, rotation and scale: glTF animates only TRS nodes."""
    if "matrix" not in node:
        return
    m = np.asarray(node.pop("matrix"), dtype=np.float64).reshape(4, 4).T
    node["translation"] = m[:3, 3].tolist()
    node["rotation"] = quat.from_matrix(_rotation_part(m[:3, :3])).tolist()
    node["scale"] = np.linalg.norm(m[:3, :3], axis=0).tolist()


def _rotation_part(linear: np.ndarray) -> np.ndarray:
    """The nearest rotation of a 3x3 matrix (its scale removed)."""
    u, _, vt = np.linalg.svd(linear)
    return u @ vt


def animate_glb(data: bytes, name: str, character: Character, result: RetargetResult,
                animation_name: str = "keygrip retarget") -> bytes:
    """The GLB `data` (a .glb or .vrm; `name` names it in errors) with `result` as a new animation."""
    doc, binary = _glb_chunks(data, name)
    rotations, translations = _node_keys(character, doc, result)
    for node in character.nodes:
        _to_trs(doc["nodes"][node])

    out = bytearray(binary)
    views, accessors = doc.setdefault("bufferViews", []), doc.setdefault("accessors", [])

    def add(array: np.ndarray, kind: str, bounds: bool = False) -> int:
        out.extend(b"\x00" * (-len(out) % 4))
        raw = np.ascontiguousarray(array, dtype="<f4").tobytes()
        views.append({"buffer": 0, "byteOffset": len(out), "byteLength": len(raw)})
        out.extend(raw)
        accessor: dict = {"bufferView": len(views) - 1, "componentType": _FLOAT, "count": int(array.shape[0]),
                          "type": kind}
        if bounds:
            accessor["min"], accessor["max"] = [float(array.min())], [float(array.max())]
        accessors.append(accessor)
        return len(accessors) - 1

    times = add(result.times - result.times[0], "SCALAR", bounds=True)
    samplers, channels = [], []
    for b, node in enumerate(character.nodes):
        paths = [("rotation", rotations[:, b], "VEC4")]
        if b in translations and np.ptp(translations[b], axis=0).max() > _MOVES:
            paths.append(("translation", translations[b], "VEC3"))
        for path, values, kind in paths:
            samplers.append({"input": times, "output": add(values, kind), "interpolation": "LINEAR"})
            channels.append({"sampler": len(samplers) - 1, "target": {"node": node, "path": path}})
    doc.setdefault("animations", []).append({"name": animation_name, "channels": channels, "samplers": samplers})
    out.extend(b"\x00" * (-len(out) % 4))
    buffers = doc.setdefault("buffers", [])
    if not buffers:
        buffers.append({})
    buffers[0]["byteLength"] = len(out)
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(out), b"BIN\x00") + bytes(out)
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body
