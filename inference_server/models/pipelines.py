"""Devices and loaded pipelines, inside a worker process (imports torch and diffusers).

PipelineCache loads a model's pipelines from local files only (from_pretrained / from_single_file with
local_files_only=True; huggingface_hub is also put offline before diffusers is imported, so nothing is
downloaded at run time), keeps them resident under a memory budget (least recently used model unloaded
first) and shares one model's components between its pipelines (text-to-image and image-to-image are
the same weights: from_pipe). A ControlNet is a model of its own in the cache (loaded once, counted in
the budget); its pipeline is built around the base model's components (from_pipe, no copies).
"""

from __future__ import annotations

import gc
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# Before diffusers / transformers import huggingface_hub: a worker never reaches the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from inference_server.errors import FailedPrecondition, InvalidInput, ResourceExhausted  # noqa: E402
from inference_server.models.registry import CONTROLNET_BASES, ModelEntry, ModelRegistry, unsuited  # noqa: E402

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

log = logging.getLogger("keygrip.models")


@dataclass(frozen=True)
class Device:
    kind: str                 # "cuda" | "mps" | "cpu"
    dtype: torch.dtype        # fp16/bf16 on CUDA, fp16 on MPS, fp32 on CPU
    index: int = 0            # which CUDA device

    @property
    def torch_device(self) -> torch.device:
        return torch.device(f"cuda:{self.index}" if self.kind == "cuda" else self.kind)


def default_budget(device: Device) -> int:
    """Bytes of models a worker keeps resident: 80% of the GPU's memory, or half of the machine's RAM
    on the CPU (and on MPS, whose memory is the machine's)."""
    if device.kind == "cuda":
        return int(0.8 * torch.cuda.get_device_properties(device.index).total_memory)
    import psutil

    return int(0.5 * psutil.virtual_memory().total)


_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_device(preference: str = "auto") -> Device:
    """"auto" (CUDA, then MPS, then CPU), or "cuda", "cuda:1", "mps", "cpu", optionally with a dtype:
    "cuda:0:bf16", "cpu:fp32". InvalidInput for a device this machine does not have."""
    parts = preference.lower().split(":") if preference else ["auto"]
    dtype_name = parts.pop() if parts[-1] in _DTYPES else ""
    kind = parts[0] if parts else "auto"
    index = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if kind == "auto":
        if torch.cuda.is_available():
            kind = "cuda"
        elif torch.backends.mps.is_available():
            kind = "mps"
        else:
            kind = "cpu"
    if kind == "cuda" and not (torch.cuda.is_available() and index < torch.cuda.device_count()):
        raise InvalidInput(f"no CUDA device {index} here (this torch: {torch.__version__}); use device \"cpu\" "
                           "or install a CUDA build of torch")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise InvalidInput("no MPS device here; use device \"cpu\"")
    if kind not in ("cuda", "mps", "cpu"):
        raise InvalidInput(f"unknown device {preference!r}: use auto, cuda, cuda:N, mps or cpu")
    if dtype_name:
        dtype = _DTYPES[dtype_name]
    elif kind == "cuda":
        dtype = torch.float16  # what SD checkpoints are trained and published in; bf16 on request
    elif kind == "mps":
        dtype = torch.float16
    else:
        dtype = torch.float32  # half precision on the CPU is slow and incomplete
    return Device(kind=kind, dtype=dtype, index=index)


# Pipeline classes by family: (text-to-image, image-to-image); None where the family has none.
_PIPELINES: dict[str, tuple[str | None, str | None]] = {
    "sd1": ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline"),
    "sd2": ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline"),
    "sdxl": ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline"),
    "sd3": ("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline"),
    "flux": ("FluxPipeline", "FluxImg2ImgPipeline"),
    "depth": (None, "StableDiffusionDepth2ImgPipeline"),
    "inpaint": (None, "StableDiffusionInpaintPipeline"),
    "sdxl_inpaint": (None, "StableDiffusionXLInpaintPipeline"),
}

# Components left out when loading a family. Keygrip gives a depth model the host's rendered depth,
# so the SD 2 depth folder's own depth estimator (DPT, about 0.5 GB) is never loaded.
_SKIPPED: dict[str, dict[str, None]] = {"depth": {"depth_estimator": None, "feature_extractor": None}}

