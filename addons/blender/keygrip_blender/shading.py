"""Generated images into the scene (main thread only): a texture as a material on the selected meshes,
a world as the scene's World node tree, each as ONE undo step with provenance custom properties
(projected textures: projection.py, with the material from build_projected_material()).

The node wiring lives in build_texture_material(), build_projected_material() and build_world(), which
take any bpy image so that a test can wire a synthetic one exactly as a write-back does. Every image's
colour space is set explicitly: the PNG is sRGB, the EXR scene-linear (Linear Rec.709).

Images are referenced by absolute path, not packed: the files were downloaded next to the .blend
(or into a temporary folder when the file is unsaved; File > External Data > Pack Resources keeps
them in the .blend when that folder is temporary).
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bpy

from keygrip.generate import Generated

from .actions import stamp_provenance
from .apply import window_context

SRGB = "sRGB"
# Blender 4.x/5.0 name the scene-linear Rec.709 space "Linear Rec.709"; older configs "Linear".
LINEAR_NAMES = ("Linear Rec.709", "Linear", "scene_linear")
FOLDER_NAME = "keygrip_generated"


@dataclass(frozen=True)
class Target:
    """Where a result lands, snapshotted from the panel with the plan.

    objects: the selected meshes' names (texture). scene: the scene whose world is replaced (world).
    scale: the Mapping node's scale (texture repeats per UV unit). rotation: the world's Z rotation,
    radians (the environment turns by this angle about +Z).
    """

    objects: tuple[str, ...] = ()
    scene: str = ""
    scale: float = 1.0
    rotation: float = 0.0


def output_folder() -> Path:
    """Where generated files go: keygrip_generated/ next to the saved .blend, else a temporary folder."""
    if bpy.data.filepath:
        return Path(bpy.path.abspath("//")) / FOLDER_NAME
    return Path(tempfile.gettempdir()) / FOLDER_NAME


def set_colorspace(image: bpy.types.Image, *names: str) -> str:
    """The first of `names` this Blender's colour configuration has; ValueError when none."""
    items = image.colorspace_settings.bl_rna.properties["name"].enum_items.keys()
    for name in names:
        if name in items:
            image.colorspace_settings.name = name
            return name
    raise ValueError(f"none of the colour spaces {names} exists in this Blender ({', '.join(items)})")


def load_image(path: Path, *, linear: bool = False, non_color: bool = False) -> bpy.types.Image:
    """An image file as a new datablock in its colour space: sRGB, scene-linear (linear=True) or data
    such as height and normal maps (non_color=True)."""
    image = bpy.data.images.load(str(Path(path).resolve()), check_existing=False)
    set_colorspace(image, *(("Non-Color",) if non_color else LINEAR_NAMES if linear else (SRGB,)))
    return image


def _node(tree: bpy.types.NodeTree, kind: str, x: float, y: float) -> bpy.types.Node:
    node = tree.nodes.new(kind)
    node.location = (x, y)
    return node


def build_texture_material(name: str, image: bpy.types.Image, scale: float = 1.0, *,
                           height: bpy.types.Image | None = None,
                           normal: bpy.types.Image | None = None) -> bpy.types.Material:
    """Texture Coordinate (UV) -> Mapping (scale) -> Image Texture -> Principled BSDF Base Color ->
    Material Output, in a new material. With maps (non-colour images): normal -> Normal Map (tangent
    space) -> the BSDF's Normal, and height -> Displacement -> the output's Displacement with the
    material set to true displacement, so that relief is shaded once, by the normal map, and the
    height moves the surface where it is subdivided."""
    mat, tree, bsdf = _principled_material(name)
    coords = _node(tree, "ShaderNodeTexCoord", -900, 0)
    mapping = _node(tree, "ShaderNodeMapping", -700, 0)
    mapping.vector_type = "POINT"
    mapping.inputs["Scale"].default_value = (scale, scale, scale)
    tex = _node(tree, "ShaderNodeTexImage", -450, 0)
    tex.image = image
    tex.extension = "REPEAT"
    out = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeOutputMaterial")
    links = tree.links
    links.new(coords.outputs["UV"], mapping.inputs["Vector"])
    links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    if normal is not None:
        normal_tex = _node(tree, "ShaderNodeTexImage", -450, -300)
        normal_tex.image, normal_tex.extension = normal, "REPEAT"
        normal_map = _node(tree, "ShaderNodeNormalMap", -150, -350)
        normal_map.space = "TANGENT"
        links.new(mapping.outputs["Vector"], normal_tex.inputs["Vector"])
        links.new(normal_tex.outputs["Color"], normal_map.inputs["Color"])
        links.new(normal_map.outputs["Normal"], bsdf.inputs["Normal"])
    if height is not None:
        height_tex = _node(tree, "ShaderNodeTexImage", -450, -600)
        height_tex.image, height_tex.extension = height, "REPEAT"
        displacement = _node(tree, "ShaderNodeDisplacement", -150, -650)
        displacement.inputs["Midlevel"].default_value = 0.5
        displacement.inputs["Scale"].default_value = 0.02
        links.new(mapping.outputs["Vector"], height_tex.inputs["Vector"])
        links.new(height_tex.outputs["Color"], displacement.inputs["Height"])
        links.new(displacement.outputs["Displacement"], out.inputs["Displacement"])
        mat.displacement_method = "DISPLACEMENT"
    return mat


