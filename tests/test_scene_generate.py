"""The scene generation core on a tiny random-weight Stable Diffusion pipeline: tiling by equivariance
under circular shifts (UNet, VAE decoder and encoder, end to end), the 2:1 world periodic in X only,
reproducible seeds, progress with previews, cancel within one step, settings errors, the refusal of a
transformer (DiT) denoiser, and OpenEXR files.

The pipeline is built here by a small private helper (tiny UNet, VAE, CLIP text encoder and a
tokenizer from a vocabulary written in the test); tests/diffusion_models.py will provide the shared one.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from inference_server.errors import InvalidInput, JobCancelled, ResourceExhausted  # noqa: E402
from inference_server.jobs.context import NullContext  # noqa: E402
from inference_server.scene import exr  # noqa: E402
from inference_server.scene.generate import (  # noqa: E402
    GenerateSettings,
    check_settings,
    generate_texture,
    generate_world,
)
from inference_server.scene.tiling import seamless  # noqa: E402

ON, OFF = 1e-4, 1e-2  # equivariance error with tiling on must be at most ON; with it off, more than OFF


def _tiny_pipeline(folder: Path) -> Any:
    """A StableDiffusionPipeline with random weights, small enough to run a step in milliseconds."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=8, attention_head_dim=8)
    vae = AutoencoderKL(
        block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=32)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"))


class RecordingContext(NullContext):
    """A NullContext that also keeps previews and fps, and cancels after `cancel_after` checks."""

    def __init__(self, cancel_after: int | None = None) -> None:
        super().__init__()
        self.previews: list[bytes] = []
        self.fps: list[float] = []
        self.checks = 0
        self.cancel_after = cancel_after

    def progress(self, stage: str, value: float, maximum: float, message: str = "", *,
                 fps: float = 0.0, preview_png: bytes = b"") -> None:
        super().progress(stage, value, maximum, message, fps=fps, preview_png=preview_png)
        if stage == "denoise":
            self.previews.append(preview_png)
            self.fps.append(fps)

    def check_cancelled(self) -> None:
        self.checks += 1
        if self.cancel_after is not None and self.checks >= self.cancel_after:
            raise JobCancelled("cancelled by the test")


def _noise(*shape: int, seed: int = 3) -> Any:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _shift_error(fn: Any, x: Any, k: int, dim: int, scale: float = 1) -> float:
    """max |fn(roll(x, k)) - roll(fn(x), k * scale)| along dim (-1: X, -2: Y)."""
    with torch.no_grad():
        a = fn(torch.roll(x, k, dims=dim))
        b = torch.roll(fn(x), int(k * scale), dims=dim)
    return float((a - b).abs().max())


def _tiling(pipe: Any, axes: str | None) -> Any:
    return seamless(pipe, axes) if axes else contextlib.nullcontext()


# --- tiling, component by component ---------------------------------------------------------------

def test_unet_is_equivariant_under_circular_shifts_only_with_tiling(pipe: Any) -> None:
    z = _noise(1, 4, 8, 16)
    text = _noise(1, 77, 32, seed=4)

    def unet(x: Any) -> Any:
        return pipe.unet(x, 500, encoder_hidden_states=text).sample

    errors = {}
    for axes in (None, "xy", "x"):
        with _tiling(pipe, axes):
            errors[axes] = (_shift_error(unet, z, 2, -1), _shift_error(unet, z, 2, -2))
    print("UNet shift errors (x, y):", errors)
    assert errors[None][0] > OFF and errors[None][1] > OFF
    assert errors["xy"][0] <= ON and errors["xy"][1] <= ON
    assert errors["x"][0] <= ON and errors["x"][1] > OFF


