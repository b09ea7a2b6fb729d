"""A multi-view clip's calibrated cameras in Blender, through the real add-on and server: a synthetic
motion filmed by the four cameras of the Pose2Sim calibration, imported onto a rig 1.2 times the
clip's size placed away from the origin (moved, turned and scaled). Each camera object sees every
joint where that camera's own projection puts the clip's joint (Blender's world_to_camera_view, the
scene's render frame set from the camera), and shows its video when the video lies beside the clip
file."""

from __future__ import annotations

import tomllib
from importlib import import_module
from pathlib import Path

import bpy
import numpy as np
from addon_helpers import ADDON_MODULE, canonical_skeleton, new_scene

addon_utils = import_module("addon_utils")

DATA = Path(__file__).resolve().parents[1] / "data"
CALIBRATION = DATA / "pose2sim" / "Calib_qualisys_converted_by_pose2sim.toml"
VIDEO = DATA / "video" / "pose2sim_cam01.mp4"
# The calibration's world is the lab's, Z-up; a clip's is Y-up: (x, y, z)_clip = (y, z, x)_lab.
LAB_TO_Y_UP = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
FRAMES = 8


def calibrated_cameras() -> list:
    from keygrip.projection import Camera, VideoCamera

    cameras = []
    for name, cam in tomllib.loads(CALIBRATION.read_text()).items():
        if "matrix" not in cam:
            continue  # the file's [metadata]
        width, height = (int(v) for v in cam["size"])
        lab = Camera.from_opencv(cam["matrix"], cam["rotation"], cam["translation"], width, height)
        clip_world = Camera(width=width, height=height, focal_x=lab.focal_x, focal_y=lab.focal_y,
                            center_x=lab.center_x, center_y=lab.center_y,
                            camera_to_world=LAB_TO_Y_UP @ lab.camera_to_world)
        cameras.append(VideoCamera(name, clip_world, tuple(cam["distortions"]), video=f"{name}.mp4", frame_offset=2))
    return cameras


def synthetic_clip(cameras: list):
    """The canonical skeleton swinging its arms and legs where the Pose2Sim subject stands."""
    from inference_server.motion import quat
    from inference_server.motion.clip import MotionClip, Skeleton

    names, parents, offsets = canonical_skeleton()
    t = np.arange(FRAMES) / 30.0
    rotations = np.tile(quat.identity(), (FRAMES, len(names), 1))
    swing = 0.6 * np.sin(2 * np.pi * 1.5 * t)
    for joint, axis, sign in (("leftUpperArm", (0, 0, 1), 1), ("rightUpperArm", (0, 0, 1), 1),
                              ("leftUpperLeg", (1, 0, 0), 1), ("rightUpperLeg", (1, 0, 0), -1),
                              ("leftLowerArm", (0, 1, 0), -1), ("spine", (0, 1, 0), 1)):
        rotations[:, names.index(joint)] = quat.from_axis_angle(np.array(axis, dtype=float), sign * swing)
    root = np.stack([-0.07 + 0.2 * t, 0.95 + 0.02 * np.sin(4 * t), -1.4 - 0.1 * t], axis=1)
    skeleton = Skeleton(names, np.array(parents), offsets)
    return MotionClip(skeleton, 30.0, t, rotations, root, cameras=cameras)


def test_each_calibrated_camera_sees_the_rig_where_its_projection_says(addon, tmp_path):
    from bpy_extras.object_utils import world_to_camera_view

    from inference_server.motion.wire import clip_to_proto
    from keygrip.lens import Lens

    main_thread = import_module(f"{ADDON_MODULE}.main_thread")
    rig_module = import_module(f"{ADDON_MODULE}.rig")
    cameras_module = import_module(f"{ADDON_MODULE}.cameras")
    cameras = calibrated_cameras()
    clip = synthetic_clip(cameras)
    take = tmp_path / "take.keygrip-clip"
    take.write_bytes(clip_to_proto(clip).SerializeToString())
    (tmp_path / "cam_01.mp4").symlink_to(VIDEO)   # beside the clip: cam_01's video; the others missing

    scene = new_scene()
    names, parents, offsets = canonical_skeleton()
    # 1.2 times the clip's size in metres: bones in units of half a metre under an object scaled 0.5.
    rig = rig_module.build_canonical_armature(names, parents, offsets * 2.4, name="Hero")
    rig.location, rig.rotation_euler, rig.scale = (0.8, -0.5, 0.1), (0.0, 0.0, 0.4), (0.5, 0.5, 0.5)
    bpy.context.view_layer.update()
    settings = scene.keygrip
    # The clip's 30 fps, so that scene frame 1 + i is the clip's frame i.
    settings.armature, settings.foot_lock, settings.match_scene = rig, False, "ALWAYS"
    bpy.ops.ed.undo_push(message="the rig")
    objects_before = sorted(o.name for o in bpy.data.objects)
    assert bpy.ops.keygrip.import_bvh(filepath=str(take)) == {"FINISHED"}
    session = main_thread.latest()
    main_thread.drain(timeout=120)
    assert session.state == "succeeded", session.error
    missing = [w for w in session.value.warnings if "was not found" in w]
    assert len(missing) == 3 and "cam_03.mp4" in " ".join(missing)

    _, joints = clip.global_transforms()
    report = {}
    for cam in cameras:
        obj = bpy.data.objects[f"Keygrip camera {cam.name}"]
        assert obj["keygrip"]["source"] == str(take)
        # Looking through this camera: the scene renders its video's frame.
        cameras_module.set_render_size(scene, Lens.from_camera(cam.camera))
        width, height = cam.camera.width, cam.camera.height
        u, v, _ = cam.camera.project(joints)
        errors = []
        for i in range(FRAMES):
            scene.frame_set(1 + i)
            for j, name in enumerate(names):
                x, y, depth = world_to_camera_view(scene, obj, rig.matrix_world @ rig.pose.bones[name].head)
                assert depth > 0.5
                errors.append(np.hypot(x * width - u[i, j], (1.0 - y) * height - v[i, j]))
        report[cam.name] = (float(np.median(errors)), float(np.max(errors)))
        assert np.max(errors) < 0.05, (cam.name, report[cam.name])
    print("rig through each calibrated camera, px (median, max):", report)
    assert scene.camera == bpy.data.objects["Keygrip camera cam_01"]
    (bg,) = scene.camera.data.background_images
    # Scene frame 1 shows the clip's first frame, video frame 2 (frame_offset).
    assert Path(bg.clip.filepath) == tmp_path / "cam_01.mp4" and bg.clip.frame_start == 1 - 2
    assert not bpy.data.objects["Keygrip camera cam_03"].data.background_images

    # Importing again updates the same cameras instead of adding more; each import is one undo step.
    after_first = sorted(o.name for o in bpy.data.objects)
    assert bpy.ops.keygrip.import_bvh(filepath=str(take)) == {"FINISHED"}
    main_thread.drain(timeout=120)
    assert sorted(o.name for o in bpy.data.objects) == after_first
    bpy.ops.ed.undo()
    bpy.ops.ed.undo()
    assert sorted(o.name for o in bpy.data.objects) == objects_before
