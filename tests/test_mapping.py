"""Bone mapping on real rigs (CMU BVH, CesiumMan, Rigify) and on the usual naming conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference_server.animation.gltf_rig import read_gltf_rig
from inference_server.animation.mapping import BoneMap, auto_map, map_rig, map_skeleton, normalise
from inference_server.animation.rig import Rig
from inference_server.errors import FailedPrecondition, InvalidInput
from inference_server.motion.bvh import read_bvh

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def cmu():
    return read_bvh(DATA / "bvh" / "cmu_131_01_walk.bvh")


def test_normalise_sides_and_prefixes():
    assert normalise("upper_arm.L") == ("left", "upperarm")
    assert normalise("mixamorig1:LeftUpLeg") == ("left", "upleg")
    assert normalise("thigh_r") == ("right", "thigh")
    assert normalise("DEF-forearm.R") == ("right", "forearm")
    assert normalise("L_Hand") == ("left", "hand")
    assert normalise("LHipJoint") == ("left", "hipjoint")
    assert normalise("lhand") == ("left", "hand")
    assert normalise("J_Bip_L_UpperArm") == ("left", "upperarm")


def test_cmu_3dsmax_names(cmu):
    roles = map_skeleton(cmu.skeleton).bone_to_role
    # cgspeed 3ds Max names: the collar is the shoulder, "LeftShoulder" is the upper arm.
    assert roles["LeftCollar"] == "leftShoulder"
    assert roles["LeftShoulder"] == "leftUpperArm"
    assert roles["LeftHip"] == "leftUpperLeg" and roles["RightAnkle"] == "rightFoot"
    assert roles["lowerback"] == "spine" and roles["Chest2"] == "upperChest" and roles["lowerneck"] == "neck"
    assert "LHipJoint" not in roles and "lhand" not in roles


def _renamed(cmu, rename) -> Rig:
    rig = Rig.from_skeleton(cmu.skeleton)
    smap = map_skeleton(cmu.skeleton).bone_to_role
    names = [rename(smap[n]) if n in smap else f"extra_{n}" for n in rig.names]
    return Rig(names, rig.parents, rig.rest_matrices)


def _side(role: str) -> tuple[str, str]:
    for s in ("left", "right"):
        if role.startswith(s):
            return s, role[len(s):]
    return "", role


MIXAMO = {"Shoulder": "Shoulder", "UpperArm": "Arm", "LowerArm": "ForeArm", "Hand": "Hand", "UpperLeg": "UpLeg",
          "LowerLeg": "Leg", "Foot": "Foot", "Toes": "ToeBase", "ThumbMetacarpal": "HandThumb1",
          "hips": "Hips", "spine": "Spine", "chest": "Spine1", "upperChest": "Spine2", "neck": "Neck",
          "head": "Head"}
UNREAL = {"Shoulder": "clavicle", "UpperArm": "upperarm", "LowerArm": "lowerarm", "Hand": "hand",
          "UpperLeg": "thigh", "LowerLeg": "calf", "Foot": "foot", "Toes": "ball", "ThumbMetacarpal": "thumb_01",
          "hips": "pelvis", "spine": "spine_01", "chest": "spine_02", "upperChest": "spine_03",
          "neck": "neck_01", "head": "head"}


@pytest.mark.parametrize("convention", ["mixamo", "mixamo_bare", "unreal", "vrm"])
def test_conventions(cmu, convention):
    def rename(role: str) -> str:
        side, part = _side(role)
        if convention.startswith("mixamo"):
            prefix = "mixamorig:" if convention == "mixamo" else ""
            return prefix + side.capitalize() + MIXAMO[part]
        if convention == "unreal":
            return UNREAL[part] + (f"_{side[0]}" if side else "")
        return role

    rig = _renamed(cmu, rename)
    expected = map_skeleton(cmu.skeleton).bone_to_role
    got = map_rig(rig).bone_to_role
    assert sorted(got.values()) == sorted(expected.values())
    for bone, role in got.items():
        assert bone == rename(role)


def test_cesiumman_from_glb():
    rig = read_gltf_rig(DATA / "models" / "CesiumMan.glb")
    roles = map_rig(rig).bone_to_role
    assert len(roles) == 19
    assert roles["Skeleton_torso_joint_1"] == "hips"
    assert roles["leg_joint_L_1"] == "leftUpperLeg" and roles["leg_joint_R_5"] == "rightToes"
    # The arms are numbered differently per side in this file; structure sorts them out.
    assert roles["Skeleton_arm_joint_L__4_"] == "leftUpperArm"
    assert roles["Skeleton_arm_joint_R"] == "rightUpperArm"
    assert roles["Skeleton_arm_joint_R__3_"] == "rightHand"


def test_structural_fallback_on_meaningless_names(cmu):
    rig = Rig.from_skeleton(cmu.skeleton)
    names = [f"bone{i:02d}" for i in range(rig.num_bones)]
    bmap = auto_map(names, rig.parents, rig.heads)
    by_role = bmap.role_to_bone
    cmu_names = cmu.skeleton.names
    assert cmu_names[names.index(by_role["hips"])] == "Hips"
    assert cmu_names[names.index(by_role["leftUpperLeg"])] == "LeftHip"
    assert cmu_names[names.index(by_role["rightLowerLeg"])] == "RightKnee"


def test_rigify_metarig():
    bpy = pytest.importorskip("bpy")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from blender_rig import rig_from_armature, rigify_metarig

    bpy.ops.wm.read_factory_settings(use_empty=True)
    rig = rig_from_armature(rigify_metarig())
    roles = map_rig(rig).bone_to_role
    assert roles["spine"] == "hips" and roles["spine.001"] == "spine" and roles["spine.006"] == "head"
    assert roles["upper_arm.L"] == "leftUpperArm" and roles["f_pinky.03.R"] == "rightLittleDistal"
    assert roles["thumb.01.L"] == "leftThumbMetacarpal" and roles["toe.R"] == "rightToes"
    # DEF- / ORG- prefixed names of a generated rig map the same way.
    assert map_rig(Rig(["DEF-" + n for n in rig.names], rig.parents, rig.rest_matrices)).bone_to_role[
        "DEF-forearm.R"] == "rightLowerArm"


def test_explicit_map_is_checked(cmu):
    names = cmu.skeleton.names
    bmap = BoneMap.from_roles(names, {"Hips": "hips", "LeftHip": "leftUpperLeg"})
    assert "LeftKnee" in bmap.unmapped_bones and "rightUpperLeg" in bmap.missing_roles
    with pytest.raises(InvalidInput, match="unknown roles"):
        BoneMap.from_roles(names, {"Hips": "tail"})
    with pytest.raises(InvalidInput, match="does not have"):
        BoneMap.from_roles(names, {"wing": "hips"})


def test_no_humanoid_lists_bones():
    names = ["root", "tail.001", "tail.002", "wing.L", "wing.R"]
    parents = [-1, 0, 1, 0, 0]
    pos = np.array([[0, 0, 0], [0, 0, -1], [0, 0, -2], [1, 0, 0], [-1, 0, 0]], dtype=float)
    with pytest.raises(FailedPrecondition, match="tail.001, tail.002, wing.L"):
        auto_map(names, parents, pos)
