"""Time retargeting a 10-minute 60 fps clip onto a 60-bone rig (body, fingers, twist bones).

The clip is a CMU BVH resampled to 60 fps and tiled to 36,000 frames. The baseline, measured in the
same run, calls the same retarget once per frame in a Python loop over a short slice and is
extrapolated to the full length; the ratio is what vectorising over frames buys.

Then the character-file path, as `keygrip retarget take.bvh --rig hero.glb --out hero_take.glb` runs
it on the server: the same rig written as a glTF character (a .glb of its nodes), read back as a rig,
retargeted, and written as an animated .glb; timed end to end against the target of 10 s, and
against its baseline in the same run, the retarget alone plus the BVH the job writes anyway.

Usage: python scripts/bench_retarget.py [--data ../shared/data] [--minutes 10]
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference_server.animation import cliptools  # noqa: E402
from inference_server.animation.gltf_write import animate_glb  # noqa: E402
from inference_server.animation.mapping import map_rig, map_skeleton, resolve_map  # noqa: E402
from inference_server.animation.retarget import RetargetOptions, retarget  # noqa: E402
from inference_server.animation.rig import Rig  # noqa: E402
from inference_server.animation.rig_files import read_rig_file  # noqa: E402
from inference_server.motion import quat  # noqa: E402
from inference_server.motion.bvh import read_bvh, write_bvh  # noqa: E402
from keygrip import humanoid  # noqa: E402


def sixty_bone_rig(source) -> Rig:
    """VRM-named body and fingers (52 bones) placed on the source's rest proportions, plus twist
    bones on the arms and legs (8), with rolled bone axes."""
    smap = map_skeleton(source.skeleton).role_to_bone
    _, rest = source.skeleton.rest_global()
    joints = humanoid.hierarchy(with_fingers=True)
    names = [n for n, _ in joints]
    heads = {}
    for name, parent in joints:
        if name in smap and "Thumb" not in name and "Index" not in name:
            heads[name] = rest[source.skeleton.index(smap[name])]
        else:
            # Fingers fan out from the hand along the forearm's direction.
            side = 1.0 if name.startswith("left") else -1.0
            step = np.array([side * 0.025, -0.005, 0.0])
            spread = np.array([0.0, 0.0, 0.01 * (humanoid.FINGERS.index(
                next(f for f in humanoid.FINGERS if f in name)) - 2)]) if name not in heads else 0.0
            heads[name] = heads[parent] + step + spread
    parents = [names.index(p) if p else -1 for _, p in joints]
    for side in ("left", "right"):
        for part in ("UpperArm", "LowerArm", "UpperLeg", "LowerLeg"):
            bone = f"{side}{part}"
            names.append(f"{bone}Twist")
            parents.append(names.index(bone))
            child = {"UpperArm": "LowerArm", "LowerArm": "Hand", "UpperLeg": "LowerLeg", "LowerLeg": "Foot"}[part]
            heads[f"{bone}Twist"] = 0.5 * (heads[bone] + heads[f"{side}{child}"])
    mats = np.tile(np.eye(4), (len(names), 1, 1))
    for i, n in enumerate(names):
        mats[i, :3, :3] = quat.to_matrix(quat.from_axis_angle([0.3, 1.0, 0.2], 0.1 * i))
        mats[i, :3, 3] = heads[n]
    return Rig(names, np.array(parents), mats)


def tiled(clip, frames: int):
    reps = int(np.ceil(frames / clip.num_frames))
    idx = np.tile(np.arange(clip.num_frames), reps)[:frames]
    return replace(clip, times=np.arange(frames) / clip.fps, rotations=clip.rotations[idx],
                   root_translation=clip.root_translation[idx], confidence=clip.confidence[idx],
                   frame_flags=clip.frame_flags[idx], contacts=clip.contacts[idx],
                   face_curves=clip.face_curves[idx])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--baseline-frames", type=int, default=300)
    args = parser.parse_args()
    path = args.data / "bvh" / "cmu_131_01_walk.bvh"
    if not path.is_file():
        print(f"{path} not found: pass --data pointing at the shared data folder; skipping")
        return 0
    clip = cliptools.resample(read_bvh(path), 60.0)
    frames = int(args.minutes * 60 * 60)
    long_clip = tiled(clip, frames)
    rig = sixty_bone_rig(clip)
    bmap, smap = map_rig(rig), map_skeleton(clip.skeleton)
    print(f"clip: {frames} frames at 60 fps ({args.minutes:g} min), {clip.skeleton.num_joints} joints; "
          f"rig: {rig.num_bones} bones, {len(bmap.bone_to_role)} mapped")

    seconds = {}
    for lock in (False, True):
        t0 = time.perf_counter()
        retarget(long_clip, rig, bmap, smap, RetargetOptions(foot_lock=lock))
        fast = seconds[lock] = time.perf_counter() - t0
        print(f"vectorised retarget (foot lock {'on' if lock else 'off'}): {fast:.2f} s "
              f"({frames / fast:,.0f} frames/s)")

    n = min(args.baseline_frames, frames)
    options = RetargetOptions(foot_lock=False)
    t0 = time.perf_counter()
    for f in range(n):
        retarget(replace(clip, times=np.zeros(1), rotations=long_clip.rotations[f:f + 1],
                         root_translation=long_clip.root_translation[f:f + 1], confidence=None,
                         frame_flags=None, contacts=None, face_curves=None),
                 rig, bmap, smap, options)
    per_frame = (time.perf_counter() - t0) / n
    naive = per_frame * frames
    print(f"per-frame Python loop baseline: {per_frame * 1e3:.2f} ms/frame over {n} frames, "
          f"extrapolated {naive:.1f} s for {frames} frames")
    print(f"speed-up over the per-frame loop (foot lock off): {naive / seconds[False]:.0f}x")
    character_file(long_clip, rig, seconds[True])
    return 0


def rig_glb(rig: Rig) -> bytes:
    """The rig as a glTF character: one node per bone with its local rest TRS (a skeleton of plain
    nodes, which Keygrip reads as a rig), in a GLB container."""
    nodes: list[dict] = []
    for b, name in enumerate(rig.names):
        p = int(rig.parents[b])
        local = np.linalg.inv(rig.rest_matrices[p]) @ rig.rest_matrices[b] if p >= 0 else rig.rest_matrices[b]
        nodes.append({"name": name, "rotation": quat.from_matrix(local[:3, :3]).tolist(),
                      "translation": local[:3, 3].tolist(),
                      "children": [int(c) for c in np.flatnonzero(rig.parents == b)]})
    roots = [int(b) for b in np.flatnonzero(rig.parents < 0)]
    doc = {"asset": {"version": "2.0"}, "nodes": nodes, "scenes": [{"nodes": roots}], "scene": 0}
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<I4s", len(text), b"JSON") + text
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


def character_file(long_clip, rig: Rig, retarget_s: float) -> None:
    """Read the .glb character, retarget with foot lock (the job's default), write the animated .glb."""
    with tempfile.TemporaryDirectory() as tmp:
        rig_path, out = Path(tmp) / "hero.glb", Path(tmp) / "hero_take.glb"
        rig_path.write_bytes(rig_glb(rig))
        t0 = time.perf_counter()
        character = read_rig_file(rig_path, rig_path.name)
        bone_map = resolve_map(character.rig, character.declared, character.declared_by)
        t_read = time.perf_counter()
        result = retarget(long_clip, character.rig, bone_map, map_skeleton(long_clip.skeleton),
                          RetargetOptions(foot_lock=True))
        t_retarget = time.perf_counter()
        out.write_bytes(animate_glb(rig_path.read_bytes(), rig_path.name, character, result))
        t_glb = time.perf_counter()
        locations = {character.rig.index(n): v for n, v in result.locations.items()}
        target = character.rig
        write_bvh(target.to_clip(result.rotations, locations, result.times, result.fps), io.StringIO(),
                  positions=target.bvh_positions(result.rotations, locations))
        t_bvh = time.perf_counter()
    # The reader orders bones by depth: compare by name.
    order = [character.rig.index(n) for n in rig.names]
    assert np.allclose(character.rig.rest_matrices[order], rig.rest_matrices, atol=1e-5)
    total = t_glb - t0
    baseline = (t_retarget - t_read) + (t_bvh - t_glb)
    print(f".glb character: read {t_read - t0:.2f} s, retarget {t_retarget - t_read:.2f} s, write animated .glb "
          f"{t_glb - t_retarget:.2f} s (hero_take.glb: "
          f"{len(result.times):,} frames x {character.rig.num_bones} bones)")
    print(f"end to end {total:.2f} s (target < 10 s: {'met' if total < 10 else 'NOT met'}); baseline in this run, "
          f"retarget + BVH write {baseline:.2f} s (BVH write {t_bvh - t_glb:.2f} s): ratio {total / baseline:.2f}; "
          f"the rig-only retarget above took {retarget_s:.2f} s")


if __name__ == "__main__":
    raise SystemExit(main())
