"""Compositing with models from the model manager, through the real server: a learned person segmenter
(a tiny random-weight SegFormer built here) in place of Selfie Segmentation, and a diffusers inpainting
model (a tiny random-weight StableDiffusionInpaintPipeline) filling what a clean plate never saw;
licence opt-in, models not installed or of the wrong kind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from server_process import ServerProcess

import keygrip

VIDEO = Path(__file__).parent / "data" / "video" / "pose2sim_cam01.mp4"  # 1080x1920, one man balancing
# The tiny segmenter's classifier gives every pixel logits (0, 5, 0) for (background, person, sky).
PERSON = float(np.exp(5.0) / (np.exp(5.0) + 2.0))


def _frames(start: int, count: int, width: int) -> list[np.ndarray]:
    from inference_server.media.video import iter_frames

    out = []
    for f in iter_frames(VIDEO, start, start + count):
        h, w = f.image.shape[:2]
        out.append(cv2.resize(f.image, (width, round(h * width / w)), interpolation=cv2.INTER_AREA))
    return out


def _write_sequence(folder: Path, images: dict[int, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n, rgb in images.items():
        cv2.imwrite(str(folder / f"plate.{n}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder / f"plate.{min(images)}.png"


def _card(folder: Path, license: str) -> None:
    (folder / "README.md").write_text(f"---\nlicense: {license}\n---\n# a model\n")


@pytest.fixture(scope="module")
def models_client(tmp_path_factory: pytest.TempPathFactory):
    """A server whose TOML registers a tiny SegFormer (Apache-2.0), the same under a non-commercial licence,
    one whose folder is gone, and a tiny SD inpainting pipeline."""
    import torch
    from diffusion_models import save_diffusers, tiny_inpaint_pipeline, tiny_sd_pipeline
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    root = tmp_path_factory.mktemp("models")
    labels = {0: "background", 1: "person", 2: "sky"}
    config = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[4, 2], hidden_sizes=[8, 16],
                             patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                             decoder_hidden_size=16, id2label=labels, label2id={v: k for k, v in labels.items()})
    torch.manual_seed(0)
    seg = SegformerForSemanticSegmentation(config)
    with torch.no_grad():  # a known answer: the person class wins everywhere by the same margin
        seg.decode_head.classifier.weight.zero_()
        seg.decode_head.classifier.bias.copy_(torch.tensor([0.0, 5.0, 0.0]))
    for folder, license in (("tiny-seg", "apache-2.0"), ("nc-seg", "cc-by-nc-4.0")):
        seg.save_pretrained(root / folder)
        _card(root / folder, license)
    save_diffusers(tiny_inpaint_pipeline(tiny_sd_pipeline(root / "work")), root / "tiny-inpaint")
    _card(root / "tiny-inpaint", "creativeml-openrail-m")
    toml = root / "keygrip.toml"
    toml.write_text("".join(f'[models.{name}]\npath = "{root / name}"\n\n'
                            for name in ("tiny-seg", "nc-seg", "gone-seg", "tiny-inpaint")))
    srv = ServerProcess(root / "data", "--config", str(toml), workers=1)
    srv.start()
    with keygrip.Client(srv.address) as c:
        yield c
    srv.stop()


def test_matte_from_a_registered_segmenter(models_client: keygrip.Client, tmp_path: Path) -> None:
    from inference_server.scene.exr import read_exr_metadata

    info = {m.name: m for m in models_client.info().models}
    assert info["tiny-seg"].family == "segmenter" and info["tiny-seg"].capabilities == ["compositing.matte"]
    assert info["tiny-inpaint"].family == "inpaint" and info["tiny-inpaint"].capabilities == ["compositing.inpaint"]
    pattern = _write_sequence(tmp_path / "plate", dict(zip((1001, 1002, 1003), _frames(40, 3, 96), strict=True)))
    result = models_client.matte(pattern, model="tiny-seg", working_size=64).result()
    assert [f.number for f in result.matte.frames] == [1001, 1002, 1003]
    path = models_client.download(result.matte.frames[1].image.id, tmp_path / "matte.1002.exr")
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        alpha = np.asarray(f.channels()["A"].pixels, dtype=np.float32)
    # The model's person probability, through the whole chain (a constant stays constant), not MediaPipe's.
    assert alpha.shape == (171, 96)
    np.testing.assert_allclose(alpha, PERSON, atol=2e-3)
    head = read_exr_metadata(path)
    assert head["matte_segmenter"] == "model tiny-seg" and head["matte_model"] == "tiny-seg"
    assert head["matte_model_license"] == "apache-2.0" and len(head["matte_model_hash"]) == 64

    run = subprocess.run([sys.executable, "-m", "keygrip.cli", "--address", models_client.address, "matte",
                          str(pattern), "--out", str(tmp_path / "cli"), "--range", "1003-1003", "--model", "tiny-seg"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert read_exr_metadata(tmp_path / "cli" / "matte.1003.exr")["matte_model"] == "tiny-seg"


def test_segmenters_refused_with_the_fix(models_client: keygrip.Client) -> None:
    with pytest.raises(keygrip.NotFound, match=r"no model named 'other' .*keygrip models add"):
        models_client.matte(VIDEO, model="other")
    # A non-commercial model needs an explicit opt-in: listed with the reason, refused when named.
    nc = next(m for m in models_client.info().models if m.name == "nc-seg")
    assert nc.family == "segmenter" and not nc.capabilities and "allow_restricted_license" in nc.reason
    with pytest.raises(keygrip.FailedPrecondition,
                       match=r"licence is cc-by-nc-4.0.*allow_restricted_license = true in \[models.nc-seg\]"):
        models_client.matte(VIDEO, model="nc-seg")
    with pytest.raises(keygrip.FailedPrecondition, match=r"'gone-seg' cannot be loaded: .*does not exist.*models pull"):
        models_client.clean_plate(VIDEO, matte=keygrip.v1.compositing_pb2.MatteSettings(model="gone-seg"))
    with pytest.raises(keygrip.FailedPrecondition, match=r"'tiny-inpaint' \(inpaint\) is not a person segmenter"):
        models_client.matte(VIDEO, model="tiny-inpaint")
    with pytest.raises(keygrip.FailedPrecondition, match=r"'tiny-seg' \(segmenter\) is not an inpainting model"):
        models_client.clean_plate(VIDEO, inpaint_model="tiny-seg")


def test_clean_plate_hole_filled_by_the_inpainting_model(models_client: keygrip.Client, tmp_path: Path) -> None:
    """A person who never moves leaves a hole no frame sees: the registered inpainting model fills it,
    and only it; every pixel some frame saw is the same as with the classical fill."""
    from inference_server.compositing.matte import Segmenter
    from inference_server.scene.exr import read_exr

    person = _frames(40, 1, width=60)[0]
    seg = Segmenter()
    alpha = (seg(person) > 0.5).astype(np.float32)[..., None]
    seg.close()
    rng = np.random.default_rng(7)
    bg = cv2.GaussianBlur(rng.uniform(0, 255, (160, 200, 3)).astype(np.uint8), (0, 0), 3)
    ph, pw = person.shape[:2]
    images = {}
    for k in range(4):  # a little sway, not enough to uncover the middle of the body
        img = bg.astype(np.float32).copy()
        x, y = 70 + 2 * k, 160 - ph
        img[y:y + ph, x:x + pw] = img[y:y + ph, x:x + pw] * (1 - alpha) + person * alpha
        images[11 + k] = np.clip(img, 0, 255).astype(np.uint8)
    pattern = _write_sequence(tmp_path / "still", images)
    model = models_client.clean_plate(pattern, register=False, dilate=4, inpaint_steps=2).result()
    classical = models_client.clean_plate(pattern, register=False, dilate=4, classical_fill=True).result()
    assert model.metadata["fill"] == "diffusers StableDiffusionInpaintPipeline"
    assert model.metadata["fill_model"] == "tiny-inpaint" and model.metadata["fill_steps"] == "2"
    assert model.metadata["fill_model_license"] == "creativeml-openrail-m"
    assert classical.metadata["fill"] == "cv2.inpaint telea" and "fill_model" not in classical.metadata
    unseen = cv2.imread(str(models_client.download(model.coverage.id, tmp_path / "cov.png")),
                        cv2.IMREAD_GRAYSCALE) > 0
    assert 0.01 < unseen.mean() < 0.3 and model.unseen_fraction == classical.unseen_fraction
    painted = read_exr(models_client.download(model.plate.id, tmp_path / "model.exr"))
    plain = read_exr(models_client.download(classical.plate.id, tmp_path / "classical.exr"))
    assert np.array_equal(painted[~unseen], plain[~unseen])  # the plate where it was seen: untouched
    assert np.abs(painted[unseen] - plain[unseen]).mean() > 1e-3  # the hole: the model's pixels


def test_segmenter_family_person_class_and_licence(tmp_path: Path) -> None:
    import json

    from inference_server.models.registry import inspect_entry

    def folder(name: str, labels: dict[str, str], license: str = "") -> Path:
        path = tmp_path / name
        path.mkdir()
        (path / "config.json").write_text(json.dumps({"architectures": ["SegformerForSemanticSegmentation"],
                                                      "id2label": labels, "num_labels": len(labels)}))
        if license:
            _card(path, license)
        return path

    cars = inspect_entry("cars", {"path": str(folder("cars", {"0": "road", "1": "car"}))})
    assert cars.family == "segmenter" and not cars.available
    assert "no person class (its labels: road, car)" in cars.reason
    # A background remover: one logit, the foreground.
    remover = inspect_entry("rm", {"path": str(folder("rm", {"0": "LABEL_0"}))})
    assert remover.available and remover.capabilities == ("compositing.matte",) and remover.format == "transformers"
    gpl = folder("gpl", {"0": "background", "1": "Person"}, "gpl-3.0")
    assert not inspect_entry("gpl", {"path": str(gpl)}).available
    assert inspect_entry("gpl", {"path": str(gpl), "allow_restricted_license": True}).available
    # `keygrip models add` refuses it unless the user says the licence allows their use.
    add = [sys.executable, "-m", "keygrip.cli", "models", "add", str(gpl), "--data-dir", str(tmp_path / "data")]
    refused = subprocess.run(add, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "licence is gpl-3.0" in refused.stderr
    assert "--allow-restricted-license" in refused.stderr
    added = subprocess.run([*add, "--allow-restricted-license"], capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    assert "added gpl: segmenter" in added.stdout
    registered = json.loads((tmp_path / "data" / "models.json").read_text())["models"]["gpl"]
    assert registered["allow_restricted_license"] is True
    helped = subprocess.run([*add[:5], "--help"], capture_output=True, text=True, timeout=60)
    help_text = " ".join(helped.stdout.split()).replace("- ", "-")  # argparse wraps lines, at hyphens too
    assert "--allow-restricted-license" in help_text and "non-commercial" in help_text and "GPL" in help_text


def test_sdxl_inpainting_model_repaints_the_hole_only(tmp_path: Path) -> None:
    """An SDXL inpainting folder: its own family, loaded through the model cache, and the fill keeps every
    pixel outside the hole; a cancel stops it between steps."""
    from diffusion_models import save_diffusers, tiny_inpaint_pipeline, tiny_sdxl_pipeline

    from inference_server.compositing.inpaint import fill_with_model
    from inference_server.models.pipelines import PipelineCache, pick_device
    from inference_server.models.registry import ModelRegistry, inspect_entry

    folder = save_diffusers(tiny_inpaint_pipeline(tiny_sdxl_pipeline(tmp_path / "src")), tmp_path / "xl-inpaint")
    entry = inspect_entry("xl", {"path": str(folder)})
    assert (entry.family, entry.capabilities) == ("sdxl_inpaint", ("compositing.inpaint",))
    pipe = PipelineCache(ModelRegistry([entry]), pick_device("cpu")).inpaint("xl")
    assert type(pipe).__name__ == "StableDiffusionXLInpaintPipeline"
    rgb = cv2.GaussianBlur(np.random.default_rng(2).uniform(0, 255, (48, 80, 3)).astype(np.uint8), (0, 0), 2)
    unseen = np.zeros(rgb.shape[:2], bool)
    unseen[12:30, 25:50] = True
    out = fill_with_model(pipe, rgb, unseen, steps=2, model="xl", check_cancelled=lambda: None)
    assert np.array_equal(out[~unseen], rgb[~unseen]) and np.abs(out[unseen].astype(int) - rgb[unseen]).mean() > 1

    def cancel() -> None:
        raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        fill_with_model(pipe, rgb, unseen, steps=2, model="xl", check_cancelled=cancel)


def test_gpu_out_of_memory_names_what_to_lower(tmp_path: Path) -> None:
    """A GPU that runs out of memory in the segmenter, the depth model or the inpainting model gives
    RESOURCE_EXHAUSTED naming the model and what to change, and the model still runs afterwards.
    (No GPU here: the model's own forward raises torch's out-of-memory error, as CUDA would.)"""
    import torch
    from diffusion_models import tiny_inpaint_pipeline, tiny_sd_pipeline
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        SegformerConfig,
        SegformerForSemanticSegmentation,
    )

    from inference_server.compositing.depth import DepthChain
    from inference_server.compositing.inpaint import fill_with_model
    from inference_server.compositing.segmenters import ModelSegmenter
    from inference_server.errors import ResourceExhausted

    def run_out_once(net: torch.nn.Module) -> None:
        def hook(module: torch.nn.Module, args: object) -> None:
            handle.remove()
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        handle = net.register_forward_pre_hook(hook)

    rgb = _frames(0, 1, 96)[0]
    labels = {0: "background", 1: "person"}
    seg = SegformerForSemanticSegmentation(SegformerConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[4, 2], hidden_sizes=[8, 16], patch_sizes=[7, 3], strides=[4, 2],
        num_attention_heads=[1, 2], mlp_ratios=[2, 2], decoder_hidden_size=16, id2label=labels,
        label2id={v: k for k, v in labels.items()}))
    seg.save_pretrained(tmp_path / "seg")
    segmenter = ModelSegmenter(seg, tmp_path / "seg", "tiny-seg")
    run_out_once(seg)
    with pytest.raises(ResourceExhausted, match=r"out of GPU memory running segmenter 'tiny-seg' at 96x171: lower "
                                                r"the working_size") as info:
        segmenter(rgb)
    assert info.value.reason == "OUT_OF_MEMORY" and info.value.metadata == {"model": "tiny-seg"}
    assert segmenter(rgb).shape == rgb.shape[:2]

    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
                            patch_size=14, image_size=70, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    depth = DepthAnythingForDepthEstimation(DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 8, 16, 16], fusion_hidden_size=8,
        head_hidden_size=8, patch_size=14))
    chain = DepthChain(depth, 112, stabilize=True, weight=0.5, name="tiny-depth")
    run_out_once(depth)
    with pytest.raises(ResourceExhausted, match=r"out of GPU memory running depth model 'tiny-depth' at 56x112: "
                                                r"lower the working_size") as info:
        chain(rgb)
    assert info.value.reason == "OUT_OF_MEMORY"
    assert chain(rgb).shape == rgb.shape[:2]

    pipe = tiny_inpaint_pipeline(tiny_sd_pipeline(tmp_path / "sd"))
    unseen = np.zeros(rgb.shape[:2], bool)
    unseen[20:40, 30:60] = True
    run_out_once(pipe.unet)
    with pytest.raises(ResourceExhausted, match=r"out of GPU memory inpainting .* with 'tiny-inpaint' .*set "
                                                r"classical_fill") as info:
        fill_with_model(pipe, rgb, unseen, steps=2, model="tiny-inpaint", check_cancelled=lambda: None)
    assert info.value.reason == "OUT_OF_MEMORY"
    out = fill_with_model(pipe, rgb, unseen, steps=2, model="tiny-inpaint", check_cancelled=lambda: None)
    assert np.array_equal(out[~unseen], rgb[~unseen])
