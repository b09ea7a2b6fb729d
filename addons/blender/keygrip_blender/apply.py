"""The write-back of a finished retarget into the scene, as ONE undo step (main thread only).

Nothing in the scene changes before this runs: a cancelled or failed job leaves the file as it was.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np

from . import rig, writeback
from .actions import stamp_provenance

if TYPE_CHECKING:
    from .connection import Session
    from .tasks import Plan

REFERENCE_CAMERA = "Keygrip Camera"


def new_armature_name(plan: Plan) -> str:
    stem = Path(plan.video).stem if plan.video else "capture"
    return f"Keygrip {stem}"


def _target_armature(plan: Plan, data: dict[str, Any]) -> bpy.types.Object:
    if plan.target == "NEW":
        names, parents, offsets = data["skeleton"]
        return rig.build_canonical_armature(names, parents, offsets, name=new_armature_name(plan))
    obj = bpy.data.objects.get(plan.armature_name)
    if obj is None or obj.type != "ARMATURE":
        raise ValueError(f"the armature {plan.armature_name!r} is gone; select a rig and run again")
    return obj


def _root_motion(obj: bpy.types.Object, plan: Plan, anim: dict[str, Any], data: dict[str, Any]
                 ) -> tuple[str | None, np.ndarray | None, dict[str, np.ndarray]]:
    """(hips bone, (F, 3) hips head positions Y-up metres, {bone: pose locations}) for the write.

    RigAnimation carries the hips head in rig space (root_position) and the location of the bone
    that carries the travel (root_bone, root_location, metres in that bone's rest frame). When that
    bone is a root above the hips, its travel is keyed as is and taken out of the hips positions.
    """
    positions = np.asarray(anim["root_position"], dtype=np.float64)
    hips = _hips_bone(plan, data)
    root = anim["root_bone"]
    if not len(positions) or hips is None:
        return None, None, {}
    if not root or root == hips:
        return hips, positions, {}
    names = data["rig"]["bone_names"]
    rest = np.asarray(data["rig"]["rest_matrices"], dtype=np.float64)[names.index(root)]
    location = np.asarray(anim["root_location"], dtype=np.float64)
    travel = location @ rest[:3, :3].T        # the root's travel in rig space (Y-up metres)
    scale = np.asarray(obj.matrix_world.to_scale(), dtype=np.float64)
    return hips, positions - travel, {root: location / scale}


def _hips_bone(plan: Plan, data: dict[str, Any]) -> str | None:
    bone_map = data["retarget"].bone_map
    for m in bone_map.mappings:
        if m.role == "hips":
            return m.bone
    return None


def _match_fps(scene: bpy.types.Scene, fps: float) -> None:
    rounded = max(1, round(fps))
    scene.render.fps = rounded
    scene.render.fps_base = rounded / fps


def _reference_video(scene: bpy.types.Scene, video: str, first_video_frame: int, frame_start: int) -> Any:
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


def apply_result(plan: Plan, data: dict[str, Any], session: Session) -> dict[str, Any]:
    """Write the retargeted animation (and face curves, reference video) and push one undo step.

    Returns a summary: {"armature", "action", "face_action", "missing_shape_keys", "warnings"}.
    """
    with _window_context():
        return _apply(plan, data, session)


def _window_context() -> contextlib.AbstractContextManager:
    """A window for operators (mode_set, undo_push) when called from a timer, which has none."""
    wm = bpy.context.window_manager
    if bpy.context.window is None and wm is not None and wm.windows:
        window = wm.windows[0]
        return bpy.context.temp_override(window=window, screen=window.screen)
    return contextlib.nullcontext()


def _apply(plan: Plan, data: dict[str, Any], session: Session) -> dict[str, Any]:
    scene = bpy.context.scene
    anim = data["animation"]
    result = data["retarget"]
    if plan.match_fps and anim["fps"] > 0:
        _match_fps(scene, anim["fps"])
    scene_fps = scene.render.fps / scene.render.fps_base
    provenance = {
        "capture_job_id": data.get("capture_job_id", ""),
        "retarget_job_id": data["retarget_job_id"],
        "source": plan.video or plan.bvh_path or plan.capture_job_id,
        "options": plan.options_record(),
        "server_version": getattr(session.server_info, "version", ""),
        "server_address": session.address,
        "bvh_artifact_id": result.bvh.id,
        "animation_artifact_id": result.animation.id,
    }
    obj = _target_armature(plan, data)
    hips, positions, extra = _root_motion(obj, plan, anim, data)
    stem = Path(plan.video or plan.bvh_path).stem or "capture"
    action = writeback.write_armature_action(
        obj, anim["bone_names"], anim["times"], anim["rotations"], hips, positions,
        action_name=f"Keygrip {stem}", fps=scene_fps, frame_start=plan.frame_start,
        provenance=provenance, bone_locations=extra)
    summary: dict[str, Any] = {"armature": obj.name, "action": action.name, "face_action": None,
                               "missing_shape_keys": [], "warnings": list(result.warnings)}
    last_frame = plan.frame_start + float(anim["times"][-1]) * scene_fps
    face = bpy.data.objects.get(plan.face_mesh_name) if plan.face_mesh_name else None
    if face is not None and anim["shape_key_names"]:
        face_action, missing = writeback.write_shape_key_action(
            face, anim["shape_key_names"], anim["times"], anim["shape_key_weights"],
            action_name=f"Keygrip face {stem}", fps=scene_fps, frame_start=plan.frame_start,
            provenance=provenance)
        summary["face_action"] = face_action.name if face_action else None
        summary["missing_shape_keys"] = missing
    elif face is not None:
        summary["warnings"].append("the capture has no face curves: tick Face and capture again")
    if plan.reference_video and plan.video:
        clip = _reference_video(scene, plan.video, int(plan.capture_options.get("start_frame", 0)),
                                plan.frame_start)
        stamp_provenance([clip], provenance)
    if data.get("capture_job_id"):
        scene.keygrip.last_capture_job = data["capture_job_id"]
    scene.frame_end = max(scene.frame_end, int(np.ceil(last_frame)))
    bpy.ops.ed.undo_push(message=f"Keygrip: {plan.title}")
    return summary
