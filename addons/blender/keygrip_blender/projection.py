"""Projected textures in Blender: cameras as keygrip.projection.Camera, depth and mask rendered by ray
casts against the evaluated scene (the tree and the cameras taken on the main thread, the casts on the
worker thread with progress and cancel), the target meshes as triangles, and the write-back
that bakes the server's images into each mesh's own UV map (keygrip.bake) as ONE undo step.

Depth needs no GPU and no render engine: one merged BVH tree of every visible object's evaluated
triangles in world space, and one ray per pixel centre through it. scene.ray_cast gives the same
depth but searches every object for every ray: scripts/bench_blender_depth.py measures both (bpy
5.0.1, 512x288 rays, 16k triangles: 0.3-0.9 s for the tree on a busy 2-core machine, 1.8x faster
than scene.ray_cast with 3 objects, 3.1x with 53).

The baked texture is an 8-bit sRGB PNG: the server's images are 8-bit sRGB, and the bake resamples
them without changing their encoding, so a float buffer would hold no more information in four times
the memory. Its alpha is the coverage (1 where a view painted); the image's alpha mode is
CHANNEL_PACKED so that renderers do not premultiply the colour by it (the colour grown into the
margin would turn black, and seams would show).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector
from mathutils.bvhtree import BVHTree

from keygrip import bake
from keygrip.generate import Projected, ProjectPlan
from keygrip.lens import Lens
from keygrip.projection import Camera, View, file_stem, view_size
from keygrip.session import WorkerContext

from . import shading
from .actions import stamp_provenance

GEOMETRY_TYPES = {"MESH", "CURVE", "SURFACE", "FONT", "META"}   # what ray casts can hit
# Rays cast between progress reports (and chances to cancel): about a tenth of a second each.
_RAYS_PER_REPORT = 20000


def check_camera(obj: bpy.types.Object) -> None:
    """ValueError unless `obj` is a perspective camera (the only kind a pinhole Camera describes)."""
    if obj.type != "CAMERA":
        raise ValueError(f"{obj.name} is not a camera")
    if obj.data.type != "PERSP":
        raise ValueError(f"camera {obj.name} is {obj.data.type.lower()}: projecting needs a perspective camera")


def camera_from_blender(obj: bpy.types.Object, width: int, height: int) -> Camera:
    """The pinhole camera of a Blender camera object for a width x height image (square pixels), as
    Blender frames it (keygrip.lens: focal length and sensor with its fit, lens shift in units of the
    fitted side), at the object's world matrix without its scale."""
    check_camera(obj)
    cam = obj.data
    lens = Lens.resolve(focal_mm=cam.lens, sensor_width=cam.sensor_width, sensor_height=cam.sensor_height,
                        fit=cam.sensor_fit, shift_x=cam.shift_x, shift_y=cam.shift_y, width=width, height=height)
    location, rotation, _ = obj.matrix_world.decompose()
    return lens.to_camera(np.array(Matrix.LocRotScale(location, rotation, None)))


