"""The model manager: registry from TOML and models.json, family detection, pickle refusal, PipelineCache
loading real tiny pipelines (diffusers folder and single file), LRU under a budget, shared components, and
the server and CLI listing models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusion_models import (
    save_diffusers,
    save_pickle_checkpoint,
    save_single_file,
    tiny_controlnet,
    tiny_depth2img_pipeline,
    tiny_sd_pipeline,
    write_header_only,
)

from inference_server.config import Config, load_config
from inference_server.errors import FailedPrecondition, NotFound
from inference_server.models import load_registry, worker_registry
from inference_server.models.pipelines import PipelineCache, pick_device, pipeline_bytes
from inference_server.models.registry import (
    ModelRegistry,
    add_model,
    file_family,
    inspect_entry,
    publish_config_models,
    read_models_file,
    safetensors_header,
)
from keygrip.v1 import server_pb2

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny models on disk, built once for the module."""
    root = tmp_path_factory.mktemp("models")
    pipe = tiny_sd_pipeline(root)
    out = {"sd": save_diffusers(pipe, root / "tiny-sd")}
    out["single"], out["single_config"] = save_single_file(pipe, root / "tiny-single.safetensors",
                                                          root / "tiny-single-config")
    out["sd2"] = save_diffusers(tiny_sd_pipeline(root / "sd2src", sd2=True), root / "tiny-sd2")
    out["controlnet"] = tiny_controlnet(pipe, root / "depth-controlnet")
    out["depth"] = save_diffusers(tiny_depth2img_pipeline(pipe), root / "tiny-depth")
    out["ckpt"] = save_pickle_checkpoint(pipe, root / "old.ckpt")
    for family in ("sdxl", "sd3", "flux", "depth", "inpaint", "unknown"):
        out[f"hdr_{family}"] = write_header_only(root / f"hdr-{family}.safetensors", family)
    return out


def _write_toml(path: Path, models: dict[str, dict[str, object]]) -> Path:
    lines = []
    for name, table in models.items():
        lines.append(f"[models.{name}]")
        for key, value in table.items():
            lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- registry ----

def test_families_from_folders_and_headers(models: dict[str, Path]) -> None:
    assert inspect_entry("sd", {"path": str(models["sd"])}).family == "sd1"
    assert inspect_entry("sd2", {"path": str(models["sd2"])}).family == "sd2"
    cn = inspect_entry("cn", {"path": str(models["controlnet"])})
    assert (cn.family, cn.capabilities) == ("controlnet", ("scene.project",))
    single = inspect_entry("s", {"path": str(models["single"]), "config": str(models["single_config"])})
    assert (single.format, single.family, single.available) == ("single_file", "sd1", True)
    assert single.capabilities == ("scene.texture", "scene.world")
    for family in ("sdxl", "sd3", "flux", "depth", "inpaint"):
        assert file_family(safetensors_header(models[f"hdr_{family}"])) == family
    assert file_family(safetensors_header(models["hdr_unknown"])) == "unknown"
    # A DiT family makes worlds but not tiling textures.
    flux = inspect_entry("f", {"path": str(models["hdr_flux"]), "config": str(models["single_config"])})
    assert flux.capabilities == ("scene.world",)
    sd = inspect_entry("sd", {"path": str(models["sd"])})
    assert sd.available and sd.format == "diffusers" and sd.size_bytes > 0 and not sd.reason


def test_single_file_needs_its_config_folder(models: dict[str, Path]) -> None:
    e = inspect_entry("s", {"path": str(models["single"])})
    assert not e.available and "config" in e.reason and "keygrip models add" in e.reason


def test_pickle_refused_unless_allowed(models: dict[str, Path]) -> None:
    refused = inspect_entry("old", {"path": str(models["ckpt"])})
    assert not refused.available and "pickle" in refused.reason and "allow_pickle" in refused.reason
    allowed = inspect_entry("old", {"path": str(models["ckpt"]), "allow_pickle": True, "family": "sd1"})
    assert allowed.available and allowed.pickle
    with pytest.raises(ValueError, match="pickle"):
        add_model(models["ckpt"].parent / "data", models["ckpt"])


