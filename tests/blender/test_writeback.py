"""Bulk write-back of animation and rig description, run in the bpy wheel."""

from __future__ import annotations

import json
from importlib import import_module

import bpy
import numpy as np
import pytest
from addon_helpers import ADDON_MODULE, build_character_armature, canonical_skeleton, load_addon

from inference_server.motion import quat
from keygrip import rigs

load_addon()
apply = import_module(f"{ADDON_MODULE}.apply")
axes = import_module(f"{ADDON_MODULE}.axes")
rig = import_module(f"{ADDON_MODULE}.rig")
writeback = import_module(f"{ADDON_MODULE}.writeback")


def sine_clip(frames: int, bones: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(F, B, 4) xyzw rotations swinging each bone about its own axis, and (F, 3) root positions."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(bones, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    t = np.arange(frames)[:, None] / 30.0
    angle = 0.9 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5, bones) * t + rng.uniform(0, 6, bones))
    rotations = quat.from_axis_angle(np.broadcast_to(axis, (frames, bones, 3)), angle)
    root = np.stack([0.3 * np.sin(t[:, 0]), 0.9 + 0.05 * np.cos(3 * t[:, 0]), 0.5 * t[:, 0]], axis=1)
    return rotations, root


def action_fcurves(action: bpy.types.Action) -> list[bpy.types.FCurve]:
    if hasattr(action, "layers"):
        return list(action.layers[0].strips[0].channelbag(action.slots[0]).fcurves)
    return list(action.fcurves)


def curve_values(action: bpy.types.Action, data_path: str, index: int) -> np.ndarray:
    (fc,) = [f for f in action_fcurves(action) if f.data_path == data_path and f.array_index == index]
    co = np.empty(2 * len(fc.keyframe_points), dtype=np.float32)
    fc.keyframe_points.foreach_get("co", co)
    return co.reshape(-1, 2)


def expected_pose(obj: bpy.types.Object, names, rotations_xyzw, locations) -> dict[str, np.ndarray]:
    """Armature-space pose matrices by forward kinematics over the rest matrices (numpy)."""
    out: dict[str, np.ndarray] = {}
    rot = dict(zip(names, rotations_xyzw, strict=True))
    for bone in rig.bones_parent_first(obj.data.bones):
        rest = np.asarray(bone.matrix_local)
        basis = np.eye(4)
        if bone.name in rot:
            basis[:3, :3] = quat.to_matrix(rot[bone.name])
        if bone.name in locations:
            basis[:3, 3] = locations[bone.name]
        local = rest if bone.parent is None else np.linalg.inv(np.asarray(bone.parent.matrix_local)) @ rest
        parent = out[bone.parent.name] if bone.parent else np.eye(4)
        out[bone.name] = parent @ local @ basis
    return out


def evaluated_pose(obj: bpy.types.Object, frame: int) -> dict[str, np.ndarray]:
    bpy.context.scene.frame_set(frame)
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    return {pb.name: np.asarray(pb.matrix) for pb in evaluated.pose.bones}


@pytest.fixture
def canonical_rig(empty_scene):
    names, parents, offsets = canonical_skeleton()
    obj = rig.build_canonical_armature(names, parents, offsets, name="Target")
    return obj, names, offsets


def test_canonical_armature_describes_back_in_y_up_metres(canonical_rig):
    obj, names, offsets = canonical_rig
    heads = np.zeros_like(offsets)
    parents = canonical_skeleton()[1]
    for j, p in enumerate(parents):
        heads[j] = offsets[j] + (heads[p] if p >= 0 else 0)

    desc = rig.describe_armature(obj)
    assert desc.bone_names == names
    assert desc.parents == parents
    np.testing.assert_allclose(desc.heads, heads, atol=1e-5)
    # Blender stores the bones Z-up: the head of "head" is high on Blender's Z.
    assert obj.data.bones["head"].head_local.z == pytest.approx(heads[names.index("head"), 1], abs=1e-5)
    rest = np.array(desc.rest_matrices)
    np.testing.assert_allclose(rest[:, :3, 3], heads, atol=1e-5)
    # Each rest frame's Y axis points along its bone, head to tail, in Y-up space too.
    along = np.array(desc.tails) - np.array(desc.heads)
    along /= np.linalg.norm(along, axis=1, keepdims=True)
    np.testing.assert_allclose(rest[:, :3, 1], along, atol=1e-5)
    # As a rig.json file (what `keygrip retarget --rig` reads) and back.
    again = rigs.RigDescription.from_mapping(json.loads(json.dumps(desc.to_dict())))
    assert again.bone_names == desc.bone_names and again.scale == desc.scale
    np.testing.assert_allclose(again.rest_matrices, desc.rest_matrices)
    np.testing.assert_allclose(again.tails, desc.tails)

    obj.scale = (2.0, 2.0, 2.0)
    bpy.context.view_layer.update()
    np.testing.assert_allclose(rig.describe_armature(obj).heads, 2 * heads, atol=1e-5)


def test_written_pose_matches_input(canonical_rig):
    obj, names, _ = canonical_rig
    obj.location = (1.0, -2.0, 0.5)
    obj.scale = (0.5, 0.5, 0.5)  # armature units are then 0.5 m: root positions must be rescaled
    bpy.context.view_layer.update()
    frames = 90
    rotations, root = sine_clip(frames, len(names))
    # q and -q are the same rotation; flip random samples to check the sign is made continuous.
    flips = np.random.default_rng(3).random((frames, len(names))) < 0.3
    signed = np.where(flips[..., None], -rotations, rotations)

    action = writeback.write_armature_action(
        obj, names, np.arange(frames) / 30.0, signed, "hips", root,
        action_name="Mocap", fps=30.0, frame_start=10,
        provenance={"job_id": "job-42", "options": {"smooth": 0.5}, "server_version": "0.1.0"},
    )
    assert obj.animation_data.action == action
    if hasattr(action, "slots"):
        assert obj.animation_data.action_slot == action.slots[0]
    assert action["keygrip"]["job_id"] == "job-42"
    assert json.loads(action["keygrip"]["options"]) == {"smooth": 0.5}
    assert obj["keygrip"]["action"] == action.name
    assert all(obj.pose.bones[n].rotation_mode == "QUATERNION" for n in names)

    # One key per sample, on frame_start + t * fps.
    spine = curve_values(action, 'pose.bones["spine"].rotation_quaternion', 0)
    np.testing.assert_allclose(spine[:, 0], 10 + np.arange(frames))
    assert len(action_fcurves(action)) == 4 * len(names) + 3

    # Sign continuity: consecutive keys of every bone lie in the same hemisphere.
    for n in names:
        q = np.stack([curve_values(action, f'pose.bones["{n}"].rotation_quaternion', i)[:, 1]
                      for i in range(4)], axis=1)
        assert np.all(np.sum(q[1:] * q[:-1], axis=1) > 0), n

    for k in (0, 37, 89):
        got = evaluated_pose(obj, 10 + k)
        locations = {"hips": writeback.root_locations_to_pose(obj, "hips", root[k:k + 1])[0]}
        want = expected_pose(obj, names, rotations[k], locations)
        for n in names:
            np.testing.assert_allclose(got[n], want[n], atol=2e-5, err_msg=f"{n} at frame {10 + k}")
        # The hips land where the server put them: Y-up metres relative to the armature object.
        head_world = np.asarray(obj.matrix_world @ obj.evaluated_get(
            bpy.context.evaluated_depsgraph_get()).pose.bones["hips"].head)
        np.testing.assert_allclose(head_world - np.asarray(obj.location), axes.vectors_to_blender(root[k]),
                                   atol=1e-5)


