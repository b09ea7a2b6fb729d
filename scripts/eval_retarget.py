"""Evaluate retargeting of the CMU BVH clips onto three real or realistic rigs.

Rigs: (a) CesiumMan (Khronos glTF sample, joints read from the .glb in numpy), (b) Blender's Rigify
human metarig (bpy), (c) a Mixamo-named rig built here from the CMU skeleton with other proportions,
an A-pose rest and rolled bone axes.

Reported per clip and rig:
- dir: mean / max angle (degrees) between each mapped source segment and the target segment in
  world space, over all frames (foot lock off, which is what direction matching promises).
- slide: mean horizontal travel per frame of the planted foot point on contact frames, divided by
  leg length, in the source and in the target before and after foot locking.
- round trip: each clip retargeted onto its own skeleton; max local rotation error in degrees.

Usage: python scripts/eval_retarget.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference_server.animation.gltf_rig import read_gltf_rig  # noqa: E402
from inference_server.animation.mapping import map_rig, map_skeleton  # noqa: E402
from inference_server.animation.retarget import (  # noqa: E402
    RetargetOptions,
    _child_candidates,
    leg_length,
    retarget,
)
from inference_server.animation.rig import Rig  # noqa: E402
from inference_server.motion import quat
from inference_server.motion.bvh import read_bvh  # noqa: E402
from keygrip import humanoid  # noqa: E402

MIXAMO = {
    "hips": "Hips", "spine": "Spine", "chest": "Spine1", "upperChest": "Spine2", "neck": "Neck",
    "head": "Head", "Shoulder": "Shoulder", "UpperArm": "Arm", "LowerArm": "ForeArm", "Hand": "Hand",
    "UpperLeg": "UpLeg", "LowerLeg": "Leg", "Foot": "Foot", "Toes": "ToeBase",
}


def mixamo_rig(skeleton, *, leg_scale: float = 1.15, arm_scale: float = 0.9, a_pose_deg: float = 40.0,
               roll_deg: float = 30.0) -> Rig:
    """A Mixamo-named rig from a CMU skeleton: mapped joints only, rescaled limbs, arms lowered
    into an A-pose, every bone's local axes rolled about its own direction."""
    smap = map_skeleton(skeleton).bone_to_role
    _, rest = skeleton.rest_global()
    keep = [j for j, n in enumerate(skeleton.names) if n in smap]
    names, parents, heads = [], [], []
    for j in keep:
        role = smap[skeleton.names[j]]
        side = "Left" if role.startswith("left") else "Right" if role.startswith("right") else ""
        part = role[len(side):] if side else role
        names.append(f"mixamorig:{side}{MIXAMO.get(part, part)}")
        p = skeleton.parents[j]
        while p >= 0 and p not in keep:
            p = skeleton.parents[p]
        parents.append(keep.index(p) if p >= 0 else -1)
        heads.append(rest[j])
    heads = np.array(heads)
    roles = [smap[skeleton.names[j]] for j in keep]
    # Rebuild heads from parent offsets with the new proportions and the A-pose.
    new = heads.copy()
    for i, role in enumerate(roles):
        p = parents[i]
        if p < 0:
            continue
        off = heads[i] - heads[p]
        if "Leg" in role or "Foot" in role or "Toes" in role:
            off = off * leg_scale
        if "Arm" in role or "Hand" in role or "Thumb" in role or "Index" in role:
            off = off * arm_scale
            side = 1.0 if role.startswith("left") else -1.0
            off = quat.rotate(quat.from_axis_angle([0, 0, 1], -side * np.radians(a_pose_deg)), off)
        new[i] = new[p] + off
    mats = np.tile(np.eye(4), (len(names), 1, 1))
    for i in range(len(names)):
        kids = [k for k in range(len(names)) if parents[k] == i]
        axis = (new[kids[0]] - new[i]) if kids else np.array([0.0, 1.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.array([0.0, 1.0, 0.0])
        # Blender-like bone frame: Y along the bone, then a roll about it.
        base = quat.between([0.0, 1.0, 0.0], axis)
        rolled = quat.multiply(base, quat.from_axis_angle([0, 1, 0], np.radians(roll_deg * (i % 3 - 1))))
        mats[i, :3, :3] = quat.to_matrix(rolled)
        mats[i, :3, 3] = new[i]
    return Rig(names, np.array(parents), mats)


def segment_errors(clip, result, rig: Rig) -> np.ndarray:
    """(F, S) angles in degrees between mapped source and target segments."""
    smap, tmap = result.source_map.role_to_bone, result.bone_map.role_to_bone
    _, ps = clip.global_transforms()
    locs = {rig.index(n): v for n, v in result.locations.items()}
    _, pt = rig.forward_kinematics(result.rotations, locs)
    errs = []
    for role in smap:
        if role not in tmap:
            continue
        child = next((c for c in _child_candidates(role) if c in smap and c in tmap), None)
        if child is None:
            continue
        ds = ps[:, clip.skeleton.index(smap[child])] - ps[:, clip.skeleton.index(smap[role])]
        dt = pt[:, rig.index(tmap[child])] - pt[:, rig.index(tmap[role])]
        ns, nt = np.linalg.norm(ds, axis=-1), np.linalg.norm(dt, axis=-1)
        if ns.min() < 1e-6 or nt.min() < 1e-6:
            continue
        cos = np.sum(ds * dt, axis=-1) / (ns * nt)
        errs.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.stack(errs, axis=1)


def sliding(points: dict[str, np.ndarray], contacts: np.ndarray, leg: float) -> float:
    """Mean horizontal per-frame travel of the planted point on contact frames / leg length."""
    total, count = 0.0, 0
    names = humanoid.CONTACT_NAMES
    for side in ("left", "right"):
        heel = contacts[:, names.index(f"{side}Heel")]
        toes = contacts[:, names.index(f"{side}Toes")] & ~heel
        for mask, key in ((heel, f"{side}Foot"), (toes, f"{side}Toes")):
            if key not in points:
                continue
            both = mask[1:] & mask[:-1]
            step = np.linalg.norm(np.diff(points[key][:, [0, 2]], axis=0), axis=-1)
            total += step[both].sum()
            count += both.sum()
    return total / max(count, 1) / leg


def foot_points(positions: np.ndarray, role_to_index: dict[str, int]) -> dict[str, np.ndarray]:
    return {r: positions[:, i] for r, i in role_to_index.items() if r.endswith(("Foot", "Toes"))}


def evaluate(clip, rig: Rig) -> dict[str, float]:
    plain = retarget(clip, rig, options=RetargetOptions(foot_lock=False))
    locked = retarget(clip, rig, bone_map=plain.bone_map, source_map=plain.source_map)
    err = segment_errors(clip, plain, rig)
    s_idx = {r: clip.skeleton.index(b) for r, b in plain.source_map.role_to_bone.items()}
    t_idx = {r: rig.index(b) for r, b in plain.bone_map.role_to_bone.items()}
    _, ps = clip.global_transforms()
    _, ps0 = clip.skeleton.rest_global()
    s_leg, t_leg = leg_length(ps0, s_idx), leg_length(rig.heads, t_idx)
    out = {"dir_mean": float(err.mean()), "dir_max": float(err.max()),
           "slide_src": sliding(foot_points(ps, s_idx), plain.contacts, s_leg)}
    for key, res in (("slide_plain", plain), ("slide_locked", locked)):
        locs = {rig.index(n): v for n, v in res.locations.items()}
        _, pt = rig.forward_kinematics(res.rotations, locs)
        out[key] = sliding(foot_points(pt, t_idx), res.contacts, t_leg)
    out["warnings"] = len(plain.warnings)
    return out


def round_trip(clip) -> float:
    rig = Rig.from_skeleton(clip.skeleton)
    res = retarget(clip, rig, options=RetargetOptions(foot_lock=False))
    local = quat.multiply(clip.skeleton.rest_rotations[None], res.rotations)
    return float(np.degrees(quat.angle_between(local, clip.rotations)).max())


def build_rigs(data: Path, clip) -> dict[str, Rig]:
    rigs = {"CesiumMan": read_gltf_rig(data / "models" / "CesiumMan.glb"),
            "Mixamo A-pose": mixamo_rig(clip.skeleton)}
    try:
        import bpy

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from blender_rig import rig_from_armature, rigify_metarig

        bpy.ops.wm.read_factory_settings(use_empty=True)
        rigs["Rigify metarig"] = rig_from_armature(rigify_metarig())
    except ImportError:
        print("bpy is not installed: skipping the Rigify metarig")
    return rigs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    bvh_dir = args.data / "bvh"
    clips = sorted(p for p in bvh_dir.glob("cmu_*.bvh")) if bvh_dir.is_dir() else []
    if not clips:
        print(f"no CMU BVH clips under {bvh_dir}: pass --data pointing at the shared data folder; skipping")
        return 0
    loaded = {p.stem: read_bvh(p) for p in clips}
    rigs = build_rigs(args.data, next(iter(loaded.values())))
    for name, rig in rigs.items():
        print(f"{name}: {rig.num_bones} bones, {len(map_rig(rig).bone_to_role)} mapped")
    header = (f"{'clip':28s} {'rig':16s} {'dir mean':>8s} {'dir max':>8s} {'slide src':>9s} "
              f"{'no lock':>8s} {'locked':>8s}")
    print(header)
    print("-" * len(header))
    for cname, clip in loaded.items():
        for rname, rig in rigs.items():
            r = evaluate(clip, rig)
            print(f"{cname:28s} {rname:16s} {r['dir_mean']:8.3f} {r['dir_max']:8.3f} {r['slide_src']:9.5f} "
                  f"{r['slide_plain']:8.5f} {r['slide_locked']:8.5f}")
    print("\nround trip onto own skeleton (max local rotation error, degrees)")
    for cname, clip in loaded.items():
        print(f"{cname:28s} {round_trip(clip):.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
