"""The add-on end to end, in the bpy wheel against a real server: what an artist clicks.

One real capture of the bundled clip per module; the other targets reuse that capture through the
retarget path ("Reuse last capture"), as an artist retargeting one take onto several rigs would.
Background mode has no event loop, so main_thread.drain() plays the bpy.app.timers tick.
"""

from __future__ import annotations

import socket
from importlib import import_module
from pathlib import Path

import bpy
import numpy as np
import pytest
from addon_helpers import ADDON_MODULE, cancel_once_capturing, enable_addon, new_scene, prefs

from keygrip import humanoid

# Blender's scripts/modules (addon_utils) are importable only once bpy is.
addon_utils = import_module("addon_utils")

DATA = Path(__file__).resolve().parents[1] / "data"
VIDEO = DATA / "video" / "pose2sim_cam01.mp4"
BVH = DATA / "bvh" / "cmu_131_01_walk.bvh"


def run_capture(**panel) -> object:
    """Set the panel, click Capture, drain like the timer would; the finished session."""
    main_thread = import_module(f"{ADDON_MODULE}.main_thread")
    settings = bpy.context.scene.keygrip
    for key, value in panel.items():
        setattr(settings, key, value)
    assert bpy.ops.keygrip.capture() == {"FINISHED"}
    session = main_thread.latest()
    main_thread.drain(timeout=240)
    return session


def world_heads(obj, bone: str, frames) -> np.ndarray:
    out = []
    for f in frames:
        bpy.context.scene.frame_set(int(f))
        out.append(np.asarray(obj.matrix_world @ obj.pose.bones[bone].head))
    return np.array(out)


def key_frames(action) -> np.ndarray:
    fcurves = (action.layers[0].strips[0].channelbag(action.slots[0]).fcurves
               if hasattr(action, "layers") else action.fcurves)
    points = fcurves[0].keyframe_points
    co = np.empty(2 * len(points), dtype=np.float32)
    points.foreach_get("co", co)
    return co[0::2]


def check_motion(obj, action, contacts, hand: str, foot: str, toes: str) -> dict:
    """Keys on frames 1..F and a moving wrist; the left foot's heights on the capture's contact frames."""
    frames = 1 + np.arange(len(contacts))
    np.testing.assert_allclose(key_frames(action), frames)
    assert obj.animation_data.action == action
    wrist = world_heads(obj, hand, frames)
    path = float(np.linalg.norm(np.diff(wrist, axis=0), axis=1).sum())
    assert path > 0.2, f"the wrist barely moves ({path:.3f} m)"
    names = humanoid.CONTACT_NAMES
    heel = contacts[:, names.index("leftHeel")] > 0
    ball = contacts[:, names.index("leftToes")] > 0
    assert heel.any() and ball.any(), "the clip should have left-foot contacts"
    ankle_z = world_heads(obj, foot, frames[heel])[:, 2]
    ball_z = world_heads(obj, toes, frames[ball])[:, 2]
    rest = obj.matrix_world @ obj.data.bones[foot].head_local - obj.matrix_world @ obj.data.bones[toes].head_local
    stats = {"wrist_path_m": path, "ankle_z": (float(ankle_z.min()), float(ankle_z.max())),
             "ball_z": (float(ball_z.min()), float(ball_z.max())), "rest_ankle_over_ball": rest.z}
    print(obj.name, stats)
    return stats


def assert_feet_on_floor(stats: dict, tol: float) -> None:
    """On contact frames the ball of the foot is on the floor (z = 0), the ankle at most its rest height
    above the ball higher."""
    lo, hi = stats["ball_z"]
    assert -tol < lo and hi < tol, stats
    lo, hi = stats["ankle_z"]
    assert lo > 0.0 and hi < stats["rest_ankle_over_ball"] + tol, stats


