"""Which diffusion models this server knows, what each one is and what it enables.

Models are local: a diffusers folder (model_index.json, or a single model's config.json), a single
.safetensors file (plus, for from_single_file offline, the diffusers config folder of its kind), or a
transformers folder of a depth estimator (Depth Anything) or of a person segmenter (a semantic-segmentation
model with a person or foreground class), config.json naming its architecture.
They come from the server's TOML ([models.NAME] path = ...) and from `keygrip models add`, which
keeps them in data_dir/models.json; a TOML entry wins over a models.json one of the same name.

Everything here reads files, JSON configs and the JSON header of .safetensors files only: the gRPC
front imports this module, and it must never import torch or load weights. Pickle checkpoints (.ckpt,
.pt, .pth, .bin without a .safetensors beside them) are refused unless the entry sets
allow_pickle = true: unpickling runs code from the file.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference_server.config import MODEL_KEYS, Config, default_data_dir
from inference_server.errors import FailedPrecondition, NotFound

MODELS_FILE = "models.json"                  # `keygrip models add` writes here
CONFIG_MODELS_FILE = "models-config.json"    # the front's copy of the TOML's models, for workers

FAMILIES = ("sd1", "sd2", "sdxl", "sd3", "flux", "controlnet", "depth", "inpaint", "sdxl_inpaint", "depth_estimator",
            "segmenter", "unknown")

# What each family enables. U-Net families tile (circular padding in their convolutions); the DiT
# families (sd3, flux) make worlds but not tiling textures; depth-conditioned ones project.
FAMILY_CAPABILITIES: dict[str, tuple[str, ...]] = {
    "sd1": ("scene.texture", "scene.world"),
    "sd2": ("scene.texture", "scene.world"),
    "sdxl": ("scene.texture", "scene.world"),
    "sd3": ("scene.world",),
    "flux": ("scene.world",),
    "depth": ("scene.project",),         # Stable Diffusion 2 depth (depth2img)
    "controlnet": ("scene.project",),    # a depth ControlNet, used beside an sd1/sd2/sdxl model
    # Depth from an image (Depth Anything V2 through transformers), not a generator: "depth" above is
    # SD 2 depth, which paints from a depth map.
    "depth_estimator": ("compositing.depth",),
    # SD 1.x/2.x and SDXL inpainting (a UNet with 9 input channels: latents, mask, masked image): fills
    # what a clean plate never saw.
    "inpaint": ("compositing.inpaint",),
    "sdxl_inpaint": ("compositing.inpaint",),
    # A person (or foreground) segmenter through transformers, in place of Selfie Segmentation.
    "segmenter": ("compositing.matte",),
    "unknown": (),
}

CONTROLNET_BASES = ("sd1", "sd2", "sdxl")    # families a depth ControlNet goes beside
# What a model that does a capability is, for the message when a named one does not.
CAPABILITY_MODELS = {"scene.texture": "a tileable texture model (SD 1.x/2.x/XL)",
                     "scene.world": "a text-to-image model", "scene.project": "a depth-conditioned model",
                     "compositing.depth": "a depth estimator", "compositing.matte": "a person segmenter",
                     "compositing.inpaint": "an inpainting model"}


def unsuited(name: str, message: str, **metadata: str) -> FailedPrecondition:
    """The one error for a model that exists but cannot do what is asked: reason MODEL_UNSUITED, the
    message ending with where to look for another."""
    return FailedPrecondition(f"{message} (`keygrip models ls`)", reason="MODEL_UNSUITED",
                              metadata={"model": name, **metadata})


PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
ADD_HINT = "keygrip models add PATH --name NAME"
DEPTH_MODEL_HINT = ("fetch Depth Anything V2 Small (Apache-2.0) with `keygrip models pull "
                    "depth-anything/Depth-Anything-V2-Small-hf --dest DIR`, register it with `keygrip models add DIR "
                    "--name depth-anything-v2-small` (or a [models.NAME] table in the server's TOML) and restart the "
                    "server")
# Models whose licence restricts use need allow_restricted_license = true, with what to use instead.
_RESTRICTED_HINT = {"depth_estimator": "use Depth Anything V2 Small (Apache-2.0)",
                    "segmenter": "use a segmenter under a permissive licence, or MediaPipe Selfie Segmentation (no "
                                 "model: leave settings.model empty)",
                    "inpaint": "use an inpainting model under a permissive licence, or classical_fill",
                    "sdxl_inpaint": "use an inpainting model under a permissive licence, or classical_fill"}

# model_index.json _class_name -> family (the pipeline class names diffusers saves).
_PIPELINE_FAMILIES = {
    "StableDiffusionPipeline": "sd1", "StableDiffusionImg2ImgPipeline": "sd1",
    "StableDiffusionInpaintPipeline": "inpaint", "StableDiffusionControlNetPipeline": "sd1",
    "StableDiffusionXLPipeline": "sdxl", "StableDiffusionXLImg2ImgPipeline": "sdxl",
    "StableDiffusionXLInpaintPipeline": "sdxl_inpaint", "StableDiffusionXLControlNetPipeline": "sdxl",
    "StableDiffusionDepth2ImgPipeline": "depth",
    "StableDiffusion3Pipeline": "sd3", "StableDiffusion3Img2ImgPipeline": "sd3",
    "FluxPipeline": "flux", "FluxImg2ImgPipeline": "flux",
}
# A lone model's config.json _class_name -> family.
_MODEL_FAMILIES = {
    "ControlNetModel": "controlnet", "SD3Transformer2DModel": "sd3", "FluxTransformer2DModel": "flux",
}
# Licences that restrict use (non-commercial, copyleft): such a model needs allow_restricted_license.
RESTRICTED_LICENSES = ("cc-by-nc", "nc-", "non-commercial", "noncommercial", "gpl", "agpl", "research")


def card_license(folder: Path) -> str:
    """The licence a Hugging Face model card (README.md) declares in its YAML front matter, or ""."""
    card = folder / "README.md"
    if not card.is_file():
        return ""
    lines = card.read_text(errors="replace").splitlines()
    if not lines or lines[0].strip() != "---":
        return ""
    for line in lines[1:]:
        if line.strip() == "---":
            break
        key, _, value = line.partition(":")
        if key.strip() == "license":
            return value.strip().strip("'\"").lower()
    return ""


def restricted(license: str) -> bool:
    return any(mark in license.lower() for mark in RESTRICTED_LICENSES)


# A transformers model's config.json "architectures" -> family.
_TRANSFORMERS_FAMILIES = {"DepthAnythingForDepthEstimation": "depth_estimator"}
# Labels that name a person (or, for a background remover, the foreground) in a segmenter's id2label.
PERSON_LABELS = ("person", "people", "human", "foreground")


def person_class(config: Mapping[str, Any]) -> int | None:
    """The class index a semantic-segmentation config's id2label gives a person (or the foreground);
    0 for a one-class model (a background remover: its one logit is the foreground); None when none."""
    labels = {int(k): str(v).lower() for k, v in (config.get("id2label") or {}).items()}
    if len(labels) == 1 or config.get("num_labels") == 1:
        return 0
    for wanted in PERSON_LABELS:
        for index, label in sorted(labels.items()):
            if label == wanted:
                return index
    return None


@dataclass(frozen=True)
class ModelEntry:
    """One registered model, as checked from its files (nothing loaded)."""

    name: str            # the user's name for it ("sd15", or the folder/file stem)
    path: Path           # a diffusers folder, or a single .safetensors file
    format: str          # "diffusers" | "single_file" | "transformers"
    family: str          # one of FAMILIES
    size_bytes: int
    available: bool
    reason: str          # why not, with the fix; empty when available
    capabilities: tuple[str, ...]   # e.g. ("scene.texture", "scene.world")
    config_path: Path | None = None  # the config folder from_single_file needs, when given
    allow_pickle: bool = False       # the user allowed a pickle checkpoint explicitly
    compile: bool = False            # torch.compile its denoiser and VAE decoder when loaded
    source: str = ""                 # where it was registered: "config" (the TOML) or "models.json"
    missing: bool = False            # the path does not exist (MISSING rather than an error)
    license: str = ""                # SPDX-like id from the entry or the model card ("apache-2.0"); "" unknown

    @property
    def pickle(self) -> bool:
        """The weights are a pickle checkpoint (loaded only because allow_pickle is set)."""
        return self.allow_pickle and _has_pickle_weights(self.path)


class ModelRegistry:
    """The server's models by name, checked once when built (build a new one to see changes)."""

    def __init__(self, entries: Iterable[ModelEntry]) -> None:
        self._entries = {e.name: e for e in entries}

    def entries(self) -> list[ModelEntry]:
        return sorted(self._entries.values(), key=lambda e: e.name)

    def get(self, name: str) -> ModelEntry:
        """The entry, if it can be loaded; NotFound (unknown name) or FailedPrecondition (with its fix)."""
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self._entries)) or "none yet"
            raise NotFound(f"no model named {name!r} on this server (registered: {known}); add it with "
                           f"`{ADD_HINT}` (or a [models.{name}] table in the server's TOML) and restart the server",
                           reason="MODEL_NOT_FOUND", metadata={"model": name})
        if not entry.available:
            raise FailedPrecondition(f"model {name!r} cannot be loaded: {entry.reason}",
                                     reason="MODEL_UNAVAILABLE", metadata={"model": name})
        return entry

    def suited(self, name: str, capability: str) -> ModelEntry:
        """The named model, if it can be loaded and does the capability ("compositing.matte", ...);
        FailedPrecondition (MODEL_UNSUITED) naming what to pick otherwise."""
        entry = self.get(name)
        if capability not in entry.capabilities:
            does = ", ".join(entry.capabilities) or "nothing Keygrip uses"
            raise unsuited(name, f"model {name!r} ({entry.family}) is not {CAPABILITY_MODELS.get(capability, 'suited')}"
                                 f": it cannot do {capability} (it does {does}); pick one that does")
        return entry

    def controlnet(self, name: str) -> ModelEntry:
        """The named model, if it is a ControlNet; FailedPrecondition (MODEL_UNSUITED) otherwise."""
        entry = self.get(name)
        if entry.family != "controlnet":
            raise unsuited(name, f"model {name!r} is not a ControlNet (it is {entry.family}): give a depth ControlNet "
                                 "as the controlnet")
        return entry

    def controlnet_base(self, name: str) -> ModelEntry:
        """The named model, if a ControlNet can go beside it; FailedPrecondition (MODEL_UNSUITED) otherwise."""
        entry = self.get(name)
        if entry.family not in CONTROLNET_BASES:
            raise unsuited(name, f"model {name!r} ({entry.family}) takes no ControlNet: pick an SD 1.x/2.x/XL model")
        return entry

    def available(self, capability: str) -> list[ModelEntry]:
        """The loadable models that do a capability, by name."""
        return [e for e in self.entries() if capability in e.capabilities]

    def depth_estimator(self, name: str = "") -> ModelEntry:
        """The depth estimator to use: the named one, or the only one registered; FailedPrecondition
        naming how to add one when there is none (or which to pick when there are several)."""
        if name:
            return self.suited(name, "compositing.depth")
        found = self.available("compositing.depth")
        if not found:
            raise FailedPrecondition(f"no depth model is registered on this server: {DEPTH_MODEL_HINT}",
                                     reason="NO_DEPTH_MODEL")
        if len(found) > 1:
            raise FailedPrecondition(f"several depth models are registered ({', '.join(e.name for e in found)}); "
                                     "name one in settings.model", reason="MODEL_AMBIGUOUS")
        return found[0]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)


