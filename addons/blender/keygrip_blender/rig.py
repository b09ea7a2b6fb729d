"""The artist's armature as a host-neutral rig, and a new armature from a canonical skeleton.

describe_armature gives the server what it retargets onto; build_canonical_armature creates the
target when the artist asks for "a new armature". Both speak Keygrip's Y-up metres at their edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bpy
import mathutils
import numpy as np

from keygrip.rigs import RigDescription

from . import axes


def bones_parent_first(bones: Any) -> list[Any]:
    """Bones ordered so that every parent comes before its children (depth first from the roots)."""
    order: list[Any] = []
    stack = [b for b in reversed(bones) if b.parent is None]
    while stack:
        bone = stack.pop()
        order.append(bone)
        stack.extend(reversed(bone.children))
    return order


def describe_armature(armature_obj: bpy.types.Object) -> RigDescription:
    """The armature's rest pose in armature space, Y-up metres.

    name: the object's name. bone_names: parents before children. rest_matrices: each bone's rest
    frame (Blender's bone.matrix_local: the bone's own axes, Y along the bone) in armature space.
    heads, tails: metres. rolls: Blender's roll angles. scale: the object's world scale that turned
    armature units into metres. Per-bone rotations written back with
    writeback.write_armature_action are relative to these rest frames.
    """
    if armature_obj is None or armature_obj.type != "ARMATURE":
        raise ValueError("select an armature to describe")
    bones = bones_parent_first(armature_obj.data.bones)
    index = {b.name: i for i, b in enumerate(bones)}
    scale = np.asarray(armature_obj.matrix_world.to_scale(), dtype=np.float64)
    rest = np.array([np.asarray(b.matrix_local, dtype=np.float64) for b in bones]).reshape(-1, 4, 4)
    heads = np.array([tuple(b.head_local) for b in bones]).reshape(-1, 3)
    tails = np.array([tuple(b.tail_local) for b in bones]).reshape(-1, 3)
    rolls = tuple(float(bpy.types.Bone.AxisRollFromMatrix(b.matrix_local.to_3x3())[1]) for b in bones)
    sx, sy, sz = (float(s) for s in scale)
    return RigDescription(
        name=armature_obj.name,
        bone_names=[b.name for b in bones],
        parents=[index[b.parent.name] if b.parent else -1 for b in bones],
        rest_matrices=axes.matrices_from_blender(rest, scale),
        heads=axes.vectors_from_blender(heads * scale),
        tails=axes.vectors_from_blender(tails * scale),
        rolls=rolls,
        scale=(sx, sy, sz),
    )


def _tail(j: int, heads: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Where bone j's tail goes: its children's mean head, else its central child, else a short
    extension of its parent's direction (for leaves such as the head, toes and finger tips)."""
    children = np.nonzero(parents == j)[0]
    if len(children):
        mean = heads[children].mean(axis=0)
        if np.linalg.norm(mean - heads[j]) > 0.01:
            return mean
        # hips: spine up and legs down average out near the joint itself, so follow the child
        # nearest the body's mid-plane (x = 0) instead.
        central = children[np.argmin(np.abs(heads[children, 0]))]
        if np.linalg.norm(heads[central] - heads[j]) > 1e-4:
            return heads[central]
    p = parents[j]
    direction = heads[j] - heads[p] if p >= 0 else np.array([0.0, 1.0, 0.0])
    length = float(np.linalg.norm(direction))
    if length < 1e-4:
        direction, length = np.array([0.0, 1.0, 0.0]), 0.2
    return heads[j] + direction / length * max(0.5 * length, 0.02)


def canonical_heads_tails(
    joint_names: Sequence[str], parents: Sequence[int], offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blender Z-up heads (J, 3) and tails (J, 3) of a canonical skeleton's bones, and parents (J,).

    offsets: (J, 3) rest translation of each joint from its parent, Y-up metres (world axes).
    """
    parents_arr = np.asarray(parents, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.float64).reshape(-1, 3)
    if not (len(joint_names) == len(parents_arr) == len(offsets)):
        raise ValueError("joint_names, parents and offsets must have one entry per joint")
    heads = np.zeros_like(offsets)
    for j, p in enumerate(parents_arr):
        if p >= j:
            raise ValueError(f"joint {joint_names[j]!r} is listed before its parent")
        heads[j] = offsets[j] + (heads[p] if p >= 0 else 0.0)
    tails = np.array([_tail(j, heads, parents_arr) for j in range(len(heads))]).reshape(-1, 3)
    return axes.vectors_to_blender(heads), axes.vectors_to_blender(tails), parents_arr


def describe_canonical(
    joint_names: Sequence[str], parents: Sequence[int], offsets: np.ndarray, *, name: str = "Keygrip Armature"
) -> RigDescription:
    """What describe_armature will say about build_canonical_armature's result, without creating it.

    Lets the retarget run before anything is added to the scene (so a cancel leaves it untouched).
    Same arguments as build_canonical_armature.
    """
    heads_z, tails_z, parents_arr = canonical_heads_tails(joint_names, parents, offsets)
    rest = np.tile(np.eye(4), (len(heads_z), 1, 1))
    for j in range(len(heads_z)):
        # Edit bones with roll 0 get exactly this rest frame (Blender's vec_roll_to_mat3).
        axis = mathutils.Vector(tails_z[j] - heads_z[j]).normalized()
        rest[j, :3, :3] = np.asarray(bpy.types.Bone.MatrixFromAxisRoll(axis, 0.0))
        rest[j, :3, 3] = heads_z[j]
    return RigDescription(
        name=name,
        bone_names=list(joint_names),
        parents=[int(p) for p in parents_arr],
        rest_matrices=axes.matrices_from_blender(rest),
        heads=axes.vectors_from_blender(heads_z),
        tails=axes.vectors_from_blender(tails_z),
        rolls=(0.0,) * len(heads_z),
    )


def build_canonical_armature(
    joint_names: Sequence[str],
    parents: Sequence[int],
    offsets: np.ndarray,
    *,
    name: str = "Keygrip Armature",
    collection: bpy.types.Collection | None = None,
) -> bpy.types.Object:
    """Create a new armature object whose bones are the given skeleton at rest.

    joint_names: J names, parents before children.
    parents: J parent indices, -1 for a root.
    offsets: (J, 3) rest translation of each joint from its parent, Y-up metres (the canonical
        skeleton's rest rotations are identity, so these are world-axis offsets).
    collection: where to link the object; the scene's master collection by default.
    Each bone points at its child (see _tail) with Blender's default roll; use describe_armature
    for the resulting rest frames. The new object is left active and in Object Mode.
    """
    heads_z, tails_z, parents_arr = canonical_heads_tails(joint_names, parents, offsets)
    context = bpy.context
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    (collection or context.scene.collection).objects.link(obj)
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    edit_bones: list[Any] = []
    for j, joint in enumerate(joint_names):
        bone = data.edit_bones.new(joint)
        bone.head = heads_z[j]
        bone.tail = tails_z[j]
        bone.roll = 0.0
        if parents_arr[j] >= 0:
            bone.parent = edit_bones[parents_arr[j]]
        edit_bones.append(bone)
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj
