"""The SDXL layout through the model manager and the generation code: family detection, a seamless
texture, and a projection through an SDXL depth ControlNet (StableDiffusionXLControlNetPipeline built
around the model's own components), on a tiny random-weight SDXL saved and loaded from disk."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusion_models import save_diffusers, tiny_controlnet, tiny_sdxl_pipeline  # noqa: E402

from inference_server.jobs.context import NullContext  # noqa: E402
from inference_server.models.pipelines import PipelineCache, pick_device  # noqa: E402
from inference_server.models.registry import ModelRegistry, inspect_entry  # noqa: E402
from inference_server.scene.generate import GenerateSettings, generate_texture  # noqa: E402
from inference_server.scene.project import project  # noqa: E402
from inference_server.scene.reproject import ViewGeometry  # noqa: E402
from inference_server.scene.tiling import seamless  # noqa: E402
from keygrip.projection import Camera  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> PipelineCache:
    root = tmp_path_factory.mktemp("sdxl")
    pipe = tiny_sdxl_pipeline(root / "src")
    save_diffusers(pipe, root / "tiny-xl")
    tiny_controlnet(pipe, root / "tiny-xl-depth")
    registry = ModelRegistry([inspect_entry("xl", {"path": str(root / "tiny-xl")}),
                              inspect_entry("xl-depth", {"path": str(root / "tiny-xl-depth")})])
    return PipelineCache(registry, pick_device("cpu"))


def test_the_sdxl_layout_is_detected_and_makes_a_seamless_texture(cache: PipelineCache) -> None:
    entry = cache.registry.get("xl")
    assert entry.family == "sdxl" and "scene.texture" in entry.capabilities
    pipe = cache.text2img("xl")
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"
    settings = GenerateSettings(prompt="slate", seed=4, steps=2, width=SIZE, height=SIZE)
    texture = generate_texture(pipe, settings, NullContext(), tile=True)
    assert texture.shape == (SIZE, SIZE, 3) and np.isfinite(texture).all()
    # Seamless: rolling the starting noise by k latent columns rolls the texture by k x the VAE's scale,
    # exactly with tiling on (as for SD 1.x in test_scene_generate.py), and not with it off.
    f, k = pipe.vae_scale_factor, 4
    z = torch.randn(1, 4, SIZE // f, SIZE // f, generator=torch.Generator().manual_seed(7))

    def image(latents: torch.Tensor, tile: bool) -> torch.Tensor:
        with seamless(pipe, "xy") if tile else contextlib.nullcontext(), torch.no_grad():
            return pipe("slate", num_inference_steps=2, latents=latents, width=SIZE, height=SIZE,
                        output_type="pt").images

    errors = {tile: float((image(torch.roll(z, k, -1), tile) - torch.roll(image(z, tile), k * f, -1)).abs().max())
              for tile in (True, False)}
    assert errors[True] <= 1e-4 and errors[False] > 1e-2, errors


def _camera(x: float) -> Camera:
    m = np.eye(4)
    m[:3, 3] = [x, 0.0, 2.0]
    return Camera(SIZE, SIZE, 64.0, 64.0, SIZE / 2, SIZE / 2, m)


def _wall(cam: Camera) -> ViewGeometry:
    """A wall at z = 0 filling the view (depth 2 everywhere), with a nearer box in the middle."""
    depth = np.full((SIZE, SIZE), 2.0)
    depth[24:40, 24:40] = 1.5
    return ViewGeometry(cam, depth, np.ones((SIZE, SIZE), bool))


def test_projection_through_an_sdxl_depth_controlnet(cache: PipelineCache) -> None:
    pipe = cache.controlnet_pipeline("xl", "xl-depth")
    assert type(pipe).__name__ == "StableDiffusionXLControlNetPipeline"
    assert pipe.unet is cache.text2img("xl").unet  # the model's own components, not a copy
    views = [_wall(_camera(0.0)), _wall(_camera(0.0))]
    settings = GenerateSettings(prompt="brick", seed=5, steps=2, width=SIZE, height=SIZE)
    first, second = project(pipe, views, ["a", "b"], settings, NullContext(), depth_model=False)
    assert first.image.shape == (SIZE, SIZE, 3) and not first.covered.any() and first.seed == 5
    # The same camera again: everything is kept from the first view, nothing generated.
    assert second.covered.all() and second.seed == 6
    assert np.abs(second.image - first.image).max() <= 1 / 255 + 1e-6
    assert math.isfinite(float(first.image.mean()))


def test_an_sd15_controlnet_is_refused_for_an_sdxl_model(cache: PipelineCache, tmp_path: Path) -> None:
    from diffusion_models import tiny_sd_pipeline

    from inference_server.errors import FailedPrecondition

    sd = tiny_sd_pipeline(tmp_path / "src")
    tiny_controlnet(sd, tmp_path / "sd-depth")
    other = PipelineCache(ModelRegistry([*cache.registry.entries(),
                                         inspect_entry("sd-depth", {"path": str(tmp_path / "sd-depth")})]),
                          pick_device("cpu"))
    with pytest.raises(FailedPrecondition, match="sd-depth"):
        other.controlnet_pipeline("xl", "sd-depth")
    other.unload_all()