# ---- where entries come from ----

def load_registry(config: Config) -> ModelRegistry:
    """The config's [models.NAME] tables plus the models added with `keygrip models add`
    (data_dir/models.json); a TOML entry wins over a models.json one of the same name."""
    broken: list[ModelEntry] = []
    try:
        added = read_models_file(config.data_dir)
    except FailedPrecondition as exc:  # the server still starts, and says what is wrong
        added = {}
        broken.append(ModelEntry(name=MODELS_FILE, path=config.data_dir / MODELS_FILE, format="unknown",
                                 family="unknown", size_bytes=0, available=False, reason=exc.message,
                                 capabilities=(), source="models.json"))
    tables = {name: ("models.json", table) for name, table in added.items()}
    tables.update({name: ("config", table) for name, table in config.models.items()})
    return ModelRegistry([*broken, *(inspect_entry(name, table, source=src) for name, (src, table) in tables.items())])


def publish_config_models(config: Config) -> None:
    """At server start: write the TOML's models (paths resolved) to data_dir/models-config.json for the
    workers, which know only the data_dir."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    _write_json(config.data_dir / CONFIG_MODELS_FILE, {"models": config.models})


_worker_data_dir: Path | None = None
_WORKER_ENV = "KEYGRIP_WORKER_DATA_DIR"


def set_worker_data_dir(data_dir: Path) -> None:
    """Called by a worker process at start (jobs/workers.py); inherited by the processes it starts."""
    global _worker_data_dir
    _worker_data_dir = Path(data_dir)
    os.environ[_WORKER_ENV] = str(data_dir)


def worker_registry(data_dir: Path | None = None) -> ModelRegistry:
    """The registry inside a worker: data_dir/models-config.json (the TOML's models, written by the front
    at start) plus data_dir/models.json. data_dir defaults to the worker's own."""
    if data_dir is None:
        data_dir = _worker_data_dir or Path(os.environ.get(_WORKER_ENV) or default_data_dir())
    config_models: dict[str, Any] = {}
    published = data_dir / CONFIG_MODELS_FILE
    if published.is_file():
        config_models = dict(json.loads(published.read_text()).get("models", {}))
    return load_registry(Config(data_dir=data_dir, models=config_models, workers=1))


