"""The Keygrip tab in the 3D view's sidebar."""

from __future__ import annotations

import bpy

from keygrip.animate import WriteSummary
from keygrip.session import Session

from . import main_thread, operators, preferences, previews, properties, tasks
from .projection import Painted


class BoneMapList(bpy.types.UIList):
    """One row per bone: the bone's name and its humanoid role, which the artist can edit."""

    bl_idname = "KEYGRIP_UL_bone_map"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        row.label(text=item.bone, icon="BONE_DATA")
        row.prop(item, "role", text="")
        # Where the role came from, so that a guess is seen as one.
        label = properties.SOURCE_LABELS.get(item.source, "")
        guessed = item.source in ("NAME", "STRUCTURE")
        row.label(text=f"{label} {item.confidence:.2f}" if guessed else label, icon="QUESTION" if guessed else "NONE")


def _draw_progress(layout: bpy.types.UILayout, session: Session) -> None:
    box = layout.box()
    box.label(text=session.title, icon="TIME")
    p = session.progress
    if hasattr(box, "progress"):  # Blender 4.0+
        box.progress(factor=p.fraction, type="BAR", text=p.text())
    else:
        box.label(text=p.text())
    if p.message:
        box.label(text=p.message)
    icon = previews.latest.get(session.title)
    if icon is not None:
        box.template_icon(icon_value=icon, scale=6.0)
    box.operator("keygrip.cancel", icon="CANCEL")


def _draw_outcome(layout: bpy.types.UILayout, session: Session) -> None:
    if session.state == "succeeded":
        summary = session.value
        if isinstance(summary, Painted):
            for name, fraction in list(summary.coverage.items())[:6]:
                layout.label(text=f"{name}: {100 * fraction:.0f}% of its texture painted", icon="CHECKMARK")
            for name in summary.unwrapped[:4]:
                layout.label(text=f"{name} had no UV map: made one (Smart UV Project)", icon="INFO")
            return
        if not isinstance(summary, WriteSummary):   # probe, connect, bone map, download
            return
        layout.label(text=f"{summary.target}: {summary.animation}", icon="CHECKMARK")
        for warning in summary.warnings[:4]:
            layout.label(text=warning, icon="INFO")
        if summary.missing_shape_keys:
            layout.label(text=f"{len(summary.missing_shape_keys)} face curves had no shape key", icon="INFO")
    elif session.error:
        for line in preferences.wrap(session.error, 50):
            layout.label(text=line, icon="ERROR" if session.state == "failed" else "CANCEL")


class CameraVideoList(bpy.types.UIList):
    """One row per calibrated camera's video of a multi-camera take, with its frame offset."""

    bl_idname = "KEYGRIP_UL_camera_videos"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        row.prop(item, "path", text="", emboss=False, icon="FILE_MOVIE")
        if data.camera_offsets:
            row.prop(item, "offset", text="")


def _draw_cameras(col: bpy.types.UILayout, s: bpy.types.PropertyGroup) -> None:
    """The Cameras source: the videos (add, remove, a folder), the calibration, the offsets, the floor."""
    row = col.row()
    row.template_list("KEYGRIP_UL_camera_videos", "", s, "camera_videos", s, "camera_videos_index", rows=3)
    buttons = row.column(align=True)
    buttons.operator("keygrip.camera_video_add", text="", icon="ADD")
    buttons.operator("keygrip.camera_video_remove", text="", icon="REMOVE")
    buttons.operator("keygrip.camera_videos_folder", text="", icon="FILE_FOLDER")
    col.prop(s, "calibration_path")
    col.prop(s, "camera_offsets")
    col.prop(s, "camera_floor")


