"""The write-back of a finished retarget into the scene, as ONE undo step (main thread only).

Nothing in the scene changes before this runs: a cancelled or failed job leaves the file as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import bpy
import numpy as np

from keygrip.animate import Plan, Retargeted, RigAnimation, WriteSummary

from . import cameras, rig, writeback
from .actions import stamp_provenance


@dataclass(frozen=True)
class ScenePlan:
    """Where and how a result lands in this scene, snapshotted from the panel with the Plan.

    armature_name: the SELECTED target's object. face_mesh_name: a mesh whose shape keys get the face
    curves (empty: none). reference_video: add the clip's cameras with their videos as backgrounds
    (without cameras in the clip: the video on the scene's camera). match_scene: set the scene's frame
    rate, frame range, camera and render size to the clip's. frame_start: the scene frame the clip's
    first frame lands on.
    """

    armature_name: str = ""
    face_mesh_name: str = ""
    reference_video: bool = True
    match_scene: bool = True
    frame_start: int = 1


def new_armature_name(plan: Plan) -> str:
    return f"Keygrip {plan.stem}"


def _target_armature(plan: Plan, scene_plan: ScenePlan, done: Retargeted) -> bpy.types.Object:
    skeleton = done.motion.skeleton
    if plan.target == "NEW" and skeleton is not None:
        return rig.build_canonical_armature(skeleton.joint_names, skeleton.parents, skeleton.offsets,
                                            name=new_armature_name(plan))
    obj = bpy.data.objects.get(scene_plan.armature_name)
    if obj is None or obj.type != "ARMATURE":
        raise ValueError(f"the armature {scene_plan.armature_name!r} is gone; select a rig and run again")
    return obj


def bone_locations(obj: bpy.types.Object, anim: RigAnimation) -> dict[str, np.ndarray]:
    """{bone: (F, 3) pose-bone `location` keys, armature units} for every bone the retarget moves.

    The server gives each moved bone's location against its parent's posed frame (the hips under a
    root that moves or rotates included), in metres in the bone's rest frame, which is Blender's
    pose_bone.location but for the armature object's scale: nothing is rebuilt here.
    """
    scale = np.asarray(obj.matrix_world.to_scale(), dtype=np.float64)
    return {name: np.asarray(values, dtype=np.float64) / scale for name, values in anim.locations.items()}


def _match_fps(scene: bpy.types.Scene, fps: float) -> None:
    rounded = max(1, round(fps))
    scene.render.fps = rounded
    scene.render.fps_base = rounded / fps


def _videos(plan: Plan, names: list[str]) -> list[str]:
    """Where the cameras' videos may be on this machine: the plan's videos, and files of those names
    beside a motion file (a multi-view clip written next to its videos)."""
    found = plan.videos
    if plan.bvh_path:
        found += [str(Path(plan.bvh_path).with_name(Path(name).name)) for name in names if name]
    return found


def _show_cameras(plan: Plan, scene_plan: ScenePlan, anim: RigAnimation, obj: bpy.types.Object,
                  summary: WriteSummary, provenance: dict[str, object]) -> None:
    """The clip's cameras with their videos (one per view); without any, the video on the scene's
    camera when there is one, as the artist asked for the video."""
    scene = bpy.context.scene
    if anim.cameras:
        # The active camera and the render size are the scene's, as its frame rate and range are.
        placed = cameras.place_cameras(scene, anim.cameras, obj, _videos(plan, [c.video for c in anim.cameras]),
                                       scene_plan.frame_start, make_active=scene_plan.match_scene)
        summary.warnings.extend(placed.warnings)
        stamp_provenance([*placed.objects, *placed.clips], provenance)
        return
    if not plan.video:
        return
    if scene.camera is None or scene.camera.type != "CAMERA":
        summary.warnings.append("the motion carries no camera (captured or retargeted in place) and the scene has "
                                "none: the video is not shown")
        return
    clip = cameras.show_video(scene.camera.data, plan.video, plan.capture.start_frame, scene_plan.frame_start)
    stamp_provenance([clip], provenance)


def apply_result(plan: Plan, scene_plan: ScenePlan, done: Retargeted) -> WriteSummary:
    """Write the retargeted animation (and face curves, reference video) and push one undo step."""
    with window_context():
        summary = _apply(plan, scene_plan, done)
        bpy.ops.ed.undo_push(message=f"Keygrip: {plan.title}")
    return summary


def apply_people(done: Sequence[tuple[Plan, Retargeted]], scene_plan: ScenePlan,
                 skipped: Sequence[str] = ()) -> list[WriteSummary]:
    """Several people of one shot, each onto their plan's rig (a new armature, or the SELECTED one its
    rig describes), as ONE undo step. The camera that filmed them comes with the first person only (it
    is the same camera); `skipped`, the people not captured, go into the first summary's warnings."""
    with window_context():
        summaries = [_apply(plan, replace(scene_plan, reference_video=scene_plan.reference_video and not k,
                                          armature_name=plan.rig.name if plan.rig is not None else ""), result)
                     for k, (plan, result) in enumerate(done)]
        summaries[0].warnings[:0] = list(skipped)
        bpy.ops.ed.undo_push(message=f"Keygrip: {len(done)} people of {Path(done[0][0].video).name}")
    return summaries


def window_context() -> contextlib.AbstractContextManager[object]:
    """A window for operators (mode_set, undo_push) when called from a timer, which has none."""
    wm = bpy.context.window_manager
    if bpy.context.window is None and wm is not None and wm.windows:
        window = wm.windows[0]
        return bpy.context.temp_override(window=window, screen=window.screen)
    return contextlib.nullcontext()


def _apply(plan: Plan, scene_plan: ScenePlan, done: Retargeted) -> WriteSummary:
    """The write-back itself; the caller pushes the undo step."""
    scene = bpy.context.scene
    anim = done.animation
    if scene_plan.match_scene and anim.fps > 0:
        _match_fps(scene, anim.fps)
    scene_fps = scene.render.fps / scene.render.fps_base
    provenance = done.provenance(plan).as_dict()
    obj = _target_armature(plan, scene_plan, done)
    action = writeback.write_armature_action(
        obj, anim.bone_names, anim.times, anim.rotations,
        action_name=f"Keygrip {plan.stem}", fps=scene_fps, frame_start=scene_plan.frame_start,
        provenance=provenance, bone_locations=bone_locations(obj, anim))
    summary = WriteSummary(target=obj.name, animation=action.name, warnings=done.warnings)
    last_frame = scene_plan.frame_start + float(anim.times[-1]) * scene_fps
    face = bpy.data.objects.get(scene_plan.face_mesh_name) if scene_plan.face_mesh_name else None
    if face is not None and anim.shape_key_weights is not None:
        face_action, missing = writeback.write_shape_key_action(
            face, anim.shape_key_names, anim.times, anim.shape_key_weights,
            action_name=f"Keygrip face {plan.stem}", fps=scene_fps, frame_start=scene_plan.frame_start,
            provenance=provenance)
        summary.face_animation = face_action.name if face_action else ""
        summary.missing_shape_keys = missing
    elif face is not None:
        summary.warnings.append("the capture has no face curves: tick Face and capture again")
    if scene_plan.reference_video:
        _show_cameras(plan, scene_plan, anim, obj, summary, provenance)
    if done.motion.capture_job_id:
        scene.keygrip.last_capture_job = done.motion.capture_job_id
    if scene_plan.match_scene:
        # The clip's keys, all of them and nothing more (a key on a fraction of a frame rounds up).
        scene.frame_start = scene_plan.frame_start
        scene.frame_end = int(np.ceil(last_frame - 1e-6))
    return summary