def read_models_file(data_dir: Path) -> dict[str, dict[str, Any]]:
    """The models `keygrip models add` registered: {name: {"path": ..., ...}}; {} when none."""
    path = Path(data_dir) / MODELS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise FailedPrecondition(f"cannot read {path}: {exc}; fix or delete the file and add the models again "
                                 f"with `{ADD_HINT}`") from None
    models = data.get("models", {}) if isinstance(data, dict) else {}
    return {str(k): dict(v) for k, v in models.items() if isinstance(v, dict)}


def add_model(data_dir: Path, path: Path, *, name: str = "", config_path: Path | None = None,
              allow_pickle: bool = False, family: str = "", compile: bool = False,
              allow_restricted_license: bool = False) -> ModelEntry:
    """Check a model and register it in data_dir/models.json (`keygrip models add`). Refuses (ValueError,
    with the fix) a path that does not exist or a model that could not be loaded; a name already in
    models.json is replaced. allow_restricted_license: the user accepts a model whose licence restricts
    use (non-commercial, GPL)."""
    path = Path(path).expanduser().resolve()
    name = name or default_name(path)
    table: dict[str, Any] = {"path": str(path)}
    if config_path is not None:
        table["config"] = str(Path(config_path).expanduser().resolve())
    if allow_pickle:
        table["allow_pickle"] = True
    if compile:
        table["compile"] = True
    if family:
        table["family"] = family
    if allow_restricted_license:
        table["allow_restricted_license"] = True
    entry = inspect_entry(name, table, source="models.json")
    if not entry.available:
        raise ValueError(f"not added: {entry.reason}")
    models = read_models_file(data_dir)
    models[name] = table
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    _write_json(Path(data_dir) / MODELS_FILE, {"models": models})
    return entry


