"""The generate_texture, generate_world and project_texture jobs: a prompt (and for a projection the
host's cameras and depth renders) in; PNG (and linear EXR) with provenance out.

The handlers share one PipelineCache per worker, so a model loaded for one job serves the next.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from inference_server.capability import JobHandler
from inference_server.jobs.context import JobContext
from inference_server.jobs.failures import JobInput
from inference_server.store.artifacts import ArtifactStore, artifact_ref
from keygrip.projection import file_stem
from keygrip.v1 import scene_pb2

if TYPE_CHECKING:
    from inference_server.models.pipelines import PipelineCache
    from inference_server.scene.generate import GenerateSettings


def _png(pixels: np.ndarray, metadata: dict[str, str], *, bits: int = 8) -> bytes:
    """A PNG of (H, W, 3) RGB or (H, W) grey values in 0..1 (8-bit, or 16-bit grey for a height map),
    with the provenance as text chunks (what reproduces it travels with the file)."""
    import io

    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in metadata.items():
        info.add_itxt(f"keygrip:{key}", value)
    out = io.BytesIO()
    if bits == 16:  # a uint16 array is Pillow's mode "I;16", written as a 16-bit grey PNG
        image = Image.fromarray(np.clip(np.rint(pixels * 65535.0), 0, 65535).astype(np.uint16))
    else:
        image = Image.fromarray(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8),
                                "RGB" if pixels.ndim == 3 else "L")
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


class _GenerateHandler:
    """What the jobs share: the worker's pipeline cache, the settings, and writing the results."""

    cache: PipelineCache

    def setup(self) -> None:
        from inference_server.models.pipelines import worker_cache

        self.cache = worker_cache()

    def _load_message(self, model: str) -> str:
        """What the job's load stage says: a model this worker already holds is not loaded again (a farm's
        second job of a model skips the load; its events say so, with the device, the process and its load
        count)."""
        import os

        where = f"on {self.cache.device.torch_device} in worker process {os.getpid()}"  # cpu: no GPU it could use
        if model in self.cache.loaded():
            return f"model {model} already loaded {where} ({self.cache.loads} loads there)"
        return f"loading model {model} {where} (load {self.cache.loads + 1} there)"

    def close(self) -> None:
        from inference_server.models.pipelines import release_worker_cache

        release_worker_cache()

    def _results(self, rgb: np.ndarray, settings: scene_pb2.GenerationSettings, ctx: JobContext, stem: str, *,
                 maps: tuple[np.ndarray, np.ndarray] | None = None, highlight_gain: float = 0.0,
                 **extra: object) -> scene_pb2.GeneratedImage:
        """The PNG, the linear EXR (highlights expanded by highlight_gain when > 1) and the (height,
        normal) maps when given, as artifacts."""
        from inference_server.scene.exr import expand_highlights, srgb_to_linear, write_exr
        from inference_server.scene.provenance import model_fingerprint, settings_metadata

        entry = self.cache.registry.get(settings.model)
        model_hash = model_fingerprint(Path(entry.path))
        meta = settings_metadata(settings, model_hash, **extra)
        if highlight_gain > 1.0:
            meta["highlight_gain"] = f"{highlight_gain:g}"
        if maps is not None:
            meta["maps"] = "height,normal"
        total = 4 if maps is not None else 2
        ctx.progress("export", 0, total, "writing the image")
        png = ctx.put_bytes(_png(rgb, meta), f"{stem}.png", "image/png")
        exr_path = ctx.scratch / f"{stem}.exr"
        write_exr(exr_path, expand_highlights(srgb_to_linear(rgb), highlight_gain), metadata=meta)
        exr = ctx.put_file(exr_path, f"{stem}.exr", "image/x-exr")
        h, w = rgb.shape[:2]
        out = scene_pb2.GeneratedImage(image=artifact_ref(png), exr=artifact_ref(exr), width=w, height=h,
                                       seed=settings.seed, model=settings.model, model_hash=model_hash,
                                       metadata=meta)
        if maps is not None:
            ctx.progress("export", 2, total, "writing the height and normal maps")
            height, normal = maps
            out.height_map.CopyFrom(artifact_ref(ctx.put_bytes(_png(height, meta, bits=16), f"{stem}_height.png",
                                                               "image/png")))
            out.normal_map.CopyFrom(artifact_ref(ctx.put_bytes(_png(normal, meta), f"{stem}_normal.png",
                                                               "image/png")))
        ctx.progress("export", total, total, "done")
        return out


def _describe(settings: scene_pb2.GenerationSettings, verb: str) -> JobInput:
    prompt = settings.prompt if len(settings.prompt) <= 40 else settings.prompt[:37] + "..."
    return JobInput(name=f"'{prompt}' with model {settings.model}", doing=verb, kind="prompt",
                    smaller="lower the width and height, or generate on a GPU with more memory")


def _settings(s: scene_pb2.GenerationSettings) -> GenerateSettings:
    from inference_server.scene.generate import GenerateSettings

    return GenerateSettings(prompt=s.prompt, negative_prompt=s.negative_prompt, seed=s.seed, steps=s.steps,
                            guidance=s.guidance, width=s.width, height=s.height, scheduler=s.scheduler)


