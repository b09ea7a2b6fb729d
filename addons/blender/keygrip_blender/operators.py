"""The buttons. Each one snapshots the panel, starts a Session and returns at once.

Invoked from the UI, the long-running operators stay modal (passing every event through, so the
artist keeps working) only to catch Esc and to report the outcome; the work itself is drained by
the bpy.app.timers tick in main_thread.py. Called with EXEC_DEFAULT (scripts, background tests) they
start the session and return; main_thread.drain() then plays the timer's part.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import bpy
from bpy_extras.io_utils import ExportHelper, ImportHelper

from keygrip import animate, rigs
from keygrip.animate import CaptureOptions, Plan, SourceKind, TargetKind
from keygrip.client import find_local_sequence
from keygrip.compositing import PassPlan
from keygrip.generate import GenerateKind, GeneratePlan, ProjectPlan
from keygrip.plates import FrameRange, Plate
from keygrip.session import Session
from keygrip.v1 import compositing_pb2

from . import compositor, main_thread, preferences, projection, properties, rig, shading, tasks
from .apply import ScenePlan


def _armature(context: bpy.types.Context) -> bpy.types.Object | None:
    """The panel's armature, else the active object when it is one."""
    obj = context.scene.keygrip.armature
    if obj is None and context.active_object is not None and context.active_object.type == "ARMATURE":
        obj = context.active_object
    return obj


def camera_videos(context: bpy.types.Context) -> list[str]:
    """The Cameras source's videos as absolute paths, in the list's order (empty rows left out)."""
    return [bpy.path.abspath(item.path) for item in context.scene.keygrip.camera_videos if item.path]


def video_path(context: bpy.types.Context) -> str:
    """The panel's video (the Cameras source: its first video, whose frames the frame range counts)."""
    s = context.scene.keygrip
    if s.source == "CAMERAS":
        videos = camera_videos(context)
        return videos[0] if videos else ""
    if s.source == "CLIP":
        return bpy.path.abspath(s.clip.filepath, library=s.clip.library) if s.clip else ""
    if s.source == "IMAGE":
        image = s.plate_image
        return bpy.path.abspath(image.filepath, library=image.library) if image and image.source == "SEQUENCE" else ""
    return bpy.path.abspath(s.video_path) if s.video_path else ""


def character_file(obj: bpy.types.Object) -> str:
    """The armature's character file as an absolute path ("" when it has none); ValueError if it is gone."""
    if not obj.keygrip_character_file:
        return ""
    path = Path(bpy.path.abspath(obj.keygrip_character_file))
    if not path.is_file():
        raise ValueError(f"the character file {path} of {obj.name} does not exist: pick it again in the Keygrip "
                         "panel, or clear it")
    return str(path)


def onto_armature(plan: Plan, obj: bpy.types.Object) -> Plan:
    """The plan with an existing armature as its target: its description, the artist's bone map and
    the character file it came from."""
    return dataclasses.replace(plan, target="SELECTED", rig=rig.describe_armature(obj),
                               bone_map=properties.bone_map_of(obj), rig_file=character_file(obj))


