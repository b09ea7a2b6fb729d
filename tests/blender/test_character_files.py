"""An animated glTF character written by Keygrip, read back by Blender's own glTF importer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