class TextureHandler(_GenerateHandler, JobHandler[scene_pb2.GenerateTextureRequest]):
    request_type = scene_pb2.GenerateTextureRequest

    def describe(self, request: scene_pb2.GenerateTextureRequest, artifacts: ArtifactStore | None) -> JobInput:
        return _describe(request.settings, "generating a texture from")

    def run(self, request: scene_pb2.GenerateTextureRequest, ctx: JobContext) -> scene_pb2.GeneratedImage:
        from inference_server.scene import options
        from inference_server.scene.generate import generate_texture

        req = options.texture_request(request)
        init = None
        if req.init_image_artifact_id:
            from PIL import Image

            with Image.open(ctx.artifacts.path(req.init_image_artifact_id)) as im:
                init = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        ctx.progress("load", 0, 1, self._load_message(req.settings.model))
        pipe = self.cache.img2img(req.settings.model) if init is not None else self.cache.text2img(req.settings.model)
        rgb = generate_texture(pipe, _settings(req.settings), ctx, tile=req.tileable, init_image=init,
                               strength=req.strength)
        strength = f"{req.strength:g}" if init is not None else ""
        maps = None
        if req.maps:
            from inference_server.scene.maps import height_map, normal_map

            ctx.progress("export", 0, 1, "deriving the height and normal maps")
            height = height_map(rgb, periodic=req.tileable)  # a tiling texture gets tiling maps
            maps = (height, normal_map(height, periodic=req.tileable))
        return self._results(rgb, req.settings, ctx, "texture", maps=maps, tileable=req.tileable,
                             init_image=req.init_image_artifact_id, strength=strength)


class WorldHandler(_GenerateHandler, JobHandler[scene_pb2.GenerateWorldRequest]):
    request_type = scene_pb2.GenerateWorldRequest

    def describe(self, request: scene_pb2.GenerateWorldRequest, artifacts: ArtifactStore | None) -> JobInput:
        return _describe(request.settings, "generating a world from")

    def run(self, request: scene_pb2.GenerateWorldRequest, ctx: JobContext) -> scene_pb2.GeneratedImage:
        from inference_server.scene import options
        from inference_server.scene.generate import generate_world

        req = options.world_request(request)
        ctx.progress("load", 0, 1, self._load_message(req.settings.model))
        rgb = generate_world(self.cache.text2img(req.settings.model), _settings(req.settings), ctx)
        return self._results(rgb, req.settings, ctx, "world", highlight_gain=req.highlight_gain,
                             projection="equirectangular")


class ProjectHandler(_GenerateHandler, JobHandler[scene_pb2.ProjectTextureRequest]):
    request_type = scene_pb2.ProjectTextureRequest

    def describe(self, request: scene_pb2.ProjectTextureRequest, artifacts: ArtifactStore | None) -> JobInput:
        return _describe(request.settings, "projecting a texture from")

    def run(self, request: scene_pb2.ProjectTextureRequest, ctx: JobContext) -> scene_pb2.ProjectedTexture:
        from inference_server.scene import options
        from inference_server.scene.project import project, read_view
        from inference_server.scene.provenance import model_fingerprint, settings_metadata

        req = options.project_request(request)
        options.check_project_models(self.cache.registry, req.settings.model, req.controlnet)
        views = [read_view(v, ctx.artifacts.path(v.depth_artifact_id),
                           ctx.artifacts.path(v.mask_artifact_id) if v.mask_artifact_id else None) for v in req.views]
        names = [v.name for v in req.views]
        ctx.progress("load", 0, 1, self._load_message(req.settings.model))
        if req.controlnet:
            pipe = self.cache.controlnet_pipeline(req.settings.model, req.controlnet)
        else:
            pipe = self.cache.img2img(req.settings.model)
        images = project(pipe, views, names, _settings(req.settings), ctx, depth_model=not req.controlnet,
                         control_scale=req.control_scale)

        model_hash = model_fingerprint(Path(self.cache.registry.get(req.settings.model).path))
        controlnet_hash = (model_fingerprint(Path(self.cache.registry.get(req.controlnet).path))
                           if req.controlnet else "")
        models = dict(controlnet=req.controlnet, controlnet_hash=controlnet_hash,
                      control_scale=f"{req.control_scale:g}" if req.controlnet else "")
        result = scene_pb2.ProjectedTexture(
            seed=req.settings.seed, model=req.settings.model, model_hash=model_hash, controlnet=req.controlnet,
            controlnet_hash=controlnet_hash,
            metadata=settings_metadata(req.settings, model_hash, **models, views=len(views)))
        for k, (view, projected) in enumerate(zip(req.views, images, strict=True)):
            ctx.progress("export", k, len(views), f"writing view {view.name}")
            settings = scene_pb2.GenerationSettings()
            settings.CopyFrom(req.settings)
            settings.seed, settings.width, settings.height = projected.seed, view.width, view.height
            # What reproduces this view: the settings, its camera and its depth and mask (as artifacts).
            meta = settings_metadata(settings, model_hash, **models, view=view.name, view_index=k,
                                     camera=" ".join(f"{x:.9g}" for x in (view.focal_x, view.focal_y, view.center_x,
                                                                           view.center_y, *view.camera_to_world)),
                                     depth=view.depth_artifact_id, mask=view.mask_artifact_id)
            stem = file_stem(view.name, "")
            image = ctx.put_bytes(_png(projected.image, meta), f"{stem}.png", "image/png")
            # 255 where the pixel was kept from earlier views, 0 where this view generated it.
            coverage = ctx.put_bytes(_png(projected.covered.astype(np.float32), meta), f"{stem}_coverage.png",
                                     "image/png")
            result.views.add(name=view.name, image=artifact_ref(image), coverage=artifact_ref(coverage),
                             width=view.width, height=view.height, seed=projected.seed)
        ctx.progress("export", len(views), len(views), "done")
        return result