def plan_from_panel(context: bpy.types.Context, bvh_path: str = "", target: TargetKind | None = None
                    ) -> tuple[Plan, ScenePlan]:
    """The panel's settings as the SDK's Plan and where the result lands in this scene (target: instead
    of the panel's); raises ValueError with a fix-it message when incomplete."""
    s = context.scene.keygrip
    video = video_path(context)
    source: SourceKind
    # The Cameras source's take; reusing its capture, its videos are still where the cameras' backgrounds are.
    cameras = None if s.source != "CAMERAS" or bvh_path else animate.Cameras(
        camera_videos(context), bpy.path.abspath(s.calibration_path) if s.calibration_path else "",
        [item.offset for item in s.camera_videos if item.path] if s.camera_offsets else None, s.camera_floor)
    if bvh_path:
        source = "bvh"
    elif s.reuse_capture and s.last_capture_job:
        source = "capture_job"
    elif cameras is not None:
        source, video = "cameras", ""
        cameras.check()
    else:
        source = "video"
        if not video or not Path(video).is_file():
            raise ValueError("pick a video file (or a Movie Clip) in the Keygrip panel first")
    plan = Plan(
        source=source, video=video if not bvh_path else "", cameras=cameras, capture_job_id=s.last_capture_job,
        bvh_path=bvh_path,
        capture=CaptureOptions(hands=s.hands, face=s.face, smoothing=s.smoothing, foot_lock=s.foot_lock,
                               start_frame=s.frame_start, end_frame=s.frame_end, preview=s.preview,
                               subject=s.subject.strip(),
                               people_tracks=_people_tracks(s, video) if s.subject.strip() else ""),
        root_motion=s.root_motion, foot_lock=s.foot_lock, target=target or ("SELECTED" if bvh_path else s.target))
    armature_name = ""
    if plan.target == "SELECTED":
        obj = _armature(context)
        if obj is None:
            raise ValueError("select the armature to animate (or choose 'New armature' as the target)")
        armature_name = obj.name
        plan = onto_armature(plan, obj)
    match_scene = s.match_scene == "ALWAYS" or (s.match_scene == "NEW_ARMATURE" and plan.target == "NEW")
    scene_plan = ScenePlan(armature_name=armature_name, face_mesh_name=s.face_mesh.name if s.face_mesh else "",
                           reference_video=s.reference_video, match_scene=match_scene,
                           frame_start=context.scene.frame_start)
    return plan, scene_plan


