"""The multiview_capture job: calibrated videos in; a MotionClip with its cameras, a BVH and a
report per view out."""

from __future__ import annotations

import importlib
import io

import numpy as np

from inference_server.capability import JobHandler
from inference_server.jobs.context import JobContext
from inference_server.jobs.failures import JobInput, describe_media
from inference_server.mocap.options import SolveOptions
from inference_server.motion.clip import FrameFlag
from inference_server.store.artifacts import ArtifactStore, artifact_ref, local_path
from keygrip.v1 import multicam_pb2


class MultiViewCaptureHandler(JobHandler[multicam_pb2.MultiViewCaptureRequest]):
    """Runs multicam.capture.run_multicam and stores its results as artifacts."""

    request_type = multicam_pb2.MultiViewCaptureRequest

    def setup(self) -> None:
        importlib.import_module("mediapipe")
        importlib.import_module("inference_server.multicam.capture")

    def describe(self, request: multicam_pb2.MultiViewCaptureRequest, artifacts: ArtifactStore | None) -> JobInput:
        names = self._names(request, artifacts)
        first = describe_media(request.videos[0], artifacts, "capturing", "footage") if request.videos else None
        return JobInput(name=" + ".join(names) or "the videos", doing="capturing", kind="footage",
                        smaller="a shorter frame range, a smaller max_side, or without hands and face",
                        aliases=first.aliases if first else ())

    @staticmethod
    def _names(request: multicam_pb2.MultiViewCaptureRequest, artifacts: ArtifactStore | None) -> list[str]:
        if request.video_names:
            return list(request.video_names)
        return [describe_media(v, artifacts, "capturing").name for v in request.videos]

    def run(self, request: multicam_pb2.MultiViewCaptureRequest, ctx: JobContext
            ) -> multicam_pb2.MultiViewCaptureResult:
        from inference_server.motion.bvh import write_bvh
        from inference_server.motion.wire import clip_to_proto
        from inference_server.multicam.capture import MulticamOptions, run_multicam

        defaults = SolveOptions()
        options = MulticamOptions(
            solve=SolveOptions(
                hands=request.hands, face=request.face,
                smoothing=request.smoothing if request.HasField("smoothing") else defaults.smoothing,
                foot_lock=request.foot_lock if request.HasField("foot_lock") else defaults.foot_lock,
                root_motion=request.root_motion if request.HasField("root_motion") else defaults.root_motion),
            offsets=list(request.frame_offsets) or None,
            start_frame=request.frame_range.start, end_frame=request.frame_range.end or None,
            max_side=request.max_side or MulticamOptions().max_side, workers=request.workers or None,
            floor=multicam_pb2.FloorSource.Name(request.floor).removeprefix("FLOOR_SOURCE_").lower())
        names = self._names(request, ctx.artifacts)
        paths = [local_path(ctx.artifacts, v, ctx.scratch) for v in request.videos]
        calibration = local_path(ctx.artifacts, request.calibration, ctx.scratch)
        cal_name = describe_media(request.calibration, ctx.artifacts, "reading").name
        out = run_multicam(paths, calibration, options, ctx, names=names, calibration_name=cal_name)

        clip = out.clip
        clip.metadata["job_id"] = ctx.job_id
        ctx.progress("export", 0, 2, "writing results")
        result = multicam_pb2.MultiViewCaptureResult(sync_method=out.sync.method,
                                                     sync_confidence=out.sync.confidence,
                                                     floor=clip.metadata.get("floor", ""))
        result.clip.CopyFrom(artifact_ref(ctx.put_bytes(clip_to_proto(clip).SerializeToString(), "clip.keygrip-clip",
                                                        "application/x-protobuf")))
        bvh = io.StringIO()
        write_bvh(clip, bvh)
        result.bvh.CopyFrom(artifact_ref(ctx.put_bytes(bvh.getvalue().encode(), "clip.bvh", "application/x-bvh")))
        inliers, err = out.points.inliers, out.points.error_px
        for v, (cam, name) in enumerate(zip(clip.cameras, out.names, strict=True)):
            used = inliers[v]
            result.views.add(name=name, camera=cam.name, frame_offset=cam.frame_offset,
                             seen_fraction=float(used.any(axis=1).mean()),
                             reprojection_error_px=float(np.nanmean(err[used])) if used.any() else 0.0)
        flags = clip.frame_flags
        s = result.summary
        s.frames = clip.num_frames
        s.first_frame = clip.cameras[0].frame_offset
        s.tracked_frames = int((flags == FrameFlag.TRACKED).sum())
        s.interpolated_frames = int((flags == FrameFlag.INTERPOLATED).sum())
        s.missing_frames = int((flags == FrameFlag.MISSING).sum())
        total = out.timings.get("total", 0.0)
        s.processing_fps = clip.num_frames * len(out.names) / total if total > 0 else 0.0
        s.stage_seconds.update(out.timings)
        result.warnings.extend(clip.warnings)
        ctx.progress("export", 2, 2, "done")
        return result
