"""What the artist sets in the Keygrip panel: saved in the .blend (scene and armature settings).

Blender declares properties as class annotations that are calls (`name: bpy.props.StringProperty()`),
which type checkers reject as annotations: those lines (here, in preferences.py and operators.py)
are checked with valid-type off (pyproject.toml).
"""

from __future__ import annotations

import bpy

# Identifiers are keygrip.v1 RootMotion names without their ROOT_MOTION_ prefix (the SDK's Plan
# looks the enum up by name).
ROOT_MOTION_ITEMS = [
    ("HIPS", "Hips", "Travel on the hips bone, scaled to the rig's leg length"),
    ("ROOT_BONE", "Root bone", "Ground-plane travel on the rig's top root bone, height on the hips"),
    ("IN_PLACE", "In place", "Horizontal travel removed"),
    ("KEEP", "Keep", "Travel as captured, unscaled, on the hips"),
]


def _roles(self, context, edit_text):
    from keygrip.humanoid import ROLES

    return [r for r in ROLES if edit_text.lower() in r.lower()]


# Where a row's role came from: the server's RoleSource names, and the artist's own edit.
SOURCE_LABELS = {"PRESET": "preset", "DECLARED": "declared", "NAME": "name", "STRUCTURE": "structure",
                 "EDITED": "edited"}


def _edited(self, context) -> None:
    # A role the artist types is theirs, however the row was filled.
    self.source, self.confidence = "EDITED", 1.0


class KeygripBoneMapItem(bpy.types.PropertyGroup):
    bone: bpy.props.StringProperty(name="Bone", description="Bone of this armature")
    role: bpy.props.StringProperty(
        name="Role", description="VRM humanoid role (empty: the bone is not driven)", search=_roles,
        update=_edited)
    source: bpy.props.StringProperty(
        name="Source", description="Where the role came from: declared by the character file, a preset, guessed "
        "from the bone's name or from the skeleton's structure, or edited by you")
    confidence: bpy.props.FloatProperty(name="Confidence", min=0.0, max=1.0,
                                        description="How sure the server is of the role (1: declared or a preset)")


