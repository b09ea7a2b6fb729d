"""Helpers shared by the Blender tests: the repository on sys.path, the add-on loaded from the checkout
(scripts/blender_addon.py, the same loader as the demo and the benchmark), a fresh scene, and a
plausible canonical skeleton. Test modules import this, never each other."""

from __future__ import annotations

import sys
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
# The tests use the server's code (inference_server) and load the add-on (keygrip_blender) from the
# checkout through the same loader as the demo and the benchmark.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "scripts") not in sys.path:
    sys.path.append(str(REPO / "scripts"))

from blender_addon import ADDON_MODULE, load_addon  # noqa: E402

from keygrip import humanoid  # noqa: E402

__all__ = ["ADDON_MODULE", "REPO", "build_character_armature", "canonical_skeleton", "cancel_once_capturing",
           "enable_addon", "load_addon", "new_scene", "prefs"]


def enable_addon() -> ModuleType:
    """The add-on, loaded from the checkout and enabled as Blender would."""
    addon_utils = import_module("addon_utils")  # Blender's scripts/modules: importable once bpy is
    module = load_addon()
    assert addon_utils.enable(ADDON_MODULE, default_set=True) is module
    return module


def prefs() -> Any:
    import bpy

    return bpy.context.preferences.addons[ADDON_MODULE].preferences


def new_scene() -> Any:
    """An empty scene; read_homefile keeps add-ons and preferences (read_factory_settings would not)."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    return bpy.context.scene


# A plausible canonical T-pose: (Y-up metres) offset of each joint from its parent.
_OFFSETS = {
    "hips": (0.0, 0.95, 0.0), "spine": (0.0, 0.10, 0.0), "chest": (0.0, 0.12, 0.0),
    "upperChest": (0.0, 0.12, 0.0), "neck": (0.0, 0.12, 0.0), "head": (0.0, 0.10, 0.0),
    "leftShoulder": (0.04, 0.09, 0.0), "leftUpperArm": (0.12, 0.0, 0.0),
    "leftLowerArm": (0.27, 0.0, 0.0), "leftHand": (0.25, 0.0, 0.0),
    "leftUpperLeg": (0.09, -0.06, 0.0), "leftLowerLeg": (0.0, -0.42, 0.0),
    "leftFoot": (0.0, -0.41, 0.0), "leftToes": (0.0, -0.06, 0.13),
}


def canonical_skeleton() -> tuple[list[str], list[int], np.ndarray]:
    """(names, parents, (J, 3) offsets from the parent, Y-up metres) of the body joints in a T-pose."""
    joints = humanoid.hierarchy(with_fingers=False)
    names = [n for n, _ in joints]
    parents = [names.index(p) if p else -1 for _, p in joints]
    offsets = []
    for n in names:
        x, y, z = _OFFSETS.get(n.replace("right", "left"), (0.0, 0.0, 0.0))
        offsets.append((-x, y, z) if n.startswith("right") else (x, y, z))
    return names, parents, np.array(offsets)


def build_character_armature(bones: list[Any], name: str) -> Any:
    """An armature object of `bones` (characters.Bone: Y-up heads, as tests/characters.py makes them) with
    a skinned mesh of one small triangle per bone, built in Blender as an artist would (Blender is
    Z-up: (x, y, z) -> (x, -z, y))."""
    import bpy

    def z_up(v) -> tuple[float, float, float]:
        return (float(v[0]), float(-v[2]), float(v[1]))

    armature = bpy.data.objects.new(name, bpy.data.armatures.new(name + "_data"))
    bpy.context.scene.collection.objects.link(armature)
    bpy.context.view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    children = {b.name: [c for c in bones if c.parent == b.name] for b in bones}
    for b in bones:
        edit = armature.data.edit_bones.new(b.name)
        edit.head = z_up(b.head)
        # A bone points at its only child; a leaf or a fork points up (Blender needs a length).
        kids = children[b.name]
        tail = kids[0].head if len(kids) == 1 else b.head + np.array([0.0, 0.06, 0.0])
        if np.linalg.norm(tail - b.head) < 1e-3:
            tail = b.head + np.array([0.0, 0.06, 0.0])
        edit.tail = z_up(tail)
    for b in bones:
        if b.parent:
            armature.data.edit_bones[b.name].parent = armature.data.edit_bones[b.parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    verts, faces = [], []
    for k, b in enumerate(bones):
        h = np.array(z_up(b.head))
        verts += [tuple(h), tuple(h + (0.02, 0, 0)), tuple(h + (0, 0, 0.02))]
        faces.append((3 * k, 3 * k + 1, 3 * k + 2))
    mesh = bpy.data.meshes.new(name + "_body")
    mesh.from_pydata(verts, [], faces)
    body = bpy.data.objects.new(name + "_body", mesh)
    bpy.context.scene.collection.objects.link(body)
    body.parent = armature
    body.modifiers.new("Armature", "ARMATURE").object = armature
    for k, b in enumerate(bones):
        body.vertex_groups.new(name=b.name).add([3 * k, 3 * k + 1, 3 * k + 2], 1.0, "REPLACE")
    return armature


def cancel_once_capturing(session: Any, main_thread: ModuleType) -> None:
    """Cancel a capture session (as Esc or the Cancel button would) once the server is working on the
    capture, and wait for the session to end."""
    import time

    import bpy

    deadline = time.monotonic() + 120
    while session.busy and not session.progress.stage.startswith("capture"):
        assert time.monotonic() < deadline, f"the capture never started: {session.progress}"
        main_thread.poll_all(wait=0.05)
    assert session.busy, f"the session ended before it could be cancelled: {session.state} {session.error}"
    assert bpy.ops.keygrip.cancel() == {"FINISHED"}
    main_thread.drain(timeout=60)
