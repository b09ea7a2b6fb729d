"""A retarget result written into the character's own GLB (.glb or .vrm): one glTF animation.

Everything already in the file stays byte for byte where it was: the new keys are appended to the
binary chunk, and the JSON only gains buffer views, accessors and one entry in `animations`, so the
mesh, skin, materials and extensions (VRM's humanoid, expressions, springs) are untouched.

Channels: a rotation for every bone of the skeleton and a translation for the bones that move (the
hips, a root bone), sampled LINEAR at the clip's own times. The keys are the nodes' local TRS: each
bone's posed world matrix is its rest world matrix turned by its posed-vs-rest rotation and moved to
its posed head (so rest scale is kept), then expressed in its parent node's posed frame (a node
between two bones follows the bone above it). All frames at once, looping over bones only.
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


def _glb_chunks(data: bytes, name: str) -> tuple[dict, bytes]:
    if data[:4] != b"glTF":
        raise InvalidInput(f"{name} is a .gltf JSON file: an animated file is written into a binary glTF; export "
                           "the character as .glb (or .vrm) and use that")
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


def _posed_locals(character: Character, doc: dict, result: RetargetResult) -> np.ndarray:
    """(F, B, 4, 4) local matrices of the bones' nodes, in rig order."""
    rig = character.rig
    forest = NodeForest(doc)
    locations = {rig.index(n): v for n, v in result.locations.items()}
    world_rot, heads = rig.forward_kinematics(result.rotations, locations)
    frames = world_rot.shape[0]
    rest = np.stack([forest.world(n) for n in character.nodes])                  # (B, 4, 4)
    turn = quat.to_matrix(quat.multiply(world_rot, quat.conjugate(rig.rest_rotations)))   # (F, B, 3, 3)
    posed = np.zeros((frames, rig.num_bones, 4, 4))
    posed[..., :3, :3] = turn @ rest[:, :3, :3]
    posed[..., :3, 3] = heads
    posed[..., 3, 3] = 1.0
    bone_of = {node: b for b, node in enumerate(character.nodes)}
    local = np.empty_like(posed)
    for b, node in enumerate(character.nodes):
        parent = forest.parent.get(node)
        if parent is None:
            local[:, b] = posed[:, b]
            continue
        # The parent node's posed frame: a bone's, or a plain node's carried by the bone above it.
        above = next((a for a in [parent, *forest.ancestors(parent)] if a in bone_of), None)
        if above is None:
            parent_posed = np.broadcast_to(forest.world(parent), (frames, 4, 4))
        else:
            carry = np.linalg.inv(forest.world(above)) @ forest.world(parent)
            parent_posed = posed[:, bone_of[above]] @ carry
        local[:, b] = np.linalg.inv(parent_posed) @ posed[:, b]
    return local


def animate_glb(data: bytes, name: str, character: Character, result: RetargetResult,
                animation_name: str = "keygrip retarget") -> bytes:
    """The GLB `data` (a .glb or .vrm; `name` names it in errors) with `result` as a new animation."""
    doc, binary = _glb_chunks(data, name)
    local = _posed_locals(character, doc, result)
    linear = local[..., :3, :3]
    scale = np.linalg.norm(linear, axis=-2)                                        # column norms
    rotations = quat.make_continuous(quat.from_matrix(linear / scale[..., None, :]), axis=0)
    translations = local[..., :3, 3]

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
        if np.ptp(translations[:, b], axis=0).max() > _MOVES:
            paths.append(("translation", translations[:, b], "VEC3"))
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