def build_projected_material(name: str, image: bpy.types.Image, uv_map: str) -> bpy.types.Material:
    """UV Map (the object's own map, by name) -> Image Texture (clamped at the edge: the texture does
    not repeat) -> Principled BSDF Base Color -> Material Output, in a new material: a texture baked
    from cameras stays put when the cameras move."""
    mat, tree, bsdf = _principled_material(name)
    uv = _node(tree, "ShaderNodeUVMap", -700, 0)
    uv.uv_map = uv_map
    tex = _node(tree, "ShaderNodeTexImage", -450, 0)
    tex.image = image
    tex.extension = "EXTEND"
    tree.links.new(uv.outputs["UV"], tex.inputs["Vector"])
    tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def _principled_material(name: str) -> tuple[bpy.types.Material, bpy.types.NodeTree, bpy.types.Node]:
    """A new material whose tree is just Principled BSDF -> Material Output (the caller wires inputs)."""
    mat = bpy.data.materials.new(name)
    if mat.node_tree is None:   # before 5.0, where nodes are always on (and use_nodes deprecated)
        mat.use_nodes = True
    tree = mat.node_tree
    tree.nodes.clear()
    bsdf = _node(tree, "ShaderNodeBsdfPrincipled", -150, 0)
    out = _node(tree, "ShaderNodeOutputMaterial", 200, 0)
    tree.links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    return mat, tree, bsdf


def build_world(name: str, image: bpy.types.Image, rotation: float = 0.0) -> bpy.types.World:
    """Texture Coordinate (Generated: the view direction) -> Mapping (Z rotation) -> Environment
    Texture (equirectangular) -> Background -> World Output, in a new world.

    The Mapping node is of type TEXTURE (the inverse transform), so `rotation` turns the environment
    itself by that angle about +Z: what the image shows at direction d appears at Rz(rotation) d.
    """
    world = bpy.data.worlds.new(name)
    if world.node_tree is None:
        world.use_nodes = True
    tree = world.node_tree
    tree.nodes.clear()
    coords = _node(tree, "ShaderNodeTexCoord", -900, 0)
    mapping = _node(tree, "ShaderNodeMapping", -700, 0)
    mapping.vector_type = "TEXTURE"
    mapping.inputs["Rotation"].default_value = (0.0, 0.0, rotation)
    env = _node(tree, "ShaderNodeTexEnvironment", -450, 0)
    env.image = image
    env.projection = "EQUIRECTANGULAR"
    background = _node(tree, "ShaderNodeBackground", -150, 0)
    out = _node(tree, "ShaderNodeOutputWorld", 100, 0)
    links = tree.links
    links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
    links.new(mapping.outputs["Vector"], env.inputs["Vector"])
    links.new(env.outputs["Color"], background.inputs["Color"])
    links.new(background.outputs["Background"], out.inputs["Surface"])
    return world


def direction_to_equirectangular(x: float, y: float, z: float) -> tuple[float, float]:
    """Blender's equirectangular (u, v) in 0..1 of a direction (v = 0 at the image's bottom row), as
    Cycles' direction_to_equirectangular computes it: +X at the centre, +Y at u = 0.25, up at v = 1."""
    u = -math.atan2(y, x) / (2.0 * math.pi) + 0.5
    v = math.atan2(z, math.hypot(x, y)) / math.pi + 0.5
    return u, v


def write_texture(done: Generated, target: Target) -> bpy.types.Material:
    """A new material with the PNG on every target mesh (replacing its first slot, or added)."""
    with undo_step(f"Keygrip: {done.plan.title}"):
        meshes = [o for o in (bpy.data.objects.get(n) for n in target.objects) if o is not None and o.type == "MESH"]
        if not meshes:
            raise ValueError("the selected meshes are gone; select the objects to texture and run again")
        image = load_image(done.image_path, linear=False)
        maps = [load_image(p, non_color=True) if p else None for p in (done.height_path, done.normal_path)]
        mat = build_texture_material(f"Keygrip {done.plan.stem}", image, target.scale, height=maps[0], normal=maps[1])
        stamp_provenance([mat, image, *(m for m in maps if m is not None)], done.provenance())
        for obj in meshes:
            if obj.data.materials:
                obj.data.materials[0] = mat
            else:
                obj.data.materials.append(mat)
        return mat


def write_world(done: Generated, target: Target) -> bpy.types.World:
    """A new World from the linear EXR, made the scene's world."""
    with undo_step(f"Keygrip: {done.plan.title}"):
        scene = bpy.data.scenes.get(target.scene) or bpy.context.scene
        image = load_image(done.exr_path, linear=True)
        world = build_world(f"Keygrip {done.plan.stem}", image, target.rotation)
        stamp_provenance([world, image], done.provenance())
        scene.world = world
        return world


@contextlib.contextmanager
def undo_step(message: str) -> Iterator[None]:
    """Run the write in a window context (timers have none); push one undo step when it succeeds."""
    with window_context():
        yield
        bpy.ops.ed.undo_push(message=message)
