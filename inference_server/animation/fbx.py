"""FBX characters through Blender's own FBX importer and exporter (the `bpy` wheel), in a child process.

FBX is a closed format whose only dependable reader and writer here is Blender's. `bpy` is never
imported into a server process (it is large, owns global state and would share a worker with the
other jobs): a short-lived child Python runs it, on files in a scratch folder.

An FBX character is read by converting it to a GLB with Blender's glTF exporter and reading that as
any glTF character (gltf_rig.py), so an FBX rig gives the same structures a glTF one does and is
animated the same way (gltf_write.py); an animated FBX is that animated GLB imported into Blender and
exported with its FBX exporter (the action baked on the armature, no leaf bones added).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from inference_server.errors import FailedPrecondition, InvalidInput

# Seconds a conversion may take: Blender starts in about a second; a large character takes longer.
TIMEOUT = 300.0
_ERROR = "KEYGRIP_ERROR "

# Runs in the child: read argv[1] (an .fbx or a .glb), write argv[2] (a .glb or an .fbx); a line that
# starts with argv[3] says why it could not.
_CONVERT = r"""
import sys
import bpy

src, dst, error = sys.argv[1:4]
bpy.ops.wm.read_factory_settings(use_empty=True)
try:
    if src.endswith(".fbx"):
        bpy.ops.import_scene.fbx(filepath=src)
    else:
        # No bone shapes: they are display helpers of the importer's, not part of the character.
        bpy.ops.import_scene.gltf(filepath=src, disable_bone_shape=True)
except Exception as exc:  # the importers raise RuntimeError with Blender's report in it
    print(error + " ".join(str(exc).split()).removeprefix("Error: "), flush=True)
    sys.exit(2)
if not any(o.type == "ARMATURE" for o in bpy.data.objects):
    print(error + "it has no armature", flush=True)
    sys.exit(2)
if dst.endswith(".glb"):
    bpy.ops.export_scene.gltf(filepath=dst, export_format="GLB", export_animations=False)
else:
    actions = [o.animation_data.action for o in bpy.data.objects
               if o.type == "ARMATURE" and o.animation_data and o.animation_data.action]
    scene = bpy.context.scene
    if actions:  # the scene range is what the exporter bakes
        start, end = actions[0].frame_range
        scene.frame_start, scene.frame_end = int(start), int(round(end))
    bpy.ops.export_scene.fbx(filepath=dst, add_leaf_bones=False, bake_anim=bool(actions),
                             bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False,
                             bake_anim_simplify_factor=0.0)
"""


def is_fbx(data: bytes) -> bool:
    """Whether these bytes start an FBX file (binary, or the ASCII flavour Blender refuses)."""
    return data.startswith(b"Kaydara FBX Binary") or b"FBXHeaderExtension" in data[:4096]


def fbx_to_glb(data: bytes, name: str, cache: Path | None = None) -> bytes:
    """The FBX character `data` (`name` names it in errors) as a GLB, through Blender.

    cache: a folder that keeps each conversion under the FBX's sha256, so that mapping the bones,
    checking a request at submit and running its job start Blender once between them.
    """
    cached = cache / f"{hashlib.sha256(data).hexdigest()}.glb" if cache is not None else None
    if cached is not None and cached.is_file():
        return cached.read_bytes()
    glb = _convert(data, ".fbx", ".glb", name,
                   f"{name}: Blender's FBX importer cannot read it ({{why}}); export it again as a binary FBX "
                   "(7.x) or as glTF binary (.glb) and use that")
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cached.parent, suffix=".tmp", delete=False) as tmp:
            tmp.write(glb)
        os.replace(tmp.name, cached)  # atomic: a reader never sees half a file
    return glb


def glb_to_fbx(data: bytes, name: str) -> bytes:
    """The animated GLB `data` as an FBX, through Blender (`name` is the character's, for errors)."""
    return _convert(data, ".glb", ".fbx", name,
                    f"Blender could not write {name} with its animation as FBX ({{why}}); write a .glb instead")


def _convert(data: bytes, src_suffix: str, dst_suffix: str, name: str, message: str) -> bytes:
    if importlib.util.find_spec("bpy") is None:
        raise FailedPrecondition(f"{name}: reading and writing FBX needs Blender's bpy wheel in the server's Python "
                                 "(pip install bpy==5.0.1 there, Python 3.11), or use a .glb character")
    with tempfile.TemporaryDirectory(prefix="keygrip-fbx-") as tmp:
        src, dst = Path(tmp) / f"in{src_suffix}", Path(tmp) / f"out{dst_suffix}"
        src.write_bytes(data)
        try:
            proc = subprocess.run([sys.executable, "-c", _CONVERT, str(src), str(dst), _ERROR], cwd=tmp,
                                  capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise InvalidInput(message.format(why=f"Blender took longer than {TIMEOUT:.0f} s")) from None
        reported = [line[len(_ERROR):] for line in proc.stdout.splitlines() if line.startswith(_ERROR)]
        if proc.returncode != 0 or not dst.is_file():
            why = reported[-1] if reported else (proc.stderr.strip().splitlines() or ["Blender failed"])[-1]
            # Blender names the scratch copy; the user knows the file by its own name.
            raise InvalidInput(message.format(why=why.replace(str(src), name)))
        return dst.read_bytes()