def test_registry_from_toml_and_models_json(models: dict[str, Path], tmp_path: Path) -> None:
    toml = _write_toml(tmp_path / "keygrip.toml", {
        "sd15": {"path": str(models["sd"])},
        "gone": {"path": "missing-folder"},   # relative: taken from the TOML's folder
    })
    data = tmp_path / "data"
    config = load_config(toml, overrides={"data_dir": data}, environ={})
    assert config.models["gone"]["path"] == str(tmp_path / "missing-folder")
    add_model(data, models["sd2"], name="mine")
    reg = load_registry(config)
    assert [e.name for e in reg.entries()] == ["gone", "mine", "sd15"]
    assert reg.get("sd15").source == "config" and reg.get("mine").source == "models.json"
    with pytest.raises(NotFound, match="keygrip models add"):
        reg.get("nope")
    with pytest.raises(FailedPrecondition, match="does not exist"):
        reg.get("gone")
    assert reg.entries()[0].missing
    # Workers: the TOML's models the front published, plus models.json.
    publish_config_models(config)
    assert {e.name for e in worker_registry(data).entries()} == {"gone", "mine", "sd15"}


def test_bad_model_table_refused() -> None:
    with pytest.raises(ValueError, match="needs a path"):
        Config(models={"x": {"config": "y"}}).validate()
    with pytest.raises(ValueError, match="unknown settings"):
        Config(models={"x": {"path": "y", "colour": "red"}}).validate()


# ---- pipelines ----

def _cache(models: dict[str, Path], budget: int | None = None) -> PipelineCache:
    reg = ModelRegistry([
        inspect_entry("sd", {"path": str(models["sd"])}),
        inspect_entry("single", {"path": str(models["single"]), "config": str(models["single_config"])}),
        inspect_entry("sd2", {"path": str(models["sd2"])}),
        inspect_entry("cn", {"path": str(models["controlnet"])}),
        inspect_entry("depth", {"path": str(models["depth"])}),
    ])
    return PipelineCache(reg, pick_device("cpu"), budget_bytes=budget)


def test_pipeline_cache_loads_both_formats_and_shares_components(models: dict[str, Path]) -> None:
    cache = _cache(models)
    folder = cache.text2img("sd")
    single = cache.text2img("single")
    assert type(folder).__name__ == type(single).__name__ == "StableDiffusionPipeline"
    # Same weights either way: the single file is the folder's pipeline in the original layout.
    for a, b in zip(folder.unet.parameters(), single.unet.parameters(), strict=True):
        assert torch.equal(a, b)
    img2img = cache.img2img("sd")
    assert type(img2img).__name__ == "StableDiffusionImg2ImgPipeline"
    assert img2img.unet is folder.unet and img2img.vae is folder.vae  # from_pipe: no copy
    assert cache.text2img("sd") is folder
    with pytest.raises(FailedPrecondition, match="ControlNet"):
        cache.text2img("cn")
    cache.unload_all()
    assert cache.loaded() == []


def test_compile_setting_compiles_the_denoiser_and_the_vae_decoder(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="compile must be true or false"):
        Config(models={"x": {"path": "y", "compile": "yes"}}).validate()
    Config(models={"x": {"path": "y", "compile": True, "family": "sd1"}}).validate()
    entry = add_model(tmp_path, models["sd"], name="fast", compile=True)
    assert entry.compile and read_models_file(tmp_path)["fast"]["compile"] is True
    cache = PipelineCache(ModelRegistry([entry, inspect_entry("sd", {"path": str(models["sd"])})]),
                          pick_device("cpu"))
    fast, plain = cache.text2img("fast"), cache.text2img("sd")
    # Compiled in place: the same classes, shared by from_pipe. Running them is left to the GPU benchmark
    # (bench_generate.py --compile): the first call compiles, which takes minutes on this CPU.
    assert type(fast.unet) is type(plain.unet)
    assert fast.unet._compiled_call_impl is not None and fast.vae.decoder._compiled_call_impl is not None
    assert plain.unet._compiled_call_impl is None and plain.vae.decoder._compiled_call_impl is None
    assert cache.img2img("fast").unet is fast.unet
    cache.unload_all()


