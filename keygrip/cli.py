"""The `keygrip` command: run a server, or drive one from a shell.

    keygrip serve --listen 127.0.0.1:50051 --data-dir ~/keygrip-data
    keygrip [--address A] [--token T] [--json] info | probe FILE | jobs ls|get|watch|cancel|rm ID
    keygrip people VIDEO [--start N] [--end N] [--thumbnails DIR]
    keygrip mocap VIDEO --out clip.bvh [--subject ID|X,Y@FRAME|auto | --people all] [--preview preview.mp4] [--hands]
    keygrip mocap CAM1.mp4 CAM2.mp4 ... | FOLDER --calibration calib.toml|.qca.txt|.json --out take.bvh [--clip F]
    keygrip retarget CLIP_OR_BVH --rig hero.vrm|.glb|.fbx|skeleton.bvh|rig.json [--skeleton NAME] --out result.bvh
    keygrip models ls | add PATH [--name N] [--config DIR] [--allow-restricted-license] | pull REPO_ID [--dest DIR]
    keygrip generate texture|world --model NAME --prompt TEXT [--seed N] [--maps] --out FILE.png|.exr
    keygrip generate project --model NAME [--controlnet NAME] --views views.json --prompt TEXT --out FILE.png
    keygrip matte|depth|cleanplate PLATE --out DIR|PATTERN [--range 1001-1100 | --handles 8] [--format ...]
    keygrip calibrate --board 4x7 --square 60mm cam01/*.jpg cam02/ [--extrinsics cam01=c1.mp4 cam02=c2.mp4]
                      [--floor-frame N] --out calib.json

VIDEO / FILE may be an image sequence: plate.####.png, plate.%04d.png, plate.$F4.png, a folder of
numbered frames or the first frame's path (uploaded frame by frame; frame numbers are kept).
The global options (--address, --token, --json, --debug) go before or after the command name.

An error ends the command with one line on stderr, `keygrip: CODE: what happened and what to do`, and
exit status 1; `--debug` (or KEYGRIP_DEBUG=1) also prints the traceback of an unexpected one.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from keygrip import errors, events, sequences
from keygrip.client import DEFAULT_ADDRESS, FLOOR_SOURCES, Client, Job, Source, find_local_sequence
from keygrip.progress import ProgressBar
from keygrip.v1 import animation_pb2, common_pb2, scene_pb2, server_pb2

# `--state running` and the like: every job state by its proto name, without the JOB_STATE_ prefix.
_STATES = {events.state_name(v): v for v in common_pb2.JobState.values() if v != common_pb2.JOB_STATE_UNSPECIFIED}
# Models that can run now: on disk (loads on first use) or already loaded.
_MODEL_READY = (server_pb2.MODEL_STATE_AVAILABLE, server_pb2.MODEL_STATE_LOADED)
_ROOT_MODES = {
    "hips": animation_pb2.ROOT_MOTION_HIPS,
    "root-bone": animation_pb2.ROOT_MOTION_ROOT_BONE,
    "in-place": animation_pb2.ROOT_MOTION_IN_PLACE,
    "keep": animation_pb2.ROOT_MOTION_KEEP,
}


def _print_message(msg: Message, as_json: bool) -> None:
    text = json_format.MessageToJson(msg, preserving_proto_field_name=True) if as_json else str(msg).rstrip()
    print(text)


def _upload_bar(bar: ProgressBar) -> Callable[[int, int], None]:
    return lambda done, total: bar.update("upload", done / 2**20, total / 2**20, unit=" MiB")


def follow(job: Job, bar: ProgressBar | None) -> Job:
    """Show a job's progress until it ends; Ctrl+C cancels it on the server."""
    try:
        for ev in job.watch():
            if bar is None:
                continue
            if isinstance(ev, events.ProgressEvent):
                bar.update(ev.stage, ev.value, ev.maximum, fps=ev.fps, eta_seconds=ev.eta_seconds)
            elif ev.state == "queued":
                bar.update("queued", 0, 1)
    except KeyboardInterrupt:
        if bar:
            bar.close()
        print(f"cancelling job {job.id} ...", file=sys.stderr)
        job.cancel().wait(timeout=30)
    finally:
        if bar:
            bar.close()
    return job


def cmd_info(client: Client, args: argparse.Namespace) -> int:
    info = client.info()
    if args.json:
        _print_message(info, True)
        return 0
    print(f"Keygrip server {info.version} ({info.api_version}) at {client.address}")
    for d in info.devices:
        print(f"  device  {d.kind:<5} {d.name}  {d.memory_total_bytes / 2**30:.1f} GiB")
    for c in info.capabilities:
        print(f"  {'ok ' if c.available else 'no '}    {c.name}" + (f"  ({c.reason})" if c.reason else ""))
    for m in info.models:
        state = "available" if m.state in _MODEL_READY else "MISSING"
        print(f"  model   {m.name}: {state}" + (f"  ({m.reason})" if m.reason else ""))
    return 0


def _media_source(name: str, server_path: bool) -> Source:
    """What the user named: a path on the server as is, else a local file or image sequence (a
    pattern such as plate.####.png, a folder of frames, or a first frame), found here."""
    if server_path:
        return name
    seq = find_local_sequence(name)
    if seq is not None:
        return seq
    if not Path(name).is_file():
        raise errors.InvalidArgument(
            f"{name} does not exist (name a video, an image sequence such as plate.####.png or a folder of "
            "frames, or use --server-path for a path on the server)")
    return Path(name)


def _frames_line(pattern: str, first: int, count: int, missing: Iterable[common_pb2.FrameRange]) -> str:
    """plate.####.png frames 1001-1100, missing 1004-1005 (missing: [start, end) ranges)."""
    return sequences.describe_frames(pattern, first, first + count - 1, [(r.start, r.end - 1) for r in missing])


def cmd_probe(client: Client, args: argparse.Namespace) -> int:
    bar = None if args.json else ProgressBar()
    source = _media_source(args.file, args.server_path)
    job = client.probe(source, server_path=args.server_path, upload_progress=_upload_bar(bar) if bar else None,
                       requeue=not args.no_requeue)
    result = follow(job, bar).result()
    if args.json:
        _print_message(result, True)
        return 0
    if result.is_image_sequence:
        print(_frames_line(result.sequence_pattern, result.first_frame, result.frame_count, result.missing_frames))
    print(f"{args.file}: {result.codec} {result.width}x{result.height} {result.fps:.3f} fps, "
          f"{result.frame_count} frames, {result.duration_seconds:.2f} s"
          + (f", rotated {result.rotation_degrees} deg" if result.rotation_degrees else "")
          + (", variable frame rate" if result.variable_frame_rate else ""))
    if args.thumbnail:
        client.download(result.thumbnail.id, args.thumbnail)
        print(f"poster frame written to {args.thumbnail}")
    return 0


