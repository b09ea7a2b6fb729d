"""Rigs and bone maps as hosts exchange them with the server, without any host API.

A host describes its armature as a RigDescription (Blender: the add-on's rig.describe_armature; Nuke
or a TD script: the same fields by hand, or a rig.json file with the same keys); this module turns
that into an animation_pb2.Rig, and keeps bone maps as {bone: role} dicts that are saved and loaded
as JSON presets, so every host and script reads and writes the same preset files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keygrip import humanoid
from keygrip.tensors import to_tensor
from keygrip.v1 import animation_pb2

if TYPE_CHECKING:
    import numpy as np

PRESET_FORMAT = "keygrip.bone_map"
PRESET_VERSION = 1


@dataclass(frozen=True, eq=False)   # eq=False: numpy arrays have no single truth value
class RigDescription:
    """A host's armature at rest, in Keygrip's convention (rig space, right-handed Y-up, metres).

    bone_names: B names, parents before children. parents: B indices, -1 for a root.
    rest_matrices: (B, 4, 4) float64, each bone's rest frame in rig space (the host's own bone axes;
        per-bone rotations written back are relative to these frames).
    heads, tails: (B, 3) float64 bone heads and tails, when the host has them.
    rolls: B roll angles in radians (Blender's convention), kept for a round trip.
    scale: the object scale that turned the host's units into metres.
    """

    name: str
    bone_names: list[str]
    parents: list[int]
    rest_matrices: np.ndarray
    heads: np.ndarray | None = None
    tails: np.ndarray | None = None
    rolls: tuple[float, ...] = ()
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @classmethod
    def from_mapping(cls, description: Mapping[str, Any]) -> RigDescription:
        """From plain values (a rig.json file): the keys are the field names; name, heads, tails,
        rolls and scale are optional. Raises ValueError when the sizes do not agree."""
        import numpy as np

        names = [str(n) for n in description["bone_names"]]
        parents = [int(p) for p in description["parents"]]
        rest = _check_sizes(names, parents, description["rest_matrices"])

        def vectors(key: str) -> np.ndarray | None:
            value = description.get(key)
            return None if value is None else np.asarray(value, dtype=np.float64).reshape(-1, 3)

        sx, sy, sz = (float(s) for s in description.get("scale", (1.0, 1.0, 1.0)))
        return cls(name=str(description.get("name", "")), bone_names=names, parents=parents, rest_matrices=rest,
                   heads=vectors("heads"), tails=vectors("tails"),
                   rolls=tuple(float(r) for r in description.get("rolls", ())), scale=(sx, sy, sz))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, floats) for a rig.json file; from_mapping reads them back."""
        rest = _check_sizes(self.bone_names, self.parents, self.rest_matrices)
        out: dict[str, Any] = {"name": self.name, "bone_names": list(self.bone_names), "parents": list(self.parents),
                               "rest_matrices": rest.tolist(), "rolls": list(self.rolls), "scale": list(self.scale)}
        for key, value in (("heads", self.heads), ("tails", self.tails)):
            if value is not None:
                out[key] = [[float(x) for x in v] for v in value]
        return out

    def to_proto(self) -> animation_pb2.Rig:
        import numpy as np

        rest = _check_sizes(self.bone_names, self.parents, self.rest_matrices)
        rig = animation_pb2.Rig(name=self.name, bone_names=self.bone_names, parents=self.parents,
                                rest_matrices=to_tensor(rest))
        if self.tails is not None:
            rig.tails.CopyFrom(to_tensor(np.asarray(self.tails, dtype=np.float64).reshape(-1, 3)))
        return rig

    def rest_matrix(self, bone: str) -> np.ndarray:
        """(4, 4) rest frame of one bone in rig space."""
        import numpy as np

        return np.asarray(self.rest_matrices, dtype=np.float64)[self.bone_names.index(bone)]


def _check_sizes(names: list[str], parents: list[int], rest_matrices: object) -> np.ndarray:
    """The rest matrices as a (B, 4, 4) float64 array; ValueError when the sizes do not agree."""
    import numpy as np

    rest = np.asarray(rest_matrices, dtype=np.float64)
    if len(parents) != len(names) or rest.shape != (len(names), 4, 4):
        raise ValueError(f"a rig of {len(names)} bones needs {len(names)} parents and ({len(names)}, 4, 4) "
                         f"rest matrices; got {len(parents)} and {rest.shape}")
    return rest


def rig_from_description(description: RigDescription | Mapping[str, Any]) -> animation_pb2.Rig:
    """The Rig message for a host's armature description (a RigDescription or its keys as plain
    values, e.g. a rig.json file). Raises ValueError when the sizes do not agree."""
    if not isinstance(description, RigDescription):
        description = RigDescription.from_mapping(description)
    return description.to_proto()


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


def sidecar_preset(rig_path: str | os.PathLike) -> Path:
    """Where a character file's own bone map preset lives: hero.bonemap.json beside hero.vrm."""
    path = Path(rig_path)
    return path.with_name(f"{path.stem}.bonemap.json")


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
