"""Character files as rigs: glTF, VRM 0.x and 1.0, BVH skeletons; declared maps over guesses; bad files.

The characters are made in tests/characters.py (unusual names, helper bones, hips under a root,
fingers, A-pose, facing -Z); retargets go through the real server over gRPC and the `keygrip`
command, and are checked the way the JSON rig path is: mapped segments point where the source's do.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from characters import character_doc, humanoid_bones, vrm0, vrm1, write_glb, write_gltf_json

import keygrip
from inference_server.animation.gltf_rig import EXTRAS_ROLE
from inference_server.animation.mapping import DECLARED, NAME, STRUCTURE, resolve_map
from inference_server.animation.rig_files import read_rig_file
from inference_server.errors import InvalidInput
from inference_server.motion.bvh import read_bvh
from keygrip import humanoid, rigs
from keygrip.tensors import from_tensor
from keygrip.v1 import animation_pb2

DATA = Path(__file__).parent / "data"
BVH = DATA / "bvh" / "cmu_131_01_walk.bvh"
REPO = Path(__file__).resolve().parents[1]

# Character Creator style: a prefix, sides as L_/R_, "Waist" and "NeckTwist01" that no alias names.
_CC = {"hips": "Pelvis", "spine": "Waist", "chest": "Spine01", "upperChest": "Spine02", "neck": "NeckTwist01",
       "head": "Head"}
_CC_LIMB = {"Shoulder": "Clavicle", "UpperArm": "Upperarm", "LowerArm": "Forearm", "Hand": "Hand",
            "UpperLeg": "Thigh", "LowerLeg": "Calf", "Foot": "Foot", "Toes": "ToeBase"}


def cc_name(role: str) -> str:
    if role in _CC:
        return "CC_Base_" + _CC[role]
    side = "L" if role.startswith("left") else "R"
    part = role.removeprefix("left").removeprefix("right")
    return f"CC_Base_{side}_{_CC_LIMB.get(part, part)}"


def opaque_name(role: str) -> str:
    """Names that say nothing, in an order that puts the arms before the spine: no guess survives."""
    return f"jnt{humanoid.ROLES[::-1].index(role):02d}"


LIMBS = [("leftUpperArm", "leftLowerArm"), ("leftLowerArm", "leftHand"), ("rightUpperArm", "rightLowerArm"),
         ("rightLowerArm", "rightHand"), ("leftUpperLeg", "leftLowerLeg"), ("leftLowerLeg", "leftFoot"),
         ("rightUpperLeg", "rightLowerLeg"), ("rightLowerLeg", "rightFoot"), ("spine", "chest"), ("neck", "head")]


def direction_errors(rig_path: Path, result: animation_pb2.RetargetResult, anim: animation_pb2.RigAnimation,
                     source: Path = BVH) -> np.ndarray:
    """Degrees between each mapped limb segment of the result (our reader's rig, forward kinematics)
    and the same segment of the source, (F, len(LIMBS))."""
    from inference_server.animation.mapping import map_skeleton

    rig = read_rig_file(rig_path, rig_path.name).rig
    assert list(anim.bone_names) == rig.names
    _, pt = rig.forward_kinematics(from_tensor(anim.rotations).astype(np.float64))
    clip = read_bvh(source)
    _, ps = clip.global_transforms()
    s = map_skeleton(clip.skeleton).role_to_bone
    t = {m.role: m.bone for m in result.bone_map.mappings}
    out = []
    for a, b in LIMBS:
        ds = ps[:, clip.skeleton.index(s[b])] - ps[:, clip.skeleton.index(s[a])]
        dt = pt[:, rig.index(t[b])] - pt[:, rig.index(t[a])]
        cos = np.sum(ds * dt, -1) / np.linalg.norm(ds, axis=-1) / np.linalg.norm(dt, axis=-1)
        out.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.stack(out, 1)


def keygrip_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keygrip.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def roles_of(bone_map: animation_pb2.BoneMap) -> dict[str, str]:
    return {m.bone: m.role for m in bone_map.mappings}


# Reading --------------------------------------------------------------------------------------------

def test_gltf_with_helpers_and_a_root_above_the_hips_is_read_and_guessed(tmp_path: Path) -> None:
    bones = humanoid_bones(cc_name, helpers=True)
    path = write_glb(tmp_path / "hero.glb", character_doc(bones)[0])
    character = read_rig_file(path, "hero.glb")
    rig = character.rig
    assert character.name == "Armature" and character.declared == {} and character.skeletons == ["Armature"]
    assert set(rig.names) == {b.name for b in bones}
    # The rest heads come out where the bones were put, through the rotated nodes above them.
    for b in bones:
        np.testing.assert_allclose(rig.heads[rig.index(b.name)], b.head, atol=1e-6)
    assert rig.parents[rig.index("CC_Base_Pelvis")] == rig.index("Root")
    bone_map = resolve_map(rig)
    expected = {b.name: b.role for b in bones if b.role}
    assert bone_map.bone_to_role == expected
    assert {"Root", "CC_Base_L_Upperarm_twist", "CC_Base_R_Thigh_twist"} <= set(bone_map.unmapped_bones)
    assert bone_map.sources["CC_Base_L_Thigh"] == NAME and bone_map.confidence["CC_Base_L_Thigh"] == 0.9
    # "Waist" and "NeckTwist01" say nothing: the torso and the neck come from the structure.
    assert bone_map.sources["CC_Base_Waist"] == STRUCTURE and bone_map.sources["CC_Base_NeckTwist01"] == STRUCTURE
    assert bone_map.confidence["CC_Base_Waist"] < 0.9


def test_a_skeleton_without_skin_is_a_rig_and_the_biggest_skeleton_is_the_default(tmp_path: Path) -> None:
    bare = write_glb(tmp_path / "bare.glb", character_doc(humanoid_bones(cc_name), skin=False)[0])
    character = read_rig_file(bare, "bare.glb")
    assert resolve_map(character.rig).bone_to_role["CC_Base_Pelvis"] == "hips"

    doc, _, _ = character_doc(humanoid_bones(cc_name, helpers=False), armature="Small")
    doc, _, _ = character_doc(humanoid_bones(opaque_name, fingers=True), armature="Big", doc=doc, seed=1)
    both = write_glb(tmp_path / "two.glb", doc)
    assert read_rig_file(both, "two.glb").name == "Big"
    assert read_rig_file(both, "two.glb").skeletons == ["Big", "Small"]
    assert read_rig_file(both, "two.glb", "Small").name == "Small"
    assert read_rig_file(both, "two.glb", "SmallSkin").name == "Small"   # by its skin's name
    assert read_rig_file(both, "two.glb", "1").name == "Small"
    with pytest.raises(InvalidInput, match=r"two.glb has no skeleton 'Tiny'; it has 0: Big \(57 bones\), 1: Small"):
        read_rig_file(both, "two.glb", "Tiny")


def test_a_gltf_json_with_its_buffer_beside_it_needs_only_the_json(tmp_path: Path) -> None:
    path = write_gltf_json(tmp_path / "hero.gltf", character_doc(humanoid_bones(cc_name))[0])
    assert len(read_rig_file(path, "hero.gltf").rig.names) == 27


def test_vrm_declared_maps_are_used_exactly_in_both_versions(tmp_path: Path) -> None:
    bones = humanoid_bones(opaque_name, fingers=True, a_pose=True)
    expected = {b.name: b.role for b in bones if b.role}
    for version, facing in ((vrm1, 1.0), (vrm0, -1.0)):   # VRM 0.x avatars face -Z
        doc, _, index = character_doc(bones, facing=facing)
        doc["extensions"] = {"VRMC_vrm" if version is vrm1 else "VRM": version(bones, index)}
        character = read_rig_file(write_glb(tmp_path / "avatar.vrm", doc), "avatar.vrm")
        assert character.declared == expected   # thumbs of VRM 0.x read as VRM 1.0's
        bone_map = resolve_map(character.rig, character.declared, character.declared_by)
        assert bone_map.bone_to_role == expected and set(bone_map.sources.values()) == {DECLARED}
        assert bone_map.declared_by == ("VRM 1.0 humanoid" if version is vrm1 else "VRM 0.x humanBones")
    # Without the declaration, the guess finds no fingers and, the avatar facing -Z, swaps its sides.
    guessed = resolve_map(character.rig).bone_to_role
    assert guessed[opaque_name("leftHand")] == "rightHand" and opaque_name("leftIndexProximal") not in guessed


def test_node_extras_declare_roles_and_guessing_fills_the_rest(tmp_path: Path) -> None:
    bones = humanoid_bones(lambda r: opaque_name(r) if "Leg" in r or r == "hips" else cc_name(r))
    doc, _, index = character_doc(bones)
    for b in bones:
        if b.role and ("Leg" in b.role or b.role == "hips"):
            doc["nodes"][index[b.name]]["extras"] = {EXTRAS_ROLE: b.role}
    character = read_rig_file(write_glb(tmp_path / "hero.glb", doc), "hero.glb")
    bone_map = resolve_map(character.rig, character.declared, character.declared_by)
    assert bone_map.bone_to_role == {b.name: b.role for b in bones if b.role}
    assert bone_map.sources[opaque_name("leftUpperLeg")] == DECLARED
    assert bone_map.sources["CC_Base_L_Hand"] == NAME
    assert bone_map.declared_by == "glTF node extras (keygrip_role)"


def test_a_bvh_skeleton_is_a_rig() -> None:
    character = read_rig_file(BVH, "walk.bvh")
    assert character.name == "walk" and len(character.rig.names) == 31
    # cgspeed's 3ds Max names: LeftHip is the thigh.
    assert resolve_map(character.rig).bone_to_role["LeftHip"] == "leftUpperLeg"


# Through the server ---------------------------------------------------------------------------------

def test_cli_retargets_onto_a_gltf_character(shared_server, tmp_path: Path) -> None:
    rig_path = write_glb(tmp_path / "hero.glb", character_doc(humanoid_bones(cc_name))[0])
    out, anim_path = tmp_path / "hero.bvh", tmp_path / "hero.anim"
    # --json after the command name, like --address before it.
    run = keygrip_cli("--address", shared_server.address, "retarget", str(BVH), "--rig", str(rig_path),
                      "--out", str(out), "--animation", str(anim_path), "--json")
    assert run.returncode == 0, run.stderr
    result = animation_pb2.RetargetResult()
    from google.protobuf import json_format
    json_format.Parse(run.stdout, result)
    assert result.rig.name == "Armature" and len(result.rig.bone_names) == 27
    anim = animation_pb2.RigAnimation.FromString(anim_path.read_bytes())
    # Each mapped segment within 2 degrees on average (foot locking bends the legs on a few frames).
    assert direction_errors(rig_path, result, anim).mean(axis=0).max() <= 2.0
    assert read_bvh(out, scale=1.0).num_frames == 994


def test_a_vrm_whose_names_defeat_the_guess_retargets_from_its_declaration(client: keygrip.Client,
                                                                           tmp_path: Path) -> None:
    bones = humanoid_bones(opaque_name, fingers=True, a_pose=True)
    doc, _, index = character_doc(bones, facing=-1.0)
    doc["extensions"] = {"VRM": vrm0(bones, index)}
    path = write_glb(tmp_path / "avatar.vrm", doc)
    rig_file = client.rig_file(path)
    bone_map = client.map_bones(rig_file)
    assert roles_of(bone_map) == {b.name: b.role for b in bones if b.role}
    assert {m.source for m in bone_map.mappings} == {animation_pb2.ROLE_SOURCE_DECLARED}
    assert {m.confidence for m in bone_map.mappings} == {1.0} and bone_map.declared_by == "VRM 0.x humanBones"
    job = client.retarget(animation_pb2.RetargetRequest(
        source=animation_pb2.MotionSource(bvh_artifact_id=client.upload(BVH).id), rig_file=rig_file))
    result = job.result(timeout=120)
    anim = client.read_message(result.animation, animation_pb2.RigAnimation)
    assert direction_errors(path, result, anim).mean(axis=0).max() <= 2.0


def _vrm_with_a_twist_bone(folder: Path) -> tuple[Path, str, str]:
    """(a VRM 1.0 avatar whose names defeat the guess, its declared leftHand bone, a twist bone beside it)."""
    bones = humanoid_bones(opaque_name)
    doc, _, index = character_doc(bones)
    doc["extensions"] = {"VRMC_vrm": vrm1(bones, index)}
    return write_glb(folder / "avatar.vrm", doc), opaque_name("leftHand"), opaque_name("leftUpperArm") + "_twist"


def test_a_preset_wins_over_the_declared_map_with_a_warning(client: keygrip.Client, tmp_path: Path) -> None:
    path, hand, twist = _vrm_with_a_twist_bone(tmp_path)
    preset = {twist: "leftHand"}   # a wrong choice, but the user's: it wins
    job = client.retarget(animation_pb2.RetargetRequest(
        source=animation_pb2.MotionSource(bvh_artifact_id=client.upload(BVH).id), rig_file=client.rig_file(path),
        bone_map=rigs.bone_map_from_dict(preset)))
    result = job.result(timeout=120)
    roles = roles_of(result.bone_map)
    assert roles[twist] == "leftHand" and hand not in roles and roles[opaque_name("hips")] == "hips"
    sources = {m.bone: m.source for m in result.bone_map.mappings}
    assert sources[twist] == animation_pb2.ROLE_SOURCE_PRESET
    assert sources[opaque_name("hips")] == animation_pb2.ROLE_SOURCE_DECLARED
    assert any("using the preset" in w and "leftHand" in w for w in result.warnings)


def test_a_sidecar_preset_declares_roles(shared_server, tmp_path: Path) -> None:
    bones = humanoid_bones(opaque_name)
    path = write_glb(tmp_path / "hero.glb", character_doc(bones)[0])
    rigs.save_bone_map_preset(rigs.sidecar_preset(path), {b.name: b.role for b in bones if b.role})
    run = keygrip_cli("retarget", str(BVH), "--rig", str(path), "--out", str(tmp_path / "out.bvh"),
                      "--address", shared_server.address)
    assert run.returncode == 0, run.stderr
    assert f"using the bone map preset {tmp_path / 'hero.bonemap.json'}" in run.stdout
    assert "22 bones mapped: 22 declared by the bone map preset beside the file" in run.stdout


def test_a_sidecar_preset_over_a_declared_map_warns_naming_the_bones(client: keygrip.Client, tmp_path: Path) -> None:
    path, hand, twist = _vrm_with_a_twist_bone(tmp_path)
    rigs.save_bone_map_preset(rigs.sidecar_preset(path), {twist: "leftHand"})
    bone_map = client.map_bones(client.rig_file(path))
    roles = roles_of(bone_map)
    assert roles[twist] == "leftHand" and hand not in roles and roles[opaque_name("hips")] == "hips"
    assert [w for w in bone_map.warnings if "using the preset" in w] == [
        f"the bone map preset beside avatar.vrm gives leftHand to {twist!r} and {hand!r} the role none, where the "
        f"file's VRM 1.0 humanoid gives leftHand to {hand!r}; using the preset"]


def test_bad_character_files_fail_at_submit_naming_the_file(client: keygrip.Client, tmp_path: Path) -> None:
    source = animation_pb2.MotionSource(bvh_artifact_id=client.upload(BVH).id)

    def submit(path: Path) -> None:
        client.retarget(animation_pb2.RetargetRequest(source=source, rig_file=client.rig_file(path)))

    notes = tmp_path / "notes.txt"
    notes.write_text("not a character")
    with pytest.raises(keygrip.InvalidArgument, match="notes.txt is not a character file"):
        submit(notes)
    fbx = tmp_path / "hero.fbx"
    fbx.write_bytes(b"Kaydara FBX Binary  \x00\x1a\x00" + bytes(64))
    with pytest.raises(keygrip.InvalidArgument, match=r"hero.fbx: Blender's FBX importer cannot read it \(.*'hero.fbx'"
                                                      r"\); export it again as a binary FBX"):
        submit(fbx)
    mesh_only = {"asset": {"version": "2.0"}, "nodes": [{"name": "Cube", "mesh": 0}], "meshes": [{"primitives": []}]}
    prop = tmp_path / "prop.gltf"
    prop.write_text(json.dumps(mesh_only))
    with pytest.raises(keygrip.InvalidArgument, match="prop.gltf has no skeleton"):
        submit(prop)
    bones = humanoid_bones(opaque_name)
    doc, _, index = character_doc(bones)
    doc["extensions"] = {"VRMC_vrm": vrm1(bones, index)}
    doc["extensions"]["VRMC_vrm"]["humanoid"]["humanBones"]["leftHand"] = {"node": 999}
    with pytest.raises(keygrip.InvalidArgument, match=r"broken.vrm: its VRM 1.0 humanoid map gives leftHand the node "
                                                      r"999, which the file does not have"):
        submit(write_glb(tmp_path / "broken.vrm", doc))
    # A skeleton that is no humanoid is refused when it is mapped, naming its bones.
    tail = [b for b in humanoid_bones(lambda r: f"tail{humanoid.ROLES.index(r)}") if b.name in ("Root", "tail0")]
    with pytest.raises(keygrip.FailedPrecondition, match="no humanoid found"):
        client.map_bones(client.rig_file(write_glb(tmp_path / "tail.glb", character_doc(tail)[0])))


def test_cli_names_the_users_rig_file(shared_server, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a character")
    run = keygrip_cli("retarget", str(BVH), "--rig", str(notes), "--out", str(tmp_path / "x.bvh"),
                      "--address", shared_server.address)
    assert run.returncode == 1
    assert run.stderr.startswith("keygrip: INVALID_ARGUMENT: notes.txt is not a character file")
    assert "upload " not in run.stderr


def test_cli_messages_name_the_file_as_the_user_named_it(shared_server, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not motion either")
    same = tmp_path / "take.bvh"   # the same bytes under another name: the server has them as notes.txt
    same.write_text(notes.read_text())
    rig = DATA / "models" / "CesiumMan.glb"
    run = keygrip_cli("retarget", str(notes), "--rig", str(rig), "--out", str(tmp_path / "x.bvh"),
                      "--address", shared_server.address)
    assert run.returncode == 1
    assert "keygrip: INVALID_ARGUMENT: notes.txt: this is neither a BVH" in run.stderr, run.stderr
    run = keygrip_cli("retarget", str(same), "--rig", str(rig), "--out", str(tmp_path / "x.bvh"),
                      "--address", shared_server.address)
    assert "keygrip: INVALID_ARGUMENT: take.bvh: BVH line 1" in run.stderr, run.stderr
    assert "notes.txt" not in run.stderr


def test_global_options_go_after_the_command_name(shared_server) -> None:
    run = keygrip_cli("info", "--json", "--address", shared_server.address)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["api_version"] == "keygrip.v1"
    # Given on both sides, the one after the command name wins.
    run = keygrip_cli("--address", "127.0.0.1:9", "info", "--address", shared_server.address)
    assert run.returncode == 0 and "Keygrip server" in run.stdout


# Animated files out ---------------------------------------------------------------------------------

def test_cli_writes_the_vrm_with_the_animation_in_it(shared_server, tmp_path: Path) -> None:
    from characters import posed_node_worlds, read_glb

    bones = humanoid_bones(opaque_name, fingers=True, a_pose=True)
    doc, _, index = character_doc(bones, seed=3)
    doc["extensions"] = {"VRMC_vrm": vrm1(bones, index)}
    doc["extensionsUsed"] = ["VRMC_vrm"]
    rig_path = write_glb(tmp_path / "hero.vrm", doc)
    out, anim_path = tmp_path / "hero_take.vrm", tmp_path / "hero.anim"
    run = keygrip_cli("retarget", str(BVH), "--rig", str(rig_path), "--out", str(out), "--animation", str(anim_path),
                      "--address", shared_server.address, "--json")
    assert run.returncode == 0, run.stderr
    from google.protobuf import json_format
    result = json_format.Parse(run.stdout, animation_pb2.RetargetResult())
    assert result.character.name == "hero_animated.vrm"

    before, before_bin = read_glb(rig_path)
    after, after_bin = read_glb(out)
    # Nothing that was in the file changed: mesh, skin, materials, nodes, VRM extension, their bytes.
    for key in ("meshes", "skins", "materials", "nodes", "extensions", "extensionsUsed", "scenes"):
        assert after[key] == before[key], key
    assert after["accessors"][:len(before["accessors"])] == before["accessors"]
    assert after_bin[:len(before_bin)] == before_bin
    # Our reader reads the same character back, declared map and all.
    again = read_rig_file(out, out.name)
    assert again.rig.names == read_rig_file(rig_path, rig_path.name).rig.names
    assert again.declared_by == "VRM 1.0 humanoid"

    # Posed as a glTF viewer poses it, the file puts every bone where the retarget's forward kinematics does.
    times, worlds = posed_node_worlds(after, after_bin)
    anim = animation_pb2.RigAnimation.FromString(anim_path.read_bytes())
    assert len(times) == result.frames == 994 and len(after["animations"]) == 1
    rig = again.rig
    rotations = from_tensor(anim.rotations).astype(np.float64)
    root = {rig.index(anim.root_bone): from_tensor(anim.root_location).astype(np.float64)}
    _, heads = rig.forward_kinematics(rotations, root)
    file_heads = np.stack([worlds[again.nodes[b]][:, :3, 3] for b in range(rig.num_bones)], axis=1)
    assert np.abs(file_heads - heads).max() < 1e-4
    # And the mapped segments of the written file point where the source's do.
    written = animation_pb2.RigAnimation(bone_names=rig.names)
    file_rot = np.stack([quat_from(worlds[again.nodes[b]]) for b in range(rig.num_bones)], axis=1)
    local = rig.to_local(file_rot)
    written.rotations.CopyFrom(keygrip.tensors.to_tensor(local.astype(np.float32)))
    assert direction_errors(out, result, written).mean(axis=0).max() <= 2.0


def test_cli_retargets_onto_an_fbx_character_and_writes_fbx_and_glb(shared_server, tmp_path: Path) -> None:
    from inference_server.animation.cliptools import trim
    from inference_server.animation.fbx import glb_to_fbx
    from inference_server.motion.bvh import write_bvh

    take = tmp_path / "walk.bvh"  # a second of the walk: each FBX read or write starts Blender
    write_bvh(trim(read_bvh(BVH), 2.0, 3.0), take)
    # An FBX as Blender's exporter writes it, of a character with CC-style names and helper bones.
    glb = write_glb(tmp_path / "source.glb", character_doc(humanoid_bones(cc_name), seed=2)[0])
    rig_path = tmp_path / "hero.fbx"
    rig_path.write_bytes(glb_to_fbx(glb.read_bytes(), "hero"))
    character = read_rig_file(rig_path, rig_path.name)
    assert sorted(character.rig.names) == sorted(read_rig_file(glb, glb.name).rig.names)
    assert np.allclose(np.sort(character.rig.heads, axis=0), np.sort(read_rig_file(glb, glb.name).rig.heads, axis=0),
                       atol=1e-4)

    for suffix in (".glb", ".fbx"):
        out, anim_path = tmp_path / f"hero_take{suffix}", tmp_path / "hero.anim"
        run = keygrip_cli("retarget", str(take), "--rig", str(rig_path), "--out", str(out), "--animation",
                          str(anim_path), "--address", shared_server.address, "--json")
        assert run.returncode == 0, run.stderr
        from google.protobuf import json_format
        result = json_format.Parse(run.stdout, animation_pb2.RetargetResult())
        assert result.character.name == f"hero_animated{suffix}"
        anim = animation_pb2.RigAnimation.FromString(anim_path.read_bytes())
        assert direction_errors(rig_path, result, anim, take).mean(axis=0).max() <= 2.0
        # The written file is the same character again, read by our reader (an FBX through Blender).
        assert read_rig_file(out, out.name).rig.names == character.rig.names
    from characters import read_glb
    doc, _ = read_glb(tmp_path / "hero_take.glb")
    assert len(doc["animations"]) == 1 and len(doc["meshes"]) == 1

    # A VRM cannot come out of an FBX: refused at submit, naming the file.
    run = keygrip_cli("retarget", str(take), "--rig", str(rig_path), "--out", str(tmp_path / "hero.vrm"),
                      "--address", shared_server.address)
    assert run.returncode == 1 and "hero.fbx is not a VRM avatar" in run.stderr


def quat_from(world: np.ndarray) -> np.ndarray:
    """(F, 4) rotations of (F, 4, 4) world matrices (their scale removed)."""
    from inference_server.motion import quat

    linear = world[:, :3, :3]
    return quat.from_matrix(linear / np.linalg.norm(linear, axis=-2)[:, None, :])


def test_an_animated_file_needs_a_binary_character(shared_server, tmp_path: Path) -> None:
    rig_path = write_gltf_json(tmp_path / "hero.gltf", character_doc(humanoid_bones(cc_name))[0])
    run = keygrip_cli("retarget", str(BVH), "--rig", str(rig_path), "--out", str(tmp_path / "take.glb"),
                      "--address", shared_server.address)
    assert run.returncode == 1 and "the rig must be a .glb, .vrm or .fbx (not hero.gltf)" in run.stderr


def test_cesium_man_animated_in_place_of_its_own_walk(tmp_path: Path) -> None:
    """A file from another exporter (COLLADA2GLTF: a Z_UP node above the skeleton, an animation of its
    own, a texture): the new animation lands beside the old one and poses the joints as retargeted."""
    from characters import posed_node_worlds, read_glb

    from inference_server.animation import cliptools
    from inference_server.animation.gltf_write import animate_glb
    from inference_server.animation.retarget import RetargetOptions, retarget

    path = DATA / "models" / "CesiumMan.glb"
    character = read_rig_file(path, path.name)
    clip = cliptools.trim(read_bvh(BVH), 2.0, 2.5)
    result = retarget(clip, character.rig, options=RetargetOptions(foot_lock=False))
    out = tmp_path / "cesium_take.glb"
    out.write_bytes(animate_glb(path.read_bytes(), path.name, character, result))
    doc, binary = read_glb(out)
    assert [a.get("name") for a in doc["animations"]][-1] == "keygrip retarget" and len(doc["animations"]) == 2
    _, worlds = posed_node_worlds(doc, binary, animation=1)
    rig = character.rig
    _, heads = rig.forward_kinematics(result.rotations, {rig.index(n): v for n, v in result.locations.items()})
    file_heads = np.stack([worlds[character.nodes[b]][:, :3, 3] for b in range(rig.num_bones)], axis=1)
    assert np.abs(file_heads - heads).max() < 1e-4
