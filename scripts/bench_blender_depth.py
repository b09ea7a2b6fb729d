"""Benchmark: the Project button's depth render (one merged BVH tree, a ray per pixel) against
scene.ray_cast for the same rays, same scene, same run.

The scene: a ground plane, a cube and a subdivided Suzanne (about 16k triangles) seen by one camera;
--objects adds more small cubes (scene.ray_cast searches every object for every ray, the merged
tree does not). Both renders must agree. Needs the bpy wheel; runs in background mode.

    python scripts/bench_blender_depth.py [--width 512] [--height 288] [--objects 0] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from blender_addon import load_addon  # noqa: E402  (scripts/ is on the path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--objects", type=int, default=0, help="extra small cubes in the scene")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    try:
        import bpy
        from mathutils import Vector
    except ImportError:
        print("the bpy wheel is not installed; skipping")
        return 0
    load_addon()
    from keygrip_blender import projection

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_plane_add(size=10)
    bpy.ops.mesh.primitive_cube_add(location=(0, 0, 1))
    bpy.ops.mesh.primitive_monkey_add(location=(2, 0, 1))
    bpy.context.active_object.modifiers.new("subsurf", "SUBSURF").levels = 2
    rng = np.random.default_rng(0)
    for x, y in rng.uniform(-4, 4, (args.objects, 2)):
        bpy.ops.mesh.primitive_cube_add(size=0.2, location=(x, y, 0.1))
    bpy.ops.object.camera_add(location=(0, -8, 4), rotation=(1.1, 0, 0.1))
    camera = bpy.context.active_object
    scene = bpy.context.scene
    w, h = args.width, args.height

    def ours() -> np.ndarray:
        rays = projection.SceneRays(bpy.context.evaluated_depsgraph_get(), ["Cube"])
        return np.asarray(rays.render(projection.shot(camera, w, h)).depth, dtype=np.float64)

    def baseline() -> np.ndarray:
        depsgraph = bpy.context.evaluated_depsgraph_get()
        cam = projection.camera_from_blender(camera, w, h)
        rays = cam.ray_directions().reshape(-1, 3)
        length = np.linalg.norm(rays, axis=1)
        origin = Vector(cam.position)
        depth = np.full(len(rays), np.inf)
        for k, direction in enumerate(rays.tolist()):
            hit, location, *_ = scene.ray_cast(depsgraph, origin, Vector(direction))
            if hit:
                depth[k] = (location - origin).length / length[k]
        return depth.reshape(h, w)

    times: dict[str, list[float]] = {"merged BVH tree": [], "scene.ray_cast": []}
    for _ in range(args.rounds):   # alternating, so that the machine's noise hits both alike
        for name, fn in (("merged BVH tree", ours), ("scene.ray_cast", baseline)):
            start = time.perf_counter()
            depth = fn()
            times[name].append(time.perf_counter() - start)
            if name == "merged BVH tree":
                first = depth
            else:
                same = np.isclose(first, depth, rtol=1e-4) | (np.isinf(first) & np.isinf(depth))
                assert same.mean() > 0.999, same.mean()
    tris = projection.SceneRays(bpy.context.evaluated_depsgraph_get(), []).triangles
    print(f"{w}x{h} rays, {tris:,} triangles in {len(scene.objects) - 1} objects; Blender {bpy.app.version_string}")
    for name, values in times.items():
        print(f"{name}: median {np.median(values):.3f} s (of {', '.join(f'{v:.3f}' for v in values)})")
    ratio = np.median(times["scene.ray_cast"]) / np.median(times["merged BVH tree"])
    print(f"ratio scene.ray_cast / merged tree: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