def test_vae_decoder_and_encoder_are_equivariant_only_with_tiling(pipe: Any) -> None:
    f = pipe.vae_scale_factor
    z = _noise(1, 4, 8, 16)
    image = _noise(1, 3, 8 * f, 16 * f, seed=5).clamp(-1, 1)

    def decode(x: Any) -> Any:
        return pipe.vae.decode(x).sample

    def encode(x: Any) -> Any:
        return pipe.vae.encode(x).latent_dist.mean

    errors = {}
    for axes in (None, "xy", "x"):
        with _tiling(pipe, axes):
            errors[axes] = {
                "decode": (_shift_error(decode, z, 2, -1, f), _shift_error(decode, z, 2, -2, f)),
                # the encoder's Downsample2D pads explicitly: shifts by whole latent pixels only
                "encode": (_shift_error(encode, image, 2 * f, -1, 1 / f),
                           _shift_error(encode, image, 2 * f, -2, 1 / f)),
            }
    print("VAE shift errors (x, y):", errors)
    for part in ("decode", "encode"):
        assert errors[None][part][0] > OFF and errors[None][part][1] > OFF
        assert max(errors["xy"][part]) <= ON
        assert errors["x"][part][0] <= ON and errors["x"][part][1] > OFF


def test_seamless_restores_the_pipeline_exactly_even_on_errors(pipe: Any) -> None:
    from diffusers.models.downsampling import Downsample2D

    def state() -> list[tuple[str, Any, Any]]:
        return [(name, m.__dict__.get("forward"), getattr(m, "padding", None))
                for model in (pipe.unet, pipe.vae) for name, m in model.named_modules()]

    z = _noise(1, 4, 8, 8)
    with torch.no_grad():
        before_out = pipe.vae.decode(z).sample
    before = state()
    assert any(isinstance(m, Downsample2D) and m.padding == 0 for m in pipe.vae.modules())
    with pytest.raises(RuntimeError, match="boom"), seamless(pipe, "xy"):
        assert state() != before
        raise RuntimeError("boom")
    assert state() == before
    with torch.no_grad():
        assert torch.equal(pipe.vae.decode(z).sample, before_out)


def test_tiling_a_transformer_denoiser_is_refused_with_what_to_do() -> None:
    class FluxPipeline:  # what matters: a `transformer` and no `unet`
        transformer = object()
        vae = object()

    refusal = "tiling needs a convolutional UNet; Flux is a transformer: turn tiling off"
    with pytest.raises(InvalidInput, match=refusal), seamless(FluxPipeline(), "xy"):
        pass
    s = GenerateSettings(prompt="brick", width=32, height=32, steps=2)
    with pytest.raises(InvalidInput, match="is a transformer"):
        generate_texture(FluxPipeline(), s, NullContext(), tile=True)
    with pytest.raises(InvalidInput, match="is a transformer: a world wraps around in X, so pick an SD 1.x/2.x/XL"):
        generate_world(FluxPipeline(), GenerateSettings(prompt="sky", width=64, height=32, steps=2), NullContext())


# --- end to end -----------------------------------------------------------------------------------

def _images(pipe: Any, latents: Any, axes: str | None) -> Any:
    with _tiling(pipe, axes):
        out = pipe("red brick", num_inference_steps=2, guidance_scale=5.0, latents=latents,
                   height=latents.shape[-2] * pipe.vae_scale_factor, width=latents.shape[-1] * pipe.vae_scale_factor,
                   output_type="pt").images
    return out


def test_end_to_end_shift_of_the_initial_latent_shifts_the_texture(pipe: Any) -> None:
    f = pipe.vae_scale_factor
    z = _noise(1, 4, 16, 16, seed=7)
    errors = {}
    for axes in (None, "xy"):
        errors[axes] = (_shift_error(lambda x, a=axes: _images(pipe, x, a), z, 4, -1, f),
                        _shift_error(lambda x, a=axes: _images(pipe, x, a), z, 4, -2, f))
    print("end-to-end shift errors (x, y):", errors)
    assert max(errors["xy"]) <= ON
    assert min(errors[None]) > OFF


