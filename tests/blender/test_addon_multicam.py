"""A multi-camera take from the panel, through the real add-on and server: two Pose2Sim views and their
Qualisys calibration (the .qca.txt, written as a two-camera keygrip JSON) chosen in the panel's Cameras
source, captured together and put on a new armature, with one camera object per view showing its
video. Through each camera, Blender's own projection puts the rig's joints on MediaPipe's 2D landmarks
of that view. A calibration with more cameras than videos fails with the server's words and leaves the
scene as it was; the write-back is one undo step; the capture is reused onto the artist's own rig; a
cancel leaves the scene as it was and cancels the server's job."""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path

import bpy
import numpy as np
import pytest
from addon_helpers import ADDON_MODULE, cancel_once_capturing, canonical_skeleton, new_scene

addon_utils = import_module("addon_utils")

DATA = Path(__file__).resolve().parents[1] / "data"
QCA = DATA / "pose2sim" / "Calib.qca.txt"
VIDEOS = {"cam01.mp4": DATA / "video" / "pose2sim_cam01.mp4",
          "cam02.mp4": DATA / "video" / "pose2sim_cam02_vp9_audio.mp4"}
FRAMES = 12
# Joints of the canonical skeleton that sit on one MediaPipe Pose landmark each.
OVERLAY_LANDMARKS = {"leftUpperArm": 11, "rightUpperArm": 12, "leftLowerArm": 13, "rightLowerArm": 14,
                     "leftHand": 15, "rightHand": 16, "leftUpperLeg": 23, "rightUpperLeg": 24,
                     "leftLowerLeg": 25, "rightLowerLeg": 26, "leftFoot": 27, "rightFoot": 28}


def run_capture() -> object:
    main_thread = import_module(f"{ADDON_MODULE}.main_thread")
    assert bpy.ops.keygrip.capture() == {"FINISHED"}
    session = main_thread.latest()
    main_thread.drain(timeout=240)
    return session


def landmarks(video: Path) -> np.ndarray:
    """(FRAMES, 33, 2) MediaPipe's pose landmarks of the video's first frames, pixels."""
    from inference_server.jobs.context import NullContext
    from inference_server.mocap.inference import detect

    found = detect(video, start=0, end=FRAMES, workers=1, max_side=640, ctx=NullContext())
    return found.pose_image[..., :2] * np.asarray(found.image_size, dtype=np.float64)


@pytest.fixture(scope="module")
def take(tmp_path_factory) -> tuple[Path, Path]:
    """A folder with the two views (named as the calibration's cameras, cam01 and cam02) and a text
    file, and the .qca's first two cameras as a keygrip JSON calibration."""
    from inference_server.multicam.calibration_files import read_calibration, write_json

    folder = tmp_path_factory.mktemp("take")
    for name, video in VIDEOS.items():
        (folder / name).symlink_to(video)
    (folder / "notes.txt").write_text("not a video")
    return folder, write_json(read_calibration(QCA).cameras[:2], folder.parent / "studio.json")


