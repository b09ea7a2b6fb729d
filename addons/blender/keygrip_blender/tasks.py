"""The sessions behind each button: the SDK's host-neutral steps, plus what only Blender does on its
main thread (describe a new armature, write the result, fill the panel).

Worker steps read only their arguments and the server, never bpy data; the plans are snapshots of the
panel taken when the artist clicks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bpy

from keygrip import animate, compositing, generate, rigs
from keygrip.animate import Plan, Retargeted, Skeleton, WriteSummary
from keygrip.projection import View
from keygrip.rigs import RigDescription
from keygrip.session import Main, ServerSettings, Session, Worker, WorkerContext, connector
from keygrip.v1 import animation_pb2, media_pb2, mocap_pb2

from . import apply, compositor, preferences, previews, projection, properties, rig, shading
from .apply import ScenePlan


def capture_session(plan: Plan, scene_plan: ScenePlan, settings: ServerSettings) -> Session:
    """Capture (or reuse a capture, or upload a BVH), retarget, write back: the main job."""

    def describe_new_rig(skeleton: Skeleton) -> RigDescription:
        return rig.describe_canonical(skeleton.joint_names, skeleton.parents, skeleton.offsets,
                                      name=apply.new_armature_name(plan))

    def write(done: Retargeted) -> WriteSummary:
        return apply.apply_result(plan, scene_plan, done)

    return Session(plan.title, animate.steps(plan, describe_new_rig=describe_new_rig, write=write),
                   connector(settings))


def people_capture_session(plans: list[Plan], scene_plan: ScenePlan, settings: ServerSettings) -> Session:
    """Capture several people of one shot (a plan each), each onto their plan's rig (a new armature, or
    the SELECTED one its rig describes), written in one undo step."""

    def describe_new_rig(plan: Plan, skeleton: Skeleton) -> RigDescription:
        return rig.describe_canonical(skeleton.joint_names, skeleton.parents, skeleton.offsets,
                                      name=apply.new_armature_name(plan))

    def write(done: list[tuple[Plan, Retargeted]], skipped: list[str]) -> WriteSummary:
        summaries = apply.apply_people(done, scene_plan, skipped)
        # The panel shows one summary: the first person's warnings, naming every armature and action written.
        return dataclasses.replace(summaries[0], target=", ".join(s.target for s in summaries),
                                   animation=", ".join(s.animation for s in summaries))

    title = f"{len(plans)} people of {Path(plans[0].video).name}"
    return Session(title, animate.people_steps(plans, describe_new_rig=describe_new_rig, write=write),
                   connector(settings))


def connect_session(settings: ServerSettings) -> Session:
    """GetServerInfo (connecting also starts the local server when allowed)."""
    return Session("connect", [Worker(lambda ctx, _: ctx.server_info)], connector(settings),
                   on_finish=_record_connection)


def _record_connection(session: Session) -> None:
    if session.server_info is not None:
        preferences.server_status.record(session.server_info, session.address)
    elif session.error:
        preferences.server_status.reset("not connected", session.error)


def probe_session(video: str, settings: ServerSettings, scene_name: str) -> Session:
    """Probe the video and fill the panel's frame range."""

    def probe(ctx: WorkerContext, _: Any) -> media_pb2.ProbeMediaResult:
        return ctx.run_job(ctx.client.probe(video), "probe")

    def fill(result: media_pb2.ProbeMediaResult) -> media_pb2.ProbeMediaResult:
        panel = bpy.data.scenes[scene_name].keygrip
        panel.video_frames = result.frame_count
        panel.video_fps = result.fps
        # Frame ranges count the source's own numbers: 0-based for a video, 1001.. for a plate from 1001.
        panel.frame_start = result.first_frame
        panel.frame_end = result.first_frame + result.frame_count
        return result

    return Session(f"probe {Path(video).name}", [Worker(probe), Main(fill)], connector(settings))


def people_session(video: str, frames: tuple[int, int], settings: ServerSettings, scene_name: str, *,
                   small_people: bool = False) -> Session:
    """Find every person in the video's frame range and list them in the panel, each with its thumbnail,
    so that the artist can pick who to capture (the ids hold for a capture of the same range).
    small_people: also look for people far from the camera (DetectPeopleRequest.small_people)."""

    def detect(ctx: WorkerContext, _: Any) -> mocap_pb2.DetectPeopleResult:
        job = ctx.client.detect_people(video, start_frame=frames[0], end_frame=frames[1], small_people=small_people,
                                       upload_progress=ctx.upload_progress("video"))
        return ctx.run_job(job, "find people")

    def fill(result: mocap_pb2.DetectPeopleResult) -> mocap_pb2.DetectPeopleResult:
        panel = bpy.data.scenes[scene_name].keygrip
        panel.people.clear()
        for person in result.people:
            item = panel.people.add()
            item.person_id, item.visible = person.id, person.visible_fraction
            item.first_frame, item.last_frame = person.frames[0], person.frames[-1]
            if person.thumbnail_png:
                previews.show(person_key(scene_name, person.id), person.thumbnail_png)
        panel.people_video, panel.people_frames, panel.people_tracks = video, frames, result.tracks.id
        return result

    return Session(f"find people in {Path(video).name}", [Worker(detect), Main(fill)], connector(settings))