def test_world_is_2_to_1_and_periodic_in_x_only(pipe: Any) -> None:
    f = pipe.vae_scale_factor
    s = GenerateSettings(prompt="cloudy sky", width=64, height=32, steps=2, seed=11)
    world = generate_world(pipe, s, NullContext())
    assert world.shape == (32, 64, 3) and world.dtype == np.float32
    assert world.min() >= 0.0 and world.max() <= 1.0
    # generate_world is the pipeline under seamless(axes="x") with the seed's noise ...
    with seamless(pipe, "x"):
        same = pipe(s.prompt, num_inference_steps=2, guidance_scale=s.guidance, width=64, height=32,
                    generator=torch.Generator("cpu").manual_seed(s.seed), output_type="np").images[0]
    assert np.array_equal(world, same)
    # ... which is equivariant under X shifts but not Y shifts
    z = _noise(1, 4, 32 // f, 64 // f, seed=8)
    x_error = _shift_error(lambda x: _images(pipe, x, "x"), z, 4, -1, f)
    y_error = _shift_error(lambda x: _images(pipe, x, "x"), z, 4, -2, f)
    print(f"world shift errors: x {x_error:.2e}, y {y_error:.2e}")
    assert x_error <= ON and y_error > OFF


def test_same_seed_same_bytes_and_another_seed_another_image(pipe: Any) -> None:
    s = GenerateSettings(prompt="mossy stone", width=32, height=32, steps=2, seed=123)
    a = generate_texture(pipe, s, NullContext())
    b = generate_texture(pipe, s, NullContext())
    c = generate_texture(pipe, GenerateSettings(prompt="mossy stone", width=32, height=32, steps=2, seed=124),
                         NullContext())
    assert a.shape == (32, 32, 3) and a.dtype == np.float32
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    assert a.tobytes() != generate_texture(pipe, s, NullContext(), tile=False).tobytes()


def test_progress_each_step_with_previews(pipe: Any) -> None:
    ctx = RecordingContext()
    generate_texture(pipe, GenerateSettings(prompt="wood", width=32, height=32, steps=3), ctx)
    denoise = [(v, m) for stage, v, m, _ in ctx.events if stage == "denoise"]
    assert denoise == [(1, 3), (2, 3), (3, 3)]
    assert ctx.checks == 3
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in ctx.previews)
    assert all(fps > 0 for fps in ctx.fps)
    import cv2

    preview = cv2.imdecode(np.frombuffer(ctx.previews[-1], np.uint8), cv2.IMREAD_COLOR)
    assert preview.shape == (64, 64, 3)


def test_cancel_after_the_first_step_stops_within_one_step(pipe: Any) -> None:
    calls = []
    hook = pipe.unet.register_forward_hook(lambda *_: calls.append(1))
    try:
        ctx = RecordingContext(cancel_after=1)
        with pytest.raises(JobCancelled):
            generate_texture(pipe, GenerateSettings(prompt="wood", width=32, height=32, steps=6), ctx)
    finally:
        hook.remove()
    assert len(calls) == 1  # one UNet call per step (the guided batch goes through together)
    assert [v for stage, v, _, _ in ctx.events if stage == "denoise"] == [1]
    # the pipeline is usable again afterwards, and not interrupted
    assert not pipe.interrupt
    out = generate_texture(pipe, GenerateSettings(prompt="wood", width=32, height=32, steps=2), NullContext())
    assert out.shape == (32, 32, 3)


def test_out_of_gpu_memory_says_what_to_lower(pipe: Any) -> None:
    class OutOfMemory(NullContext):
        def progress(self, *args: Any, **kwargs: Any) -> None:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(ResourceExhausted, match=r"out of GPU memory generating 32x32 with 2 steps: lower the size"):
        generate_texture(pipe, GenerateSettings(prompt="wood", width=32, height=32, steps=2), OutOfMemory())


def test_init_image_and_scheduler(pipe: Any) -> None:
    own = pipe.scheduler
    init = np.zeros((20, 24, 3), np.uint8)
    init[:, :12] = 255
    ctx = RecordingContext()
    out = generate_texture(pipe, GenerateSettings(prompt="tiles", width=32, height=32, steps=4, scheduler="euler"),
                           ctx, init_image=init, strength=0.5)
    assert out.shape == (32, 32, 3)
    assert [(v, m) for stage, v, m, _ in ctx.events if stage == "denoise"] == [(1, 2), (2, 2)]
    assert pipe.scheduler is own
    with pytest.raises(InvalidInput, match="strength"):
        generate_texture(pipe, GenerateSettings(prompt="tiles", width=32, height=32), ctx, init_image=init, strength=0)