@pytest.fixture(scope="module")
def capture(addon, shared_server):
    """The one real capture: the bundled clip onto a new canonical armature."""
    from keygrip import Client
    from keygrip.tensors import from_tensor

    new_scene()
    session = run_capture(video_path=str(VIDEO), target="NEW")
    assert session.state == "succeeded", session.error
    scene = bpy.context.scene
    with Client(shared_server.address) as client:
        job = client.get_job(scene.keygrip.last_capture_job)
        clip = client.read_clip(job.result().clip)
    rig_module = import_module(f"{ADDON_MODULE}.rig")
    canonical = rig_module.describe_armature(bpy.data.objects[session.value.target])
    return {"session": session, "job_id": job.id, "contacts": from_tensor(clip.contacts),
            "frames": len(from_tensor(clip.times)), "canonical": canonical}


def test_capture_onto_new_armature(capture):
    import json

    session = capture["session"]
    scene = bpy.context.scene  # the capture fixture's scene: this test must run first
    obj = bpy.data.objects[session.value.target]
    action = bpy.data.actions[session.value.animation]
    assert capture["frames"] == 100
    # A new armature: the scene takes the clip's rate and exactly its frames.
    assert scene.render.fps == 60 and (scene.frame_start, scene.frame_end) == (1, 100)
    assert_feet_on_floor(check_motion(obj, action, capture["contacts"], "leftHand", "leftFoot", "leftToes"), 0.12)
    record = obj["keygrip"]
    assert record["capture_job_id"] == capture["job_id"] and record["retarget_job_id"]
    assert record["server_version"] and json.loads(record["options"])["capture"]["smoothing"] == 0.5
    assert action["keygrip"]["bvh_artifact_id"] == record["bvh_artifact_id"]
    # The video is the camera's background, aligned so that scene frame 1 shows video frame 0.
    (bg,) = scene.camera.data.background_images
    assert bg.source == "MOVIE_CLIP" and Path(bg.clip.filepath) == VIDEO and bg.clip.frame_start == 1


# Joints of the canonical skeleton that sit on one MediaPipe Pose landmark each.
OVERLAY_LANDMARKS = {"leftUpperArm": 11, "rightUpperArm": 12, "leftLowerArm": 13, "rightLowerArm": 14,
                     "leftHand": 15, "rightHand": 16, "leftUpperLeg": 23, "rightUpperLeg": 24,
                     "leftLowerLeg": 25, "rightLowerLeg": 26, "leftFoot": 27, "rightFoot": 28}


def test_through_the_capture_camera_the_rig_lies_on_the_person(capture, shared_server, tmp_path):
    """The capture fixture's scene (run right after test_capture_onto_new_armature): looking through the
    camera the capture made, with Blender's own projection, the rig's joints land on MediaPipe's 2D
    landmarks of the same frames, median within 2% of the image height."""
    from bpy_extras.object_utils import world_to_camera_view

    from keygrip import Client

    scene = bpy.context.scene
    obj = bpy.data.objects[capture["session"].value.target]
    camera = scene.camera
    assert camera.name.startswith("Keygrip camera") and camera["keygrip"]["capture_job_id"] == capture["job_id"]
    with Client(shared_server.address) as client:
        result = client.get_job(capture["job_id"]).result()
        client.download(result.landmarks.id, tmp_path / "landmarks.npz")
        (clip_camera,) = client.read_clip(result.clip).cameras
    # The clip names the uploaded video as the artist knows it, and its first frame.
    assert (clip_camera.name, clip_camera.video, clip_camera.frame_offset) == (VIDEO.stem, VIDEO.name, 0)
    with np.load(tmp_path / "landmarks.npz") as npz:
        image, (width, height) = npz["pose_image"], npz["image_size"]
    # The render frame is the video's: a portrait 1080x1920, square pixels (not a 1920x1080 default).
    render = scene.render
    assert (render.resolution_x, render.resolution_y, render.resolution_percentage) == (width, height, 100)
    assert render.pixel_aspect_x == render.pixel_aspect_y == 1.0
    errors = []
    for i in range(0, capture["frames"], 3):
        scene.frame_set(1 + i)
        for joint, landmark in OVERLAY_LANDMARKS.items():
            x, y, depth = world_to_camera_view(scene, camera, obj.matrix_world @ obj.pose.bones[joint].head)
            assert depth > 0.5
            seen = image[i, landmark, :2] * (width, height)
            errors.append(np.hypot(x * width - seen[0], (1.0 - y) * height - seen[1]))
    median = float(np.nanmedian(errors))
    print(f"overlay through {camera.name}: median {median:.1f} px = {median / height:.2%} of the height")
    assert median <= 0.02 * height