def test_pipeline_cache_unloads_least_recently_used(models: dict[str, Path]) -> None:
    probe = _cache(models)
    size = pipeline_bytes(probe.text2img("sd"))
    size2 = pipeline_bytes(probe.text2img("sd2"))  # wider: SD 2's 1024-wide context
    probe.unload_all()
    budget = size + size2 + size // 2            # room for sd and sd2, not for a third
    cache = _cache(models, budget=budget)
    cache.text2img("sd")
    cache.text2img("single")
    cache.text2img("sd")                      # "single" is now the least recently used
    assert cache.loaded() == ["single", "sd"]
    cache.text2img("sd2")
    assert cache.loaded() == ["sd", "sd2"]
    assert cache.resident_bytes() <= budget
    cache.unload_all()
    assert cache.resident_bytes() == 0


def test_controlnet_pipelines_share_the_model_and_count_the_controlnet(models: dict[str, Path]) -> None:
    cache = _cache(models)
    base = cache.text2img("sd")
    pipe = cache.controlnet_pipeline("sd", "cn")
    assert type(pipe).__name__ == "StableDiffusionControlNetPipeline"
    assert pipe.unet is base.unet and pipe.vae is base.vae and pipe.text_encoder is base.text_encoder
    assert cache.controlnet_pipeline("sd", "cn") is pipe
    assert cache.loaded() == ["sd", "cn"]
    # counted once each: the model's components and the ControlNet
    assert cache.resident_bytes() == pipeline_bytes(pipe) > pipeline_bytes(base)
    with pytest.raises(FailedPrecondition, match="made for another kind of model"):
        cache.controlnet_pipeline("sd2", "cn")  # a ControlNet for SD 1.x beside an SD 2 model
    with pytest.raises(FailedPrecondition, match="is not a ControlNet"):
        cache.controlnet_pipeline("sd", "sd2")
    cache.unload("cn")  # the pipeline built around it goes with it
    assert cache.controlnet_pipeline("sd", "cn") is not pipe
    cache.unload_all()


def test_an_unsuited_model_gets_one_reason_and_one_message_everywhere(models: dict[str, Path]) -> None:
    """The submit-time checks (registry, scene options) and the worker's cache say the same thing."""
    from inference_server.scene.options import check_project_models

    cache = _cache(models)
    pairs = [  # (the front's check, the worker's) for one condition
        (lambda: check_project_models(cache.registry, "sd", "sd2"), lambda: cache.controlnet_pipeline("sd", "sd2")),
        (lambda: cache.registry.controlnet_base("depth"), lambda: cache.controlnet_pipeline("depth", "cn")),
        (lambda: cache.registry.suited("sd", "compositing.inpaint"), lambda: cache.inpaint("sd")),
    ]
    for front, worker in pairs:
        with pytest.raises(FailedPrecondition) as at_front:
            front()
        with pytest.raises(FailedPrecondition) as in_worker:
            worker()
        assert at_front.value.reason == in_worker.value.reason == "MODEL_UNSUITED"
        assert at_front.value.message == in_worker.value.message
        assert "keygrip models ls" in at_front.value.message
    with pytest.raises(FailedPrecondition, match=r"'cn' \(controlnet\) is not a text-to-image model: it cannot do "
                                                 r"scene.world \(it does scene.project\)") as caught:
        cache.registry.suited("cn", "scene.world")
    assert caught.value.reason == "MODEL_UNSUITED" and caught.value.metadata == {"model": "cn"}
    with pytest.raises(FailedPrecondition, match="cannot make this") as caught:
        cache.text2img("cn")
    assert caught.value.reason == "MODEL_UNSUITED"
    assert cache.loaded() == ["sd"]  # only the ControlNet pipeline's base was loaded before its check
    cache.unload_all()


def test_a_depth_model_loads_without_its_depth_estimator(models: dict[str, Path]) -> None:
    cache = _cache(models)
    pipe = cache.img2img("depth")
    assert type(pipe).__name__ == "StableDiffusionDepth2ImgPipeline"
    assert pipe.depth_estimator is None and pipe.unet.config.in_channels == 5
    with pytest.raises(FailedPrecondition, match="no text2img pipeline"):
        cache.text2img("depth")
    cache.unload_all()


