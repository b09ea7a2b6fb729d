"""An animated glTF character written by Keygrip, read back by Blender's own glTF importer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from addon_helpers import build_character_armature
from characters import character_doc, humanoid_bones, write_glb  # tests/characters.py

from inference_server.animation import cliptools
from inference_server.animation.gltf_write import animate_glb
from inference_server.animation.mapping import resolve_map
from inference_server.animation.retarget import RetargetOptions, retarget
from inference_server.animation.rig_files import read_rig_file
from inference_server.motion.bvh import read_bvh

BVH = Path(__file__).resolve().parents[1] / "data" / "bvh" / "cmu_131_01_walk.bvh"


def test_blender_imports_the_animated_glb_with_the_bones_where_we_put_them(empty_scene, tmp_path: Path) -> None:
    import bpy

    bones = humanoid_bones(lambda role: f"Bone_{role}", fingers=True)
    rig_path = write_glb(tmp_path / "hero.glb", character_doc(bones, seed=5)[0])
    character = read_rig_file(rig_path, rig_path.name)
    clip = cliptools.trim(read_bvh(BVH), 2.0, 2.5)
    result = retarget(clip, character.rig, resolve_map(character.rig), options=RetargetOptions(foot_lock=False))
    out = tmp_path / "hero_take.glb"
    out.write_bytes(animate_glb(rig_path.read_bytes(), rig_path.name, character, result))

    bpy.ops.import_scene.gltf(filepath=str(out))
    armature = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    mesh = next(o for o in bpy.data.objects if o.type == "MESH")
    assert len(mesh.data.vertices) == 3 * len(bones)
    assert armature.animation_data and armature.animation_data.action
    rig = character.rig
    _, heads = rig.forward_kinematics(result.rotations, {rig.index(n): v for n, v in result.locations.items()})
    scene = bpy.context.scene
    fps = scene.render.fps / scene.render.fps_base
    # The importer puts key time t at scene frame t * fps: compare on the scene frames that fall on keys.
    keys = result.times - result.times[0]
    compared = 0
    for scene_frame in range(int(keys[-1] * fps) + 1):
        frame = int(np.argmin(np.abs(keys - scene_frame / fps)))
        if abs(keys[frame] - scene_frame / fps) > 1e-4:   # CMU frame times are 0.008333 s, not 1/120
            continue
        scene.frame_set(scene_frame)
        compared += 1
        for name in ("Bone_leftHand", "Bone_rightFoot", "Bone_head", "Bone_hips", "Bone_leftIndexDistal"):
            blender = armature.matrix_world @ armature.pose.bones[name].head
            ours = heads[frame, rig.index(name)]
            # Blender is Z-up: (x, y, z) in glTF is (x, -z, y) there.
            assert np.allclose([blender.x, blender.y, blender.z], [ours[0], -ours[2], ours[1]], atol=1e-3), name
    assert compared >= 10


def test_an_fbx_character_made_in_blender_round_trips_with_its_animation(empty_scene, tmp_path: Path) -> None:
    import bpy
    from characters import humanoid_bones

    from inference_server.animation.rig_files import animated_file
    from inference_server.store.artifacts import ArtifactStore
    from keygrip.v1 import animation_pb2

    # Unusual names, helper bones (twists, a root above the hips), an A-pose.
    bones = humanoid_bones(lambda role: f"mx_{role[::-1]}", a_pose=True)
    build_character_armature(bones, "Hero")
    fbx_path, glb_path = tmp_path / "hero.fbx", tmp_path / "hero_blender.glb"
    bpy.ops.export_scene.fbx(filepath=str(fbx_path), add_leaf_bones=False)
    bpy.ops.export_scene.gltf(filepath=str(glb_path), export_format="GLB", export_animations=False)

    # Read on the server side (Blender in a child process): the rig the glTF path reads from the same scene.
    character = read_rig_file(fbx_path, fbx_path.name)
    from_gltf = read_rig_file(glb_path, glb_path.name)
    assert character.name == "Hero" and sorted(character.rig.names) == sorted(b.name for b in bones)
    assert character.rig.names == from_gltf.rig.names
    assert np.array_equal(character.rig.parents, from_gltf.rig.parents)
    assert np.allclose(character.rig.rest_matrices, from_gltf.rig.rest_matrices, atol=1e-5)
    for b in bones:
        assert np.allclose(character.rig.heads[character.rig.index(b.name)], b.head, atol=1e-4), b.name

    rig = character.rig
    clip = cliptools.trim(read_bvh(BVH), 2.0, 2.5)
    # Reversed names defeat the guess: the roles come as a preset, as a TD would give them.
    bone_map = resolve_map(rig, preset={b.name: b.role for b in bones if b.role})
    result = retarget(clip, rig, bone_map, options=RetargetOptions(foot_lock=False))
    rig_file = animation_pb2.RigFile(path=str(fbx_path), name="hero.fbx")
    data, name, _ = animated_file(rig_file, ArtifactStore(tmp_path / "store"), character, result, "fbx")
    assert name == "hero_animated.fbx"
    out = tmp_path / name
    out.write_bytes(data)

    # Blender's FBX importer reads it back: the mesh, and the bones posed where the retarget put them.
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(out))
    (armature,) = (o for o in bpy.data.objects if o.type == "ARMATURE")
    (mesh,) = (o for o in bpy.data.objects if o.type == "MESH")  # the body alone: no importer helpers
    assert len(mesh.data.polygons) == len(bones)
    assert armature.animation_data and armature.animation_data.action
    _, heads = rig.forward_kinematics(result.rotations, {rig.index(n): v for n, v in result.locations.items()})
    scene = bpy.context.scene
    fps = scene.render.fps / scene.render.fps_base
    keys = result.times - result.times[0]
    start = int(armature.animation_data.action.frame_range[0])
    compared = 0
    for scene_frame in range(int(keys[-1] * fps) + 1):
        frame = int(np.argmin(np.abs(keys - scene_frame / fps)))
        if abs(keys[frame] - scene_frame / fps) > 1e-4:
            continue
        scene.frame_set(start + scene_frame)
        compared += 1
        for bone in ("leftHand", "rightFoot", "head", "hips", "leftLowerLeg"):
            bone_name = f"mx_{bone[::-1]}"
            blender = armature.matrix_world @ armature.pose.bones[bone_name].head
            ours = heads[frame, rig.index(bone_name)]
            assert np.allclose([blender.x, blender.y, blender.z], [ours[0], -ours[2], ours[1]], atol=2e-3), \
                (bone, scene_frame)
    assert compared >= 10


def test_a_bvh_result_keeps_the_hips_moving_under_a_root_bone(empty_scene, tmp_path: Path) -> None:
    """The hips under a still "Root": their travel is a position channel of the hips joint (BVH has no
    other place for it), and Blender's BVH importer puts the bones where our forward kinematics does."""
    import io

    import bpy

    from inference_server.motion.bvh import write_bvh

    rig_path = write_glb(tmp_path / "hero.glb", character_doc(humanoid_bones(lambda role: f"Bone_{role}"))[0])
    rig = read_rig_file(rig_path, rig_path.name).rig
    assert rig.parents[rig.index("Bone_hips")] == rig.index("Root")
    clip = cliptools.trim(read_bvh(BVH), 2.0, 2.5)
    result = retarget(clip, rig, resolve_map(rig), options=RetargetOptions(foot_lock=False))
    locations = {rig.index(n): v for n, v in result.locations.items()}
    assert set(locations) == {rig.index("Bone_hips")}
    text = io.StringIO()
    write_bvh(rig.to_clip(result.rotations, locations, result.times, result.fps), text,
              positions=rig.bvh_positions(result.rotations, locations))
    out = tmp_path / "take.bvh"
    out.write_text(text.getvalue())

    bpy.ops.import_anim.bvh(filepath=str(out), frame_start=1, use_fps_scale=False, rotate_mode="NATIVE")
    (armature,) = (o for o in bpy.data.objects if o.type == "ARMATURE")
    _, heads = rig.forward_kinematics(result.rotations, locations)
    travel = np.ptp(heads[:, rig.index("Bone_hips"), [0, 2]], axis=0).max()
    assert travel > 0.1
    for frame in (0, 20, len(result.times) - 1):
        bpy.context.scene.frame_set(1 + frame)
        for name in ("Bone_hips", "Bone_leftFoot", "Bone_head", "Bone_rightHand"):
            blender = armature.matrix_world @ armature.pose.bones[name].head
            ours = heads[frame, rig.index(name)]
            assert np.allclose([blender.x, blender.y, blender.z], [ours[0], -ours[2], ours[1]], atol=1e-3), \
                (name, frame)