def test_match_scene_follows_the_option(capture):
    """Matching the scene to the clip (frame rate, frame range, active camera, render size): by default
    only for a new armature; Always and Never as they say. The clip's camera is added either way."""
    rig_module = import_module(f"{ADDON_MODULE}.rig")
    scene = new_scene()
    canonical = capture["canonical"]
    heads = np.asarray(canonical.heads)
    offsets = np.array([heads[j] - (heads[p] if p >= 0 else 0.0) for j, p in enumerate(canonical.parents)])
    rig = rig_module.build_canonical_armature(canonical.bone_names, canonical.parents, offsets, name="Own rig")

    def scene_state() -> tuple:
        render = scene.render
        return (render.fps, scene.frame_start, scene.frame_end, scene.camera, render.resolution_x,
                render.resolution_y)

    before = scene_state()
    assert before == (24, 1, 250, None, 1920, 1080)
    reuse = {"reuse_capture": True, "last_capture_job": capture["job_id"], "video_path": str(VIDEO)}
    # An existing rig, default option: the artist's timing, camera and render size stay; the keys land at
    # its 24 fps; the clip's camera is there to look through.
    session = run_capture(target="SELECTED", armature=rig, **reuse)
    assert session.state == "succeeded", session.error
    assert scene_state() == before
    assert bpy.data.objects[f"Keygrip camera {VIDEO.stem}"].type == "CAMERA"
    assert key_frames(bpy.data.actions[session.value.animation])[-1] == pytest.approx(1 + 99 / 60 * 24, abs=1e-3)
    # A new armature with Never: the same.
    session = run_capture(target="NEW", match_scene="NEVER", **reuse)
    assert session.state == "succeeded", session.error
    assert scene_state() == before
    # Always, from scene frame 1001: the clip's 60 fps and its 100 frames from there, through its camera.
    scene.frame_start = 1001
    session = run_capture(target="SELECTED", armature=rig, match_scene="ALWAYS", **reuse)
    assert session.state == "succeeded", session.error
    assert scene_state() == (60, 1001, 1100, bpy.data.objects[f"Keygrip camera {VIDEO.stem}"], 1080, 1920)
    assert len([o for o in bpy.data.objects if o.type == "CAMERA"]) == 1


def test_retarget_onto_rigify_metarig_and_undo(capture):
    new_scene()
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    metarig = bpy.context.active_object
    bpy.ops.ed.undo_push(message="metarig")
    objects_before = sorted(o.name for o in bpy.data.objects)

    session = run_capture(target="SELECTED", armature=metarig, reuse_capture=True,
                          last_capture_job=capture["job_id"], reference_video=False, match_scene="ALWAYS")
    assert session.state == "succeeded", session.error
    action = bpy.data.actions[session.value.animation]
    check_motion(metarig, action, capture["contacts"], "hand.L", "foot.L", "toe.L")
    assert metarig["keygrip"]["capture_job_id"] == capture["job_id"]

    # One undo step takes the whole write-back away.
    bpy.ops.ed.undo()
    metarig = bpy.data.objects["metarig"]
    assert sorted(o.name for o in bpy.data.objects) == objects_before
    assert metarig.animation_data is None or metarig.animation_data.action is None
    assert "keygrip" not in metarig and len(bpy.data.actions) == 0
    addon_utils.disable("rigify", default_set=True)


def test_rigify_metarig_feet_on_floor(capture):
    new_scene()
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    metarig = bpy.context.active_object
    session = run_capture(target="SELECTED", armature=metarig, reuse_capture=True,
                          last_capture_job=capture["job_id"], reference_video=False, match_scene="ALWAYS")
    addon_utils.disable("rigify", default_set=True)
    action = bpy.data.actions[session.value.animation]
    assert_feet_on_floor(check_motion(metarig, action, capture["contacts"], "hand.L", "foot.L", "toe.L"), 0.12)