def default_name(path: Path) -> str:
    return path.stem if path.is_file() or path.suffix in (".safetensors", *PICKLE_SUFFIXES) else path.name


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)  # readers never see half a file


# ---- inspecting one model ----

def inspect_entry(name: str, table: Mapping[str, Any], *, source: str = "") -> ModelEntry:
    """A ModelEntry from one [models.NAME] table, checked from its files."""
    path = Path(str(table.get("path", ""))).expanduser()
    config_path = Path(str(table["config"])).expanduser() if table.get("config") else None
    allow_pickle = table.get("allow_pickle") is True
    forced_family = str(table.get("family", ""))
    unknown = set(table) - MODEL_KEYS

    def entry(fmt: str, family: str, reason: str = "", *, size: int = 0, missing: bool = False) -> ModelEntry:
        family = forced_family or family
        caps = FAMILY_CAPABILITIES.get(family, ())
        if family == "controlnet" and "depth" not in f"{name} {path}".lower() and not forced_family:
            caps = ()  # only a depth ControlNet conditions on the host's depth render
        if not reason and family not in FAMILY_CAPABILITIES:
            reason = f"unknown family {family!r} (known: {', '.join(FAMILIES)})"
        if not reason and family == "unknown":
            reason = ("not a model family Keygrip knows (SD 1.x/2.x, SDXL, SD3, Flux, ControlNet, SD 2 depth, "
                      "SD/SDXL inpainting, Depth Anything, semantic-segmentation person segmenters); "
                      f"if it is one, set family = \"sd1\" (or another) in [models.{name}] of the server's TOML")
        license = str(table.get("license") or (card_license(path) if path.is_dir() else "")).lower()
        if not reason and family in _RESTRICTED_HINT and restricted(license) \
                and table.get("allow_restricted_license") is not True:
            reason = (f"its licence is {license}, which restricts use (non-commercial or copyleft): "
                      f"{_RESTRICTED_HINT[family]}, or set allow_restricted_license = true in "
                      f"[models.{name}] of the server's TOML (or add it again with `keygrip models add PATH "
                      "--allow-restricted-license`) if your use is allowed")
        return ModelEntry(name=name, path=path, format=fmt, family=family, size_bytes=size,
                          available=not reason, reason=reason, capabilities=caps if not reason else (),
                          config_path=config_path, allow_pickle=allow_pickle, source=source, missing=missing,
                          compile=table.get("compile") is True, license=license)

    if unknown:
        return entry("unknown", "unknown", f"unknown settings {', '.join(sorted(unknown))} for this model "
                                           f"(known: {', '.join(sorted(MODEL_KEYS))})")
    if not str(table.get("path", "")):
        return entry("unknown", "unknown", "no path: give the model's folder or .safetensors file")
    if not path.exists():
        return entry("unknown", "unknown", f"{path} does not exist: fix the path, or fetch the model with "
                                           "`keygrip models pull REPO_ID --dest DIR` and add it with "
                                           f"`{ADD_HINT}`", missing=True)
    try:
        if path.is_dir():
            return _inspect_folder(path, allow_pickle, entry)
        return _inspect_file(path, name, config_path, allow_pickle, entry)
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        return entry("unknown", "unknown", f"cannot read {path}: {exc}; check that it is a diffusers folder or "
                                           "a complete .safetensors file")


