"""Retargeting a real CMU walk onto CesiumMan, a Rigify metarig (in Blender) and edited rigs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from inference_server.animation import cliptools
from inference_server.animation.gltf_rig import read_gltf_rig
from inference_server.animation.mapping import map_skeleton
from inference_server.animation.retarget import RetargetOptions, leg_length, retarget
from inference_server.animation.rig import Rig
from inference_server.errors import InvalidInput
from inference_server.motion import quat
from inference_server.motion.bvh import read_bvh
from keygrip import humanoid

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def walk():
    # 2.5 s of the walking part keeps the test fast.
    return cliptools.trim(read_bvh(DATA / "bvh" / "cmu_131_01_walk.bvh"), 2.0, 4.5)


@pytest.fixture(scope="module")
def cesium():
    return read_gltf_rig(DATA / "models" / "CesiumMan.glb")


def _segment_angles(clip, result, rig, pairs):
    _, ps = clip.global_transforms()
    _, pt = rig.forward_kinematics(result.rotations, {rig.index(n): v for n, v in result.locations.items()})
    s, t = result.source_map.role_to_bone, result.bone_map.role_to_bone
    out = []
    for a, b in pairs:
        ds = ps[:, clip.skeleton.index(s[b])] - ps[:, clip.skeleton.index(s[a])]
        dt = pt[:, rig.index(t[b])] - pt[:, rig.index(t[a])]
        cos = np.sum(ds * dt, -1) / np.linalg.norm(ds, axis=-1) / np.linalg.norm(dt, axis=-1)
        out.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.stack(out, 1)


LIMBS = [("leftUpperArm", "leftLowerArm"), ("leftLowerArm", "leftHand"), ("rightUpperArm", "rightLowerArm"),
         ("leftUpperLeg", "leftLowerLeg"), ("leftLowerLeg", "leftFoot"), ("rightLowerLeg", "rightFoot"),
         ("leftFoot", "leftToes"), ("spine", "chest"), ("neck", "head")]


def test_cesiumman_directions_and_root(walk, cesium):
    res = retarget(walk, cesium, options=RetargetOptions(foot_lock=False))
    assert res.rotations.shape == (walk.num_frames, 19, 4)
    assert np.allclose(np.linalg.norm(res.rotations, axis=-1), 1.0)
    assert _segment_angles(walk, res, cesium, LIMBS).max() < 2.0
    # Root travel scaled by the leg-length ratio.
    s_idx = {r: walk.skeleton.index(b) for r, b in res.source_map.role_to_bone.items()}
    t_idx = {r: cesium.index(b) for r, b in res.bone_map.role_to_bone.items()}
    ratio = leg_length(cesium.heads, t_idx) / leg_length(walk.skeleton.rest_global()[1], s_idx)
    _, ps = walk.global_transforms()
    # Travel is the source's scaled by leg length; height may shift by a constant that puts the feet
    # where the source's feet touch down (a few mm on this rig).
    np.testing.assert_allclose(res.root_position_world[:, [0, 2]], ps[:, 0, [0, 2]] * ratio, atol=1e-9)
    shift = res.root_position_world[:, 1] - ps[:, 0, 1] * ratio
    assert np.ptp(shift) < 1e-9 and abs(shift[0]) < 0.01
    assert res.root_bone == "Skeleton_torso_joint_1"


def _planted_slide(positions, contacts, foot_index, leg):
    heel = contacts[:, humanoid.CONTACT_NAMES.index("leftHeel")]
    both = heel[1:] & heel[:-1]
    return np.linalg.norm(np.diff(positions[:, foot_index][:, [0, 2]], axis=0), axis=-1)[both].mean() / leg


def test_foot_lock_beats_source_sliding(walk, cesium):
    res = retarget(walk, cesium)
    assert res.contacts[:, 0].sum() > 20  # the walk has heel strikes
    _, pt = cesium.forward_kinematics(res.rotations, {cesium.index(n): v for n, v in res.locations.items()})
    _, ps = walk.global_transforms()
    t_foot = cesium.index(res.bone_map.role_to_bone["leftFoot"])
    s_foot = walk.skeleton.index(res.source_map.role_to_bone["leftFoot"])
    s_idx = {r: walk.skeleton.index(b) for r, b in res.source_map.role_to_bone.items()}
    t_idx = {r: cesium.index(b) for r, b in res.bone_map.role_to_bone.items()}
    target = _planted_slide(pt, res.contacts, t_foot, leg_length(cesium.heads, t_idx))
    source = _planted_slide(ps, res.contacts, s_foot, leg_length(walk.skeleton.rest_global()[1], s_idx))
    assert target < 0.5 * source


def test_round_trip_onto_own_skeleton(walk):
    rig = Rig.from_skeleton(walk.skeleton)
    res = retarget(walk, rig, options=RetargetOptions(foot_lock=False))
    local = quat.multiply(walk.skeleton.rest_rotations[None], res.rotations)
    assert np.degrees(quat.angle_between(local, walk.rotations)).max() < 0.1


def test_blender_pose_matches(walk):
    """Our rotations, keyed as pose_bone.rotation_quaternion on a Rigify metarig, pose Blender's bones
    where our forward kinematics says (so the convention is Blender's)."""
    bpy = pytest.importorskip("bpy")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from blender_rig import rig_from_armature, rigify_metarig

    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm = rigify_metarig()
    rig = rig_from_armature(arm)
    res = retarget(walk, rig)
    frame = 100
    for b, name in enumerate(rig.names):
        pb = arm.pose.bones[name]
        pb.rotation_mode = "QUATERNION"
        x, y, z, w = res.rotations[frame, b]
        pb.rotation_quaternion = (w, x, y, z)
        if name in res.locations:
            pb.location = res.locations[name][frame]
    bpy.context.view_layer.update()
    _, heads = rig.forward_kinematics(res.rotations[frame:frame + 1],
                                      {rig.index(n): v[frame:frame + 1] for n, v in res.locations.items()})
    for name in ("hand.L", "foot.R", "spine.006", "f_index.03.L"):
        h = arm.pose.bones[name].head
        np.testing.assert_allclose([h.x, h.z, -h.y], heads[0, rig.index(name)], atol=1e-4)


def test_root_modes(walk, cesium):
    hips = retarget(walk, cesium, options=RetargetOptions(foot_lock=False))
    in_place = retarget(walk, cesium, options=RetargetOptions(root_motion="in_place", foot_lock=False))
    assert np.ptp(in_place.root_position_world[:, [0, 2]], axis=0).max() < 1e-9
    np.testing.assert_allclose(in_place.root_position_world[:, 1], hips.root_position_world[:, 1], atol=0.005)
    keep = retarget(walk, cesium, options=RetargetOptions(root_motion="keep", foot_lock=False))
    np.testing.assert_allclose(keep.root_position_world[:, [0, 2]], walk.global_transforms()[1][:, 0, [0, 2]],
                               atol=1e-9)
    # A rig with a root bone above the hips carries the travel on that bone.
    n = cesium.num_bones
    mats = np.concatenate([np.eye(4)[None], cesium.rest_matrices])
    rooted = Rig(["root"] + cesium.names, np.concatenate([[-1], np.where(cesium.parents < 0, 0, cesium.parents + 1)]),
                 mats)
    on_root = retarget(walk, rooted, options=RetargetOptions(root_motion="root_bone", foot_lock=False))
    assert on_root.root_bone == "root" and rooted.num_bones == n + 1
    assert np.abs(on_root.root_location[:, 1]).max() < 1e-9
    np.testing.assert_allclose(on_root.root_position_world, hips.root_position_world, atol=1e-9)
    # On the wire every moved bone comes with its location (the hips under the moving root too), and
    # they alone put the hips where the server did: a host rebuilds nothing.
    from inference_server.motion.wire import rig_animation_to_proto
    from keygrip.animate import RigAnimation

    anim = RigAnimation.from_proto(rig_animation_to_proto(on_root))
    hips_name = next(n for n, r in on_root.bone_map.bone_to_role.items() if r == "hips")
    assert set(anim.locations) == {"root", hips_name} == set(on_root.locations)
    _, heads = rooted.forward_kinematics(anim.rotations.astype(np.float64),
                                         {rooted.index(n): v.astype(np.float64) for n, v in anim.locations.items()})
    np.testing.assert_allclose(heads[:, rooted.index(hips_name)], on_root.root_position_world, atol=1e-4)
    with pytest.raises(InvalidInput):
        retarget(walk, cesium, options=RetargetOptions(root_motion="fly"))


def test_missing_fingers_and_neck_is_partial_with_warning(walk, cesium):
    # CesiumMan has no fingers; drop its neck too: the head then hangs off the chest.
    keep = [i for i, n in enumerate(cesium.names) if n != "Skeleton_neck_joint_1"]
    parents = cesium.parents.copy()
    parents[cesium.index("Skeleton_neck_joint_2")] = cesium.index("torso_joint_3")
    remap = {old: new for new, old in enumerate(keep)}
    rig = Rig([cesium.names[i] for i in keep], [remap.get(int(parents[i]), -1) for i in keep],
              cesium.rest_matrices[keep])
    res = retarget(walk, rig, options=RetargetOptions(foot_lock=False))
    assert any("no neck" in w for w in res.warnings)
    assert _segment_angles(walk, res, rig, LIMBS[:-1]).max() < 2.0
    # The source side missing a mapped role: a BVH without its thumbs onto a rig that has them.
    smap = map_skeleton(walk.skeleton)
    reduced = {b: r for b, r in smap.bone_to_role.items() if "Thumb" not in r}
    own = Rig.from_skeleton(walk.skeleton)
    res2 = retarget(walk, own, source_map=type(smap).from_roles(walk.skeleton.names, reduced),
                    options=RetargetOptions(foot_lock=False, copy_unmapped_by_name=False))
    assert any("no fingers" in w for w in res2.warnings)


def test_non_uniform_scale_warns_and_still_retargets(walk, cesium):
    mats = cesium.rest_matrices.copy()
    b = cesium.index("leg_joint_L_2")
    mats[b, :3, :3] = mats[b, :3, :3] @ np.diag([1.0, 2.0, 1.0])
    with pytest.warns(UserWarning, match="non-uniform scale"):
        rig = Rig(cesium.names, cesium.parents, mats)
    np.testing.assert_allclose(rig.rest_rotations, cesium.rest_rotations, atol=1e-9)
    res = retarget(walk, rig, options=RetargetOptions(foot_lock=False))
    assert any("non-uniform" in w for w in res.warnings)
    assert _segment_angles(walk, res, rig, LIMBS).max() < 2.0


def test_degenerate_and_cyclic_rigs_are_invalid(cesium):
    mats = cesium.rest_matrices.copy()
    mats[3, :3, 0] *= -1.0  # mirrored
    with pytest.raises(InvalidInput, match="mirrored"):
        Rig(cesium.names, cesium.parents, mats)
    parents = cesium.parents.copy()
    parents[0] = 5
    with pytest.raises(InvalidInput, match="cycle"):
        Rig(cesium.names, parents, cesium.rest_matrices)


def test_zero_length_bones_warn_and_still_retarget(walk, cesium):
    mats = cesium.rest_matrices.copy()
    # Collapse the left lower arm onto the upper arm's head: a zero-length upper arm.
    upper, lower = cesium.index("Skeleton_arm_joint_L__4_"), cesium.index("Skeleton_arm_joint_L__3_")
    mats[lower, :3, 3] = mats[upper, :3, 3]
    tails = np.array(mats[:, :3, 3])
    with pytest.warns(UserWarning, match="zero length"):
        rig = Rig(cesium.names, cesium.parents, mats, tails=tails)
    res = retarget(walk, rig, options=RetargetOptions(foot_lock=False))
    assert any("zero-length" in w for w in res.warnings)
    assert np.all(np.isfinite(res.rotations))
    assert _segment_angles(walk, res, rig, LIMBS[3:]).max() < 2.0


def test_face_curves_follow_mapping(walk, cesium):
    clip = cliptools.trim(walk, 0.0, 0.5)
    names = humanoid.ARKIT_BLENDSHAPES[:3]
    clip.face_names = list(names)
    clip.face_curves = np.linspace(0, 1, clip.num_frames * 3, dtype=np.float32).reshape(-1, 3)
    res = retarget(clip, cesium, options=RetargetOptions(
        foot_lock=False, face_mapping={names[0]: "Blink_L"}, face_shape_keys=["Blink_L", names[2]]))
    assert res.face_names == ["Blink_L", names[2]]
    np.testing.assert_array_equal(res.face_curves, clip.face_curves[:, [0, 2]])
    assert any("face curves" in w for w in res.warnings)


def test_clip_tools(walk, tmp_path):
    half = cliptools.resample(walk, 60.0)
    assert half.fps == 60.0 and abs(half.num_frames - (walk.num_frames - 1) / 2 - 1) <= 1
    # Every other 120 fps frame is a 60 fps frame (the file's frame time .0083333 drifts a little).
    assert np.degrees(quat.angle_between(half.rotations, walk.rotations[::2][:half.num_frames])).max() < 0.05
    # Smoothing a noisy copy brings it back near the clean clip, without lag (zero phase).
    noisy = cliptools.trim(walk, 0.0, 10.0)
    rng = np.random.default_rng(0)
    noisy.root_translation = walk.root_translation + rng.normal(0, 0.01, walk.root_translation.shape)
    noisy.rotations = quat.normalize(walk.rotations + rng.normal(0, 0.01, walk.rotations.shape))
    smooth = cliptools.smooth(noisy, 0.03)
    inner = slice(10, -10)
    assert (np.abs(smooth.root_translation - walk.root_translation)[inner].mean()
            < 0.3 * np.abs(noisy.root_translation - walk.root_translation)[inner].mean())
    assert (quat.angle_between(smooth.rotations, walk.rotations)[inner].mean()
            < 0.7 * quat.angle_between(noisy.rotations, walk.rotations)[inner].mean())
    assert np.allclose(np.linalg.norm(smooth.rotations, axis=-1), 1.0)
    cut = cliptools.trim(walk, 0.5, 1.0)
    assert cut.times[0] == 0.0 and cut.num_frames in (60, 61)  # 0.5 s at 120 fps, end inclusive
    with pytest.raises(InvalidInput):
        cliptools.trim(walk, 50.0, 60.0)
    fixed = cliptools.remove_foot_sliding(walk)
    heel = fixed.contacts[:, 0]
    foot = walk.skeleton.index("LeftAnkle")
    before = _planted_slide(walk.global_transforms()[1], fixed.contacts, foot, 1.0)
    after = _planted_slide(fixed.global_transforms()[1], fixed.contacts, foot, 1.0)
    assert heel.sum() > 20 and after < 0.5 * before
    out = tmp_path / "fixed.bvh"
    cliptools.export_bvh(fixed, out)
    assert read_bvh(out).num_frames == walk.num_frames


def test_cameras_move_with_the_motion(walk):
    """A clip's camera, carried through the retarget onto a rig 1.3 times its size, sees each rig joint
    where the source camera saw the source joint (the travel is scaled and lifted, so is the camera);
    trimming moves its first video frame; in place there is no camera to keep."""
    from inference_server.motion.wire import rig_animation_to_proto
    from keygrip.animate import RigAnimation
    from keygrip.projection import Camera, VideoCamera

    _, src = walk.global_transforms()
    eye = np.eye(4)
    eye[:3, 3] = src[:, 0].mean(axis=0) + (0.5, 0.6, 7.0)  # in front of the walk, a little above and aside
    camera = VideoCamera("cam", Camera(width=1280, height=720, focal_x=1500.0, focal_y=1490.0, center_x=650.0,
                                       center_y=350.0, camera_to_world=eye), video="walk.mp4", frame_offset=3)
    clip = cliptools.trim(walk, 0.0, 1.0)
    clip.cameras = [camera]
    rig = Rig.from_skeleton(walk.skeleton, scale=1.3)
    res = retarget(clip, rig, options=RetargetOptions(foot_lock=False))
    anim = RigAnimation.from_proto(rig_animation_to_proto(res))
    (moved,) = anim.cameras
    assert (moved.name, moved.video, moved.frame_offset) == ("cam", "walk.mp4", 3)
    _, heads = rig.forward_kinematics(res.rotations, {rig.index(n): v for n, v in res.locations.items()})
    _, src = clip.global_transforms()
    joints = [rig.index(n) for n in walk.skeleton.names]
    u, v, depth = moved.camera.project(heads[:, joints])
    u0, v0, _ = camera.camera.project(src)
    assert np.all(depth > 0)
    assert np.abs(np.stack([u - u0, v - v0])).max() < 0.5  # pixels
    np.testing.assert_allclose(moved.camera.position[[0, 2]], 1.3 * camera.camera.position[[0, 2]], atol=1e-9)

    later = cliptools.trim(clip, clip.times[10], clip.times[-1])
    assert later.cameras[0].frame_offset == 13
    in_place = retarget(clip, rig, options=RetargetOptions(root_motion="in_place", foot_lock=False))
    assert in_place.cameras == [] and any("cameras are left out" in w for w in in_place.warnings)