# The ControlNet pipeline of each base family that takes one.
_CONTROLNET_PIPELINES = {"sd1": "StableDiffusionControlNetPipeline", "sd2": "StableDiffusionControlNetPipeline",
                         "sdxl": "StableDiffusionXLControlNetPipeline"}
assert set(_CONTROLNET_PIPELINES) == set(CONTROLNET_BASES)


def compile_pipeline(pipe: Any) -> None:
    """torch.compile, in place, what runs at every step (the UNet or the transformer) and the VAE's
    decoder. In place (Module.compile), so the modules keep their class and attributes: from_pipe
    shares them, and tiling's padding switch still reaches the convolutions (a switch recompiles once).
    The compiling happens on the first call, so the first job pays for it."""
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if isinstance(denoiser, torch.nn.Module):
        denoiser.compile()
    decoder = getattr(getattr(pipe, "vae", None), "decoder", None)
    if isinstance(decoder, torch.nn.Module):
        decoder.compile()


def pipeline_bytes(pipe: Any) -> int:
    """Memory a pipeline's weights take: its components' parameters and buffers, each tensor once."""
    return modules_bytes(getattr(pipe, "components", {}).values())


def modules_bytes(modules: Any) -> int:
    """Memory the torch modules among `modules` take: parameters and buffers, each tensor once."""
    seen: set[int] = set()
    total = 0
    for component in modules:
        if not isinstance(component, torch.nn.Module):
            continue
        for tensor in (*component.parameters(), *component.buffers()):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


@dataclass
class _Loaded:
    entry: ModelEntry
    # "base", "text2img", "img2img", "controlnet:NAME" -> pipeline; a model that is one module (a ControlNet,
    # a transformers model): "module" -> it
    pipes: dict[str, Any] = field(default_factory=dict)
    size_bytes: int = 0


