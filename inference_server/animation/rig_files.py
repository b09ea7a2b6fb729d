"""Character files as rigs: what a RigFile request names, read into a Character (rig + declared map).

The format is read from the content, not the file name (an upload may arrive under any name, and
.vrm is a .glb): a GLB container or glTF JSON (glTF and VRM, gltf_rig.py), an FBX (through Blender,
fbx.py, as the GLB Blender makes of it), a BVH (its skeleton at rest; the motion in it is ignored).
Every message names the file as the user named it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from inference_server.animation import fbx
from inference_server.animation.gltf_rig import Character, read_gltf_character
from inference_server.animation.mapping import preset_over
from inference_server.animation.rig import Rig
from inference_server.errors import InvalidInput, KeygripError
from inference_server.store.artifacts import ArtifactStore
from keygrip.v1 import animation_pb2

if TYPE_CHECKING:  # retarget.py brings SciPy, which the gRPC front (reading rig files at submit) never imports
    from inference_server.animation.retarget import RetargetResult

FORMATS = ".glb, .gltf, .vrm, .fbx or .bvh"
# Animated file formats: the media type of each.
ANIMATED_FORMATS = {"glb": "model/gltf-binary", "vrm": "model/gltf-binary", "fbx": "application/octet-stream"}


def load_rig_file(rig_file: animation_pb2.RigFile, artifacts: ArtifactStore) -> Character:
    """The character a RigFile names, its declared map with the sidecar preset's roles over the file's own
    (each conflict a warning in map_warnings).

    A path must have been checked against the allowed roots already (the service does it at submit).
    """
    path, name = _location(rig_file, artifacts)
    character = read_rig_file(path, name, rig_file.skeleton, cache=artifacts.root / "converted")
    sidecar = {m.bone: m.role for m in rig_file.sidecar.mappings if m.role}
    if sidecar:
        unknown = sorted(set(sidecar) - set(character.rig.names))
        if unknown:
            raise InvalidInput(f"the bone map preset beside {name} names bones the skeleton does not have: "
                               f"{', '.join(unknown)}; fix the preset or delete it")
        kept, character.map_warnings = preset_over(sidecar, character.declared, character.declared_by,
                                                   by=f"the bone map preset beside {name}")
        by = "the bone map preset beside the file"
        character.declared_by = f"{by} and {character.declared_by}" if kept else by
        character.declared = {**kept, **sidecar}
    return character


def animated_format(rig_file: animation_pb2.RigFile, artifacts: ArtifactStore, character: Character,
                    fmt: str = "") -> str:
    """The format an animated file of this character is written in ("glb", "vrm" or "fbx"), checked.

    fmt: the one asked for; "vrm" only from a VRM; empty: the rig file's own format.
    """
    from inference_server.animation.gltf_write import require_glb

    path, name = _location(rig_file, artifacts)
    if not character.nodes:
        raise InvalidInput(f"{name} is a skeleton without a character (a BVH): there is no file to write the "
                           "animation into; write a .bvh, or give the character's .glb, .vrm or .fbx as the rig")
    own = "fbx" if character.glb is not None else "vrm" if Path(name).suffix.lower() == ".vrm" else "glb"
    fmt = (fmt or own).lower().lstrip(".")
    if fmt not in ANIMATED_FORMATS:
        raise InvalidInput(f"an animated file is written as .glb, .vrm or .fbx, not .{fmt}")
    if fmt == "vrm" and own != "vrm":
        raise InvalidInput(f"{name} is not a VRM avatar, so there is no .vrm to write: write a .glb or .fbx")
    if character.glb is None:
        with path.open("rb") as f:
            require_glb(f.read(4), name)
    return fmt


def animated_file(rig_file: animation_pb2.RigFile, artifacts: ArtifactStore, character: Character,
                  result: RetargetResult, fmt: str = "") -> tuple[bytes, str, str]:
    """(the character file a RigFile names with `result` in it as an animation, a file name, a media type).

    fmt: as animated_format takes it.
    """
    from inference_server.animation.gltf_write import animate_glb

    fmt = animated_format(rig_file, artifacts, character, fmt)
    path, name = _location(rig_file, artifacts)
    glb = character.glb if character.glb is not None else path.read_bytes()
    data = animate_glb(glb, name, character, result)
    if fmt == "fbx":
        data = fbx.glb_to_fbx(data, name)
    return data, f"{Path(name).stem}_animated.{fmt}", ANIMATED_FORMATS[fmt]


def _location(rig_file: animation_pb2.RigFile, artifacts: ArtifactStore) -> tuple[Path, str]:
    """(where the file is on this machine, the user's name for it)."""
    if rig_file.WhichOneof("file") == "artifact_id":
        art = artifacts.stat(rig_file.artifact_id)
        return artifacts.path(rig_file.artifact_id), rig_file.name or art.name or f"upload {art.id[:12]}"
    if rig_file.WhichOneof("file") == "path":
        return Path(rig_file.path), rig_file.name or Path(rig_file.path).name
    raise InvalidInput("the rig file names no file: set rig_file.artifact_id or rig_file.path")


def read_rig_file(path: Path, name: str, skeleton: str = "", cache: Path | None = None) -> Character:
    """The character in the file at `path`; `name` is how the user calls it (for messages).

    cache: a folder for the GLBs converted from FBX files (fbx.fbx_to_glb); None: convert every time.
    """
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
    if fbx.is_fbx(data):
        glb = fbx.fbx_to_glb(data, name, cache)
        character = read_gltf_character(glb, name, skeleton)
        character.glb = glb
        return character
    raise InvalidInput(f"{name} is not a character file: give a {FORMATS} file (or, to the keygrip command, "
                       "a rig .json description)")
