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

__all__ = ["ADDON_MODULE", "REPO", "canonical_skeleton", "enable_addon", "load_addon", "new_scene", "prefs"]


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