_MIXAMO = {"hips": "Hips", "spine": "Spine", "chest": "Spine1", "upperChest": "Spine2", "neck": "Neck",
           "head": "Head", "Shoulder": "Shoulder", "UpperArm": "Arm", "LowerArm": "ForeArm", "Hand": "Hand",
           "UpperLeg": "UpLeg", "LowerLeg": "Leg", "Foot": "Foot", "Toes": "ToeBase"}


def mixamo_name(role: str) -> str:
    for side in ("left", "right"):
        if role.startswith(side):
            return f"mixamorig:{side.capitalize()}{_MIXAMO[role[len(side):]]}"
    return f"mixamorig:{_MIXAMO[role]}"


def build_mixamo_rig(canonical_desc, rig_module) -> bpy.types.Object:
    """A Mixamo-named rig as Mixamo's FBX arrive: centimetre bones under an object scaled 0.01."""
    roles = humanoid.BODY_JOINTS
    heads = np.array(canonical_desc.heads)
    index = [canonical_desc.bone_names.index(r) for r in roles]
    parents = [roles.index(p) if p else -1 for _, p in humanoid.hierarchy(with_fingers=False)]
    offsets = np.array([heads[i] - (heads[index[p]] if p >= 0 else 0) for i, p in zip(index, parents, strict=True)])
    obj = rig_module.build_canonical_armature([mixamo_name(r) for r in roles], parents, offsets * 100,
                                              name="Mixamo")
    obj.scale = (0.01, 0.01, 0.01)
    bpy.context.view_layer.update()
    return obj


def test_retarget_onto_mixamo_rig_with_edited_bone_map_preset(capture, tmp_path):
    from keygrip import rigs

    rig_module = import_module(f"{ADDON_MODULE}.rig")
    main_thread = import_module(f"{ADDON_MODULE}.main_thread")
    new_scene()
    obj = build_mixamo_rig(capture["canonical"], rig_module)
    bpy.context.scene.keygrip.armature = obj

    # Auto-map on the server, then the artist's rows: every bone, its role editable.
    assert bpy.ops.keygrip.map_bones() == {"FINISHED"}
    main_thread.drain(timeout=60)
    rows = {item.bone: item.role for item in obj.keygrip_bone_map}
    assert len(rows) == len(obj.data.bones)
    assert rows["mixamorig:LeftForeArm"] == "leftLowerArm" and rows["mixamorig:Hips"] == "hips"
    # Save as a preset, spoil the map, load the preset back.
    preset = tmp_path / "mixamo.json"
    assert bpy.ops.keygrip.bone_map_save(filepath=str(preset)) == {"FINISHED"}
    obj.keygrip_bone_map[0].role = ""
    assert bpy.ops.keygrip.bone_map_load(filepath=str(preset)) == {"FINISHED"}
    assert {i.bone: i.role for i in obj.keygrip_bone_map} == rows
    assert rigs.load_bone_map_preset(preset)[0]["mixamorig:RightUpLeg"] == "rightUpperLeg"

    session = run_capture(target="SELECTED", reuse_capture=True, last_capture_job=capture["job_id"],
                          reference_video=False, match_scene="ALWAYS")
    assert session.state == "succeeded", session.error
    action = bpy.data.actions[session.value.animation]
    stats = check_motion(obj, action, capture["contacts"], "mixamorig:LeftHand", "mixamorig:LeftFoot",
                         "mixamorig:LeftToeBase")
    assert_feet_on_floor(stats, 0.12)


