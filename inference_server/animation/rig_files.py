"""Character files as rigs: what a RigFile request names, read into a Character (rig + declared map).

The format is read from the content, not the file name (an upload may arrive under any name, and
.vrm is a .glb): a GLB container or glTF JSON (glTF and VRM, gltf_rig.py), a BVH (its skeleton at
rest; the motion in it is ignored). Every message names the file as the user named it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from inference_server.animation.gltf_rig import Character, read_gltf_character
from inference_server.animation.rig import Rig
from inference_server.errors import InvalidInput, KeygripError
from inference_server.store.artifacts import ArtifactStore
from keygrip.v1 import animation_pb2

if TYPE_CHECKING:  # retarget.py brings SciPy, which the gRPC front (reading rig files at submit) never imports
    from inference_server.animation.retarget import RetargetResult

FORMATS = ".glb, .gltf, .vrm or .bvh"


def load_rig_file(rig_file: animation_pb2.RigFile, artifacts: ArtifactStore) -> Character:
    """The character a RigFile names, its declared map with the sidecar preset's roles over the file's own.

    A path must have been checked against the allowed roots already (the service does it at submit).
    """
    path, name = _location(rig_file, artifacts)
    character = read_rig_file(path, name, rig_file.skeleton)
    sidecar = {m.bone: m.role for m in rig_file.sidecar.mappings if m.role}
    if sidecar:
        unknown = sorted(set(sidecar) - set(character.rig.names))
        if unknown:
            raise InvalidInput(f"the bone map preset beside {name} names bones the skeleton does not have: "
                               f"{', '.join(unknown)}; fix the preset or delete it")
        roles = set(sidecar.values())
        kept = {b: r for b, r in character.declared.items() if b not in sidecar and r not in roles}
        by = "the bone map preset beside the file"
        character.declared_by = f"{by} and {character.declared_by}" if kept else by
        character.declared = {**kept, **sidecar}
    return character


def animated_file(rig_file: animation_pb2.RigFile, artifacts: ArtifactStore, character: Character,
                  result: RetargetResult) -> tuple[bytes, str]:
    """(the GLB a RigFile names with `result` in it as an animation, a file name for it)."""
    from inference_server.animation.gltf_write import animate_glb

    path, name = _location(rig_file, artifacts)
    suffix = ".vrm" if Path(name).suffix.lower() == ".vrm" else ".glb"
    return animate_glb(path.read_bytes(), name, character, result), f"{Path(name).stem}_animated{suffix}"


def _location(rig_file: animation_pb2.RigFile, artifacts: ArtifactStore) -> tuple[Path, str]:
    """(where the file is on this machine, the user's name for it)."""
    if rig_file.WhichOneof("file") == "artifact_id":
        art = artifacts.stat(rig_file.artifact_id)
        return artifacts.path(rig_file.artifact_id), rig_file.name or art.name or f"upload {art.id[:12]}"
    if rig_file.WhichOneof("file") == "path":
        return Path(rig_file.path), rig_file.name or Path(rig_file.path).name
    raise InvalidInput("the rig file names no file: set rig_file.artifact_id or rig_file.path")


def read_rig_file(path: Path, name: str, skeleton: str = "") -> Character:
    """The character in the file at `path`; `name` is how the user calls it (for messages)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the rig file {name}: {exc.strerror}") from None
    start = data[:64].lstrip()
    if data[:4] == b"glTF" or start[:1] == b"{":
        return read_gltf_character(data, name, skeleton)
    if start[:9].upper() == b"HIERARCHY":
        from inference_server.motion.bvh import read_bvh

        try:
            clip = read_bvh(io.StringIO(data.decode("utf-8", errors="replace")))
        except KeygripError as exc:
            raise InvalidInput(f"{name}: {exc.message}") from None
        return Character(Path(name).stem, Rig.from_skeleton(clip.skeleton), skeletons=[Path(name).stem])
    if data.startswith(b"Kaydara FBX Binary") or b"FBXHeaderExtension" in data[:4096]:
        raise InvalidInput(f"{name} is an FBX file, which Keygrip does not read yet: export the character as "
                           f"glTF binary (.glb) and use that")
    raise InvalidInput(f"{name} is not a character file: give a {FORMATS} file (or, to the keygrip command, "
                       "a rig .json description)")