def test_second_write_creates_new_action_and_keeps_first(canonical_rig):
    obj, names, _ = canonical_rig
    rotations, _ = sine_clip(30, len(names), seed=1)
    first = writeback.write_armature_action(obj, names, np.arange(30) + 1, rotations)
    first_keys = curve_values(first, 'pose.bones["head"].rotation_quaternion', 2).copy()
    second = writeback.write_armature_action(obj, names, np.arange(30) + 1, rotations[::-1])

    assert second != first and second.name != first.name
    assert obj.animation_data.action == second
    head_w = curve_values(first, 'pose.bones["head"].rotation_quaternion', 2)
    np.testing.assert_array_equal(head_w, first_keys)
    (track,) = obj.animation_data.nla_tracks
    assert track.strips[0].action == first and track.mute
    assert first.users > 0

    third = writeback.write_armature_action(obj, names, np.arange(30) + 1, rotations,
                                            push_previous_to_nla=False)
    assert obj.animation_data.action == third
    assert second.use_fake_user and len(obj.animation_data.nla_tracks) == 1


def test_rigify_metarig(empty_scene):
    import addon_utils  # importable once bpy is: it lives in Blender's scripts/modules

    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    obj = bpy.context.active_object
    names = [b.name for b in obj.pose.bones]
    assert len(names) > 100
    obj.pose.bones["thigh.L"].rotation_mode = "XYZ"
    rotations, root = sine_clip(40, len(names), seed=2)
    writeback.write_armature_action(obj, names, np.arange(40) + 1, rotations, "spine", root)
    for k in (0, 23):
        got = evaluated_pose(obj, 1 + k)
        want = expected_pose(obj, names, rotations[k],
                             {"spine": writeback.root_locations_to_pose(obj, "spine", root[k:k + 1])[0]})
        for n in names:
            np.testing.assert_allclose(got[n], want[n], atol=5e-5, err_msg=f"{n} at frame {1 + k}")
    addon_utils.disable("rigify", default_set=True)


def test_undo_reverts_the_whole_write_back(canonical_rig):
    # Undo works in background mode (memfile undo), although ed.undo's poll says otherwise.
    obj, names, _ = canonical_rig
    obj.pose.bones["spine"].rotation_mode = "XYZ"
    bpy.ops.ed.undo_push(message="before")
    rotations, root = sine_clip(20, len(names))
    writeback.write_armature_action(obj, names, np.arange(20) + 1, rotations, "hips", root)
    bpy.ops.ed.undo_push(message="Keygrip write-back")
    assert len(bpy.data.actions) == 1

    bpy.ops.ed.undo()
    obj = bpy.data.objects["Target"]  # undo reloads the data: old Python references are stale
    assert len(bpy.data.actions) == 0
    assert obj.animation_data is None or obj.animation_data.action is None
    assert obj.pose.bones["spine"].rotation_mode == "XYZ"


def test_shape_keys(empty_scene):
    mesh = bpy.data.meshes.new("Face")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    face = bpy.data.objects.new("Face", mesh)
    bpy.context.scene.collection.objects.link(face)
    face.shape_key_add(name="Basis")
    for name in ("jawOpen", "eyeBlinkLeft", "MouthSmileLeft"):
        face.shape_key_add(name=name, from_mix=False)

    names = ["jawOpen", "eyeBlinkLeft", "mouthSmileLeft", "tongueOut"]
    t = np.arange(50) / 25.0
    weights = np.stack([0.5 + 0.5 * np.sin(3 * t + k) for k in range(4)], axis=1)
    action, missing = writeback.write_shape_key_action(face, names, t, weights, fps=25.0,
                                                       provenance={"job_id": "face-1"})
    assert missing == ["tongueOut"]
    assert action is not None and mesh.shape_keys.animation_data.action == action
    assert action["keygrip"]["job_id"] == "face-1"
    assert json.loads(face["keygrip"]["missing_shape_keys"]) == ["tongueOut"]
    assert "tongueOut" not in mesh.shape_keys.key_blocks  # reported, never created
    for k in (0, 31):
        bpy.context.scene.frame_set(1 + k)
        blocks = mesh.shape_keys.key_blocks
        got = [blocks["jawOpen"].value, blocks["eyeBlinkLeft"].value, blocks["MouthSmileLeft"].value]
        np.testing.assert_allclose(got, weights[k, :3], atol=1e-6)

    bare = bpy.data.objects.new("Bare", bpy.data.meshes.new("Bare"))
    assert writeback.write_shape_key_action(bare, names, t, weights) == (None, names)