def test_a_vrm_armature_is_mapped_and_retargeted_from_its_declared_map(capture, shared_server, tmp_path):
    """An avatar whose bone names defeat the guess, imported as Blender imports glTF: with its character
    file set, Auto-map shows the file's declared roles (source and confidence per row), and a retarget
    with no rows at all still maps it from the file."""
    from characters import character_doc, humanoid_bones, vrm1, write_glb

    main_thread = import_module(f"{ADDON_MODULE}.main_thread")
    new_scene()
    bones = humanoid_bones(lambda role: f"jnt{humanoid.ROLES[::-1].index(role):02d}", fingers=True, a_pose=True)
    doc, _, index = character_doc(bones)
    doc["extensions"] = {"VRMC_vrm": vrm1(bones, index)}
    doc["extensionsUsed"] = ["VRMC_vrm"]
    avatar = write_glb(tmp_path / "avatar.vrm", doc)
    bpy.ops.import_scene.gltf(filepath=str(avatar))
    (obj,) = (o for o in bpy.data.objects if o.type == "ARMATURE")
    bpy.context.scene.keygrip.armature = obj
    declared = {b.name: b.role for b in bones if b.role}

    # Without the file the server can only guess from the names and the structure.
    assert bpy.ops.keygrip.map_bones() == {"FINISHED"}
    main_thread.drain(timeout=60)
    guessed = {i.bone: i.role for i in obj.keygrip_bone_map if i.role}
    assert guessed != declared
    assert {i.source for i in obj.keygrip_bone_map if i.role} <= {"NAME", "STRUCTURE"}

    obj.keygrip_character_file = str(avatar)
    assert bpy.ops.keygrip.map_bones() == {"FINISHED"}
    main_thread.drain(timeout=60)
    rows = {i.bone: (i.role, i.source, round(i.confidence, 3)) for i in obj.keygrip_bone_map}
    assert {b: r for b, (r, _, _) in rows.items() if r} == declared
    assert all(rows[b][1:] == ("DECLARED", 1.0) for b in declared)
    obj.keygrip_bone_map[0].role = "hips"   # the artist's edit is marked as theirs
    assert (obj.keygrip_bone_map[0].source, obj.keygrip_bone_map[0].confidence) == ("EDITED", 1.0)

    # No rows: the retarget takes the file's declared map, and the hands end up moving.
    obj.keygrip_bone_map.clear()
    session = run_capture(target="SELECTED", reuse_capture=True, last_capture_job=capture["job_id"],
                          reference_video=False)
    assert session.state == "succeeded", session.error
    action = bpy.data.actions[session.value.animation]
    assert "avatar.vrm" in action["keygrip"]["options"]
    from keygrip import Client

    with Client(shared_server.address) as client:
        result = client.get_job(action["keygrip"]["retarget_job_id"]).result()
    assert {m.bone: m.role for m in result.bone_map.mappings} == declared
    hand = next(b for b, r in declared.items() if r == "leftHand")
    heads = world_heads(obj, hand, key_frames(action)[::10])
    assert np.ptp(heads, axis=0).max() > 0.1


def test_bvh_import_onto_rig_and_export(capture, tmp_path):
    main_thread = import_module(f"{ADDON_MODULE}.main_thread")
    new_scene()
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    metarig = bpy.context.active_object
    bpy.context.scene.keygrip.armature = metarig
    assert bpy.ops.keygrip.import_bvh(filepath=str(BVH)) == {"FINISHED"}
    session = main_thread.latest()
    main_thread.drain(timeout=120)
    assert session.state == "succeeded", session.error
    action = bpy.data.actions[session.value.animation]
    hips = world_heads(metarig, "spine", action.frame_range)
    assert np.linalg.norm(hips[-1] - hips[0]) > 2.0, hips  # CMU 131_01: start, walk, stop
    assert metarig["keygrip"]["source"] == str(BVH) and action["keygrip"]["capture_job_id"] == ""

    out = tmp_path / "retargeted.bvh"
    assert bpy.ops.keygrip.export_bvh(filepath=str(out)) == {"FINISHED"}
    main_thread.drain(timeout=60)
    text = out.read_text()
    assert text.startswith("HIERARCHY") and "spine" in text and "MOTION" in text
    addon_utils.disable("rigify", default_set=True)