def test_two_calibrated_cameras_from_the_panel(addon, take):
    from bpy_extras.object_utils import world_to_camera_view

    take, studio = take
    scene = new_scene()
    settings = scene.keygrip
    settings.source = "CAMERAS"
    # Too few videos: refused before anything is sent, saying what to do.
    assert bpy.ops.keygrip.camera_video_add(directory=str(take), files=[{"name": "cam02.mp4"}]) == {"FINISHED"}
    settings.calibration_path = str(studio)
    with pytest.raises(RuntimeError, match="two at least"):
        bpy.ops.keygrip.capture()
    assert bpy.ops.keygrip.camera_video_remove() == {"FINISHED"} and not settings.camera_videos
    # The folder's videos, in name order (not the text file).
    assert bpy.ops.keygrip.camera_videos_folder(directory=str(take)) == {"FINISHED"}
    assert [Path(v.path).name for v in settings.camera_videos] == ["cam01.mp4", "cam02.mp4"]
    settings.frame_start, settings.frame_end, settings.target = 0, FRAMES, "NEW"
    settings.camera_offsets = True   # the trial's views are synchronised: offsets 0, 0
    bpy.ops.ed.undo_push(message="the panel")
    objects_before = sorted(o.name for o in bpy.data.objects)

    # The four-camera calibration for two videos: the job fails as the server words it; nothing is added.
    settings.calibration_path = str(QCA)
    session = run_capture()
    assert session.state == "failed"
    assert "Calib.qca.txt has 4 cameras" in session.error and "2 videos" in session.error, session.error
    assert sorted(o.name for o in bpy.data.objects) == objects_before

    settings.calibration_path = str(studio)
    session = run_capture()
    assert session.state == "succeeded", session.error
    obj = bpy.data.objects[session.value.target]
    assert obj.name == "Keygrip cam01" and obj.type == "ARMATURE"
    record = obj["keygrip"]
    options = json.loads(record["options"])
    assert options["cameras"]["calibration"] == str(studio) and options["cameras"]["frame_offsets"] == [0, 0]
    # The floor: the calibration's unless it does not say where the floor is (a calibration kept says so).
    assert options["cameras"]["floor"] == "auto"
    settings.camera_floor = "feet"
    assert import_module(f"{ADDON_MODULE}.operators").plan_from_panel(bpy.context)[0].cameras.floor == "feet"
    settings.camera_floor = "auto"
    job_id = str(record["capture_job_id"])   # kept as text: undo frees the object's properties
    assert job_id == scene.keygrip.last_capture_job
    # A new armature: the scene takes the take's 60 fps and its frames.
    assert scene.render.fps == 60 and (scene.frame_start, scene.frame_end) == (1, FRAMES)

    report = {}
    for name, video in (("cam01", "cam01.mp4"), ("cam02", "cam02.mp4")):
        camera = bpy.data.objects[f"Keygrip camera {name}"]
        assert camera["keygrip"]["capture_job_id"] == job_id
        (bg,) = camera.data.background_images
        assert Path(bg.clip.filepath) == take / video and bg.clip.frame_start == 1
        if name == "cam01":
            # The first camera is the scene's, with its video's portrait frame (both views are 1080x1920:
            # the render frame holds for the second too).
            assert scene.camera == camera
            assert (scene.render.resolution_x, scene.render.resolution_y) == (1080, 1920)
        seen = landmarks(take / video)
        errors = []
        for i in range(FRAMES):
            scene.frame_set(1 + i)
            for joint, landmark in OVERLAY_LANDMARKS.items():
                x, y, depth = world_to_camera_view(scene, camera, obj.matrix_world @ obj.pose.bones[joint].head)
                assert depth > 0.5
                errors.append(np.hypot(x * 1080 - seen[i, landmark, 0], (1.0 - y) * 1920 - seen[i, landmark, 1]))
        report[name] = float(np.nanmedian(errors))
    print("rig through each calibrated camera against MediaPipe, median px:", report)
    assert max(report.values()) <= 0.02 * 1920, report

    # The whole write-back is one undo step.
    bpy.ops.ed.undo()
    assert sorted(o.name for o in bpy.data.objects) == objects_before

    # Reusing the take's capture onto the artist's own rig (another size): retargeted again, each camera
    # still finds its video in the list.
    names, parents, offsets = canonical_skeleton()
    hero = import_module(f"{ADDON_MODULE}.rig").build_canonical_armature(names, parents, offsets * 1.1, name="Hero")
    settings = bpy.context.scene.keygrip
    settings.reuse_capture, settings.last_capture_job = True, job_id
    settings.target, settings.armature = "SELECTED", hero
    session = run_capture()
    assert session.state == "succeeded", session.error
    assert session.value.target == "Hero" and hero.animation_data.action.name == session.value.animation
    assert not [w for w in session.value.warnings if "not found" in w], session.value.warnings
    for name, video in (("cam01", "cam01.mp4"), ("cam02", "cam02.mp4")):
        (bg,) = bpy.data.objects[f"Keygrip camera {name}"].data.background_images
        assert Path(bg.clip.filepath) == take / video


def test_cancel_leaves_the_scene_unchanged(addon, take, shared_server):
    from keygrip import Client

    main_thread = import_module(f"{ADDON_MODULE}.main_thread")
    folder, studio = take
    new_scene()
    settings = bpy.context.scene.keygrip
    settings.source, settings.calibration_path = "CAMERAS", str(studio)
    assert bpy.ops.keygrip.camera_videos_folder(directory=str(folder)) == {"FINISHED"}
    before = (len(bpy.data.objects), len(bpy.data.actions), len(bpy.data.movieclips), bpy.context.scene.render.fps)
    assert bpy.ops.keygrip.capture() == {"FINISHED"}   # the whole take, offsets from the motion: long enough
    session = main_thread.latest()
    cancel_once_capturing(session, main_thread)
    assert session.state == "cancelled"
    after = (len(bpy.data.objects), len(bpy.data.actions), len(bpy.data.movieclips), bpy.context.scene.render.fps)
    assert after == before
    with Client(shared_server.address) as client:
        job = client.get_job(session.job_ids[-1])
        assert job.type == "multiview_capture" and job.state == "cancelled"