_MakeEntry = Callable[..., ModelEntry]


def _pickle_reason(path: Path) -> str:
    return (f"{path.name} is a pickle checkpoint, which can run code when loaded: convert it to .safetensors, "
            "or set allow_pickle = true for this model (or `keygrip models add PATH --unsafe-pickle`) if you "
            "trust its source")


def _has_pickle_weights(path: Path) -> bool:
    """A single pickle file, or a diffusers folder whose weights are pickles only."""
    if path.is_file():
        return path.suffix.lower() in PICKLE_SUFFIXES
    if not path.is_dir():
        return False
    files = [p for p in path.rglob("*") if p.is_file()]
    pickles = [p for p in files if p.suffix.lower() in PICKLE_SUFFIXES and "tokenizer" not in p.parent.name]
    safes = [p for p in files if p.suffix == ".safetensors"]
    return bool(pickles) and not safes


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def _read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else {}


def _inspect_folder(path: Path, allow_pickle: bool, entry: _MakeEntry) -> ModelEntry:
    size = _folder_size(path)
    if _has_pickle_weights(path) and not allow_pickle:
        return entry("diffusers", "unknown", _pickle_reason(path), size=size)
    index = path / "model_index.json"
    if index.is_file():
        family = folder_family(path)
        return entry("diffusers", family, size=size)
    config = path / "config.json"
    if config.is_file():
        data = _read_json(config)
        for arch in data.get("architectures") or ():
            if arch in _TRANSFORMERS_FAMILIES:
                return entry("transformers", _TRANSFORMERS_FAMILIES[arch], size=size)
            if str(arch).endswith("ForSemanticSegmentation"):
                if person_class(data) is None:
                    labels = ", ".join(str(v) for v in (data.get("id2label") or {}).values())
                    return entry("transformers", "segmenter",
                                 f"{arch} has no person class (its labels: {labels or 'none'}); a matte needs a "
                                 f"label named {' or '.join(PERSON_LABELS)} in config.json's id2label", size=size)
                return entry("transformers", "segmenter", size=size)
        return entry("diffusers", _MODEL_FAMILIES.get(str(data.get("_class_name", "")), "unknown"), size=size)
    return entry("diffusers", "unknown",
                 f"{path} is not a diffusers folder (no model_index.json or config.json): point at the folder "
                 "save_pretrained wrote, or at a single .safetensors file")


def folder_family(path: Path) -> str:
    """The family of a diffusers pipeline folder, from model_index.json and its denoiser's config."""
    cls = str(_read_json(path / "model_index.json").get("_class_name", ""))
    unet = _read_json(path / "unet" / "config.json") if (path / "unet" / "config.json").is_file() else {}
    transformer = (_read_json(path / "transformer" / "config.json")
                   if (path / "transformer" / "config.json").is_file() else {})
    family = _PIPELINE_FAMILIES.get(cls, "")
    if transformer:
        return _MODEL_FAMILIES.get(str(transformer.get("_class_name", "")), family or "unknown")
    if unet:
        if unet.get("in_channels") == 9:
            return "sdxl_inpaint" if unet.get("addition_embed_type") == "text_time" else "inpaint"
        if unet.get("addition_embed_type") == "text_time":
            return "sdxl"
        if unet.get("in_channels") == 5 or family == "depth":
            return "depth"
        if family in ("", "sd1", "sd2"):
            # SD 2.x: OpenCLIP's 1024-wide context and linear projections in its transformers.
            sd2 = unet.get("cross_attention_dim") == 1024 or unet.get("use_linear_projection") is True
            return "sd2" if sd2 else "sd1"
    return family or "unknown"