class SceneRays:
    """Every visible object of the evaluated scene as one BVH tree in world space, to render views of.

    Instances (particles, collection and geometry-nodes instances) occlude like objects. A hit is a
    target when it is on one of `targets` itself (not on an instance of it).
    """

    def __init__(self, depsgraph: bpy.types.Depsgraph, targets: Iterable[str]) -> None:
        targets = set(targets)
        verts: list[np.ndarray] = []
        tris: list[np.ndarray] = []
        is_target: list[np.ndarray] = []
        count = 0
        for inst in depsgraph.object_instances:
            obj = inst.object
            if obj.type not in GEOMETRY_TYPES:
                continue
            mesh = obj.to_mesh()
            try:
                if mesh is None or not len(mesh.polygons):
                    continue
                co, faces = _world_triangles(mesh, np.array(inst.matrix_world))
            finally:
                obj.to_mesh_clear()
            verts.append(co)
            tris.append(faces + count)
            count += len(co)
            hit_target = not inst.is_instance and obj.original.name in targets
            is_target.append(np.full(len(faces), hit_target))
        self.triangles = sum(len(t) for t in tris)
        self._target = np.concatenate(is_target) if is_target else np.zeros(0, bool)
        self._tree = (BVHTree.FromPolygons(np.concatenate(verts).tolist(), np.concatenate(tris).tolist(),
                                           all_triangles=True) if tris else None)

    def render(self, shot: Shot, report: Callable[[float], None] | None = None) -> View:
        """The View of a camera shot: depth along the view axis at every pixel centre (inf where nothing
        is hit before the camera's clip end) and the mask of pixels whose first hit is a target.

        Reads no bpy data, so it may run on a worker thread (the BVH tree is built already).
        report(fraction) is called between rows of the image; what it raises (a cancel) stops the render.
        """
        cam, width, height = shot.camera, shot.camera.width, shot.camera.height
        depth = np.full(height * width, np.inf, dtype=np.float32)
        mask = np.zeros(height * width, dtype=bool)
        if self._tree is not None:
            rays = cam.ray_directions().reshape(-1, 3)     # depth 1 along the view axis
            length = np.linalg.norm(rays, axis=1)
            # One shared origin and plain lists: building a Vector per ray would double the time.
            # Rays start at the camera, not at its clip start (nothing should sit that close anyway).
            origin, cast, limit = Vector(cam.position), self._tree.ray_cast, shot.clip_end * float(length.max())
            face = np.full(len(rays), -1, dtype=np.int64)
            distance = np.full(len(rays), np.nan, dtype=np.float64)
            step = max(1, _RAYS_PER_REPORT // width) * width
            for lo in range(0, len(rays), step):
                if report is not None:
                    report(lo / len(rays))
                hits = [cast(origin, direction, limit) for direction in rays[lo:lo + step].tolist()]
                face[lo:lo + step] = [-1 if h[2] is None else h[2] for h in hits]
                distance[lo:lo + step] = [np.nan if h[3] is None else h[3] for h in hits]
            hit = face >= 0
            along = distance / length                       # the hit's depth along the view axis
            hit &= along <= shot.clip_end
            depth[hit] = along[hit]
            mask[hit] = self._target[face[hit]]
        return View(shot.name, cam, depth.reshape(height, width), mask.reshape(height, width))


@dataclass(frozen=True)
class Shot:
    """What rendering a camera needs, taken from Blender on the main thread."""

    name: str
    camera: Camera
    clip_end: float


def shot(obj: bpy.types.Object, width: int, height: int) -> Shot:
    """Camera `obj` framing a width x height image (ValueError unless it is a perspective camera)."""
    return Shot(obj.name, camera_from_blender(obj, width, height), float(obj.data.clip_end))


def _world_triangles(mesh: bpy.types.Mesh, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vertex positions (V, 3) in world space, triangles (T, 3) of vertex indices) of a mesh."""
    mesh.calc_loop_triangles()
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
    mesh.vertices.foreach_get("co", co)
    faces = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
    mesh.loop_triangles.foreach_get("vertices", faces)
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3], faces.reshape(-1, 3)


@dataclass(frozen=True, eq=False)
class MeshSnapshot:
    """A target mesh as it was when the views were rendered: world-space loop triangles, corner
    normals, and the UVs of its active UV map (None when it had no UV map: one is made at write time)."""

    name: str
    positions: np.ndarray    # (T, 3, 3)
    normals: np.ndarray      # (T, 3, 3)
    uvs: np.ndarray | None   # (T, 3, 2)
    uv_map: str

    def triangles(self, uvs: np.ndarray | None = None) -> bake.Triangles:
        chosen = self.uvs if uvs is None else uvs
        if chosen is None:
            raise ValueError(f"{self.name} has no UV map")
        return bake.Triangles(self.positions, chosen, self.normals)


def mesh_snapshot(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> MeshSnapshot:
    """The evaluated mesh (modifiers applied) of `obj` as world-space triangles with its active UV map."""
    uv_layer = obj.data.uv_layers.active
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        matrix = np.array(evaluated.matrix_world)
        co, faces = _world_triangles(mesh, matrix)
        positions = co[faces]
        loops = _loop_triangles(mesh)
        normals = np.empty(len(mesh.loops) * 3, dtype=np.float64)
        mesh.corner_normals.foreach_get("vector", normals)
        # Normals transform with the inverse transpose (non-uniform scale); bake.py normalises them.
        world_normals = normals.reshape(-1, 3) @ np.linalg.inv(matrix[:3, :3])
        uvs = _uvs(mesh, uv_layer.name, loops) if uv_layer is not None else None
        return MeshSnapshot(obj.name, positions, world_normals[loops], uvs, uv_layer.name if uv_layer else "")
    finally:
        evaluated.to_mesh_clear()


def _loop_triangles(mesh: bpy.types.Mesh) -> np.ndarray:
    loops = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
    mesh.loop_triangles.foreach_get("loops", loops)
    return loops.reshape(-1, 3)


def _uvs(mesh: bpy.types.Mesh, name: str, loops: np.ndarray) -> np.ndarray:
    layer = mesh.uv_layers.get(name)
    if layer is None:
        raise ValueError(f"the UV map {name!r} is gone from {mesh.name}")
    uv = np.empty(len(mesh.loops) * 2, dtype=np.float64)
    layer.uv.foreach_get("vector", uv)
    return uv.reshape(-1, 2)[loops]


def read_image(path: Path) -> np.ndarray:
    """An 8-bit PNG as (H, W, 3) float sRGB 0..1, row 0 at the top (Blender's pixels start at the
    bottom). The image is loaded and removed again."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        shading.set_colorspace(image, shading.SRGB)   # byte pixels are read as stored, not converted
        width, height = image.size
        pixels = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels.reshape(height, width, 4)[::-1, :, :3]


# The write-back --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Painted:
    """What the write-back made: per object, its material, image and the painted fraction of its
    texture; and the objects that got a new UV map (Smart UV Project) because they had none."""

    materials: dict[str, str]
    images: dict[str, str]
    coverage: dict[str, float]
    unwrapped: tuple[str, ...]


@dataclass(frozen=True)
class Baking:
    """A projection on its way into the meshes: the job's result, each view with its painted image,
    and the textures baked so far (by mesh name)."""

    done: Projected
    views: list[tuple[View, np.ndarray]]
    textures: dict[str, bake.Baked]


def read_views(done: Projected) -> Baking:
    """Each view with the image the server painted for it (main thread: Blender reads the PNGs)."""
    return Baking(done, [(p.view, read_image(p.image_path)) for p in done.views], {})


def bake_meshes(meshes: Sequence[MeshSnapshot], views: Sequence[tuple[View, np.ndarray]], texture_size: int,
                report: Callable[[str, float], None] | None = None) -> dict[str, bake.Baked]:
    """The views baked into each mesh that has a UV map, from the snapshots alone (no bpy data: any
    thread). A mesh without one is baked at write time, after its unwrap. report(mesh name, fraction of
    all meshes) comes before each view of each mesh; what it raises (a cancel) stops the bake."""
    chosen = [snap for snap in meshes if snap.uvs is not None]
    baked = {}
    for k, snap in enumerate(chosen):
        def per_view(fraction: float, k: int = k, name: str = snap.name) -> None:
            if report is not None:
                report(name, (k + fraction) / len(chosen))

        baked[snap.name] = bake.bake(snap.triangles(), views, texture_size, report=per_view)
    return baked


def write_projection(done: Projected, meshes: Sequence[MeshSnapshot], folder: Path,
                     views: Sequence[tuple[View, np.ndarray]] | None = None,
                     textures: dict[str, bake.Baked] | None = None) -> Painted:
    """Give each mesh a material with the views baked into its UV map: one undo step. views: read_views'
    (read here when None); baked: bake_meshes' (a mesh missing there is baked here, after an unwrap
    when it has no UV map).

    Everything that can refuse is checked before the scene changes (a failure half-way would leave
    changes without their undo step): the meshes, their UV maps, the mode an unwrap needs."""
    objects = [bpy.data.objects.get(snap.name) for snap in meshes]
    for snap, obj in zip(meshes, objects, strict=True):
        if obj is None or obj.type != "MESH":
            raise ValueError(f"{snap.name} is gone; select the meshes to paint and run Project again")
        if snap.uvs is None and bpy.context.mode != "OBJECT":
            raise ValueError(f"{obj.name} has no UV map, and making one needs Object mode: leave "
                             f"{bpy.context.mode.replace('_', ' ').lower()} mode and run Project again")
        if snap.uvs is not None and obj.data.uv_layers.get(snap.uv_map) is None:
            raise ValueError(f"the UV map {snap.uv_map!r} of {obj.name} was removed meanwhile; run Project again")
    views = read_views(done).views if views is None else views
    textures = textures or {}
    materials, images, coverage, unwrapped = {}, {}, {}, []
    with shading.undo_step(f"Keygrip: {done.plan.title}"):
        for snap, obj in zip(meshes, objects, strict=True):
            uv_map, result = snap.uv_map, textures.get(snap.name)
            if result is None:
                uvs = snap.uvs
                if uvs is None:
                    uv_map, uvs = _unwrap(obj, len(snap.positions))
                    unwrapped.append(obj.name)
                result = bake.bake(snap.triangles(uvs), views, done.plan.texture_size)
            image = _save_image(f"Keygrip {obj.name} {done.plan.stem}", result.rgba,
                                folder / f"{done.plan.stem}_{done.job_id[:8]}_{file_stem(obj.name, '')}.png")
            mat = shading.build_projected_material(f"Keygrip {obj.name} {done.plan.stem}", image, uv_map)
            stamp_provenance([mat, image], done.provenance(), object=obj.name, uv_map=uv_map,
                             coverage=result.coverage)
            _assign(obj, mat)
            materials[obj.name], images[obj.name], coverage[obj.name] = mat.name, image.name, result.coverage
    return Painted(materials, images, coverage, tuple(unwrapped))


def _save_image(name: str, rgba: np.ndarray, path: Path) -> bpy.types.Image:
    """An 8-bit sRGB image with these pixels (row 0 at the bottom, as bake gives them), saved as PNG at
    `path` and referenced from there (like the other generated textures)."""
    height, width = rgba.shape[:2]
    image = bpy.data.images.new(name, width, height, alpha=True)
    shading.set_colorspace(image, shading.SRGB)
    image.alpha_mode = "CHANNEL_PACKED"
    image.pixels.foreach_set(np.ascontiguousarray(rgba, dtype=np.float32).reshape(-1))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.filepath_raw = str(path.resolve())
    image.file_format = "PNG"
    image.save()
    return image


def _unwrap(obj: bpy.types.Object, triangles: int) -> tuple[str, np.ndarray]:
    """Give a mesh without a UV map one (Smart UV Project) and read it for the snapshot's triangles.

    The unwrap operator works in Edit mode on the active object, so the object is made the only
    selected and active one for it; the artist's selection and active object are put back after."""
    layer_objects = bpy.context.view_layer.objects
    active, selected = layer_objects.active, [o for o in layer_objects if o.select_get()]
    try:
        for other in selected:
            other.select_set(False)
        obj.select_set(True)
        layer_objects.active = obj
        bpy.ops.object.mode_set(mode="EDIT")
        bpy.ops.mesh.select_all(action="SELECT")
        bpy.ops.uv.smart_project()
        bpy.ops.object.mode_set(mode="OBJECT")
    finally:
        obj.select_set(False)
        for other in selected:
            other.select_set(True)
        layer_objects.active = active
    layer = obj.data.uv_layers.active
    if layer is None:
        raise ValueError(f"Smart UV Project made no UV map for {obj.name}; unwrap it yourself and run Project again")
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        mesh.calc_loop_triangles()
        if len(mesh.loop_triangles) != triangles:
            raise ValueError(f"{obj.name} was edited while its texture was generated; run Project again")
        return layer.name, _uvs(mesh, layer.name, _loop_triangles(mesh))
    finally:
        evaluated.to_mesh_clear()


def _assign(obj: bpy.types.Object, mat: bpy.types.Material) -> None:
    """The material on every slot of the object (it covers the whole mesh), or on a new one. A mesh
    shared with other objects gets it on the object's slots, so that each object keeps its own paint."""
    if not obj.material_slots:
        obj.data.materials.append(mat)
        return
    for slot in obj.material_slots:
        if obj.data.users > 1:
            slot.link = "OBJECT"
        slot.material = mat


def render_views(plan: ProjectPlan, scene: bpy.types.Scene
                 ) -> tuple[Callable[[WorkerContext], list[View]], list[MeshSnapshot]]:
    """From the evaluated scene as it is now (main thread): the renderer of the plan's cameras at the
    plan's size for the scene's aspect (it runs on the worker thread, with progress and cancel), and the
    targets' meshes to bake into."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    render = scene.render
    aspect = (render.resolution_x * render.pixel_aspect_x) / (render.resolution_y * render.pixel_aspect_y)
    width, height = view_size(aspect, plan.long_side)
    rays = SceneRays(depsgraph, plan.objects)
    shots = []
    for name in plan.cameras:
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise ValueError(f"camera {name} is gone")
        shots.append(shot(obj, width, height))
    meshes = [mesh_snapshot(bpy.data.objects[name], depsgraph) for name in plan.objects]

    def renderer(ctx: WorkerContext) -> list[View]:
        views = []
        for k, s in enumerate(shots):
            def report(fraction: float, k: int = k, name: str = s.name) -> None:
                ctx.check_cancelled()
                ctx.progress(f"rendering the depth of {name}", (k + fraction) / len(shots))

            views.append(rays.render(s, report))
        return views

    return renderer, meshes
