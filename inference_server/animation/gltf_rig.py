"""Read a skinned glTF 2.0 character's skeleton (.glb or .gltf JSON) as a Rig, in plain numpy.

The rest pose is the nodes' own transforms (the default scene pose), composed through every
ancestor node, so axis-conversion nodes above the skeleton (CesiumMan's Z_UP) are applied and the
result is in glTF's Y-up metres. Only the JSON is read: no buffers are needed.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from inference_server.animation.rig import Rig
from inference_server.errors import InvalidInput
from inference_server.motion import quat


def _gltf_json(path: Path) -> dict:
    data = path.read_bytes()
    if data[:4] == b"glTF":
        length = struct.unpack_from("<I", data, 12)[0]
        if data[16:20] != b"JSON":
            raise InvalidInput(f"{path.name}: the first GLB chunk is not JSON; re-export the file")
        return json.loads(data[20:20 + length])
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        raise InvalidInput(f"{path.name} is neither a .glb nor a .gltf file") from None


def _node_matrix(node: dict) -> np.ndarray:
    if "matrix" in node:
        return np.asarray(node["matrix"], dtype=np.float64).reshape(4, 4).T  # glTF is column-major
    m = np.eye(4)
    m[:3, :3] = quat.to_matrix(np.asarray(node.get("rotation", [0, 0, 0, 1]), dtype=np.float64))
    m[:3, :3] = m[:3, :3] * np.asarray(node.get("scale", [1, 1, 1]), dtype=np.float64)
    m[:3, 3] = node.get("translation", [0, 0, 0])
    return m


def read_gltf_rig(path: str | Path, skin: int = 0) -> Rig:
    """The joints of skin `skin` as a Rig: names, parents (nearest joint ancestor), rest matrices."""
    path = Path(path)
    doc = _gltf_json(path)
    skins = doc.get("skins", [])
    if skin >= len(skins):
        raise InvalidInput(f"{path.name} has {len(skins)} skins; it has no skin {skin} to retarget onto")
    nodes = doc["nodes"]
    parent = {c: i for i, n in enumerate(nodes) for c in n.get("children", [])}
    world: dict[int, np.ndarray] = {}

    def world_of(i: int) -> np.ndarray:
        if i not in world:
            local = _node_matrix(nodes[i])
            world[i] = world_of(parent[i]) @ local if i in parent else local
        return world[i]

    joints = list(skins[skin]["joints"])
    joint_set = set(joints)
    parents = []
    for j in joints:
        p = parent.get(j)
        while p is not None and p not in joint_set:
            p = parent.get(p)
        parents.append(joints.index(p) if p is not None else -1)
    names = [nodes[j].get("name", f"joint{k}") for k, j in enumerate(joints)]
    return Rig(names, np.array(parents), np.stack([world_of(j) for j in joints]))
