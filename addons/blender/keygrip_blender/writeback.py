"""Write server results into the scene as new actions, in bulk.

Every key is written with keyframe_points.add(n) + foreach_set, never keyframe_insert in a loop
(tens of times faster, see scripts/bench_blender_writeback.py). Each call creates a NEW action with a
unique name: the artist's own action is kept (on a muted NLA track by default), never overwritten.

Inputs follow Keygrip's conventions: seconds (or frames), Y-up metres, quaternions (x, y, z, w).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import bpy
import numpy as np

from . import axes
from .actions import assign_action, new_action, stamp_provenance


def frames_from_times(
    times_or_frames: Sequence[float] | np.ndarray, fps: float | None, frame_start: float
) -> np.ndarray:
    """Scene frames (F,) for the given samples.

    With fps, times_or_frames are seconds from the clip start and frame = frame_start + t * fps;
    without, they are scene frame numbers used as they are.
    """
    t = np.asarray(times_or_frames, dtype=np.float64).reshape(-1)
    if t.size and np.any(np.diff(t) <= 0):
        raise ValueError("times must be strictly increasing")
    return frame_start + t * fps if fps is not None else t


def continuous_quaternions(q: np.ndarray) -> np.ndarray:
    """Unit quaternions (F, B, 4) with no sign flips between consecutive frames.

    q and -q are the same rotation, but Blender interpolates the four components separately, so
    a flip between two keys would swing the bone the long way round. The first frame is made w >= 0.
    """
    q = np.asarray(q, dtype=np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    sign = np.ones(q.shape[:2])
    sign[0] = np.where(q[0, :, 3] < 0.0, -1.0, 1.0)
    step = np.where(np.sum(q[1:] * q[:-1], axis=-1) < 0.0, -1.0, 1.0)
    # The fixed sign of frame t is the product of every flip up to t.
    sign[1:] = sign[0] * np.cumprod(step, axis=0)
    return q * sign[..., None]


def _bone_path(bone_name: str, prop: str) -> str:
    return f'pose.bones["{bpy.utils.escape_identifier(bone_name)}"].{prop}'


def root_locations_to_pose(
    armature_obj: bpy.types.Object, root_bone: str, positions: np.ndarray
) -> np.ndarray:
    """Pose-bone `location` values (F, 3) that put root_bone's head at the given positions.

    positions: (F, 3) armature space, Y-up metres (the space of rig.describe_armature).
    The armature object's world scale turns metres into armature units. Assumes the root bone's
    ancestors, if any, stay at rest, as a retargeted hips bone under a static root does.
    """
    bone = armature_obj.data.bones[root_bone]
    if bone.use_connect:
        raise ValueError(
            f"bone {root_bone!r} is connected to its parent and cannot move; "
            "disconnect it in Edit Mode or choose another root bone"
        )
    scale = np.asarray(armature_obj.matrix_world.to_scale(), dtype=np.float64)
    p = axes.vectors_to_blender(positions) / scale
    rest = np.asarray(bone.matrix_local, dtype=np.float64)
    # head = rest_rot @ location + rest_head  =>  location = rest_rot^T (head - rest_head)
    return (p - rest[:3, 3]) @ rest[:3, :3]


def write_armature_action(
    armature_obj: bpy.types.Object,
    bone_names: Sequence[str],
    times_or_frames: Sequence[float] | np.ndarray,
    rotations: np.ndarray,
    root_bone: str | None = None,
    root_location: np.ndarray | None = None,
    *,
    action_name: str = "Keygrip",
    fps: float | None = None,
    frame_start: float = 1.0,
    provenance: Mapping[str, Any] | None = None,
    interpolation: str = "LINEAR",
    push_previous_to_nla: bool = True,
    bone_locations: Mapping[str, np.ndarray] | None = None,
) -> bpy.types.Action:
    """Write a clip onto an armature as a new action and make it the active one.

    bone_names: B pose-bone names, the order of rotations' second axis.
    times_or_frames: (F,) seconds when fps is given (frame = frame_start + t * fps), else frames.
    rotations: (F, B, 4) local rotations (x, y, z, w) of each bone relative to its own rest pose
        (Blender's pose-bone rotation_quaternion, which is stored (w, x, y, z)).
    root_bone, root_location: optional bone that also gets location keys, and (F, 3) positions of
        its head in armature space, Y-up metres.
    provenance: custom properties stored on the action and the object (job id, options, server
        version) so that a TD can re-run the job.
    interpolation: Blender keyframe interpolation; LINEAR suits densely sampled motion.
    bone_locations: {bone: (F, 3) pose-bone `location` values, armature units} keyed as they are
        (e.g. a top root bone carrying the travel while root_bone is the hips).
    Returns the new action. The touched bones are switched to QUATERNION rotation mode.
    """
    if armature_obj is None or armature_obj.type != "ARMATURE":
        raise ValueError("select an armature to write the animation onto")
    bone_names = list(bone_names)
    missing = [n for n in bone_names if n not in armature_obj.pose.bones]
    bone_locations = dict(bone_locations or {})
    missing += [n for n in [root_bone, *bone_locations] if n is not None and n not in armature_obj.pose.bones]
    if missing:
        raise ValueError(
            f"armature {armature_obj.name!r} has no bone(s) {', '.join(missing)}; "
            "describe the rig again and re-run the retarget"
        )
    frames = frames_from_times(times_or_frames, fps, frame_start)
    rotations = np.asarray(rotations, dtype=np.float64)
    if rotations.shape != (len(frames), len(bone_names), 4):
        raise ValueError(f"rotations must have shape (F, B, 4) = {(len(frames), len(bone_names), 4)}, "
                         f"got {rotations.shape}")
    wxyz = axes.quaternions_xyzw_to_wxyz(continuous_quaternions(rotations))
    locations = None
    if root_bone is not None:
        if root_location is None or np.shape(root_location) != (len(frames), 3):
            raise ValueError(f"root_location must have shape (F, 3) = {(len(frames), 3)}")
        locations = root_locations_to_pose(armature_obj, root_bone, np.asarray(root_location))
    for name, values in bone_locations.items():
        if np.shape(values) != (len(frames), 3):
            raise ValueError(f"bone_locations[{name!r}] must have shape (F, 3) = {(len(frames), 3)}")

    writer = new_action(action_name, "OBJECT", armature_obj.name)
    for b, name in enumerate(bone_names):
        armature_obj.pose.bones[name].rotation_mode = "QUATERNION"
        path = _bone_path(name, "rotation_quaternion")
        for i in range(4):
            writer.write_curve(path, i, name, frames, wxyz[:, b, i], interpolation)
    if locations is not None and root_bone is not None:
        path = _bone_path(root_bone, "location")
        for i in range(3):
            writer.write_curve(path, i, root_bone, frames, locations[:, i], interpolation)
    for name, values in bone_locations.items():
        path = _bone_path(name, "location")
        for i in range(3):
            writer.write_curve(path, i, name, frames, np.asarray(values)[:, i], interpolation)

    assign_action(armature_obj, writer, push_previous_to_nla=push_previous_to_nla)
    stamp_provenance([writer.action], provenance)
    stamp_provenance([armature_obj], provenance, action=writer.action.name)
    return writer.action


def write_shape_key_action(
    mesh_obj: bpy.types.Object,
    names: Sequence[str],
    times_or_frames: Sequence[float] | np.ndarray,
    weights: np.ndarray,
    *,
    action_name: str = "Keygrip face",
    fps: float | None = None,
    frame_start: float = 1.0,
    provenance: Mapping[str, Any] | None = None,
    interpolation: str = "LINEAR",
    push_previous_to_nla: bool = True,
) -> tuple[bpy.types.Action | None, list[str]]:
    """Write face curves onto the mesh's existing shape keys as a new action on its Key.

    names: K curve names (ARKit blendshape names); matched to shape keys exactly, else ignoring case
        (rigs often write "EyeBlinkLeft").
    times_or_frames: (F,) seconds with fps, else frames (see write_armature_action).
    weights: (F, K) shape-key values, usually 0..1.
    Returns (the new action or None when no name matched, the names with no shape key). Missing
    shape keys are reported, never created.
    """
    frames = frames_from_times(times_or_frames, fps, frame_start)
    names = list(names)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(frames), len(names)):
        raise ValueError(f"weights must have shape (F, K) = {(len(frames), len(names))}, got {weights.shape}")
    key = mesh_obj.data.shape_keys if mesh_obj is not None and mesh_obj.type == "MESH" else None
    if key is None:
        return None, names
    by_lower = {kb.name.lower(): kb.name for kb in key.key_blocks}
    matched: list[tuple[int, str]] = []
    missing: list[str] = []
    for k, name in enumerate(names):
        block = name if name in key.key_blocks else by_lower.get(name.lower())
        if block is None:
            missing.append(name)
        else:
            matched.append((k, block))
    if not matched:
        return None, missing

    writer = new_action(action_name, "KEY", key.name)
    for k, block in matched:
        path = f'key_blocks["{bpy.utils.escape_identifier(block)}"].value'
        writer.write_curve(path, 0, "Keygrip face", frames, weights[:, k], interpolation)
    assign_action(key, writer, push_previous_to_nla=push_previous_to_nla)
    stamp_provenance([writer.action], provenance, missing_shape_keys=missing)
    stamp_provenance([mesh_obj], provenance, action=writer.action.name, missing_shape_keys=missing)
    return writer.action, missing
