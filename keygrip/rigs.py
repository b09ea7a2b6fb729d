"""Rigs and bone maps as hosts exchange them with the server, without any host API.

A host describes its armature as plain Python values (Blender: the add-on's rig.describe_armature;
Nuke or a TD script: the same keys by hand); this module turns that into an animation_pb2.Rig, and
keeps bone maps as {bone: role} dicts that are saved and loaded as JSON presets, so every host and
script reads and writes the same preset files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from keygrip import humanoid
from keygrip.tensors import to_tensor
from keygrip.v1 import animation_pb2

PRESET_FORMAT = "keygrip.bone_map"
PRESET_VERSION = 1

def rig_from_description(description: Mapping[str, Any]) -> animation_pb2.Rig:
    """The Rig message for a host's armature description.

    description keys: name (str), bone_names (B str, parents first), parents (B int, -1 for a root),
    rest_matrices (B row-major 4x4: each bone's rest frame in rig space, Y-up metres), and optional
    tails (B x 3, metres). Extra keys (heads, rolls, scale) are ignored.
    """
    import numpy as np

    names = [str(n) for n in description["bone_names"]]
    parents = [int(p) for p in description["parents"]]
    rest = np.asarray(description["rest_matrices"], dtype=np.float64)
    if len(parents) != len(names) or rest.shape != (len(names), 4, 4):
        raise ValueError(f"a rig of {len(names)} bones needs {len(names)} parents and ({len(names)}, 4, 4) "
                         f"rest matrices; got {len(parents)} and {rest.shape}")
    rig = animation_pb2.Rig(name=str(description.get("name", "")), bone_names=names, parents=parents,
                            rest_matrices=to_tensor(rest))
    if description.get("tails") is not None:
        rig.tails.CopyFrom(to_tensor(np.asarray(description["tails"], dtype=np.float64).reshape(-1, 3)))
    return rig


def bone_map_to_dict(bone_map: animation_pb2.BoneMap) -> dict[str, str]:
    """{bone name: humanoid role} of a BoneMap message, in the message's order."""
    return {m.bone: m.role for m in bone_map.mappings}


def bone_map_from_dict(mapping: Mapping[str, str]) -> animation_pb2.BoneMap:
    """A BoneMap message (as RetargetRequest.bone_map) from {bone name: humanoid role}.

    Raises ValueError for a role that is not a VRM humanoid name or that two bones claim.
    """
    check_mapping(mapping)
    return animation_pb2.BoneMap(
        mappings=[animation_pb2.BoneMapping(bone=b, role=r) for b, r in mapping.items() if r])


def check_mapping(mapping: Mapping[str, str]) -> None:
    """Raise ValueError, naming the culprits, when roles are unknown or claimed twice."""
    unknown = sorted({r for r in mapping.values() if r and r not in humanoid.ROLES})
    if unknown:
        raise ValueError(f"unknown humanoid role(s) {', '.join(unknown)}; use VRM 1.0 names such as "
                         "hips, leftUpperArm, rightIndexProximal")
    seen: dict[str, str] = {}
    for bone, role in mapping.items():
        if role and role in seen:
            raise ValueError(f"bones {seen[role]!r} and {bone!r} both map to {role!r}; clear one of them")
        seen[role] = bone


def save_bone_map_preset(path: str | os.PathLike, mapping: Mapping[str, str], *, rig_name: str = "") -> Path:
    """Write {bone: role} as a JSON preset file (UTF-8); returns the path written."""
    check_mapping(mapping)
    path = Path(path)
    doc = {"format": PRESET_FORMAT, "version": PRESET_VERSION, "rig": rig_name,
           "mappings": {b: r for b, r in mapping.items() if r}}
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load_bone_map_preset(path: str | os.PathLike, bones: Iterable[str] | None = None
                         ) -> tuple[dict[str, str], list[str]]:
    """Read a JSON preset: ({bone: role}, bones of the preset that `bones` does not have).

    bones: the target rig's bone names; when given, mappings for other bones are dropped and
    returned as the second element so that the host can tell the artist.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read bone map preset {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != PRESET_FORMAT:
        raise ValueError(f"{path} is not a Keygrip bone map preset (no \"format\": \"{PRESET_FORMAT}\")")
    if doc.get("version", 0) > PRESET_VERSION:
        raise ValueError(f"{path} is a version {doc['version']} preset; update Keygrip to read it")
    mapping = {str(b): str(r) for b, r in dict(doc.get("mappings", {})).items()}
    check_mapping(mapping)
    if bones is None:
        return mapping, []
    present = set(bones)
    return {b: r for b, r in mapping.items() if b in present}, [b for b in mapping if b not in present]