def test_find_people_lists_them_with_thumbnails_and_picks_the_subject(addon, shared_server):
    from keygrip import Client
    from keygrip.v1 import mocap_pb2

    main_thread = import_module(f"{ADDON_MODULE}.main_thread")
    previews = import_module(f"{ADDON_MODULE}.previews")
    tasks = import_module(f"{ADDON_MODULE}.tasks")
    new_scene()
    s = bpy.context.scene.keygrip
    s.video_path, s.frame_start, s.frame_end = str(VIDEO), 0, 30
    assert bpy.ops.keygrip.find_people() == {"FINISHED"}
    session = main_thread.latest()
    main_thread.drain(timeout=240)
    assert session.state == "succeeded", session.error
    # The clip: the man balancing in the middle, seen on every frame, and a woman half out of the
    # picture at its left edge; each listed with a thumbnail.
    assert [p.person_id for p in s.people] == [1, 2] and s.people_video == str(VIDEO)
    man, woman = s.people
    assert (man.first_frame, man.last_frame, man.visible) == (0, 29, pytest.approx(1.0))
    assert 0 < woman.visible < 1.0
    for person in (man, woman):  # loaded into the panel's previews (icon ids are 0 without a UI)
        assert tasks.person_key(bpy.context.scene.name, person.person_id) in previews.latest
    assert bpy.ops.keygrip.use_person(person_id=1) == {"FINISHED"}
    assert s.subject == "1"
    operators = import_module(f"{ADDON_MODULE}.operators")
    plan = operators.plan_from_panel(bpy.context)[0]
    # The capture follows the person picked in the list, along the tracks the list was made from.
    first_tracks = plan.capture.people_tracks
    assert plan.capture.subject == "1" and len(first_tracks) == 64
    with Client(shared_server.address) as client:
        tracks = mocap_pb2.PeopleTracks.FromString(client.download_bytes(first_tracks))
    assert [p.id for p in tracks.people] == [1, 2] and (tracks.start, tracks.end) == (0, 30)
    # Over other frames the list's tracks do not hold: the capture looks for the people itself.
    s.frame_end = 20
    assert operators.plan_from_panel(bpy.context)[0].capture.people_tracks == ""
    # Finding people again (a new range) replaces the list instead of adding to it.
    assert bpy.ops.keygrip.find_people() == {"FINISHED"}
    main_thread.drain(timeout=240)
    assert [p.person_id for p in s.people] == [1, 2] and s.people[0].last_frame == 19
    assert operators.plan_from_panel(bpy.context)[0].capture.people_tracks not in ("", first_tracks)


def test_cancel_leaves_the_scene_unchanged(addon, shared_server):
    from keygrip import Client

    main_thread = import_module(f"{ADDON_MODULE}.main_thread")
    new_scene()
    bpy.context.scene.keygrip.video_path = str(VIDEO)
    before = (len(bpy.data.objects), len(bpy.data.actions), len(bpy.data.movieclips), bpy.context.scene.render.fps)
    assert bpy.ops.keygrip.capture() == {"FINISHED"}
    session = main_thread.latest()
    cancel_once_capturing(session, main_thread)
    assert session.state == "cancelled" and session.error == "cancelled"
    after = (len(bpy.data.objects), len(bpy.data.actions), len(bpy.data.movieclips), bpy.context.scene.render.fps)
    assert after == before
    with Client(shared_server.address) as client:
        assert client.get_job(session.job_ids[-1]).state == "cancelled"


