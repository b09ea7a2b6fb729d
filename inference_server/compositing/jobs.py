"""The matte, depth and clean_plate jobs: a plate in; passes numbered like it out, as artifacts."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from inference_server import __version__
from inference_server.capability import JobHandler
from inference_server.jobs.context import JobContext
from inference_server.jobs.failures import JobInput, describe_media
from inference_server.store.artifacts import ArtifactStore, artifact_ref, input_name, local_path
from keygrip.v1 import compositing_pb2

if TYPE_CHECKING:
    import numpy as np

    from inference_server.compositing.cleanplate import CleanPlate
    from inference_server.compositing.matte import PersonSegmenter, Segmenter
    from inference_server.compositing.options import CleanPlateOptions, MatteOptions
    from inference_server.compositing.plates import Plate
    from inference_server.models.pipelines import PipelineCache

_SMALLER = "a shorter frame range, or a smaller working_size"
# Frames between step previews sent to watchers (a PNG each, so not every frame).
_PREVIEW_EVERY = 10


def _base_metadata(plate: Plate, source: str, ctx: JobContext) -> dict[str, str]:
    return {"keygrip_version": __version__, "source": source, "job_id": ctx.job_id,
            "frame_range": f"{plate.numbers[0]}-{plate.numbers[-1]}"}


def _sequence(plate: Plate, stem: str, suffix: str, channels: str, meta: dict[str, str]
              ) -> compositing_pb2.OutputSequence:
    out = compositing_pb2.OutputSequence(pattern=plate.output_pattern(stem, suffix), width=plate.info.width,
                                         height=plate.info.height, channels=channels)
    out.metadata.update(meta)
    return out


class _Segmenting:
    """What the matte and clean-plate jobs share: the segmenter, kept between jobs (it has no temporal
    state of its own: a chain's stabiliser is made per job); a learned one comes from the worker's model
    cache (models/pipelines.py), shared with depth and inpainting, on the first job that names one."""

    segmenter: Segmenter
    cache: PipelineCache | None = None

    def setup(self) -> None:
        from inference_server.compositing.matte import Segmenter

        self.segmenter = Segmenter()

    def models(self) -> PipelineCache:
        """The worker's model cache (torch is imported on the first job that needs a model)."""
        if self.cache is None:
            from inference_server.models.pipelines import worker_cache

            self.cache = worker_cache()
        return self.cache

    def first_stage(self, opts: MatteOptions, ctx: JobContext) -> tuple[PersonSegmenter, dict[str, str]]:
        """The matte chain's segmenter and what the metadata says of it: Selfie Segmentation, or the
        named model (loaded now, with its hash and licence)."""
        if not opts.model:
            return self.segmenter, {}
        from inference_server.compositing.segmenters import ModelSegmenter
        from inference_server.scene.provenance import model_fingerprint

        cache = self.models()
        entry = cache.registry.suited(opts.model, "compositing.matte")
        ctx.progress("load", 0, 1, f"loading segmenter {entry.name}")
        segmenter = ModelSegmenter(cache.segmenter(entry.name), entry.path, entry.name)
        return segmenter, {"matte_model": entry.name, "matte_model_hash": model_fingerprint(entry.path),
                           "matte_model_license": entry.license or "unknown"}

    def close(self) -> None:
        self.segmenter.close()
        if self.cache is not None:
            from inference_server.models.pipelines import release_worker_cache

            release_worker_cache()


class MatteHandler(_Segmenting, JobHandler[compositing_pb2.MatteRequest]):
    """Runs the matte chain (matte.py) over a plate."""

    request_type = compositing_pb2.MatteRequest

    def describe(self, request: compositing_pb2.MatteRequest, artifacts: ArtifactStore | None) -> JobInput:
        return describe_media(request.input, artifacts, "pulling a matte from", "plate", smaller=_SMALLER)

    def run(self, request: compositing_pb2.MatteRequest, ctx: JobContext) -> compositing_pb2.MatteResult:
        from inference_server.compositing import options
        from inference_server.compositing.matte import MatteChain
        from inference_server.compositing.plates import (
            PreviewWriter,
            open_plate,
            over_checkerboard,
            png_bytes,
            write_image,
        )

        opts = options.matte_options(request.settings)
        out = options.output(request.format)
        start, end = options.frame_range(request.frame_range)
        plate = open_plate(local_path(ctx.artifacts, request.input, ctx.scratch), start, end)
        segmenter, model_meta = self.first_stage(opts, ctx)
        rgba = request.premultiplied_rgba and out.exr
        meta = {**_base_metadata(plate, input_name(request.input), ctx), **opts.metadata(), **model_meta,
                **out.metadata(),
                "matte_channels": "RGBA premultiplied" if rgba else "A", "colorspace": "linear (non-colour matte)"}
        result = compositing_pb2.MatteResult(warnings=plate.gap_warnings())
        result.matte.CopyFrom(_sequence(plate, "matte", out.suffix, "RGBA" if rgba else ("A" if out.exr else "Y"),
                                        meta))
        chain = MatteChain(opts, segmenter)
        preview = PreviewWriter(ctx.scratch / "matte_preview.mp4", plate.info.fps) if request.preview else None
        empty: list[int] = []
        total, done, previous = len(plate.numbers), 0, None
        t0 = time.perf_counter()
        ctx.progress("matte", 0, total, f"pulling mattes from {plate.name}")
        try:
            for frame in plate.frames():
                ctx.check_cancelled()
                if previous is not None and frame.index != previous + 1:
                    chain.reset()  # a gap: the previous matte is not this frame's neighbour
                previous = frame.index
                alpha = chain(frame.image)
                if float(alpha.max()) < 0.5:
                    empty.append(frame.index)
                if rgba:
                    lin = plate.linear_rgb(frame) * alpha[..., None]
                    channels: dict[str, np.ndarray] = {"R": lin[..., 0], "G": lin[..., 1], "B": lin[..., 2], "A": alpha}
                else:
                    channels = {"A": alpha}
                name = plate.output_name("matte", out.suffix, frame.index)
                path = ctx.scratch / name
                write_image(path, channels, out, {**meta, "frame": str(frame.index)})
                result.matte.frames.add(number=frame.index,
                                        image=artifact_ref(ctx.put_file(path, name, out.media_type)))
                path.unlink()
                done += 1
                look = None
                if preview is not None or done % _PREVIEW_EVERY == 1:
                    look = over_checkerboard(frame.image, alpha)
                    if preview is not None:
                        preview.add(look)
                elapsed = time.perf_counter() - t0
                ctx.progress("matte", done, total, f"frame {frame.index}", fps=done / elapsed if elapsed > 0 else 0.0,
                             preview_png=png_bytes(_thumb(look)) if look is not None and done % _PREVIEW_EVERY == 1
                             else b"")
        finally:
            if preview is not None:
                preview.close()  # also when cancelled or failed: the file is released
        if preview is not None:
            result.preview.CopyFrom(artifact_ref(ctx.put_file(preview.path, "matte_preview.mp4", "video/mp4")))
        if empty:
            from keygrip.sequences import format_gaps

            result.warnings.append(f"nobody was found in {len(empty)} of {total} frames "
                                   f"({format_gaps(_runs(empty))}): their mattes are empty")
        elapsed = time.perf_counter() - t0
        result.processing_fps = done / elapsed if elapsed > 0 else 0.0
        return result


def _thumb(rgb: np.ndarray, side: int = 256) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    s = min(1.0, side / max(h, w))
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Ascending numbers as inclusive (first, last) runs."""
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


class DepthHandler(JobHandler[compositing_pb2.DepthRequest]):
    """Runs a depth estimator from the worker's model cache (models/pipelines.py) over a plate."""

    request_type = compositing_pb2.DepthRequest
    cache: PipelineCache

    def setup(self) -> None:
        from inference_server.models.pipelines import worker_cache

        self.cache = worker_cache()

    def close(self) -> None:
        from inference_server.models.pipelines import release_worker_cache

        release_worker_cache()

    def describe(self, request: compositing_pb2.DepthRequest, artifacts: ArtifactStore | None) -> JobInput:
        return describe_media(request.input, artifacts, "estimating depth for", "plate", smaller=_SMALLER)

    def run(self, request: compositing_pb2.DepthRequest, ctx: JobContext) -> compositing_pb2.DepthResult:
        from inference_server.compositing import options
        from inference_server.compositing.depth import DepthChain
        from inference_server.compositing.plates import open_plate, write_image
        from inference_server.scene.provenance import model_fingerprint

        opts = options.depth_options(request)
        out = options.output(request.format)
        start, end = options.frame_range(request.frame_range)
        plate = open_plate(local_path(ctx.artifacts, request.input, ctx.scratch), start, end)
        entry = self.cache.registry.depth_estimator(opts.model)
        ctx.progress("load", 0, 1, f"loading depth model {entry.name}")
        chain = DepthChain(self.cache.depth_estimator(entry.name), opts.working_size, stabilize=opts.stabilize,
                           weight=opts.temporal_weight, name=entry.name)
        meta = {**_base_metadata(plate, input_name(request.input), ctx), **out.metadata(),
                "model": entry.name, "model_hash": model_fingerprint(entry.path),
                "model_license": entry.license or "unknown",
                "depth_kind": "relative: 1 - normalised disparity; grows with distance, not metric",
                "depth_stabilize": "scale_shift_fit+dis_flow_blend" if opts.stabilize else "off",
                "depth_temporal_weight": f"{opts.temporal_weight:g}", "depth_working_size": str(opts.working_size),
                "colorspace": "linear (non-colour data)"}
        result = compositing_pb2.DepthResult(model=entry.name, warnings=plate.gap_warnings())
        channel = "Z" if out.exr else "Y"
        # PNG holds 0..1: the first frame's near..far (about 0..1 already); values outside are clipped there.
        total, done, previous = len(plate.numbers), 0, None
        near, far = float("inf"), float("-inf")
        t0 = time.perf_counter()
        ctx.progress("depth", 0, total, f"estimating depth for {plate.name}")
        for frame in plate.frames():
            ctx.check_cancelled()
            if previous is not None and frame.index != previous + 1:
                chain.reset()
            previous = frame.index
            z = chain(frame.image)
            near, far = min(near, float(z.min())), max(far, float(z.max()))
            name = plate.output_name("depth", out.suffix, frame.index)
            path = ctx.scratch / name
            write_image(path, {channel: z}, out, {**meta, "frame": str(frame.index)})
            result.depth.frames.add(number=frame.index, image=artifact_ref(ctx.put_file(path, name, out.media_type)))
            path.unlink()
            done += 1
            elapsed = time.perf_counter() - t0
            ctx.progress("depth", done, total, f"frame {frame.index}", fps=done / elapsed if elapsed > 0 else 0.0)
        meta.update(near=f"{near:g}", far=f"{far:g}")
        result.depth.CopyFrom(compositing_pb2.OutputSequence(
            pattern=plate.output_pattern("depth", out.suffix), frames=result.depth.frames, width=plate.info.width,
            height=plate.info.height, channels=channel, metadata=meta))
        result.near, result.far = near, far
        elapsed = time.perf_counter() - t0
        result.processing_fps = done / elapsed if elapsed > 0 else 0.0
        return result


class CleanPlateHandler(_Segmenting, JobHandler[compositing_pb2.CleanPlateRequest]):
    """The background of a shot without the person (cleanplate.py)."""

    request_type = compositing_pb2.CleanPlateRequest

    def describe(self, request: compositing_pb2.CleanPlateRequest, artifacts: ArtifactStore | None) -> JobInput:
        return describe_media(request.input, artifacts, "making a clean plate from", "plate", smaller=_SMALLER)

    def run(self, request: compositing_pb2.CleanPlateRequest, ctx: JobContext) -> compositing_pb2.CleanPlateResult:
        import dataclasses

        import cv2
        import numpy as np

        from inference_server.compositing import options
        from inference_server.compositing.cleanplate import Registration, clean_plate, sample_numbers, uncovered
        from inference_server.compositing.matte import MatteChain
        from inference_server.compositing.plates import open_plate, png_bytes, write_image
        from inference_server.errors import InvalidInput
        from inference_server.scene.exr import srgb_to_linear

        opts = options.clean_plate_options(request)
        # Sampled frames are not neighbours: the matte's temporal filter has nothing to work with.
        matte_opts = dataclasses.replace(options.matte_options(request.matte, "matte"), stabilize=False)
        out = options.output(request.format)
        start, end = options.frame_range(request.frame_range)
        plate = open_plate(local_path(ctx.artifacts, request.input, ctx.scratch), start, end)
        numbers = plate.numbers
        reference = opts.reference_frame if opts.reference_frame is not None else numbers[len(numbers) // 2]
        if reference not in numbers:
            raise InvalidInput(f"reference_frame {reference} is not a frame of {plate.name} in frames "
                               f"{numbers[0]}-{numbers[-1]}; pick one of them (0: the middle frame)")
        wanted = set(sample_numbers(numbers, reference))
        segmenter, model_meta = self.first_stage(matte_opts, ctx)
        chain = MatteChain(matte_opts, segmenter)
        images: dict[int, np.ndarray] = {}
        masks: dict[int, np.ndarray] = {}
        ctx.progress("matte", 0, len(wanted), f"finding the person in {plate.name}")
        for frame in plate.frames():
            ctx.check_cancelled()
            if frame.index not in wanted:
                continue
            images[frame.index] = frame.image
            masks[frame.index] = uncovered(chain(frame.image), opts.dilate)
            ctx.progress("matte", len(images), len(wanted), f"frame {frame.index}")
        used, skipped = sorted(images), []
        h, w = images[reference].shape[:2]
        if opts.register:
            ctx.progress("register", 0, len(used), "registering frames onto the reference")
            reg = Registration(images[reference], masks[reference])
            for i, n in enumerate(used):
                if n == reference:
                    continue
                hom = reg.homography(images[n], masks[n])
                if hom is None:
                    skipped.append(n)
                    continue
                images[n] = cv2.warpPerspective(images[n], hom, (w, h), flags=cv2.INTER_LINEAR)
                # Pixels from outside the frame are not background either.
                inside = cv2.warpPerspective(masks[n].astype(np.uint8), hom, (w, h), flags=cv2.INTER_NEAREST)
                masks[n] = inside.astype(bool)
                ctx.progress("register", i + 1, len(used), f"frame {n}")
            used = [n for n in used if n not in skipped]
        ctx.progress("median", 0, 1, "taking the median background")
        result_plate = clean_plate(np.stack([images[n] for n in used]), np.stack([masks[n] for n in used]), used,
                                   skipped)
        fill_meta = self.fill(result_plate, opts, ctx)
        meta = {**_base_metadata(plate, input_name(request.input), ctx), **matte_opts.metadata(), **model_meta,
                **out.metadata(), "reference_frame": str(reference), "dilate": str(opts.dilate),
                "register": "orb_homography" if opts.register else "off", "frames_used": str(len(used)),
                **fill_meta, "colorspace": "linear Rec.709" if out.exr else "sRGB"}
        result = compositing_pb2.CleanPlateResult(reference_frame=reference, width=w, height=h,
                                                  unseen_fraction=float(result_plate.unseen.mean()),
                                                  warnings=plate.gap_warnings())
        result.metadata.update(meta)
        if skipped:
            result.warnings.append(f"{len(skipped)} frames could not be registered onto frame {reference} (too few "
                                   f"background features match) and were left out: {skipped[:10]}")
        name = f"cleanplate.{reference}{out.suffix}"
        path = ctx.scratch / name
        rgb = result_plate.rgb.astype(np.float32) / 255.0
        data = srgb_to_linear(rgb) if out.exr else rgb
        write_image(path, {c: data[..., i] for i, c in enumerate("RGB")}, out, meta)
        result.plate.CopyFrom(artifact_ref(ctx.put_file(path, name, out.media_type)))
        coverage = (result_plate.unseen * 255).astype(np.uint8)
        result.coverage.CopyFrom(artifact_ref(ctx.put_bytes(png_bytes(coverage), f"coverage.{reference}.png",
                                                            "image/png")))
        if request.preview:
            result.preview.CopyFrom(artifact_ref(ctx.put_bytes(png_bytes(result_plate.rgb), "cleanplate_preview.png",
                                                               "image/png")))
        ctx.progress("median", 1, 1, "done")
        return result

    def fill(self, plate: CleanPlate, opts: CleanPlateOptions, ctx: JobContext) -> dict[str, str]:
        """Repaint the never-seen pixels with an inpainting model when one is named or registered (and
        classical_fill is off), in place; the metadata saying how they were filled."""
        from inference_server.models.registry import worker_registry

        classical = {"fill": "cv2.inpaint telea"}
        if not plate.unseen.any():
            return {"fill": "none: every pixel was seen"}
        if opts.classical_fill:
            return classical
        name = opts.inpaint_model
        if not name:
            # The registry from files (no torch) first: most servers have no inpainting model.
            found = worker_registry().available("compositing.inpaint")
            if not found:
                return classical
            name = found[0].name
        from inference_server.compositing.inpaint import SEED, fill_with_model
        from inference_server.scene.provenance import model_fingerprint

        cache = self.models()
        entry = cache.registry.suited(name, "compositing.inpaint")
        ctx.progress("inpaint", 0, 1, f"loading inpainting model {entry.name}")
        pipe = cache.inpaint(entry.name)
        ctx.progress("inpaint", 0, 1, f"inpainting {plate.unseen.mean():.1%} of the plate never seen")
        plate.rgb = fill_with_model(pipe, plate.rgb, plate.unseen, steps=opts.inpaint_steps, model=entry.name,
                                    check_cancelled=ctx.check_cancelled)
        ctx.progress("inpaint", 1, 1, "inpainted")
        return {"fill": f"diffusers {type(pipe).__name__}", "fill_model": entry.name,
                "fill_model_hash": model_fingerprint(entry.path), "fill_model_license": entry.license or "unknown",
                "fill_steps": str(opts.inpaint_steps), "fill_seed": str(SEED)}
