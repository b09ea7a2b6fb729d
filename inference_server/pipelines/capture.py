"""The motion_capture job: video in; MotionClip, BVH, raw landmarks and a QA preview out."""

from __future__ import annotations

import io

from google.protobuf import any_pb2

from inference_server.jobs.workers import WorkerContext
from inference_server.motion.clip import FrameFlag
from inference_server.services.artifacts import artifact_ref
from inference_server.services.inputs import local_path
from keygrip.v1 import mocap_pb2


def options_from_request(req: mocap_pb2.CaptureMotionRequest):
    from inference_server.mocap.pipeline import MocapOptions
    from inference_server.mocap.solve import SolveOptions

    defaults = SolveOptions()
    solve = SolveOptions(
        hands=req.hands, face=req.face,
        smoothing=req.smoothing if req.HasField("smoothing") else defaults.smoothing,
        foot_lock=req.foot_lock if req.HasField("foot_lock") else defaults.foot_lock,
        root_motion=req.root_motion if req.HasField("root_motion") else defaults.root_motion,
        subject_height_m=req.subject_height_m or None,
        focal_length_px=req.focal_length_px or None,
        fov_deg=req.fov_degrees or None,
    )
    return MocapOptions(
        start_frame=max(0, req.frame_range.start),
        end_frame=req.frame_range.end if req.frame_range.end > 0 else None,
        fps_override=req.fps_override or None,
        solve=solve, workers=req.workers or None, preview=req.preview,
    )


def run(request: any_pb2.Any, ctx: WorkerContext) -> mocap_pb2.CaptureMotionResult:
    from inference_server.mocap.pipeline import run_mocap
    from inference_server.motion.bvh import write_bvh
    from inference_server.motion.wire import clip_to_proto

    req = mocap_pb2.CaptureMotionRequest()
    request.Unpack(req)
    path = local_path(ctx.artifacts, req.input)
    out = run_mocap(path, options_from_request(req), ctx, out_dir=ctx.scratch)
    clip = out.clip
    clip.metadata.update({"source": req.input.artifact_id or req.input.path, "job_id": ctx.job_id})
    ctx.progress("export", 0, 3, "writing results")
    result = mocap_pb2.CaptureMotionResult()
    result.clip.CopyFrom(artifact_ref(ctx.put_bytes(clip_to_proto(clip).SerializeToString(),
                                                    "clip.keygrip-clip", "application/x-protobuf")))
    bvh = io.StringIO()
    write_bvh(clip, bvh)
    result.bvh.CopyFrom(artifact_ref(ctx.put_bytes(bvh.getvalue().encode(), "clip.bvh", "application/x-bvh")))
    npz = ctx.scratch / "landmarks.npz"
    out.landmarks.save_npz(npz)
    result.landmarks.CopyFrom(artifact_ref(ctx.put_file(npz, "landmarks.npz", "application/x-npz")))
    if out.preview_path is not None:
        result.preview.CopyFrom(artifact_ref(ctx.put_file(out.preview_path, "preview.mp4", "video/mp4")))
    ctx.progress("export", 3, 3, "done")
    flags = clip.frame_flags
    s = result.summary
    s.frames = clip.num_frames
    s.tracked_frames = int((flags == FrameFlag.TRACKED).sum())
    s.interpolated_frames = int((flags == FrameFlag.INTERPOLATED).sum())
    s.missing_frames = int((flags == FrameFlag.MISSING).sum())
    total = out.timings.get("total", 0.0)
    s.processing_fps = clip.num_frames / total if total > 0 else 0.0
    s.stage_seconds.update(out.timings)
    return result