def test_rejects_unknown_bones_and_bad_shapes(canonical_rig):
    obj, names, _ = canonical_rig
    with pytest.raises(ValueError, match="no bone"):
        writeback.write_armature_action(obj, ["hips", "tail"], [1, 2], np.tile([0, 0, 0, 1.0], (2, 2, 1)))
    with pytest.raises(ValueError, match="shape"):
        writeback.write_armature_action(obj, names, [1, 2], np.zeros((3, len(names), 4)))
    assert len(bpy.data.actions) == 0


def test_moved_bones_are_keyed_as_the_server_gives_them_under_a_rotating_root(empty_scene):
    """The hips under a root bone that turns and moves: the add-on keys the locations the server gives
    (RigAnimation.locations, against the posed parent) and Blender puts every bone where the server's
    forward kinematics does; no location is rebuilt from the hips position by assuming a still root."""
    from characters import humanoid_bones

    from inference_server.motion.wire import rig_from_proto
    from keygrip.animate import RigAnimation
    from keygrip.tensors import to_tensor
    from keygrip.v1 import animation_pb2

    obj = build_character_armature(humanoid_bones(lambda role: role), "Hero")  # "Root" above the hips
    obj.location = (1.0, 2.0, 0.0)
    obj.scale = (0.5, 0.5, 0.5)
    bpy.context.view_layer.update()
    server_rig = rig_from_proto(rig.describe_armature(obj).to_proto())
    names, root, hips = server_rig.names, server_rig.index("Root"), server_rig.index("hips")
    frames = 24
    t = np.arange(frames) / 24.0
    rotations, _ = sine_clip(frames, len(names), seed=4)
    # The root turns about the vertical and moves; the hips go their own way in the world.
    rotations[:, root] = quat.from_axis_angle(np.array([0.0, 0.0, 1.0]), 0.8 * np.sin(2 * np.pi * t))
    root_location = np.stack([0.2 * t, np.zeros(frames), 0.1 * np.sin(4 * t)], axis=1)
    hips_world = server_rig.heads[hips] + np.stack([0.3 * t, 0.05 * np.sin(6 * t), 0.4 * t], axis=1)
    world, heads = server_rig.forward_kinematics(rotations, {root: root_location})
    locations = {root: root_location,
                 hips: server_rig.location_for(hips, hips_world, world[:, root], heads[:, root])}
    _, want_heads = server_rig.forward_kinematics(rotations, locations)
    np.testing.assert_allclose(want_heads[:, hips], hips_world, atol=1e-9)

    # As the server sends it (inference_server.motion.wire), root motion on "Root".
    message = animation_pb2.RigAnimation(bone_names=names, fps=24.0, root_bone="Root", location_bones=["Root", "hips"])
    message.root_location.CopyFrom(to_tensor(root_location.astype(np.float32)))
    message.root_position.CopyFrom(to_tensor(hips_world.astype(np.float32)))
    message.times.CopyFrom(to_tensor(t))
    message.rotations.CopyFrom(to_tensor(rotations.astype(np.float32)))
    message.locations.CopyFrom(to_tensor(np.stack([locations[root], locations[hips]], axis=1).astype(np.float32)))
    anim = RigAnimation.from_proto(message)
    writeback.write_armature_action(obj, anim.bone_names, np.arange(frames) + 1, anim.rotations,
                                    bone_locations=apply.bone_locations(obj, anim))

    for k in (0, 7, 19):
        bpy.context.scene.frame_set(k + 1)
        posed = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
        for name in ("hips", "head", "leftHand", "rightFoot", "Root"):
            got = np.asarray(obj.matrix_world @ posed.pose.bones[name].head)
            want = np.asarray(obj.location) + axes.vectors_to_blender(want_heads[k, server_rig.index(name)])
            np.testing.assert_allclose(got, want, atol=1e-4, err_msg=f"{name} at frame {k + 1}")