# ---- server and CLI ----

def test_server_lists_models_and_cli(models: dict[str, Path], server_factory, tmp_path: Path) -> None:
    toml = _write_toml(tmp_path / "keygrip.toml", {
        "sd15": {"path": str(models["sd"])},
        "single": {"path": str(models["single"]), "config": str(models["single_config"])},
        "old": {"path": str(models["ckpt"])},
        "gone": {"path": str(tmp_path / "nowhere")},
        "a-model-whose-name-is-long": {"path": str(tmp_path / "elsewhere"), "family": "sdxl_inpaint"},
    })
    data = tmp_path / "data"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, "-m", "keygrip.cli"]
    added = subprocess.run([*cli, "models", "add", str(models["sd2"]), "--name", "mine", "--data-dir", str(data)],
                           capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert added.returncode == 0, added.stderr
    assert "added mine: sd2" in added.stdout and "restart the server" in added.stdout
    refused = subprocess.run([*cli, "models", "add", str(models["ckpt"]), "--data-dir", str(data)],
                             capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert refused.returncode == 1 and "pickle" in refused.stderr and len(refused.stderr.splitlines()) == 1

    srv = server_factory("--config", str(toml), data_dir=data)
    from keygrip import Client

    with Client(srv.address) as client:
        info = client.info()
    diffusion = {m.name: m for m in info.models if m.kind == "diffusers"}
    assert set(diffusion) == {"sd15", "single", "old", "gone", "mine", "a-model-whose-name-is-long"}
    assert any(m.kind == "mediapipe" for m in info.models)
    assert diffusion["sd15"].state == server_pb2.MODEL_STATE_AVAILABLE
    assert diffusion["single"].state == server_pb2.MODEL_STATE_AVAILABLE
    assert diffusion["mine"].state == server_pb2.MODEL_STATE_AVAILABLE
    assert diffusion["gone"].state == server_pb2.MODEL_STATE_MISSING
    assert "keygrip models" in diffusion["gone"].reason
    assert diffusion["old"].state == server_pb2.MODEL_STATE_ERROR and "pickle" in diffusion["old"].reason
    assert diffusion["sd15"].source == str(models["sd"])
    assert (data / "models-config.json").is_file()  # what workers read

    ls = subprocess.run([*cli, "--address", srv.address, "models", "ls"], capture_output=True, text=True,
                        env=env, cwd=REPO, timeout=60)
    assert ls.returncode == 0, ls.stderr
    header, *lines = ls.stdout.splitlines()
    rows = {line.split()[0]: line for line in lines}
    assert "sd1" in rows["sd15"] and "available" in rows["sd15"] and "scene.texture" in rows["sd15"]
    assert "missing" in rows["gone"] and "error" in rows["old"]
    # Every cell starts under its heading, however long a name or family (sdxl_inpaint) is.
    family, state = header.index("FAMILY"), header.index("STATE")
    long_row = rows["a-model-whose-name-is-long"]
    assert long_row[family:].split()[0] == "sdxl_inpaint" and long_row[state:].split()[0] == "missing"
    assert {line[family:].split()[0] for line in lines} == {"sd1", "sd2", "unknown", "sdxl_inpaint"}


def test_models_pull_offline_error(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "keygrip.cli", "models", "pull", "someone/some-model",
                          "--dest", str(tmp_path / "m")], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=60)
    assert out.returncode == 1
    assert len(out.stderr.splitlines()) == 1
    assert "offline" in out.stderr and "keygrip models add" in out.stderr
    assert not (tmp_path / "m").exists()


def test_front_does_not_import_torch(models: dict[str, Path]) -> None:
    code = ("import sys\nfrom inference_server.models import load_registry\n"
            "from inference_server.config import Config\n"
            f"load_registry(Config(models={{'a': {{'path': {str(models['sd'])!r}}}}}))\n"
            "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, 'heavy import'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)