class PipelineCache:
    """Loaded pipelines, resident in one worker under a memory budget, least recently used unloaded first;
    pipelines of one model share components (from_pipe)."""

    def __init__(self, registry: ModelRegistry, device: Device, budget_bytes: int | None = None) -> None:
        self.registry = registry
        self.device = device
        self.budget_bytes = budget_bytes  # None: no limit (one model at a time is still freed on demand)
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()  # least recently used first
        self.loads = 0  # models read from disk by this cache: what a job that found its model loaded did not add

    # ---- what handlers call ----

    def text2img(self, name: str) -> DiffusionPipeline:
        """The model's text-to-image pipeline (StableDiffusionPipeline, StableDiffusionXLPipeline, ...)."""
        return self._pipeline(name, 0)

    def img2img(self, name: str) -> DiffusionPipeline:
        """The model's image-to-image pipeline, sharing the text-to-image one's components."""
        return self._pipeline(name, 1)

    def controlnet_pipeline(self, name: str, controlnet: str) -> DiffusionPipeline:
        """The model's ControlNet pipeline (StableDiffusionControlNetPipeline or its SDXL sibling) with the
        named ControlNet, sharing the model's components. FailedPrecondition when the two do not go
        together (a ControlNet trained for another family, or a model that takes none)."""
        entry = self.registry.controlnet_base(name)
        cls_name = _CONTROLNET_PIPELINES[entry.family]
        base = self._pipeline(name, 0)
        net = self._controlnet(controlnet, keep=(name,))
        context = getattr(net.config, "cross_attention_dim", None)
        if context != base.unet.config.cross_attention_dim:
            raise unsuited(name, f"ControlNet {controlnet!r} was made for another kind of model than {name!r} "
                                 f"({entry.family}): its text context is {context} wide, the model's "
                                 f"{base.unet.config.cross_attention_dim}; pick a depth ControlNet of the model's "
                                 "family", controlnet=controlnet)
        model = self._loaded[name]
        key = f"controlnet:{controlnet}"
        pipe = model.pipes.get(key)
        if pipe is None:
            import diffusers

            pipe = getattr(diffusers, cls_name).from_pipe(base, controlnet=net)  # the same modules: no copy
            pipe.set_progress_bar_config(disable=True)
            model.pipes[key] = pipe
        return pipe

    def depth_estimator(self, name: str) -> Any:
        """The named depth estimator (a transformers AutoModelForDepthEstimation, Depth Anything) in eval
        mode on the cache's device, loaded from local files only and resident like a pipeline."""
        return self._transformers(self.registry.depth_estimator(name), "AutoModelForDepthEstimation")

    def segmenter(self, name: str) -> Any:
        """The named person segmenter (a transformers AutoModelForSemanticSegmentation) in eval mode on the
        cache's device, loaded from local files only; FailedPrecondition for a model of another family."""
        entry = self.registry.suited(name, "compositing.matte")
        return self._transformers(entry, "AutoModelForSemanticSegmentation")

    def inpaint(self, name: str) -> DiffusionPipeline:
        """The named inpainting model's pipeline (StableDiffusionInpaintPipeline or its SDXL sibling);
        FailedPrecondition for a model that does not inpaint."""
        self.registry.suited(name, "compositing.inpaint")
        return self._pipeline(name, 1)

    def _transformers(self, entry: ModelEntry, auto_class: str) -> Any:
        """A transformers model (an Auto class by name) in eval mode on the cache's device, resident like a
        pipeline; its weights are counted in the budget."""
        def load() -> Any:
            import transformers

            return getattr(transformers, auto_class).from_pretrained(str(entry.path), local_files_only=True,
                                                                     dtype=self.device.dtype,
                                                                     use_safetensors=not entry.pickle).eval()

        return self._resident_module(entry, load)

    def loaded(self) -> list[str]:
        """Names of the resident models, least recently used first."""
        return list(self._loaded)

    def resident_bytes(self) -> int:
        return sum(m.size_bytes for m in self._loaded.values())

    def unload(self, name: str) -> None:
        model = self._loaded.pop(name, None)
        if model is None:
            return
        model.pipes.clear()
        for other in self._loaded.values():  # pipelines built around this ControlNet go with it
            other.pipes.pop(f"controlnet:{name}", None)
        del model
        self._free()
        log.info("model unloaded", extra={"model": name})

    def unload_all(self) -> None:
        for name in list(self._loaded):
            self.unload(name)

    # ---- loading ----

    def _pipeline(self, name: str, which: int) -> DiffusionPipeline:
        entry = self.registry.get(name)
        classes = _PIPELINES.get(entry.family)
        kind = ("text2img", "img2img")[which]
        if classes is None or classes[which] is None:
            what = "a ControlNet goes beside a base model" if entry.family == "controlnet" else \
                f"a {entry.family} model has no {kind} pipeline"
            raise unsuited(name, f"model {name!r} cannot make this: {what}; pick an SD 1.x/2.x, SDXL, SD3 or Flux "
                                 "model")
        model = self._loaded.get(name)
        if model is None:
            model = self._load(entry)
        self._loaded.move_to_end(name)
        pipe = model.pipes.get(kind)
        if pipe is None:
            import diffusers

            cls = getattr(diffusers, str(classes[which]))
            pipe = cls.from_pipe(model.pipes["base"])  # the same modules: no copy, no extra memory
            pipe.set_progress_bar_config(disable=True)
            model.pipes[kind] = pipe
        return pipe

    def _controlnet(self, name: str, keep: tuple[str, ...]) -> Any:
        """A ControlNetModel from a diffusers folder or a single .safetensors file (with its config
        folder), local files only, resident like a pipeline (the models in `keep` stay loaded)."""
        entry = self.registry.controlnet(name)

        def load() -> Any:
            from diffusers import ControlNetModel

            if entry.format == "single_file":
                return ControlNetModel.from_single_file(str(entry.path), config=str(entry.config_path),
                                                        local_files_only=True, torch_dtype=self.device.dtype)
            return ControlNetModel.from_pretrained(str(entry.path), local_files_only=True,
                                                   torch_dtype=self.device.dtype, use_safetensors=not entry.pickle)

        return self._resident_module(entry, load, keep)

    def _resident_module(self, entry: ModelEntry, load: Callable[[], Any], keep: tuple[str, ...] = ()) -> Any:
        """One torch module as a model of its own in the cache: loaded by `load` onto the cache's device
        the first time (room made first, the models in `keep` staying), its weights counted in the budget."""
        model = self._loaded.get(entry.name)
        if model is None:
            self._make_room(entry.size_bytes, keep=keep)
            with self._loading(entry):
                net = load()
                net.to(self.device.torch_device)
            model = _Loaded(entry, {"module": net}, modules_bytes([net]))
            self._loaded[entry.name] = model
            self._make_room(0, keep=(*keep, entry.name))
            log.info("model loaded", extra={"model": entry.name, "bytes": model.size_bytes})
        self._loaded.move_to_end(entry.name)
        return model.pipes["module"]

    @contextmanager
    def _loading(self, entry: ModelEntry) -> Iterator[None]:
        """Loading errors as statuses: out of GPU memory, or files that do not load (with the fix)."""
        try:
            yield
            self.loads += 1
        except torch.cuda.OutOfMemoryError:
            self._free()
            raise ResourceExhausted(f"model {entry.name!r} does not fit in the GPU's memory: close other GPU "
                                    "programs, or lower the server's model budget so fewer models stay loaded",
                                    reason="OUT_OF_MEMORY", metadata={"model": entry.name}) from None
        except (OSError, ValueError) as exc:
            raise FailedPrecondition(f"model {entry.name!r} at {entry.path} could not be loaded: "
                                     f"{' '.join(str(exc).split())[:400]}; check the files (a complete diffusers "
                                     "folder, or a .safetensors file with its config folder)",
                                     reason="MODEL_LOAD_FAILED", metadata={"model": entry.name}) from None

    def _load(self, entry: ModelEntry) -> _Loaded:
        import diffusers

        text_cls, image_cls = _PIPELINES[entry.family]
        cls = getattr(diffusers, str(text_cls or image_cls))
        self._make_room(entry.size_bytes)
        log.info("loading model", extra={"model": entry.name, "family": entry.family, "format": entry.format,
                                         "device": self.device.kind})
        skipped = _SKIPPED.get(entry.family, {})
        with self._loading(entry):
            if entry.format == "single_file":
                pipe = cls.from_single_file(str(entry.path), config=str(entry.config_path), local_files_only=True,
                                            torch_dtype=self.device.dtype, **skipped)
            else:
                pipe = cls.from_pretrained(str(entry.path), local_files_only=True, torch_dtype=self.device.dtype,
                                           use_safetensors=not entry.pickle, **skipped)
            pipe.to(self.device.torch_device)
            if entry.compile:
                compile_pipeline(pipe)
        pipe.set_progress_bar_config(disable=True)
        model = _Loaded(entry, {"base": pipe}, pipeline_bytes(pipe))
        if text_cls is not None:
            model.pipes["text2img"] = pipe
        else:
            model.pipes["img2img"] = pipe
        self._loaded[entry.name] = model
        self._make_room(0, keep=(entry.name,))
        log.info("model loaded", extra={"model": entry.name, "bytes": model.size_bytes})
        return model

    def _make_room(self, incoming: int, keep: tuple[str, ...] = ()) -> None:
        """Unload least recently used models, except those in `keep` (a job's model and its ControlNet),
        until what stays (plus `incoming`) fits the budget."""
        if self.budget_bytes is None:
            return
        for name in list(self._loaded):
            if self.resident_bytes() + incoming <= self.budget_bytes:
                return
            if name not in keep:
                self.unload(name)

    def _free(self) -> None:
        gc.collect()
        if self.device.kind == "cuda":
            torch.cuda.empty_cache()
        elif self.device.kind == "mps":
            torch.mps.empty_cache()


# One cache per worker process, shared by every handler that loads models (scene generation, depth):
# a model is loaded once, and the budget counts everything resident.
_CACHE: PipelineCache | None = None


def worker_cache() -> PipelineCache:
    """The worker's PipelineCache on its default device and budget, made on first use."""
    global _CACHE
    if _CACHE is None:
        from inference_server.models.registry import worker_registry

        device = pick_device()
        _CACHE = PipelineCache(worker_registry(), device, budget_bytes=default_budget(device))
    return _CACHE


def release_worker_cache() -> None:
    """Unload everything the worker's cache holds (a handler's close())."""
    global _CACHE
    if _CACHE is not None:
        _CACHE.unload_all()
        _CACHE = None