def _job_line(job: Job) -> str:
    p = job.proto.progress
    progress = f"{p.stage} {p.value:.0f}/{p.maximum:.0f}" if p.maximum else ""
    queued = f"#{job.proto.queue_position}" if job.proto.queue_position else ""
    return f"{job.id}  {job.type:<15} {job.state:<10} {queued:<4} {progress}"


def cmd_jobs(client: Client, args: argparse.Namespace) -> int:
    if args.action == "ls":
        jobs = client.list_jobs(states=[_STATES[s] for s in args.state or []], job_type=args.type or "",
                                limit=args.limit)
        if args.json:
            print(json.dumps([json_format.MessageToDict(j.proto, preserving_proto_field_name=True) for j in jobs]))
        else:
            for job in jobs:
                print(_job_line(job))
        return 0
    if not args.job_id:
        raise errors.InvalidArgument(f"`keygrip jobs {args.action}` needs a job id")
    job = client.get_job(args.job_id)
    if args.action == "get":
        _print_message(job.proto, args.json)
    elif args.action == "watch":
        follow(job, None if args.json else ProgressBar())
        _print_message(job.proto, args.json) if args.json else print(_job_line(job))
    elif args.action == "cancel":
        job.cancel()
        print(_job_line(job))
    elif args.action == "rm":
        job.delete()
        print(f"deleted {job.id}")
    return 0


def _multiview_videos(names: list[str], server_path: bool) -> list[str]:
    """The videos of a multi-camera take: as given, or the videos in one folder (sorted by name)."""
    if len(names) == 1 and not server_path and Path(names[0]).is_dir():
        try:
            from keygrip.animate import videos_in_folder  # only multi-camera capture needs it

            return videos_in_folder(names[0])
        except ValueError as exc:
            raise errors.InvalidArgument(str(exc)) from None
    if len(names) < 2:
        raise errors.InvalidArgument("--calibration is for a multi-camera capture: give two videos or more "
                                     "(one per calibrated camera), or a folder of them")
    for name in names:
        if not server_path and not Path(name).is_file():
            raise errors.InvalidArgument(f"{name} does not exist (name the videos, or use --server-path for paths "
                                         "on the server)")
    return names


def cmd_mocap_multiview(client: Client, args: argparse.Namespace) -> int:
    """keygrip mocap CAM1 CAM2 ... --calibration FILE: one take from calibrated cameras."""
    bar = None if args.json else ProgressBar()
    for flag, value in (("--subject", args.subject), ("--people", args.people),
                        ("--people-tracks", args.people_tracks), ("--height", args.height),
                        ("--fov", args.fov), ("--preview", args.preview), ("--landmarks", args.landmarks),
                        ("--workers", args.workers)):
        if value:
            raise errors.InvalidArgument(f"{flag} is for a single-view capture; a multi-camera capture takes its "
                                         "scale and lenses from --calibration")
    videos = _multiview_videos(list(args.video), args.server_path)
    calibration = args.calibration if args.server_path else Path(args.calibration)
    if not args.server_path and not Path(args.calibration).is_file():
        raise errors.InvalidArgument(f"the calibration {args.calibration} does not exist")
    offsets = None
    if args.offsets:
        try:
            offsets = [int(v) for v in args.offsets.split(",")]
        except ValueError:
            raise errors.InvalidArgument(f"--offsets takes whole frame numbers separated by commas (0,0,12), "
                                         f"not {args.offsets}") from None
    job = client.capture_multiview(
        [v if args.server_path else Path(v) for v in videos], calibration, server_path=args.server_path,
        frame_offsets=offsets, floor=args.floor or "auto", upload_progress=_upload_bar(bar) if bar else None,
        requeue=not args.no_requeue,
        hands=args.hands, face=args.face, smoothing=args.smoothing, foot_lock=not args.no_foot_lock,
        root_motion=not args.no_root_motion, start_frame=args.start, end_frame=args.end or 0)
    result = follow(job, bar).result()
    written = []
    for ref, dest in ((result.bvh, args.out), (result.clip, args.clip)):
        if dest and ref.id:
            client.download(ref.id, dest)
            written.append(str(dest))
    if args.json:
        _print_message(result, True)
        return 0
    s = result.summary
    print(f"captured {s.frames} frames from {len(result.views)} views ({s.tracked_frames} tracked, "
          f"{s.interpolated_frames} interpolated, {s.missing_frames} missing) at {s.processing_fps:.1f} view-frames/s")
    print(f"synchronised by {result.sync_method} (confidence {result.sync_confidence:.2f}); floor from {result.floor}")
    for v in result.views:
        print(f"  {v.name} as {v.camera}: from frame {v.frame_offset}, seen on {100 * v.seen_fraction:.0f}% of frames, "
              f"reprojection error {v.reprojection_error_px:.1f} px")
    for warning in result.warnings:
        print(f"warning: {warning}")
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_mocap(client: Client, args: argparse.Namespace) -> int:
    if args.calibration:
        return cmd_mocap_multiview(client, args)
    if len(args.video) > 1:
        raise errors.InvalidArgument("several videos make a multi-camera capture: add --calibration with the "
                                     "cameras' calibration (TOML, .qca.txt or keygrip JSON)")
    if args.floor:
        raise errors.InvalidArgument("--floor is for a multi-camera capture (with --calibration); a single view "
                                     "finds its floor from the person's body")
    args.video = args.video[0]
    bar = None if args.json else ProgressBar()
    options = dict(hands=args.hands, face=args.face, smoothing=args.smoothing, foot_lock=not args.no_foot_lock,
                   root_motion=not args.no_root_motion, subject_height_m=args.height or 0.0,
                   fov_degrees=args.fov or 0.0, preview=bool(args.preview), start_frame=args.start,
                   end_frame=args.end or 0, workers=args.workers or 0, subject=args.subject,
                   everyone=args.people == "all", people_tracks=args.people_tracks or "")
    source = _media_source(args.video, args.server_path)
    if isinstance(source, sequences.Sequence) and not args.json:
        print(sequences.describe_frames(source.file_pattern(), source.first, source.last, source.gaps()))
    job = client.capture_motion(source, server_path=args.server_path, requeue=not args.no_requeue,
                                upload_progress=_upload_bar(bar) if bar else None, **options)
    result = follow(job, bar).result()
    written = []
    # With --people all, each person's files get _personID before the extension.
    captures: list[Any] = list(result.people) or [result]
    for capture in captures:
        tag = f"_person{capture.subject_id}" if result.people else ""
        for ref, dest in ((capture.bvh, args.out), (capture.preview, args.preview), (capture.clip, args.clip),
                          (capture.landmarks, args.landmarks)):
            if dest and ref.id:
                path = dest.with_name(f"{dest.stem}{tag}{dest.suffix}")
                client.download(ref.id, path)
                written.append(str(path))
    if args.json:
        _print_message(result, True)
    else:
        s = result.summary
        print(f"captured {s.frames} frames {s.first_frame}-{s.first_frame + s.frames - 1} ({s.tracked_frames} tracked, "
              f"{s.interpolated_frames} interpolated, {s.missing_frames} missing) at {s.processing_fps:.1f} fps")
        if result.people:
            for p in result.people:
                print(f"person {p.subject_id}: {p.summary.tracked_frames} tracked, {p.summary.interpolated_frames} "
                      f"interpolated, {p.summary.missing_frames} missing" +
                      "".join(f"; warning: {w}" for w in p.warnings))
        elif result.subject_id:
            print(f"subject: person {result.subject_id}")
        # With people, each one's warnings are on its line; what is left concerns the take (a person
        # found but not captured).
        own = set(result.people[0].warnings) if result.people else set()
        for warning in result.warnings:
            if warning not in own:
                print(f"warning: {warning}")
        for path in written:
            print(f"wrote {path}")
    return 0