def _inspect_file(path: Path, name: str, config_path: Path | None, allow_pickle: bool, entry: _MakeEntry) -> ModelEntry:
    size = path.stat().st_size
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            return entry("single_file", "unknown", _pickle_reason(path), size=size)
        # Its family cannot be read without unpickling it (torch): the entry must say it.
        return entry("single_file", "unknown", size=size)
    if suffix != ".safetensors":
        return entry("single_file", "unknown",
                     f"{path.name}: a model is a diffusers folder or a .safetensors file")
    family = file_family(safetensors_header(path))
    reason = ""
    if config_path is None:
        reason = (f"a single .safetensors file needs the diffusers config folder of its kind to load offline "
                  f"(model_index.json, scheduler/, tokenizer/, the component configs): set config = \"DIR\" in "
                  f"[models.{name}], or `keygrip models add {path.name} --config DIR`")
    elif not (config_path / "model_index.json").is_file() and not (config_path / "config.json").is_file():
        reason = (f"the config folder {config_path} has no model_index.json: point config at a diffusers folder "
                  "of the same kind (the weights in it are not needed)")
    return entry("single_file", family, reason, size=size)


def safetensors_header(path: Path) -> dict[str, Any]:
    """A .safetensors file's JSON header (tensor name -> dtype, shape, offsets), without reading any weights."""
    with open(path, "rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        if length <= 0 or length > 100 * 2**20:
            raise ValueError(f"not a safetensors file (header length {length})")
        header = json.loads(fh.read(length))
    if not isinstance(header, dict):
        raise ValueError("not a safetensors file (its header is not a table)")
    header.pop("__metadata__", None)
    return header


def file_family(header: Mapping[str, Any]) -> str:
    """The family of a single-file checkpoint from its tensor names and shapes (original layouts)."""
    keys = set(header)

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    def shape(key: str) -> list[int]:
        info = header.get(key)
        return list(info.get("shape", [])) if isinstance(info, dict) else []

    if has("double_blocks.") or has("model.diffusion_model.double_blocks."):
        return "flux"
    if has("model.diffusion_model.joint_blocks.") or has("joint_blocks."):
        return "sd3"
    if has("control_model.") or has("input_hint_block.") or has("controlnet_cond_embedding."):
        return "controlnet"
    conv_in = shape("model.diffusion_model.input_blocks.0.0.weight")
    if has("conditioner.embedders.") or has("model.diffusion_model.label_emb."):
        return "sdxl_inpaint" if len(conv_in) == 4 and conv_in[1] == 9 else "sdxl"
    if conv_in:
        if len(conv_in) == 4 and conv_in[1] == 5:
            return "depth"
        if len(conv_in) == 4 and conv_in[1] == 9:
            return "inpaint"
        if has("cond_stage_model.model.") or has("depth_model."):
            return "sd2"  # OpenCLIP text encoder
        context = [shape(k)[1] for k in keys if k.startswith("model.diffusion_model.")
                   and k.endswith("attn2.to_k.weight") and len(shape(k)) == 2]
        if context and context[0] == 1024:
            return "sd2"
        return "sd1"
    return "unknown"


# ---- GetServerInfo ----

def model_specs(registry: ModelRegistry) -> list[Any]:
    """The registry as GetServerInfo's models (capability.ModelSpec): kind "diffusers", AVAILABLE, MISSING
    (the path is gone) or ERROR (cannot be used, with the fix)."""
    from inference_server.capability import ModelSpec
    from keygrip.v1 import server_pb2

    specs = []
    for e in registry.entries():
        if e.available:
            state = server_pb2.MODEL_STATE_AVAILABLE
        elif e.missing:
            state = server_pb2.MODEL_STATE_MISSING
        else:
            state = server_pb2.MODEL_STATE_ERROR
        specs.append(ModelSpec(name=e.name, kind="transformers" if e.format == "transformers" else "diffusers",
                               state=state, reason=e.reason, source=str(e.path),
                               family=e.family, size_bytes=e.size_bytes, capabilities=tuple(e.capabilities)))
    return specs