@pytest.mark.parametrize(("settings", "world", "message"), [
    (GenerateSettings(prompt="  "), False, "the prompt is empty"),
    (GenerateSettings(prompt="a", width=500), False, "width 500 must be a positive multiple of 8: try 504"),
    (GenerateSettings(prompt="a", height=0), False, "height 0 must be a positive multiple of 8"),
    (GenerateSettings(prompt="a", width=8192), False, "larger than 4096"),
    (GenerateSettings(prompt="a", steps=0), False, "steps must be between 1 and"),
    (GenerateSettings(prompt="a", guidance=float("nan")), False, "guidance"),
    (GenerateSettings(prompt="a", seed=-1), False, "seed"),
    (GenerateSettings(prompt="a", scheduler="fastest"), False, "unknown scheduler 'fastest'"),
    (GenerateSettings(prompt="a", width=512, height=512), True, r"2:1 .* not 512x512: try 1024x512"),
])
def test_check_settings_says_what_to_change(settings: GenerateSettings, world: bool, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_settings(settings, world=world)


def test_settings_are_checked_against_the_pipeline(pipe: Any) -> None:
    check_settings(GenerateSettings(prompt="a", width=1024, height=512), world=True)
    with pytest.raises(InvalidInput, match="2:1"):
        generate_world(pipe, GenerateSettings(prompt="sky", width=32, height=32, steps=2), NullContext())
    with pytest.raises(InvalidInput, match="multiple of 8"):
        generate_texture(pipe, GenerateSettings(prompt="a", width=36, height=32, steps=2), NullContext())


def test_tiling_needs_sizes_that_divide_down_through_the_unet() -> None:
    from types import SimpleNamespace

    from inference_server.scene.generate import _multiple_of

    sd15 = SimpleNamespace(vae_scale_factor=8, unet=SimpleNamespace(config=SimpleNamespace(
        block_out_channels=(320, 640, 1280, 1280))))
    sdxl = SimpleNamespace(vae_scale_factor=8, unet=SimpleNamespace(config=SimpleNamespace(
        block_out_channels=(320, 640, 1280))))
    assert (_multiple_of(sd15, tile=True), _multiple_of(sd15, tile=False)) == (64, 8)
    assert (_multiple_of(sdxl, tile=True), _multiple_of(sdxl, tile=False)) == (32, 8)
    with pytest.raises(InvalidInput, match="width 520 must be a positive multiple of 64: try 512"):
        generate_texture(sd15, GenerateSettings(prompt="a", width=520, height=512), NullContext(), tile=True)


# --- EXR ------------------------------------------------------------------------------------------

def test_srgb_to_linear_known_values() -> None:
    x = np.array([0.0, 0.04045, 0.01, 0.2, 0.5, 1.0, 2.0])
    expected = np.array([0.0, 0.04045 / 12.92, 0.01 / 12.92, 0.033104766570885055, 0.21404114048223255, 1.0,
                         ((2.055) / 1.055) ** 2.4])
    out = exr.srgb_to_linear(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("half", [True, False])
def test_exr_round_trip(tmp_path: Path, half: bool) -> None:
    import OpenEXR

    rgb = exr.srgb_to_linear(np.random.default_rng(0).random((6, 12, 3))) * 4  # highlights above 1
    path = tmp_path / "world.exr"
    exr.write_exr(path, rgb, half=half, metadata={"keygrip:prompt": "cloudy sky", "keygrip:seed": "42"})
    back = exr.read_exr(path)
    assert back.shape == (6, 12, 3) and back.dtype == np.float32
    expected = rgb.astype(np.float16).astype(np.float32) if half else rgb
    assert np.array_equal(back, expected)
    assert exr.read_exr_metadata(path) == {"keygrip:prompt": "cloudy sky", "keygrip:seed": "42"}
    with OpenEXR.File(str(path), separate_channels=True) as f:
        channels = f.channels()
        assert sorted(channels) == ["B", "G", "R"]
        assert channels["R"].pixels.dtype == (np.float16 if half else np.float32)


def test_exr_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="RGB"):
        exr.write_exr(tmp_path / "a.exr", np.zeros((4, 4)))
    with pytest.raises(InvalidInput, match="NaN"):
        exr.write_exr(tmp_path / "a.exr", np.full((4, 4, 3), np.nan))
    with pytest.raises(InvalidInput, match="reserved"):
        exr.write_exr(tmp_path / "a.exr", np.zeros((4, 4, 3)), metadata={"compression": "none"})


# --- height and normal maps, highlight expansion ------------------------------------------------------

def _bump(size: int = 64, centre: tuple[float, float] = (32.0, 32.0)) -> np.ndarray:
    """An sRGB image of a bright round bump on grey."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    r2 = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2
    grey = 0.3 + 0.5 * np.exp(-r2 / (2 * 3.0**2))
    return np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)


def test_height_and_normal_maps_of_a_bump_point_away_from_its_top() -> None:
    from inference_server.scene.maps import height_map, normal_map

    height = height_map(_bump(), periodic=False)
    assert height.dtype == np.float32 and height.shape == (64, 64)
    assert height[32, 32] == height.max() and height[32, 32] > height[32, 30] > height[32, 28]
    normal = normal_map(height, periodic=False) * 2 - 1  # decoded
    assert np.allclose(np.linalg.norm(normal, axis=-1), 1.0, atol=1e-5)
    # Left of the top the surface rises to the right, so its normal leans left (-X); right of it, +X.
    assert normal[32, 29, 0] < -0.1 and normal[32, 35, 0] > 0.1
    # Above the top (smaller row = up the image, +Y in OpenGL) the normal leans up; below it, down.
    assert normal[29, 32, 1] > 0.1 and normal[35, 32, 1] < -0.1
    assert abs(normal[32, 32, 0]) < 1e-3 and abs(normal[32, 32, 1]) < 1e-3 and normal[32, 32, 2] > 0.999


def test_maps_of_a_tiling_texture_tile_too() -> None:
    from inference_server.scene.maps import height_map, normal_map

    image = np.random.default_rng(5).random((64, 96, 3)).astype(np.float32)
    shift = (17, 40)
    for periodic, equal in ((True, True), (False, False)):
        h = height_map(image, periodic=periodic)
        h_shifted = height_map(np.roll(image, shift, (0, 1)), periodic=periodic)
        n = normal_map(h, periodic=periodic)
        n_shifted = normal_map(h_shifted, periodic=periodic)
        # Wrapping filters commute with a circular shift: the maps of the shifted texture are the shifted maps.
        assert np.allclose(np.roll(h, shift, (0, 1)), h_shifted, atol=1e-5) is equal
        assert np.allclose(np.roll(n, shift, (0, 1)), n_shifted, atol=1e-5) is equal


def test_flat_image_has_flat_maps() -> None:
    from inference_server.scene.maps import height_map, normal_map

    height = height_map(np.full((16, 16, 3), 0.4, dtype=np.float32), periodic=True)
    assert np.all(height == 0.5)
    assert np.allclose(normal_map(height, periodic=True), (0.5, 0.5, 1.0))


def test_highlight_expansion_leaves_the_shadows_and_scales_white() -> None:
    linear = exr.srgb_to_linear(np.linspace(0, 1, 101)[:, None, None].repeat(3, axis=2))
    out = exr.expand_highlights(linear, 16.0)
    luma = linear[:, 0, 0]
    assert np.array_equal(out[luma <= 0.6], linear[luma <= 0.6])  # at and below the knee: untouched
    assert out[-1, 0, 0] == pytest.approx(16.0)                   # white: the full gain
    assert np.all(np.diff(out[:, 0, 0]) > 0)                      # still monotone: nothing steps or folds
    assert np.array_equal(exr.expand_highlights(linear, 1.0), linear)
    assert np.array_equal(exr.expand_highlights(linear, 0.0), linear)
    # Colour is kept: a bright orange is scaled as a whole.
    orange = np.array([[[1.0, 0.5, 0.1]]], dtype=np.float32)
    scaled = exr.expand_highlights(orange, 8.0)
    assert np.allclose(scaled / scaled[..., :1], orange / orange[..., :1])