def cmd_compositing(client: Client, args: argparse.Namespace) -> int:
    """keygrip matte|depth|cleanplate: the pass's files into --out, numbered like the plate."""
    from keygrip.compositing import PassPlan, download_result, parse_range
    from keygrip.plates import Plate

    bar = None if args.json else ProgressBar()
    try:
        frame_range = parse_range(args.range) if args.range else (0, 0)
    except ValueError as exc:
        raise errors.InvalidArgument(str(exc)) from None
    settings: dict[str, Any] = {}
    if args.command in ("matte", "cleanplate"):
        matte: dict[str, Any] = dict(refine=not args.no_refine, stabilize=not args.no_stabilize,
                                     mirror=not args.no_mirror, band_matting=not args.no_band_matting,
                                     model=args.model or "")
        if args.command == "matte":
            settings.update(matte, premultiplied_rgba=args.rgba)
        else:
            from keygrip.v1 import compositing_pb2

            settings.update(matte=compositing_pb2.MatteSettings(**matte), reference_frame=args.reference or 0,
                            dilate=args.dilate or 0, register=not args.locked_off,
                            inpaint_model=args.inpaint_model or "", classical_fill=args.classical_fill,
                            inpaint_steps=args.inpaint_steps or 0)
    elif args.command == "depth":
        settings.update(model=args.model or "", stabilize=not args.no_stabilize)
    settings["requeue"] = not args.no_requeue
    source = _media_source(args.plate, args.server_path)
    if isinstance(source, sequences.Sequence) and not args.json:
        print(sequences.describe_frames(source.file_pattern(), source.first, source.last, source.gaps()))
    out_dir, destination = args.out, ""
    try:
        if sequences.is_pattern(args.out):
            destination, out_dir = str(args.out), sequences.SequencePath.parse(args.out).folder
        if args.handles:
            if args.range or not isinstance(source, sequences.Sequence):
                raise ValueError("--handles needs an image sequence plate and no --range (a video: give --range)")
            frame_range = Plate.from_sequence(source, handles=args.handles).working.start_end()
        plan = PassPlan(kind=args.command, source=source, out_dir=out_dir, frame_range=frame_range,
                        format=args.format, server_path=args.server_path, preview=getattr(args, "preview", False),
                        settings=settings, destination=destination)
        plan.check()
    except ValueError as exc:
        raise errors.InvalidArgument(str(exc)) from None
    job = plan.start(client, upload_progress=_upload_bar(bar) if bar else None)
    result = follow(job, bar).result()
    files = download_result(client, result, out_dir, destination=destination, progress=(
        (lambda done, total: bar.update("download", done, total, unit=" frames")) if bar else None))
    if args.json:
        _print_message(result, True)
        return 0
    if files.frames:
        numbers = sorted(files.frames)
        print(f"wrote {len(numbers)} frames {numbers[0]}-{numbers[-1]}: {files.pattern}")
    for path in files.files[len(files.frames):]:
        print(f"wrote {path}")
    for warning in files.warnings:
        print(f"warning: {warning}")
    return 0