class _SessionOperator(bpy.types.Operator):
    """Start a session; when invoked from the UI, stay modal to catch Esc and report the outcome.

    A base class only: Blender registers the subclasses."""

    _session: Session | None = None
    _timer = None

    def make_session(self, context: bpy.types.Context) -> Session:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            self._session = main_thread.submit(self.make_session(context))
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if self.execute(context) != {"FINISHED"}:
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.25, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        session = self._session
        if session is None:
            self._end(context)
            return {"CANCELLED"}
        if event.type == "ESC" and event.value == "PRESS" and session.busy:
            session.cancel()
            self._end(context)
            self.report({"WARNING"}, f"Keygrip: cancelling {session.title}")
            return {"CANCELLED"}
        if session.busy:
            return {"PASS_THROUGH"}
        self._end(context)
        if session.state == "succeeded":
            self.report({"INFO"}, f"Keygrip: {session.title} done")
            return {"FINISHED"}
        self.report({"ERROR"} if session.state == "failed" else {"WARNING"}, f"Keygrip: {session.error}")
        return {"CANCELLED"}

    def _end(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None


class CaptureOperator(_SessionOperator):
    """Capture the video and animate the target with it (Esc cancels)"""

    bl_idname = "keygrip.capture"
    bl_label = "Capture Motion"
    # No UNDO here: the scene changes only when the result arrives, and that write-back pushes its
    # own single undo step (apply.py), after whatever the artist did while the job ran.
    bl_options = {"REGISTER"}

    def make_session(self, context: bpy.types.Context) -> Session:
        return tasks.capture_session(*plan_from_panel(context), preferences.server_settings(context))


class ImportBvhOperator(_SessionOperator, ImportHelper):
    """Retarget a BVH file, or a clip file from `keygrip mocap --clip` (with the cameras that filmed it,
    their videos found beside it), onto the selected armature through the server"""

    bl_idname = "keygrip.import_bvh"
    bl_label = "Import Motion onto Rig"
    bl_options = {"REGISTER"}
    filename_ext = ".bvh"
    filter_glob: bpy.props.StringProperty(default="*.bvh;*.keygrip-clip", options={"HIDDEN"})

    def make_session(self, context: bpy.types.Context) -> Session:
        if not Path(self.filepath).is_file():
            raise ValueError(f"{self.filepath} is not a file")
        return tasks.capture_session(*plan_from_panel(context, bvh_path=self.filepath),
                                     preferences.server_settings(context))

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        # The file browser first; its OK button calls execute, which starts the session.
        return ImportHelper.invoke(self, context, event)


class ExportBvhOperator(bpy.types.Operator, ExportHelper):
    """Save the armature's Keygrip result as BVH (the server's file when it has one)"""

    bl_idname = "keygrip.export_bvh"
    bl_label = "Export BVH"
    filename_ext = ".bvh"
    filter_glob: bpy.props.StringProperty(default="*.bvh", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = _armature(context)
        if obj is None:
            self.report({"ERROR"}, "select the armature to export")
            return {"CANCELLED"}
        record = obj.get("keygrip")
        artifact = record.get("bvh_artifact_id", "") if record is not None else ""
        if artifact:
            main_thread.submit(tasks.download_session(artifact, self.filepath, preferences.server_settings(context)))
            return {"FINISHED"}
        # Not from the server (or retargeted elsewhere): Blender's own exporter writes the action.
        context.view_layer.objects.active = obj
        action = obj.animation_data.action if obj.animation_data else None
        frames = action.frame_range if action else (context.scene.frame_start, context.scene.frame_end)
        return bpy.ops.export_anim.bvh(filepath=self.filepath, frame_start=int(frames[0]),
                                       frame_end=int(frames[1]), rotate_mode="NATIVE")


class ConnectOperator(_SessionOperator):
    """Connect to the Keygrip server and show what it can do"""

    bl_idname = "keygrip.connect"
    bl_label = "Connect"

    def make_session(self, context: bpy.types.Context) -> Session:
        preferences.server_status.reset("connecting...")
        return tasks.connect_session(preferences.server_settings(context))


class ProbeOperator(_SessionOperator):
    """Read the video's frame count and rate from the server and fill the frame range"""

    bl_idname = "keygrip.probe"
    bl_label = "Probe Video"

    def make_session(self, context: bpy.types.Context) -> Session:
        video = video_path(context)
        if not video or not Path(video).is_file():
            raise ValueError("pick a video file (or a Movie Clip) first")
        return tasks.probe_session(video, preferences.server_settings(context), context.scene.name)


class FindPeopleOperator(_SessionOperator):
    """Find every person in the video's frame range, to pick who to capture"""

    bl_idname = "keygrip.find_people"
    bl_label = "Find People"

    def make_session(self, context: bpy.types.Context) -> Session:
        video = video_path(context)
        if not video or not Path(video).is_file():
            raise ValueError("pick a video file (or a Movie Clip) first")
        s = context.scene.keygrip
        return tasks.people_session(video, (s.frame_start, s.frame_end), preferences.server_settings(context),
                                    context.scene.name, small_people=s.small_people)


class CameraVideoAddOperator(bpy.types.Operator, ImportHelper):
    """Add camera videos to the multi-camera take (several files at once)"""

    bl_idname = "keygrip.camera_video_add"
    bl_label = "Add Camera Videos"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: bpy.props.StringProperty(default=";".join(f"*{s}" for s in animate.VIDEO_SUFFIXES),
                                          options={"HIDDEN"})
    files: bpy.props.CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    directory: bpy.props.StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        names = [f.name for f in self.files if f.name] or [Path(self.filepath).name]
        folder = Path(self.directory) if self.directory else Path(self.filepath).parent
        for name in names:
            context.scene.keygrip.camera_videos.add().path = str(folder / name)
        return {"FINISHED"}


class CameraVideosFromFolderOperator(bpy.types.Operator):
    """Fill the camera videos with every video in a folder, in name order (one per calibrated camera)"""

    bl_idname = "keygrip.camera_videos_folder"
    bl_label = "Camera Videos from Folder"
    bl_options = {"REGISTER", "UNDO"}

    directory: bpy.props.StringProperty(subtype="DIR_PATH")

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            videos = animate.videos_in_folder(bpy.path.abspath(self.directory))
        except (ValueError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        items = context.scene.keygrip.camera_videos
        items.clear()
        for video in videos:
            items.add().path = video
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}


class CameraVideoRemoveOperator(bpy.types.Operator):
    """Remove the chosen camera video from the take"""

    bl_idname = "keygrip.camera_video_remove"
    bl_label = "Remove Camera Video"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = context.scene.keygrip
        if not s.camera_videos:
            return {"CANCELLED"}
        s.camera_videos.remove(s.camera_videos_index)
        s.camera_videos_index = min(s.camera_videos_index, max(len(s.camera_videos) - 1, 0))
        return {"FINISHED"}


class UsePersonOperator(bpy.types.Operator):
    """Capture this person"""

    bl_idname = "keygrip.use_person"
    bl_label = "Capture This Person"
    bl_options = {"INTERNAL"}

    person_id: bpy.props.IntProperty()

    def execute(self, context: bpy.types.Context) -> set[str]:
        context.scene.keygrip.subject = str(self.person_id)
        return {"FINISHED"}


def _people_tracks(s: properties.KeygripSceneSettings, video: str) -> str:
    """The tracks Find People found, when the capture is of the same video and frames (a capture of one
    of those people then follows them by their ids, without looking again); else ""."""
    same = s.people_video == video and tuple(s.people_frames) == (s.frame_start, s.frame_end)
    return s.people_tracks if same else ""


class CapturePeopleOperator(_SessionOperator):
    """Capture every person ticked in the list, each onto the rig picked for them (or a new armature),
    in one undo step (Esc cancels)"""

    bl_idname = "keygrip.capture_people"
    bl_label = "Capture Chosen People"
    bl_options = {"REGISTER"}  # the write-back pushes its own undo step, as Capture's

    def make_session(self, context: bpy.types.Context) -> Session:
        s = context.scene.keygrip
        chosen = [person for person in s.people if person.chosen]
        if not chosen:
            raise ValueError("tick the people to capture in the list (Find People lists them)")
        plan, scene_plan = plan_from_panel(context, target="NEW")
        tracks = _people_tracks(s, plan.video) if plan.source == "video" else ""
        if not tracks:  # the ticks name Find People's ids, which hold for its video and frames only
            raise ValueError("the people ticked were found in another video or frame range: find people again")
        onto: dict[str, int] = {}
        plans = []
        for person in chosen:
            one = dataclasses.replace(plan, capture=dataclasses.replace(plan.capture, subject=str(person.person_id),
                                                                        people_tracks=tracks))
            obj = person.armature
            if obj is not None:
                if obj.name in onto:
                    raise ValueError(f"persons {onto[obj.name]} and {person.person_id} both go onto {obj.name}: "
                                     "pick another rig for one of them (or none, for a new armature)")
                onto[obj.name] = person.person_id
                one = onto_armature(one, obj)
            plans.append(one)
        return tasks.people_capture_session(plans, dataclasses.replace(scene_plan, armature_name=""),
                                            preferences.server_settings(context))


class MapBonesOperator(_SessionOperator):
    """Ask the server to map the armature's bones to humanoid roles (editable afterwards)"""

    bl_idname = "keygrip.map_bones"
    bl_label = "Auto-map Bones"

    def make_session(self, context: bpy.types.Context) -> Session:
        obj = _armature(context)
        if obj is None:
            raise ValueError("select the armature whose bones to map")
        return tasks.map_bones_session(rig.describe_armature(obj), obj.name, preferences.server_settings(context),
                                       character_file(obj))


def generate_plan_from_panel(context: bpy.types.Context, kind: GenerateKind
                             ) -> tuple[GeneratePlan, shading.Target]:
    """The Generate section as the SDK's plan and where the result lands; ValueError when incomplete."""
    s = context.scene.keygrip
    plan = GeneratePlan(kind=kind, model=s.gen_model.strip(), prompt=s.gen_prompt, seed=s.gen_seed,
                        steps=s.gen_steps, width=s.gen_width if kind == "texture" else 0, height=s.gen_height,
                        tileable=s.gen_tileable, negative_prompt=s.gen_negative, maps=s.gen_maps,
                        highlight_gain=s.gen_highlight_gain)
    plan.check()
    objects: tuple[str, ...] = ()
    if kind == "texture":
        objects = tuple(o.name for o in context.selected_objects if o.type == "MESH")
        if not objects:
            raise ValueError("select the mesh objects to texture first")
    return plan, shading.Target(objects=objects, scene=context.scene.name, scale=s.gen_scale,
                                rotation=s.gen_rotation)


class _GenerateOperator(_SessionOperator):
    """Start a generation of `kind` from the Generate section (not registered itself)."""

    kind: GenerateKind = "texture"
    bl_options = {"REGISTER"}   # the write-back pushes its own undo step (shading.py)

    def make_session(self, context: bpy.types.Context) -> Session:
        plan, target = generate_plan_from_panel(context, self.kind)
        return tasks.generate_session(plan, target, preferences.server_settings(context),
                                      str(shading.output_folder()))


class GenerateTextureOperator(_GenerateOperator):
    """Generate a seamless texture and give the selected meshes a material with it (Esc cancels)"""

    bl_idname = "keygrip.generate_texture"
    bl_label = "Generate Texture"
    kind: GenerateKind = "texture"


class GenerateWorldOperator(_GenerateOperator):
    """Generate a 360-degree environment and make it the scene's world (Esc cancels)"""

    bl_idname = "keygrip.generate_world"
    bl_label = "Generate World"
    kind: GenerateKind = "world"


def project_plan_from_panel(context: bpy.types.Context) -> ProjectPlan:
    """The Generate section as a projection from the scene's camera (and, when asked, every selected
    camera) onto the selected meshes; ValueError when incomplete.

    Blender does not record the order objects were selected in: after the scene's camera come the
    active object (when it is a selected camera), then the other selected cameras by name."""
    s = context.scene.keygrip
    cameras = [context.scene.camera] if context.scene.camera is not None else []
    if s.gen_all_cameras:
        active = context.active_object
        selected = sorted((o for o in context.selected_objects if o.type == "CAMERA"),
                          key=lambda o: (o is not active, o.name))
        cameras += [o for o in selected if o not in cameras]
    plan = ProjectPlan(model=s.gen_model.strip(), prompt=s.gen_prompt, controlnet=s.gen_controlnet.strip(),
                       cameras=tuple(o.name for o in cameras),
                       objects=tuple(o.name for o in context.selected_objects if o.type == "MESH"),
                       seed=s.gen_seed, steps=s.gen_steps, long_side=s.gen_view_size,
                       texture_size=s.gen_texture_size, negative_prompt=s.gen_negative)
    plan.check()
    for obj in cameras:
        projection.check_camera(obj)
    return plan


class ProjectTextureOperator(_GenerateOperator):
    """Paint the selected meshes from the scene's camera (and the selected cameras), baked into their UV
    maps (Esc cancels)"""

    bl_idname = "keygrip.project_texture"
    bl_label = "Project"

    def make_session(self, context: bpy.types.Context) -> Session:
        return tasks.project_session(project_plan_from_panel(context), context.scene.name,
                                     preferences.server_settings(context), str(shading.output_folder()))


def pass_plan_from_panel(context: bpy.types.Context, kind: str) -> tuple[PassPlan, compositor.PlateRef]:
    """A compositing pass over the panel's plate (a video file, a Movie Clip of a movie or an image
    sequence, or an Image of source Sequence) and its frame range; ValueError when there is no plate
    or the range lies outside it."""
    s = context.scene.keygrip
    video = video_path(context)
    if not video or not Path(video).is_file():
        raise ValueError("pick a video file, a Movie Clip or an image sequence (an Image of source Sequence) in the "
                         "Keygrip panel first")
    out_dir = shading.output_folder() / f"{Path(video).stem}_{kind}"
    model = s.comp_matte_model.strip()
    settings: dict[str, object] = {}
    if model and kind == "matte":
        settings["model"] = model
    elif model and kind == "cleanplate":
        settings["matte"] = compositing_pb2.MatteSettings(model=model)
    seq = find_local_sequence(video) if Path(video).suffix.lower() in compositor.IMAGE_SUFFIXES else None
    if seq is not None:
        # An image sequence counts in its own numbers (1001 ..): the shared client's plate and range.
        last = s.frame_end - 1 if s.frame_end else seq.last
        frames = FrameRange(max(s.frame_start, seq.first), last) if s.frame_start or s.frame_end else None
        plan = PassPlan.for_plate(kind, Plate.from_sequence(seq), out_dir=out_dir, frames=frames,
                                  preview=kind == "cleanplate", settings=settings)
    else:
        plan = PassPlan(kind=kind, source=video, out_dir=out_dir, frame_range=(s.frame_start, s.frame_end),
                        preview=kind == "cleanplate", settings=settings)
    plate = compositor.PlateRef(scene=context.scene.name, clip=s.clip.name if s.source == "CLIP" and s.clip else "",
                                image=s.plate_image.name if s.source == "IMAGE" and s.plate_image else "",
                                path=video)
    return plan, plate


class _CompositingOperator(_SessionOperator):
    """Run a compositing pass on the panel's plate and wire it into the compositor (not registered itself)."""

    kind = "matte"
    bl_options = {"REGISTER"}   # the write-back pushes its own undo step (compositor.py)

    def make_session(self, context: bpy.types.Context) -> Session:
        plan, plate = pass_plan_from_panel(context, self.kind)
        return tasks.compositing_session(plan, plate, preferences.server_settings(context))


class MatteOperator(_CompositingOperator):
    """Pull a person matte over the plate and wire a Keygrip Matte node tree (Esc cancels)"""

    bl_idname = "keygrip.comp_matte"
    bl_label = "Matte"
    kind = "matte"


class CleanPlateOperator(_CompositingOperator):
    """Make a clean plate of the background without the person and wire it as a node (Esc cancels)"""

    bl_idname = "keygrip.comp_cleanplate"
    bl_label = "Clean Plate"
    kind = "cleanplate"


class DepthOperator(_CompositingOperator):
    """Estimate relative depth for the plate and wire it into a Defocus node (Esc cancels)"""

    bl_idname = "keygrip.comp_depth"
    bl_label = "Depth"
    kind = "depth"


class CancelOperator(bpy.types.Operator):
    """Cancel the running Keygrip jobs (on the server too)"""

    bl_idname = "keygrip.cancel"
    bl_label = "Cancel"

    def execute(self, context: bpy.types.Context) -> set[str]:
        for session in main_thread.running():
            session.cancel()
        return {"FINISHED"}


class SaveBoneMapOperator(bpy.types.Operator, ExportHelper):
    """Save the armature's bone map as a JSON preset"""

    bl_idname = "keygrip.bone_map_save"
    bl_label = "Save Bone Map Preset"
    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = _armature(context)
        if obj is None:
            self.report({"ERROR"}, "select the armature whose bone map to save")
            return {"CANCELLED"}
        try:
            rigs.save_bone_map_preset(self.filepath, properties.bone_map_of(obj), rig_name=obj.name)
        except (ValueError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class LoadBoneMapOperator(bpy.types.Operator, ImportHelper):
    """Load a JSON bone map preset onto the armature"""

    bl_idname = "keygrip.bone_map_load"
    bl_label = "Load Bone Map Preset"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = _armature(context)
        if obj is None:
            self.report({"ERROR"}, "select the armature to load the bone map onto")
            return {"CANCELLED"}
        try:
            mapping, absent = rigs.load_bone_map_preset(self.filepath, [b.name for b in obj.data.bones])
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        properties.set_bone_map(obj, mapping)
        if absent:
            self.report({"WARNING"}, f"{len(absent)} bone(s) of the preset are not in {obj.name}: "
                                     f"{', '.join(absent[:5])}")
        return {"FINISHED"}


CLASSES = (CaptureOperator, CapturePeopleOperator, ImportBvhOperator, ExportBvhOperator, ConnectOperator,
           ProbeOperator, FindPeopleOperator, UsePersonOperator, CameraVideoAddOperator,
           CameraVideosFromFolderOperator, CameraVideoRemoveOperator, MapBonesOperator, GenerateTextureOperator,
           GenerateWorldOperator, ProjectTextureOperator, CancelOperator, SaveBoneMapOperator, LoadBoneMapOperator,
           MatteOperator, CleanPlateOperator, DepthOperator)


# Progress in the status bar and redraws, after every tick ---------------------------------------

_status_bar = {"active": False}


def update_ui() -> None:
    wm = bpy.context.window_manager
    if wm is None or bpy.app.background:
        return
    busy = main_thread.running()
    if busy and not _status_bar["active"]:
        wm.progress_begin(0, 1000)
        _status_bar["active"] = True
    if busy:
        wm.progress_update(int(1000 * busy[-1].progress.fraction))
    elif _status_bar["active"]:
        wm.progress_end()
        _status_bar["active"] = False
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()
