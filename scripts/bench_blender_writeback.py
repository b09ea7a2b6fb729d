"""Benchmark: bulk animation write-back vs keyframe_insert, same rig and clip, same run.

Writes a synthetic clip (default 36,000 frames = 10 minutes at 60 fps) onto a 60-bone armature with
the add-on's writeback.write_armature_action (quaternion keys on every bone + root location), and
measures keyframe_insert on the first --insert-frames frames of the same clip. keyframe_insert on the
whole clip would take minutes, so its time for the whole clip is extrapolated from its keys/s rate
(it stays roughly linear in the number of keys). Needs the bpy wheel; runs in background mode.

    python scripts/bench_blender_writeback.py [--frames 36000] [--bones 60] [--insert-frames 600]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from blender_addon import load_addon  # noqa: E402  (scripts/ is on the path)


def synthetic_clip(frames: int, bones: int) -> tuple[np.ndarray, np.ndarray]:
    """(F, B, 4) xyzw rotations (a sine swing about a random axis per bone) and (F, 3) root path."""
    rng = np.random.default_rng(0)
    axis = rng.normal(size=(bones, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    t = np.arange(frames)[:, None] / 60.0
    half = 0.5 * 0.8 * np.sin(2 * np.pi * rng.uniform(0.2, 2.0, bones) * t)
    rotations = np.concatenate([axis * np.sin(half)[..., None], np.cos(half)[..., None]], axis=-1)
    root = np.stack([np.sin(t[:, 0]), 0.9 + 0.05 * np.sin(5 * t[:, 0]), 0.3 * t[:, 0]], axis=1)
    return rotations, root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=36_000)
    parser.add_argument("--bones", type=int, default=60)
    parser.add_argument("--insert-frames", type=int, default=600,
                        help="frames written with keyframe_insert for the baseline rate")
    args = parser.parse_args(argv)

    try:
        import bpy
    except ImportError:
        print("the bpy wheel is not installed; skipping")
        return 0
    load_addon()
    from keygrip_blender import rig, writeback

    bpy.ops.wm.read_factory_settings(use_empty=True)
    # A binary tree of bones, each 5 cm from its parent: only the bone count matters here.
    names = [f"bone{j:03d}" for j in range(args.bones)]
    parents = [(j - 1) // 2 for j in range(args.bones)]
    offsets = np.random.default_rng(1).normal(size=(args.bones, 3)) * 0.05
    obj = rig.build_canonical_armature(names, parents, offsets, name="Bench")
    rotations, root = synthetic_clip(args.frames, args.bones)
    root_bone = names[0]
    keys_per_frame = 4 * args.bones + 3

    # Baseline: what a naive add-on does, frame by frame, bone by bone.
    n_insert = min(args.insert_frames, args.frames)
    wxyz = np.concatenate([rotations[..., 3:], rotations[..., :3]], axis=-1)
    locations = writeback.root_locations_to_pose(obj, root_bone, root)
    pose_bones = [obj.pose.bones[n] for n in names]
    for pb in pose_bones:
        pb.rotation_mode = "QUATERNION"
    start = time.perf_counter()
    for f in range(n_insert):
        for b, pb in enumerate(pose_bones):
            pb.rotation_quaternion = wxyz[f, b]
            pb.keyframe_insert("rotation_quaternion", frame=f + 1)
        pose_bones[0].location = locations[f]
        pose_bones[0].keyframe_insert("location", frame=f + 1)
    insert_s = time.perf_counter() - start
    insert_rate = n_insert * keys_per_frame / insert_s

    start = time.perf_counter()
    action = writeback.write_armature_action(obj, names, np.arange(args.frames) + 1.0, rotations,
                                             root_bone, root, action_name="Bench")
    bulk_s = time.perf_counter() - start
    total_keys = args.frames * keys_per_frame
    bulk_rate = total_keys / bulk_s
    assert action.name.startswith("Bench")

    print(f"rig: {args.bones} bones; clip: {args.frames} frames; keys: {total_keys:,} "
          f"({keys_per_frame} per frame); Blender {bpy.app.version_string}")
    print(f"keyframe_insert: {n_insert} frames, {n_insert * keys_per_frame:,} keys in {insert_s:.2f} s "
          f"= {insert_rate / 1e6:.3f} M keys/s; whole clip extrapolated: {total_keys / insert_rate:.0f} s")
    print(f"bulk write-back: whole clip in {bulk_s:.2f} s = {bulk_rate / 1e6:.2f} M keys/s")
    print(f"ratio bulk / keyframe_insert: {bulk_rate / insert_rate:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