def cmd_people(client: Client, args: argparse.Namespace) -> int:
    bar = None if args.json else ProgressBar()
    source = _media_source(args.video, args.server_path)
    job = client.detect_people(source, server_path=args.server_path, start_frame=args.start, end_frame=args.end or 0,
                               max_people=args.max_people or 0, small_people=args.small_people,
                               upload_progress=_upload_bar(bar) if bar else None,
                               requeue=not args.no_requeue)
    result = follow(job, bar).result()
    if args.thumbnails:
        args.thumbnails.mkdir(parents=True, exist_ok=True)
        for person in result.people:
            (args.thumbnails / f"person_{person.id}.png").write_bytes(person.thumbnail_png)
    if args.json:
        _print_message(result, True)
        return 0
    last = result.first_frame + result.frames - 1
    print(f"{len(result.people)} people in frames {result.first_frame}-{last} ({result.processing_fps:.1f} fps)")
    for p in result.people:
        k = len(p.frames) // 2
        x0, y0, x1, y1 = p.boxes[4 * k:4 * k + 4]
        print(f"  person {p.id}: frames {p.frames[0]}-{p.frames[-1]}, seen on {p.visible_fraction:.0%}, "
              f"at ({(x0 + x1) / 2:.0f}, {(y0 + y1) / 2:.0f}) on frame {p.frames[k]}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    if args.thumbnails:
        print(f"thumbnails written to {args.thumbnails}")
    print(f"capture one with: keygrip mocap VIDEO --subject ID --people-tracks {result.tracks.id} (same --start/--end)")
    return 0


def cmd_calibrate(client: Client, args: argparse.Namespace) -> int:
    from keygrip import calibrate

    try:
        board = calibrate.parse_board(args.board, args.square, args.marker or "", args.dictionary or "")
    except ValueError as exc:
        raise errors.InvalidArgument(str(exc)) from None
    cameras = calibrate.group_cameras(args.sources)
    extrinsics = calibrate.group_cameras([p for group in args.extrinsics or [] for p in group])
    bar = None if args.json else ProgressBar()
    job = client.calibrate(board, cameras, extrinsics, server_path=args.server_path, max_frames=args.max_frames or 0,
                           floor_frame=args.floor_frame, upload_progress=_upload_bar(bar) if bar else None,
                           requeue=not args.no_requeue)
    result = follow(job, bar).result()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    client.download(result.calibration.id, args.out)
    if args.json:
        _print_message(result, True)
        return 0
    for cam in result.cameras:
        f, cx, cy = cam.matrix[0], cam.matrix[2], cam.matrix[5]
        print(f"{cam.name}: {cam.width}x{cam.height}, f {f:.1f} px, centre ({cx:.1f}, {cy:.1f}), "
              f"reprojection error {cam.reprojection_error_px:.2f} px (lens {cam.intrinsics_error_px:.2f} px over "
              f"{len(cam.intrinsics_views)} views, {cam.extrinsics_views} shared views)")
        if cam.not_found:
            print(f"  board not found in {len(cam.not_found)}: {', '.join(cam.not_found)}")
    print(f"world: {result.floor}" + (f"; bundle adjustment RMS {result.bundle_rms_px:.2f} px"
                                      if result.bundle_rms_px else ""))
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(f"calibration written to {args.out}")
    return 0


def cmd_generate(client: Client, args: argparse.Namespace) -> int:
    bar = None if args.json else ProgressBar()
    # No seed given: draw one and say it, so that the image can be made again.
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    settings: dict[str, Any] = dict(negative_prompt=args.negative or "", seed=seed, steps=args.steps or 0,
                    guidance=args.guidance or 0.0, width=args.width or 0, height=args.height or 0,
                    scheduler=args.scheduler or "", requeue=not args.no_requeue)
    if args.kind == "project":
        return _generate_project(client, args, settings, bar)
    if args.kind == "texture":
        job = client.generate_texture(args.model, args.prompt, tileable=not args.no_tile, init_image=args.init,
                                      strength=args.strength or 0.0, maps=args.maps, **settings)
    else:
        job = client.generate_world(args.model, args.prompt, highlight_gain=args.highlight_gain or 0.0, **settings)
    result = follow(job, bar).result()
    ref = result.exr if args.out.suffix.lower() == ".exr" else result.image
    client.download(ref.id, args.out)
    for kind, ref in (("height", result.height_map), ("normal", result.normal_map)):
        if ref.id:
            path = args.out.with_name(f"{args.out.stem}_{kind}.png")
            client.download(ref.id, path)
            if not args.json:
                print(f"wrote {path}")
    if args.json:
        _print_message(result, True)
    else:
        print(f"wrote {args.out}: {result.width}x{result.height}, seed {result.seed}, model {result.model} "
              f"({result.model_hash[:12]})")
    return 0


def _generate_project(client: Client, args: argparse.Namespace, settings: dict[str, Any],
                      bar: ProgressBar | None) -> int:
    """`keygrip generate project`: the views of a views.json, uploaded; OUT.png for one view, OUT_<name>.png
    for each of several."""
    from keygrip.projection import file_stem

    if not args.views:
        raise errors.InvalidArgument("`keygrip generate project` needs --views views.json (the cameras and their "
                                     "depth renders)")
    if args.width or args.height:
        raise errors.InvalidArgument("--width and --height do not apply to project: each view in views.json has "
                                     "its own")
    views = [_camera_view(client, args.views, k, v) for k, v in enumerate(_views_json(args.views))]
    del settings["width"], settings["height"]
    job = client.project_texture(args.model, args.prompt, views, controlnet=args.controlnet or "",
                                 control_scale=args.control_scale or 0.0, **settings)
    result = follow(job, bar).result()
    stems = [file_stem(v.name, f"view{k + 1}") for k, v in enumerate(result.views)]
    if len(set(stems)) < len(stems):
        stems = [f"{k + 1}_{stem}" for k, stem in enumerate(stems)]  # names that would overwrite each other
    outs = [args.out] if len(stems) == 1 else [args.out.with_name(f"{args.out.stem}_{stem}{args.out.suffix}")
                                               for stem in stems]
    for k, view in enumerate(result.views):
        client.download(view.image.id, outs[k])
    if args.json:
        _print_message(result, True)
        return 0
    for k, view in enumerate(result.views):
        print(f"wrote {outs[k]}: view {view.name}, {view.width}x{view.height}, seed {view.seed}")
    used = f"model {result.model} ({result.model_hash[:12]})"
    if result.controlnet:
        used += f" with ControlNet {result.controlnet} ({result.controlnet_hash[:12]})"
    print(used)
    return 0


def _views_json(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise errors.InvalidArgument(f"cannot read the views {path}: {exc}") from None
    views = data.get("views") if isinstance(data, dict) else data
    if not isinstance(views, list) or not views or not all(isinstance(v, dict) for v in views):
        raise errors.InvalidArgument(f"{path} must hold a list of views (or {{\"views\": [...]}}), each an object with "
                                     "width, height, focal_x, focal_y, camera_to_world and depth")
    return views


def _camera_view(client: Client, path: Path, k: int, view: dict[str, Any]) -> scene_pb2.CameraView:
    """One views.json entry as a CameraView with its depth (and mask) uploaded; file paths are relative to
    the JSON file."""
    from keygrip.projection import Camera

    name = str(view.get("name") or f"view {k + 1}")
    try:
        width, height = int(view["width"]), int(view["height"])
        camera = Camera(width=width, height=height, focal_x=float(view["focal_x"]),
                        focal_y=float(view.get("focal_y", view["focal_x"])),
                        center_x=float(view.get("center_x", width / 2)),
                        center_y=float(view.get("center_y", height / 2)),
                        camera_to_world=view["camera_to_world"])
        depth = path.parent / str(view["depth"])
    except KeyError as exc:
        raise errors.InvalidArgument(f"{path}: view {name!r} has no {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise errors.InvalidArgument(f"{path}: view {name!r}: {exc} (camera_to_world is a 4x4 matrix, nested or "
                                     "16 numbers row-major)") from None
    proto = camera.to_proto(name)
    proto.depth_artifact_id = client.upload(depth, media_type=_MEDIA_TYPES.get(depth.suffix.lower())).id
    if view.get("mask"):
        mask = path.parent / str(view["mask"])
        proto.mask_artifact_id = client.upload(mask, media_type=_MEDIA_TYPES.get(mask.suffix.lower())).id
    return proto


_MEDIA_TYPES = {".npy": "application/x-npy", ".exr": "image/x-exr", ".png": "image/png"}


def _rig_description(path: Path) -> animation_pb2.Rig:
    """A rig.json description (bone_names, parents, rest_matrices), read here."""
    from keygrip import rigs

    try:
        return rigs.rig_from_description(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise errors.InvalidArgument(f"cannot read the rig {path}: {exc}") from None


def _map_line(bone_map: animation_pb2.BoneMap) -> str:
    """Where the roles came from: "52 bones mapped: 48 declared by VRM 1.0 humanoid, 4 guessed by name"."""
    counts: dict[int, int] = {}
    for m in bone_map.mappings:
        counts[m.source] = counts.get(m.source, 0) + 1
    labels = {animation_pb2.ROLE_SOURCE_PRESET: "from the preset",
              animation_pb2.ROLE_SOURCE_DECLARED: f"declared by {bone_map.declared_by or 'the file'}",
              animation_pb2.ROLE_SOURCE_NAME: "guessed by name",
              animation_pb2.ROLE_SOURCE_STRUCTURE: "guessed by structure"}
    parts = [f"{counts[source]} {label}" for source, label in labels.items() if counts.get(source)]
    return f"{len(bone_map.mappings)} bones mapped: {', '.join(parts)}"


def cmd_retarget(client: Client, args: argparse.Namespace) -> int:
    from keygrip import rigs

    out_format = args.out.suffix.lower().lstrip(".")
    request = animation_pb2.RetargetRequest(root_motion=_ROOT_MODES[args.root_motion], foot_lock=not args.no_foot_lock,
                                            animated_file=out_format in ("glb", "vrm", "fbx"))
    if request.animated_file:
        request.animated_format = out_format
        if args.rig.suffix.lower() in (".json", ".bvh", ".gltf"):
            raise errors.InvalidArgument(f"{args.out.name}: an animated .{out_format} is the rig's own character file "
                                         f"with the animation in it, so the rig must be a .glb, .vrm or .fbx "
                                         f"(not {args.rig.name}); or write a .bvh")
    if args.rig.suffix.lower() == ".json":
        request.rig.CopyFrom(_rig_description(args.rig))
        bone_names = list(request.rig.bone_names)
    else:
        if not args.rig.is_file():
            raise errors.InvalidArgument(f"the rig {args.rig} does not exist: name a .glb, .gltf, .vrm, .fbx, .bvh "
                                         "or rig .json file")
        try:
            request.rig_file.CopyFrom(client.rig_file(args.rig, skeleton=args.skeleton or ""))
        except ValueError as exc:  # the preset beside the rig file
            raise errors.InvalidArgument(str(exc)) from None
        if request.rig_file.sidecar.mappings and not args.json:
            print(f"using the bone map preset {rigs.sidecar_preset(args.rig)}")
        found = client.map_bones(request.rig_file)
        bone_names = [m.bone for m in found.mappings] + list(found.unmapped_bones)
    source = request.source
    source.bvh_scale = args.bvh_scale or 0.0
    source.name = "" if args.motion_job else Path(args.motion).name
    path = Path(args.motion)
    if args.motion_job:
        source.capture_job_id = args.motion
    elif path.suffix.lower() == ".bvh":
        source.bvh_artifact_id = client.upload(path, media_type="application/x-bvh").id
    else:
        source.clip_artifact_id = client.upload(path).id
    if args.bone_map:
        try:
            mapping, dropped = rigs.load_bone_map_preset(args.bone_map, bone_names)
        except ValueError as exc:
            raise errors.InvalidArgument(str(exc)) from None
        for bone in dropped:
            print(f"warning: the preset maps {bone!r}, which this rig does not have", file=sys.stderr)
        request.bone_map.CopyFrom(rigs.bone_map_from_dict(mapping))
    bar = None if args.json else ProgressBar()
    result = follow(client.retarget(request, requeue=not args.no_requeue), bar).result()
    client.download((result.character if request.animated_file else result.bvh).id, args.out)
    if args.animation:
        client.download(result.animation.id, args.animation)
    if args.json:
        _print_message(result, True)
        return 0
    print(f"retargeted {result.frames} frames onto {len(result.rig.bone_names)} bones of {result.rig.name or args.rig}"
          f"; wrote {args.out}")
    print(_map_line(result.bone_map))
    guessed = [m for m in result.bone_map.mappings if m.confidence < 1.0]
    if guessed:
        print("guessed: " + ", ".join(f"{m.role}={m.bone} ({m.confidence:.2f})" for m in guessed))
    for warning in result.warnings:
        print(f"warning: {warning}")
    if result.bone_map.missing_roles:
        print(f"roles the rig has no bone for: {', '.join(result.bone_map.missing_roles)}")
    return 0


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def cmd_models_ls(client: Client, args: argparse.Namespace) -> int:
    info = client.info()
    models = [m for m in info.models if m.kind == "diffusers"] if not args.all else list(info.models)
    if args.json:
        print(json.dumps([json_format.MessageToDict(m, preserving_proto_field_name=True) for m in models]))
        return 0
    if not models:
        print("no diffusion models on this server: add one with `keygrip models add PATH --name NAME` "
              "(a diffusers folder or a .safetensors file) and restart the server")
        return 0
    rows = [["NAME", "FAMILY", "SIZE", "STATE", "CAPABILITIES", "REASON"]]
    for m in models:
        state = server_pb2.ModelState.Name(m.state).removeprefix("MODEL_STATE_").lower()
        caps = ", ".join(m.capabilities) if m.state in _MODEL_READY else ""
        rows.append([m.name, m.family or m.kind, _size(m.size_bytes) if m.size_bytes else "-", state, caps or "-",
                     m.reason])
    for line in _columns(rows, right=(2,)):
        print(line)
    return 0


def _columns(rows: list[list[str]], right: tuple[int, ...] = ()) -> list[str]:
    """Rows as aligned text columns, each as wide as its widest cell (a long name never runs into the
    next column); the last column is left as it is, the columns in `right` aligned right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [row[i].rjust(w) if i in right else row[i].ljust(w) for i, w in enumerate(widths)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return lines


def cmd_models_add(args: argparse.Namespace) -> int:
    try:
        from inference_server.config import default_data_dir
        from inference_server.models.registry import FAMILIES, MODELS_FILE, add_model
    except ImportError:
        raise errors.FailedPrecondition("`keygrip models add` registers a model with a server on this machine: "
                                        "install the server here (pip install 'keygrip[server]')") from None
    if args.family and args.family not in FAMILIES:
        raise errors.InvalidArgument(f"unknown family {args.family!r}: one of {', '.join(FAMILIES)}")
    data_dir = Path(args.data_dir or os.environ.get("KEYGRIP_DATA_DIR") or default_data_dir()).expanduser()
    try:
        entry = add_model(data_dir, args.path, name=args.name or "", config_path=args.config,
                          allow_pickle=args.unsafe_pickle, family=args.family or "", compile=args.compile,
                          allow_restricted_license=args.allow_restricted_license)
    except ValueError as exc:
        raise errors.FailedPrecondition(str(exc)) from None
    caps = ", ".join(entry.capabilities) or "nothing yet"
    print(f"added {entry.name}: {entry.family}, {_size(entry.size_bytes)}, enables {caps} "
          f"(in {data_dir / MODELS_FILE})")
    print("restart the server (keygrip serve) to use it: a running server reads its models when it starts")
    return 0


def cmd_models_pull(args: argparse.Namespace) -> int:
    dest = Path(args.dest or Path.cwd() / args.repo_id.replace("/", "--")).expanduser()
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() not in ("", "0", "false", "no")
    if offline:
        raise errors.FailedPrecondition(
            f"cannot download {args.repo_id}: HF_HUB_OFFLINE is set, so this machine is offline for the Hugging "
            f"Face Hub; unset it and run this again, or download the model elsewhere, copy its folder here and run "
            f"`keygrip models add DIR`")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise errors.FailedPrecondition(
            f"cannot download {args.repo_id}: huggingface_hub is not installed here; `pip install huggingface_hub`, "
            "or download the model elsewhere and run `keygrip models add DIR`") from None
    try:
        # Safetensors weights and configs only: never pickle checkpoints.
        path = snapshot_download(args.repo_id, local_dir=str(dest),
                                 allow_patterns=["*.json", "*.txt", "*.safetensors", "*.model", "*.md"])
    except Exception as exc:  # network, authentication, unknown repository: one line, with what to do
        what = " ".join(str(exc).split())[:300]
        raise errors.FailedPrecondition(
            f"cannot download {args.repo_id} ({type(exc).__name__}: {what}); check the repository id, the network "
            "and `huggingface-cli login` for gated models, or download it elsewhere and `keygrip models add DIR`"
        ) from None
    print(f"downloaded {args.repo_id} to {path}; register it with `keygrip models add {path}`")
    return 0


def _global_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The options every client command takes. The top-level parser holds their defaults; each command's
    parser takes them too (without defaults, which would overwrite what came before the command name),
    so that `keygrip probe shot.mp4 --json` works as `keygrip --json probe shot.mp4` does."""
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--address", default=default(os.environ.get("KEYGRIP_ADDRESS", DEFAULT_ADDRESS)),
                        help=f"host:port or unix:///path (default {DEFAULT_ADDRESS}, or KEYGRIP_ADDRESS)")
    parser.add_argument("--token", default=default(os.environ.get("KEYGRIP_TOKEN")),
                        help="bearer token (or KEYGRIP_TOKEN)")
    parser.add_argument("--json", action="store_true", default=default(False), help="machine-readable output")
    parser.add_argument("--debug", action="store_true",
                        default=default(os.environ.get("KEYGRIP_DEBUG", "") not in ("", "0")),
                        help="print the traceback of an unexpected error (or KEYGRIP_DEBUG=1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keygrip",
                                     description="Keygrip: AI motion capture and animation for DCC tools")
    _global_options(parser, defaults=True)
    client_options = argparse.ArgumentParser(add_help=False)
    _global_options(client_options, defaults=False)
    # Commands that submit a job.
    job_options = argparse.ArgumentParser(add_help=False)
    job_options.add_argument("--no-requeue", action="store_true",
                             help="run the job at most once: if its worker or the server dies under it, it fails "
                                  "instead of running again")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run an inference server")
    cleanup = sub.add_parser("cleanup", help="apply the retention policy to a server's data directory")
    try:
        from inference_server.__main__ import add_cleanup_arguments, add_serve_arguments
    except ImportError:  # the SDK alone, without the server extra
        pass
    else:
        add_serve_arguments(serve)
        add_cleanup_arguments(cleanup)

    sub.add_parser("info", help="server version, devices, capabilities and models", parents=[client_options])

    probe = sub.add_parser("probe", help="fps, frames, codec, size and rotation of a video or image sequence",
                           parents=[client_options, job_options])
    probe.add_argument("file", help="a video, or an image sequence: plate.####.png, plate.%%04d.png, "
                                    "a folder of frames or the first frame")
    probe.add_argument("--server-path", action="store_true", help="FILE is a path on the server, not uploaded")
    probe.add_argument("--thumbnail", type=Path, help="also save the poster frame PNG here")

    jobs = sub.add_parser("jobs", help="list, watch, cancel or delete jobs", parents=[client_options])
    jobs.add_argument("action", choices=["ls", "get", "watch", "cancel", "rm"])
    jobs.add_argument("job_id", nargs="?")
    jobs.add_argument("--state", action="append", choices=sorted(_STATES), help="filter ls by state")
    jobs.add_argument("--type", help="filter ls by job type")
    jobs.add_argument("--limit", type=int, default=50)

    mocap = sub.add_parser("mocap", help="motion capture from a video or image sequence (or calibrated videos) to BVH",
                           parents=[client_options, job_options])
    mocap.add_argument("video", nargs="+", help="a video, or an image sequence: plate.####.png, plate.%%04d.png, "
                                                "a folder of frames or the first frame; with --calibration: one "
                                                "video per calibrated camera, or a folder of them")
    mocap.add_argument("--calibration", help="the cameras' calibration (Pose2Sim/OpenCV TOML, Qualisys .qca.txt, "
                                             "keygrip JSON): capture from several calibrated videos of one take")
    mocap.add_argument("--offsets", help="with --calibration: frame offsets per video, e.g. 0,0,12 (default: from "
                                         "timecodes or the person's motion)")
    mocap.add_argument("--floor", choices=list(FLOOR_SOURCES),
                       help="with --calibration: where the floor and up axis come from: the calibration's world, "
                            "the floor the person's feet stand on, or auto (default: the feet's where the "
                            "calibration does not say where the floor is or its floor is far from the feet's)")
    mocap.add_argument("--out", type=Path, required=True, help="BVH file to write")
    mocap.add_argument("--preview", type=Path, help="also write a QA video with the skeleton drawn over it")
    mocap.add_argument("--clip", type=Path, help="also write the MotionClip (protobuf) for retargeting")
    mocap.add_argument("--landmarks", type=Path, help="also write the raw MediaPipe landmarks (NPZ)")
    mocap.add_argument("--hands", action="store_true", help="capture finger motion")
    mocap.add_argument("--face", action="store_true", help="capture ARKit face curves")
    mocap.add_argument("--smoothing", type=float, default=0.5, help="0 (raw) to 1 (strong)")
    mocap.add_argument("--no-foot-lock", action="store_true")
    mocap.add_argument("--no-root-motion", action="store_true")
    mocap.add_argument("--height", type=float, help="subject height in metres")
    mocap.add_argument("--fov", type=float, help="camera horizontal field of view in degrees")
    mocap.add_argument("--start", type=int, default=0,
                       help="first frame (a sequence's own numbers, e.g. 1001; before its first: from the first)")
    mocap.add_argument("--end", type=int, help="frame after the last")
    mocap.add_argument("--workers", type=int, help="parallel inference processes")
    mocap.add_argument("--subject", help="who to capture among several people: an id from `keygrip people` "
                       "(same --start/--end), X,Y@FRAME (a pixel on them), X0,Y0,X1,Y1@FRAME (a box around them), "
                       "or auto (the person seen most)")
    mocap.add_argument("--people", choices=["all"], help="all: capture every person, each into OUT_personID.bvh "
                       "(and _personID for --preview, --clip, --landmarks)")
    mocap.add_argument("--people-tracks", metavar="ARTIFACT",
                       help="with --subject or --people all: the tracks `keygrip people` printed for the same video "
                       "and --start/--end; the capture follows them by their ids instead of looking again")
    mocap.add_argument("--server-path", action="store_true",
                       help="VIDEO is a path on the server (a file, a folder of frames or a pattern)")

    for name, help_text in (("matte", "a person's matte over a plate, as matte.####.exr (alpha in A)"),
                            ("depth", "relative depth for a plate, as depth.####.exr (Z, larger is farther)"),
                            ("cleanplate", "the plate's background without the person, with a coverage map")):
        comp = sub.add_parser(name, help=help_text, parents=[client_options, job_options])
        comp.add_argument("plate", help="a video, or an image sequence: plate.####.exr, plate.%%04d.png, "
                                        "a folder of frames or the first frame")
        comp.add_argument("--out", type=Path, required=True,
                          help="folder to write the files into, or the sequence's own pattern such as "
                               "comp/shot010_matte.####.exr (%%04d, $F4 alike; other files go beside it)")
        comp.add_argument("--range", help="frames FIRST-LAST in the plate's own numbers, e.g. 1001-1100")
        comp.add_argument("--handles", type=int, default=0,
                          help="frames at each end of an image sequence plate that are not sent nor processed")
        comp.add_argument("--format", choices=["exr-half", "exr-float", "png16"], default="exr-half")
        comp.add_argument("--server-path", action="store_true", help="PLATE is a path on the server")
        comp.add_argument("--no-stabilize", action="store_true", help="no temporal stabilisation")
        if name in ("matte", "cleanplate"):
            comp.add_argument("--no-refine", action="store_true", help="no edge refinement (guided filter)")
            comp.add_argument("--no-mirror", action="store_true",
                              help="no mirror averaging (one segmenter call a frame instead of two)")
            comp.add_argument("--no-band-matting", action="store_true",
                              help="no closed-form matting on the band around the matte's edge")
            comp.add_argument("--preview", action="store_true",
                              help="also write a preview (matte: MP4 over a checkerboard; clean plate: PNG)")
            comp.add_argument("--model", help="a registered person segmenter in place of MediaPipe Selfie "
                                              "Segmentation (keygrip models ls: compositing.matte)")
        if name == "matte":
            comp.add_argument("--rgba", action="store_true", help="RGBA EXRs: the plate premultiplied, matte in A")
        if name == "depth":
            comp.add_argument("--model", help="a registered depth model (default: the only one)")
        if name == "cleanplate":
            comp.add_argument("--reference", type=int, help="the frame to make the plate for (default: the middle)")
            comp.add_argument("--dilate", type=int, help="pixels the matte is grown by (default 15)")
            comp.add_argument("--locked-off", action="store_true", help="the camera does not move: no registration")
            comp.add_argument("--inpaint-model", help="the inpainting model that fills pixels never seen "
                                                      "(default: the first registered one, if any)")
            comp.add_argument("--classical-fill", action="store_true",
                              help="fill pixels never seen with OpenCV's inpainting even when a model is registered")
            comp.add_argument("--inpaint-steps", type=int, help="the inpainting model's denoising steps (default 25)")

    people = sub.add_parser("people", help="every person in a shot: ids for `keygrip mocap --subject`, thumbnails",
                            parents=[client_options, job_options])
    people.add_argument("video", help="a video, or an image sequence: plate.####.png, plate.%%04d.png, "
                                      "a folder of frames or the first frame")
    people.add_argument("--start", type=int, default=0, help="first frame (use the same range for mocap)")
    people.add_argument("--end", type=int, help="frame after the last")
    people.add_argument("--max-people", type=int, help="at most this many people tracked at once (default 10, "
                                                       "at most 32)")
    people.add_argument("--small-people", action="store_true",
                        help="also look for people far from the camera (down to about a sixth of the frame's "
                             "height): about twice the time, and person-like things may be listed too")
    people.add_argument("--thumbnails", type=Path, help="write person_ID.png for each person into this folder")
    people.add_argument("--server-path", action="store_true", help="VIDEO is a path on the server, not uploaded")

    calib = sub.add_parser(
        "calibrate", parents=[client_options, job_options],
        help="calibrate cameras from a checkerboard or ChArUco board: lens, pose, a Y-up floor; keygrip JSON",
        description="Each SOURCE is an image, a video or a folder of images of one camera, named NAME=PATH or by "
                    "its path (cam01/x.jpg and cam01/ -> cam01, cam02.mp4 -> cam02). Positional sources calibrate "
                    "each camera's lens; --extrinsics sources (synchronised videos, or photos taken at the same "
                    "moments) place the cameras: the board seen by several at once, lying on the floor first.")
    calib.add_argument("sources", nargs="*", help="each camera's board images, folders or videos (lens)")
    calib.add_argument("--board", required=True, help="4x7: a checkerboard's inner corners (5x8 squares); "
                                                      "charuco:5x7: a ChArUco board's squares")
    calib.add_argument("--square", required=True, help="a square's side with its unit: 60mm, 6cm, 0.06m")
    calib.add_argument("--marker", help="ChArUco: a marker's side, e.g. 30mm")
    calib.add_argument("--dictionary", help="ChArUco: the ArUco dictionary (default DICT_4X4_50)")
    calib.add_argument("--extrinsics", nargs="+", action="append", metavar="SOURCE",
                       help="views several cameras saw at once (same frame numbers), to place the cameras")
    calib.add_argument("--floor-frame", type=int, help="the frame where the board lies on the floor (default: the "
                                                       "first frame the most cameras share)")
    calib.add_argument("--max-frames", type=int, help="frames sampled from each video (default 40)")
    calib.add_argument("--out", type=Path, required=True, help="the calibration file to write (.json)")
    calib.add_argument("--server-path", action="store_true", help="the sources are paths on the server, not uploaded")

    generate = sub.add_parser("generate", help="a tileable texture, a 360-degree world, or a texture projected "
                                               "from cameras, from text",
                              parents=[client_options, job_options])
    generate.add_argument("kind", choices=["texture", "world", "project"])
    generate.add_argument("--model", required=True, help="a model the server lists (keygrip models ls)")
    generate.add_argument("--prompt", required=True)
    generate.add_argument("--negative", help="negative prompt")
    generate.add_argument("--seed", type=int, help="the same seed gives the same image (default: random, printed)")
    generate.add_argument("--steps", type=int, help="denoising steps (default 25)")
    generate.add_argument("--guidance", type=float, help="guidance scale (default 7)")
    generate.add_argument("--width", type=int, help="pixels, a multiple of 8 (default 512; a world: 2 x height)")
    generate.add_argument("--height", type=int, help="pixels, a multiple of 8 (default 512)")
    generate.add_argument("--scheduler", help="a diffusers scheduler class name (default: the model's own)")
    generate.add_argument("--no-tile", action="store_true", help="texture: not seamless")
    generate.add_argument("--init", type=Path, help="texture: an image to start from")
    generate.add_argument("--strength", type=float, help="texture: how far to move from --init, 0..1 (default 0.75)")
    generate.add_argument("--maps", action="store_true",
                          help="texture: also a height and a normal map, written as OUT_height.png, OUT_normal.png")
    generate.add_argument("--highlight-gain", type=float,
                          help="world: scale the brightest pixels of the EXR up to this many times (8-32: a sun "
                               "that casts shadows; default off)")
    generate.add_argument("--views", type=Path,
                          help="project: a JSON list of views (name, width, height, focal_x, focal_y, center_x, "
                               "center_y, camera_to_world, depth .npy/.exr, optional mask .npy/.png; paths relative "
                               "to the JSON)")
    generate.add_argument("--controlnet", help="project: a depth ControlNet beside --model (an SD 1.x/2.x/XL "
                                               "model); none when --model is an SD 2 depth model")
    generate.add_argument("--control-scale", type=float, help="project: ControlNet conditioning scale (default 1)")
    generate.add_argument("--out", required=True, type=Path,
                          help=".png (8-bit sRGB) or .exr (linear float); project: OUT.png, or OUT_<view>.png "
                               "for each of several views")

    retarget = sub.add_parser("retarget", help="a captured clip or a BVH onto your rig",
                              parents=[client_options, job_options])
    retarget.add_argument("motion", help="a .bvh file, a clip file from `keygrip mocap --clip`, or a capture job id")
    retarget.add_argument("--rig", required=True, type=Path,
                          help="a character file (.glb, .gltf, .vrm, .fbx; a .bvh's skeleton), or a .json rig "
                               "description (bone_names, parents, rest_matrices in Y-up metres, tails); a preset "
                               "NAME.bonemap.json "
                               "beside a character file is its declared bone map")
    retarget.add_argument("--skeleton", help="which skeleton of a file with several (armature or skin name, or "
                                             "index; default: the one with the most bones)")
    retarget.add_argument("--out", required=True, type=Path,
                          help=".bvh: the result on the rig's skeleton; .glb, .vrm (with a .vrm rig) or .fbx "
                               "(with a .glb, .vrm or .fbx rig): the character with the animation in it")
    retarget.add_argument("--animation", type=Path, help="also write the RigAnimation (protobuf) for hosts")
    retarget.add_argument("--bone-map", type=Path, help="a bone map preset (JSON) instead of automatic mapping")
    retarget.add_argument("--root-motion", choices=sorted(_ROOT_MODES), default="hips")
    retarget.add_argument("--no-foot-lock", action="store_true")
    retarget.add_argument("--bvh-scale", type=float, help="metres per BVH unit (default: detect)")
    retarget.add_argument("--motion-job", action="store_true", help="MOTION is the id of a finished capture job")

    models = sub.add_parser("models", help="diffusion models: list the server's, register or download one")
    models_sub = models.add_subparsers(dest="models_action", required=True)
    models_ls = models_sub.add_parser("ls", help="the server's diffusion models: family, size, state, reason",
                                      parents=[client_options])
    models_ls.add_argument("--all", action="store_true", help="also the bundled MediaPipe models")
    add = models_sub.add_parser("add", help="register a diffusers folder or .safetensors file with the local server")
    add.add_argument("path", type=Path, help="a diffusers folder or a single .safetensors file")
    add.add_argument("--name", help="what to call it (default: the folder or file name)")
    add.add_argument("--config", type=Path, help="for a single file: the diffusers config folder of its kind")
    add.add_argument("--family", help="its family, when it cannot be read from the files (sd1, sd2, sdxl, ...)")
    add.add_argument("--compile", action="store_true",
                     help="torch.compile its denoiser and VAE decoder when loaded (GPU: faster steps after a "
                          "first job that compiles for a minute or more)")
    add.add_argument("--unsafe-pickle", action="store_true",
                     help="allow a pickle checkpoint (.ckpt/.bin), which can run code when loaded")
    add.add_argument("--allow-restricted-license", action="store_true",
                     help="use a model whose licence restricts use (non-commercial such as CC BY-NC, or copyleft "
                          "such as GPL): refused without this; set it only if your use is allowed by the licence")
    add.add_argument("--data-dir", help="the server's data directory (default: KEYGRIP_DATA_DIR or the default)")
    pull = models_sub.add_parser("pull", help="download a model from the Hugging Face Hub (only when you ask)")
    pull.add_argument("repo_id", help="e.g. stable-diffusion-v1-5/stable-diffusion-v1-5")
    pull.add_argument("--dest", help="folder to write (default: ./OWNER--NAME)")
    return parser


_COMMANDS: dict[str, Callable[[Client, argparse.Namespace], int]] = {
    "info": cmd_info, "probe": cmd_probe, "jobs": cmd_jobs, "mocap": cmd_mocap, "people": cmd_people,
    "retarget": cmd_retarget,
    "models": cmd_models_ls,
    "generate": cmd_generate,
    "matte": cmd_compositing, "depth": cmd_compositing, "cleanplate": cmd_compositing,
    "calibrate": cmd_calibrate,
}
# Commands that work on this machine's files and need no server.
_LOCAL_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"add": cmd_models_add, "pull": cmd_models_pull}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "cleanup"):
        try:
            from inference_server.__main__ import cleanup_command, serve_command
        except ImportError:
            print("keygrip: the server is not installed here: pip install 'keygrip[server]'", file=sys.stderr)
            return 2
        return serve_command(args) if args.command == "serve" else cleanup_command(args)
    try:
        if args.command == "models" and args.models_action in _LOCAL_COMMANDS:
            return _LOCAL_COMMANDS[args.models_action](args)
        with Client(args.address, args.token) as client:
            return _COMMANDS[args.command](client, args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        print(f"keygrip: {error_line(exc, args.debug)}", file=sys.stderr)
        if args.debug and not isinstance(exc, errors.KeygripError):
            traceback.print_exc()
        return 1


def error_line(exc: BaseException, debug: bool = False) -> str:
    """One line for a failed command: the status code and the message; never a traceback or a repr."""
    if isinstance(exc, errors.KeygripError):
        text = " ".join(exc.message.split())  # a server message never spans lines here
        return f"{exc.code}: {text}" if exc.code and exc.code != "UNKNOWN" else text
    if isinstance(exc, OSError) and exc.strerror:
        code = errno.errorcode.get(exc.errno or 0, "OS_ERROR")
        where = f" {exc.filename}" if exc.filename else ""
        return f"{code}: {exc.strerror}:{where}; check the path and its permissions"
    what = f"{type(exc).__name__}: {' '.join(str(exc).split())}".rstrip(": ")
    hint = "the traceback is below" if debug else "run it again with --debug (or KEYGRIP_DEBUG=1) for the traceback"
    return (f"INTERNAL: the keygrip command hit an unexpected error ({what}); this is a bug in Keygrip: {hint}, "
            "and report it")


if __name__ == "__main__":
    sys.exit(main())
