"""Armature -> Rig extraction with bpy, for evaluation scripts and tests (the add-on has its own).

Blender bones live in the armature's Z-up space; bone.matrix_local is each bone's rest frame there.
Rig wants Y-up, so every matrix is left-multiplied by the Z-up -> Y-up basis change.
"""

from __future__ import annotations

import numpy as np

from inference_server.animation.rig import Rig


def rig_from_armature(armature_object) -> Rig:
    """A Rig from a Blender armature object's rest bones (armature space, Y-up, metres)."""
    bones = list(armature_object.data.bones)
    names = [b.name for b in bones]
    parents = [names.index(b.parent.name) if b.parent else -1 for b in bones]
    mats = np.array([np.array(b.matrix_local) for b in bones])
    tails = np.array([np.array(b.tail_local) for b in bones])
    return Rig.from_z_up(names, parents, mats, tails)


def rigify_metarig():
    """Add Rigify's human metarig to the current scene and return the armature object."""
    import addon_utils
    import bpy

    addon_utils.enable("rigify")
    bpy.ops.object.armature_human_metarig_add()
    return bpy.context.active_object