def _is_armature(self, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE"


def _has_shape_keys(self, obj: bpy.types.Object) -> bool:
    return obj.type == "MESH" and obj.data.shape_keys is not None


class KeygripPersonItem(bpy.types.PropertyGroup):
    """One person Find People saw in the shot (DetectPeople), for choosing who to capture."""

    person_id: bpy.props.IntProperty(name="Id")
    first_frame: bpy.props.IntProperty(name="First frame")
    last_frame: bpy.props.IntProperty(name="Last frame")
    visible: bpy.props.FloatProperty(name="Seen on", subtype="FACTOR", min=0.0, max=1.0)
    chosen: bpy.props.BoolProperty(
        name="Include", description="Capture this person with the others ticked, each onto their own rig "
        "(Capture Chosen People)")
    armature: bpy.props.PointerProperty(
        name="Onto", type=bpy.types.Object, poll=_is_armature,
        description="The rig this person goes onto with Capture Chosen People (through its bone map); "
        "empty: a new armature")


class KeygripCameraVideo(bpy.types.PropertyGroup):
    """One calibrated camera's video of a multi-camera take."""

    path: bpy.props.StringProperty(name="Video", subtype="FILE_PATH", description="This camera's video")
    offset: bpy.props.IntProperty(name="Offset", description="This video's frame that shows the first video's "
                                  "frame 0 (used when Set Offsets is on)")


class KeygripSceneSettings(bpy.types.PropertyGroup):
    source: bpy.props.EnumProperty(
        name="Source", items=[("FILE", "Video file", "A video file on disk"),
                              ("CLIP", "Movie Clip", "A Movie Clip already in this file (a movie or an image "
                                                     "sequence)"),
                              ("IMAGE", "Image sequence", "An Image already in this file whose source is an image "
                                                          "sequence (plate.1001.exr ...)"),
                              ("CAMERAS", "Cameras", "Several calibrated cameras' videos of one take, captured "
                                                     "together (multi-view: depth from the calibration)")],
        default="FILE")
    camera_videos: bpy.props.CollectionProperty(type=KeygripCameraVideo)
    camera_videos_index: bpy.props.IntProperty()
    calibration_path: bpy.props.StringProperty(
        name="Calibration", subtype="FILE_PATH",
        description="The cameras' calibration: Pose2Sim/OpenCV TOML, Qualisys .qca.txt or keygrip JSON (keygrip "
        "calibrate), one camera per video (matched by name when the names match, else in order)")
    camera_offsets: bpy.props.BoolProperty(
        name="Set Offsets", default=False,
        description="Use each video's frame offset as given (off: from the files' timecodes, else from the "
        "person's motion)")
    camera_floor: bpy.props.EnumProperty(
        name="Floor", items=[("auto", "Auto", "The floor the person's feet stand on where the calibration does not "
                                              "say where the floor is or its floor is far from the feet's; else the "
                                              "calibration's"),
                             ("calibration", "Calibration", "The calibration's world as it is"),
                             ("feet", "Feet", "The floor the person's feet stand on (seen standing at places 30 cm "
                                              "apart at least): the ground there, Z up, the cameras moved with it")],
        default="auto", description="Where the take's floor and up axis come from")
    video_path: bpy.props.StringProperty(name="Video", subtype="FILE_PATH")
    clip: bpy.props.PointerProperty(name="Clip", type=bpy.types.MovieClip)
    plate_image: bpy.props.PointerProperty(name="Image sequence", type=bpy.types.Image)
    frame_start: bpy.props.IntProperty(name="Start", min=0, description="First frame: 0-based for a video, "
                                       "the number on disk for an image sequence (e.g. 1001)")
    frame_end: bpy.props.IntProperty(name="End", min=0, description="Frame after the last one; 0: to the end")
    video_frames: bpy.props.IntProperty(name="Frames", min=0, description="Frames in the video (from Probe)")
    video_fps: bpy.props.FloatProperty(name="Video fps", min=0.0)
    hands: bpy.props.BoolProperty(name="Hands", description="Capture finger motion", default=False)
    face: bpy.props.BoolProperty(name="Face", description="Capture ARKit face curves", default=False)
    smoothing: bpy.props.FloatProperty(name="Smoothing", min=0.0, max=1.0, default=0.5, subtype="FACTOR")
    subject: bpy.props.StringProperty(
        name="Subject", description="Who to capture when several people are in the shot: a person's id from "
        "`keygrip people`, X,Y@FRAME (a pixel on them, e.g. 640,360@12), X0,Y0,X1,Y1@FRAME (a box around "
        "them) or auto (the person seen most); "
        "empty: whoever is found first")
    small_people: bpy.props.BoolProperty(
        name="Small People", default=False,
        description="Find People also looks for people far from the camera (down to about a sixth of the frame's "
        "height): about twice the time, and person-like things may be listed too (leave them unpicked)")
    people: bpy.props.CollectionProperty(type=KeygripPersonItem)
    people_video: bpy.props.StringProperty(name="People found in", description="The video Find People looked at")
    people_frames: bpy.props.IntVectorProperty(name="People found over", size=2,
                                               description="The frame range Find People looked at (start, end)")
    people_tracks: bpy.props.StringProperty(
        name="People tracks", description="The server's artifact of the tracks Find People found: a capture of "
        "one of them over the same video and frames follows them instead of looking again")
    foot_lock: bpy.props.BoolProperty(name="Foot lock", default=True,
                                      description="Pin the feet while they touch the ground")
    root_motion: bpy.props.EnumProperty(name="Root motion", items=ROOT_MOTION_ITEMS, default="HIPS")
    target: bpy.props.EnumProperty(
        name="Target", items=[("NEW", "New armature", "A new armature with Keygrip's canonical skeleton"),
                              ("SELECTED", "Armature", "An existing armature, through the bone map")],
        default="NEW")
    armature: bpy.props.PointerProperty(name="Armature", type=bpy.types.Object, poll=_is_armature,
                                        description="The rig to animate (empty: the active object)")
    face_mesh: bpy.props.PointerProperty(name="Face mesh", type=bpy.types.Object, poll=_has_shape_keys,
                                         description="A mesh whose ARKit-named shape keys get the face curves")
    reference_video: bpy.props.BoolProperty(
        name="Cameras", default=True,
        description="Add the cameras that filmed the motion, each with its video as background, and look through "
        "the first: the rig lies on the person in the footage")
    match_scene: bpy.props.EnumProperty(
        name="Match scene", default="NEW_ARMATURE",
        description="Set the scene's frame rate and frame range to the clip's (one key per frame), and make the "
        "clip's first camera the scene camera with its video's render size",
        items=[("NEW_ARMATURE", "New armature", "Only when the target is a new armature (an existing rig's scene "
                "keeps its own timing, camera and render size; keys land at its frame rate)"),
               ("ALWAYS", "Always", "For every target"),
               ("NEVER", "Never", "Leave the scene's frame rate, frame range, camera and render size as they are")])
    preview: bpy.props.BoolProperty(name="QA preview", default=False,
                                    description="Also render a video with the tracked skeleton drawn over it")
    reuse_capture: bpy.props.BoolProperty(
        name="Reuse last capture", default=False,
        description="Retarget the last capture of this scene again instead of re-running the capture")
    last_capture_job: bpy.props.StringProperty(name="Last capture job")

    comp_matte_model: bpy.props.StringProperty(
        name="Matte model", description="A person segmenter registered on the server in place of MediaPipe Selfie "
        "Segmentation, for the matte and the clean plate (keygrip models ls: compositing.matte); empty: MediaPipe")

    # Generate (keygrip.generate): a texture onto the selected meshes, or the scene's world.
    gen_model: bpy.props.StringProperty(name="Model", description="A model registered on the server "
                                        "(keygrip models ls)")
    gen_prompt: bpy.props.StringProperty(name="Prompt", description="What to generate")
    gen_negative: bpy.props.StringProperty(name="Negative", description="What to keep out of it")
    gen_seed: bpy.props.IntProperty(name="Seed", min=0, default=0, description="0: a new random seed each time")
    gen_steps: bpy.props.IntProperty(name="Steps", min=0, max=200, default=0, description="0: the server's default")
    gen_width: bpy.props.IntProperty(name="Width", min=0, max=4096, step=8, default=0,
                                     description="Texture width in pixels, a multiple of 8 (0: the model's default)")
    gen_height: bpy.props.IntProperty(name="Height", min=0, max=4096, step=8, default=0,
                                      description="Height in pixels, a multiple of 8; a world is twice as wide "
                                      "(0: the model's default)")
    gen_tileable: bpy.props.BoolProperty(name="Tileable", default=True,
                                         description="Seamless in both directions (textures)")
    gen_maps: bpy.props.BoolProperty(name="Height & Normal", default=False,
                                     description="Also derive a height map and a normal map (textures), wired "
                                     "into the material's Normal and Displacement")
    gen_highlight_gain: bpy.props.FloatProperty(name="Highlight Gain", min=0.0, max=1000.0, default=0.0,
                                                description="Scale the world's brightest pixels up to this many "
                                                "times, so that its sun casts shadows (8 to 32; 0: off)")
    gen_scale: bpy.props.FloatProperty(name="Scale", min=0.001, default=1.0,
                                       description="Texture repeats per UV unit (the material's Mapping node)")
    gen_rotation: bpy.props.FloatProperty(name="Rotation", subtype="ANGLE", default=0.0,
                                          description="The world's turn about Z (its Mapping node)")
    # Project (keygrip.generate.ProjectPlan): painted from the scene's camera onto the selected meshes.
    gen_controlnet: bpy.props.StringProperty(
        name="ControlNet", description="A depth ControlNet on the server, used beside the model (empty: the model "
        "itself is a Stable Diffusion 2 depth model)")
    gen_view_size: bpy.props.IntProperty(name="View size", min=64, max=4096, default=512,
                                         description="Pixels of each camera's generated image, long side")
    gen_texture_size: bpy.props.IntProperty(name="Texture size", min=16, max=16384, default=1024,
                                            description="Pixels of each painted object's texture (square), "
                                            "baked into its own UV map")
    gen_all_cameras: bpy.props.BoolProperty(
        name="All selected cameras", default=False,
        description="Also paint from every selected camera, after the scene's camera (later cameras paint only "
        "what earlier ones did not see)")


_CLASSES = (KeygripBoneMapItem, KeygripPersonItem, KeygripCameraVideo, KeygripSceneSettings)


def register() -> None:
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.keygrip = bpy.props.PointerProperty(type=KeygripSceneSettings)
    bpy.types.Object.keygrip_bone_map = bpy.props.CollectionProperty(type=KeygripBoneMapItem)
    bpy.types.Object.keygrip_bone_map_index = bpy.props.IntProperty()
    bpy.types.Object.keygrip_character_file = bpy.props.StringProperty(
        name="Character File", subtype="FILE_PATH",
        description="The .glb, .vrm or .fbx this armature came from: the humanoid map it declares (VRM humanoid, "
        "glTF extras, a NAME.bonemap.json beside it) maps the bones, and guessing fills only the rest")


def unregister() -> None:
    del bpy.types.Object.keygrip_character_file
    del bpy.types.Object.keygrip_bone_map_index
    del bpy.types.Object.keygrip_bone_map
    del bpy.types.Scene.keygrip
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)


def bone_map_of(obj: bpy.types.Object) -> dict[str, str]:
    """The armature's edited bone map {bone: role}; bones with no role are left out."""
    return {item.bone: item.role for item in obj.keygrip_bone_map if item.role}


def set_bone_map(obj: bpy.types.Object, mapping: dict[str, str],
                 sources: dict[str, tuple[str, float]] | None = None) -> None:
    """One row per bone of the armature, in bone order, with its role from `mapping` (or empty).

    sources: {bone: (source, confidence)} as the server reported them (SOURCE_LABELS keys); without
    it the roles count as the artist's own (a loaded preset).
    """
    obj.keygrip_bone_map.clear()
    for bone in obj.data.bones:
        item = obj.keygrip_bone_map.add()
        item.bone = bone.name
        item.role = mapping.get(bone.name, "")
        source, confidence = (sources or {}).get(bone.name, ("PRESET" if item.role else "", 0.0))
        item.source, item.confidence = source, confidence if source != "PRESET" else 1.0