def test_dead_server_gives_a_clear_report(addon, shared_server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound but not listening for the whole test: nothing answers there
        port = s.getsockname()[1]
        new_scene()
        prefs().server_address = f"127.0.0.1:{port}"
        try:
            session = run_capture(video_path=str(VIDEO))
        finally:
            prefs().server_address = shared_server.address
    assert session.state == "failed"
    assert f"server not reachable at 127.0.0.1:{port}" in session.error
    assert "python -m inference_server" in session.error and "Start a local server" in session.error
    assert len(bpy.data.objects) == 0


def test_unregister_leaves_no_handlers_or_timers(addon, shared_server):
    main_thread = import_module(f"{ADDON_MODULE}.main_thread")
    handlers = {n: len(getattr(bpy.app.handlers, n)) for n in dir(bpy.app.handlers)
                if isinstance(getattr(bpy.app.handlers, n), list)}
    new_scene()
    bpy.context.scene.keygrip.video_path = str(VIDEO)
    # Quit mid-job: the job is cancelled, the timer goes, the types go.
    assert bpy.ops.keygrip.capture() == {"FINISHED"}
    assert bpy.app.timers.is_registered(main_thread.tick)
    addon_utils.disable(ADDON_MODULE, default_set=True)
    assert not bpy.app.timers.is_registered(main_thread.tick)
    assert main_thread.sessions() == [] and main_thread.listeners == []
    assert not hasattr(bpy.types.Scene, "keygrip") and not hasattr(bpy.types, "KEYGRIP_PT_main")
    assert not hasattr(bpy.types, "KEYGRIP_OT_capture")
    assert {n: len(getattr(bpy.app.handlers, n)) for n in handlers} == handlers
    enable_addon()
    prefs().server_address = shared_server.address


def test_capture_chosen_people_onto_a_rig_each_in_one_undo_step(addon, shared_server):
    from keygrip import Client

    main_thread = import_module(f"{ADDON_MODULE}.main_thread")
    new_scene()
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    metarig = bpy.context.active_object
    s = bpy.context.scene.keygrip
    # The panel's target is the selected rig; each person goes onto the rig picked for them instead.
    s.video_path, s.frame_start, s.frame_end, s.target = str(VIDEO), 0, 30, "SELECTED"
    assert bpy.ops.keygrip.find_people() == {"FINISHED"}
    main_thread.drain(timeout=240)
    assert [p.person_id for p in s.people] == [1, 2]
    for person in s.people:
        person.chosen = True
    # Two people onto one rig: refused, nothing runs.
    s.people[0].armature = s.people[1].armature = metarig
    with pytest.raises(RuntimeError, match="persons 1 and 2 both go onto metarig"):
        bpy.ops.keygrip.capture_people()
    s.people[1].armature = None  # person 1 onto the metarig, person 2 onto a new armature
    bpy.ops.ed.undo_push(message="people ticked")
    objects_before = sorted(o.name for o in bpy.data.objects)
    assert bpy.ops.keygrip.capture_people() == {"FINISHED"}
    session = main_thread.latest()
    main_thread.drain(timeout=600)
    assert session.state == "succeeded", session.error
    made = {o.name: o for o in bpy.data.objects if o.type == "ARMATURE" and o.name != "metarig"}
    # The man balancing is captured onto the metarig; the woman half out of the picture is captured
    # too, or named as not captured (the pose model may find nobody in her box), never dropped
    # without a word.
    skipped = [w for w in session.value.warnings if "was not captured" in w]
    assert set(made) <= {f"Keygrip {VIDEO.stem} person 2"} and len(made) + len(skipped) == 1, (list(made), skipped)
    assert "person 1" in metarig.animation_data.action.name
    with Client(shared_server.address) as client:
        assert client.get_job(metarig["keygrip"]["capture_job_id"]).result().subject_id == 1
        for name, obj in made.items():
            assert obj.animation_data.action is not None
            result = client.get_job(obj["keygrip"]["capture_job_id"]).result()
            # Each one is the person of its name, taken along the tracks Find People listed.
            assert f"person {result.subject_id}" in name and result.summary.stage_seconds["people"] == 0
    # One undo step takes every armature, action and camera away, and the metarig's animation.
    bpy.ops.ed.undo()
    metarig = bpy.data.objects["metarig"]
    assert sorted(o.name for o in bpy.data.objects) == objects_before
    assert metarig.animation_data is None or metarig.animation_data.action is None
    addon_utils.disable("rigify", default_set=True)
    # Over other frames the ticked ids no longer name those people: refused, nothing runs.
    s = bpy.context.scene.keygrip
    s.frame_end = 20
    with pytest.raises(RuntimeError, match="found in another video or frame range: find people again"):
        bpy.ops.keygrip.capture_people()