def person_key(scene_name: str, person_id: int) -> str:
    """The previews key of a person's thumbnail in a scene's people list."""
    return f"person {person_id} of {scene_name}"


def map_bones_session(description: RigDescription, object_name: str, settings: ServerSettings,
                      character_file: str = "") -> Session:
    """The server's bone map for an armature, as editable rows on it with each role's source and
    confidence: from the character file the armature came from when it has one (its declared map
    first), else from the armature's description."""

    def ask(ctx: WorkerContext, _: Any) -> animation_pb2.BoneMap:
        if character_file:
            return ctx.client.map_bones(ctx.client.rig_file(character_file))
        return ctx.client.map_bones(description.to_proto())

    def fill(bone_map: animation_pb2.BoneMap) -> animation_pb2.BoneMap:
        sources = {m.bone: (animation_pb2.RoleSource.Name(m.source).removeprefix("ROLE_SOURCE_"), m.confidence)
                   for m in bone_map.mappings}
        properties.set_bone_map(bpy.data.objects[object_name], rigs.bone_map_to_dict(bone_map), sources)
        return bone_map

    return Session(f"map bones of {object_name}", [Worker(ask), Main(fill)], connector(settings))


def download_session(artifact_id: str, path: str, settings: ServerSettings) -> Session:
    """Download an artifact (e.g. the retargeted BVH) to a file."""

    def fetch(ctx: WorkerContext, _: Any) -> str:
        return str(ctx.client.download(artifact_id, path, progress=ctx.transfer_progress("downloading")))

    return Session(f"download {Path(path).name}", [Worker(fetch)], connector(settings))


def generate_session(plan: generate.GeneratePlan, target: shading.Target, settings: ServerSettings,
                     folder: str) -> Session:
    """Generate a texture or a world (a preview per step in the panel), then wire it into the scene."""

    def write(done: generate.Generated) -> generate.Generated:
        if plan.kind == "texture":
            shading.write_texture(done, target)
        else:
            shading.write_world(done, target)
        return done

    return Session(plan.title, generate.steps(plan, folder=folder, write=write), connector(settings),
                   on_progress=_show_preview)


def _show_preview(session: Session) -> None:
    if session.progress.preview_png:
        previews.show(session.title, session.progress.preview_png)


def project_session(plan: generate.ProjectPlan, scene_name: str, settings: ServerSettings, folder: str) -> Session:
    """Render the cameras' depth, paint through them on the server (a preview per step in the panel),
    bake into the meshes' UV maps on the worker thread, then write the textures and materials."""
    meshes: list[projection.MeshSnapshot] = []

    def render(plan: generate.ProjectPlan) -> Callable[[WorkerContext], list[View]]:
        renderer, snapshots = projection.render_views(plan, bpy.data.scenes[scene_name])
        meshes[:] = snapshots
        return renderer

    def bake(ctx: WorkerContext, baking: projection.Baking) -> projection.Baking:
        def report(name: str, fraction: float) -> None:
            ctx.check_cancelled()
            ctx.progress(f"baking into {name}", fraction)

        textures = projection.bake_meshes(meshes, baking.views, baking.done.plan.texture_size, report)
        return dataclasses.replace(baking, textures=textures)

    def write(baking: projection.Baking) -> projection.Painted:
        return projection.write_projection(baking.done, meshes, Path(folder), baking.views, baking.textures)

    # Reading the server's PNGs needs Blender (main thread); the bake is numpy alone (worker thread).
    steps = generate.project_steps(plan, folder=folder, render=render, write=projection.read_views)
    steps += [Worker(bake), Main(write)]
    return Session(plan.title, steps, connector(settings), on_progress=_show_preview)


def compositing_session(plan: compositing.PassPlan, plate: compositor.PlateRef, settings: ServerSettings
                        ) -> Session:
    """Run a matte, clean plate or depth pass on the server (previews in the panel), download its files
    next to the .blend, then wire them into the scene's compositor."""

    def write(files: compositing.PassFiles) -> Any:
        return compositor.write_pass(plan.kind, files, plate)

    return Session(plan.title, compositing.steps(plan, write=write), connector(settings), on_progress=_show_preview)