class KeygripPanel(bpy.types.Panel):
    bl_label = "Keygrip"
    bl_idname = "KEYGRIP_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Keygrip"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        s = context.scene.keygrip
        status = preferences.server_status
        row = layout.row()
        row.label(text=f"Server {status.version}" if status.version else status.state,
                  icon="LINKED" if status.version else "UNLINKED")
        row.operator("keygrip.connect", text="", icon="FILE_REFRESH")

        col = layout.column(heading="Video")
        col.prop(s, "source", expand=True)
        cameras = s.source == "CAMERAS"
        if cameras:
            _draw_cameras(col, s)
        else:
            col.prop(s, {"FILE": "video_path", "CLIP": "clip", "IMAGE": "plate_image"}[s.source], text="")
        row = col.row(align=True)
        row.prop(s, "frame_start")
        row.prop(s, "frame_end")
        row.operator("keygrip.probe", text="", icon="VIEWZOOM")
        if s.video_frames:
            col.label(text=f"{s.video_frames} frames at {s.video_fps:.3g} fps")

        col = layout.column(heading="Capture")
        row = col.row(align=True)
        row.label(text="Body", icon="CHECKBOX_HLT")
        row.prop(s, "hands", toggle=True)
        row.prop(s, "face", toggle=True)
        col.prop(s, "smoothing")
        if not cameras:  # who to capture: the cameras' calibration finds the one person they all see
            row = col.row(align=True)
            row.prop(s, "subject")
            row.operator("keygrip.find_people", text="", icon="COMMUNITY")
            row.prop(s, "small_people", text="", icon="ZOOM_IN")
        if s.people and not cameras and s.people_video == operators.video_path(context):
            box = col.box()
            for person in s.people:
                icon = previews.latest.get(tasks.person_key(context.scene.name, person.person_id), 0)
                row = box.row()
                row.template_icon(icon_value=icon, scale=3.0)
                info = row.column()
                info.label(text=f"Person {person.person_id}: frames {person.first_frame}-{person.last_frame}, "
                                f"seen on {person.visible:.0%}")
                chosen = s.subject.strip() == str(person.person_id)
                row = info.row(align=True)
                op = row.operator("keygrip.use_person", text="Chosen" if chosen else "Capture This Person",
                                  icon="CHECKMARK" if chosen else "NONE", depress=chosen)
                op.person_id = person.person_id
                row.prop(person, "chosen", text="", icon="ADD")  # several people: a rig each
                if person.chosen:
                    info.prop(person, "armature", text="Onto", placeholder="New armature")
            ticked = sum(person.chosen for person in s.people)
            if ticked:
                box.operator("keygrip.capture_people", text=f"Capture {ticked} Chosen People, One Rig Each",
                             icon="COMMUNITY")
        col.prop(s, "foot_lock")
        col.prop(s, "root_motion")
        if not cameras:
            col.prop(s, "preview")

        col = layout.column(heading="Target")
        col.prop(s, "target", expand=True)
        if s.target == "SELECTED":
            col.prop(s, "armature")
            obj = s.armature or (context.active_object if context.active_object
                                 and context.active_object.type == "ARMATURE" else None)
            if obj is not None:
                col.prop(obj, "keygrip_character_file")
                row = col.row(align=True)
                row.operator("keygrip.map_bones", icon="GROUP_BONE")
                row.operator("keygrip.bone_map_load", text="", icon="IMPORT")
                row.operator("keygrip.bone_map_save", text="", icon="EXPORT")
                col.template_list("KEYGRIP_UL_bone_map", "", obj, "keygrip_bone_map", obj,
                                  "keygrip_bone_map_index", rows=6)
        col.prop(s, "face_mesh")
        col.prop(s, "reference_video")
        col.prop(s, "match_scene")
        if s.last_capture_job:
            col.prop(s, "reuse_capture")

        col = layout.column(heading="Generate")
        col.prop(s, "gen_model")
        col.prop(s, "gen_prompt")
        col.prop(s, "gen_negative")
        row = col.row(align=True)
        row.prop(s, "gen_seed")
        row.prop(s, "gen_steps")
        row = col.row(align=True)
        row.prop(s, "gen_width")
        row.prop(s, "gen_height")
        row = col.row(align=True)
        row.prop(s, "gen_tileable")
        row.prop(s, "gen_maps")
        col.prop(s, "gen_scale")
        row = col.row(align=True)
        row.prop(s, "gen_rotation")
        row.prop(s, "gen_highlight_gain")
        row = col.row(align=True)
        row.operator("keygrip.generate_texture", icon="TEXTURE")
        row.operator("keygrip.generate_world", icon="WORLD")
        col.prop(s, "gen_controlnet")
        row = col.row(align=True)
        row.prop(s, "gen_view_size")
        row.prop(s, "gen_texture_size")
        col.prop(s, "gen_all_cameras")
        col.operator("keygrip.project_texture", icon="CAMERA_DATA")

        busy = main_thread.running()
        layout.prop(s, "comp_matte_model")
        row = layout.row(align=True)  # compositing passes over the same plate and frame range
        row.operator("keygrip.comp_matte", icon="NODE_COMPOSITING")
        row.operator("keygrip.comp_cleanplate", icon="IMAGE_BACKGROUND")
        row.operator("keygrip.comp_depth", icon="MOD_DISPLACE")
        layout.operator("keygrip.capture", icon="ARMATURE_DATA")
        row = layout.row(align=True)
        row.operator("keygrip.import_bvh", icon="IMPORT")
        row.operator("keygrip.export_bvh", icon="EXPORT")
        for session in busy:
            _draw_progress(layout, session)
        last = main_thread.latest()
        if last is not None and not last.busy:
            _draw_outcome(layout, last)


CLASSES = (BoneMapList, CameraVideoList, KeygripPanel)
