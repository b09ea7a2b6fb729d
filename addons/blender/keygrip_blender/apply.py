"""The write-back of a finished retarget into the scene, as ONE undo step (main thread only).

Nothing in the scene changes before this runs: a cancelled or failed job leaves the file as it was.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from keygrip.animate import Plan, Retargeted, RigAnimation, WriteSummary

from . import rig, writeback
from .actions import stamp_provenance

REFERENCE_CAMERA = "Keygrip Camera"


@dataclass(frozen=True)
class ScenePlan:
    """Where and how a result lands in this scene, snapshotted from the panel with the Plan.

    armature_name: the SELECTED target's object. face_mesh_name: a mesh whose shape keys get the face
    curves (empty: none). reference_video: show the video on the camera. match_fps: set the scene's
    frame rate to the clip's. frame_start: the scene frame the clip's first frame lands on.
    """

    armature_name: str = ""
    face_mesh_name: str = ""
    reference_video: bool = True
    match_fps: bool = True
    frame_start: int = 1


def new_armature_name(plan: Plan) -> str:
    stem = Path(plan.video).stem if plan.video else "capture"
    return f"Keygrip {stem}"


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


def _reference_video(scene: bpy.types.Scene, video: str, first_video_frame: int, frame_start: int
                     ) -> bpy.types.MovieClip:
    """The video on the scene camera's background (a new camera when the scene has none)."""
    clip = bpy.data.movieclips.load(video, check_existing=True)
    # Scene frame frame_start shows video frame first_video_frame (both counted as Blender does).
    clip.frame_start = frame_start - first_video_frame
    camera = scene.camera
    if camera is None:
        camera = bpy.data.objects.new(REFERENCE_CAMERA, bpy.data.cameras.new(REFERENCE_CAMERA))
        scene.collection.objects.link(camera)
        camera.location = (0.0, -6.0, 1.0)
        camera.rotation_euler = (np.pi / 2, 0.0, 0.0)
        scene.camera = camera
    cam = camera.data
    cam.show_background_images = True
    bg = next((b for b in cam.background_images if b.source == "MOVIE_CLIP" and b.clip == clip), None)
    if bg is None:
        bg = cam.background_images.new()
        bg.source = "MOVIE_CLIP"
        bg.clip = clip
    bg.alpha = 0.6
    bg.show_background_image = True
    return clip


def apply_result(plan: Plan, scene_plan: ScenePlan, done: Retargeted) -> WriteSummary:
    """Write the retargeted animation (and face curves, reference video) and push one undo step."""
    with window_context():
        return _apply(plan, scene_plan, done)


def window_context() -> contextlib.AbstractContextManager[object]:
    """A window for operators (mode_set, undo_push) when called from a timer, which has none."""
    wm = bpy.context.window_manager
    if bpy.context.window is None and wm is not None and wm.windows:
        window = wm.windows[0]
        return bpy.context.temp_override(window=window, screen=window.screen)
    return contextlib.nullcontext()


def _apply(plan: Plan, scene_plan: ScenePlan, done: Retargeted) -> WriteSummary:
    scene = bpy.context.scene
    anim = done.animation
    if scene_plan.match_fps and anim.fps > 0:
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
    if scene_plan.reference_video and plan.video:
        clip = _reference_video(scene, plan.video, plan.capture.start_frame, scene_plan.frame_start)
        stamp_provenance([clip], provenance)
    if done.motion.capture_job_id:
        scene.keygrip.last_capture_job = done.motion.capture_job_id
    scene.frame_end = max(scene.frame_end, int(np.ceil(last_frame)))
    bpy.ops.ed.undo_push(message=f"Keygrip: {plan.title}")
    return summary
