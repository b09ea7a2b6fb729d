"""Scene generation through the real server: a tiny random-weight model registered in the server's
TOML, loaded by the real model manager in a worker, driven over gRPC by the SDK and the CLI."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from diffusion_models import save_diffusers, tiny_sd_pipeline, write_header_only
from PIL import Image
from server_process import ServerProcess

import keygrip
from keygrip import events

REPO = Path(__file__).resolve().parents[1]
SIZE = 64  # the tiny model tiles exactly at multiples of its own downsampling


@pytest.fixture(scope="module")
def scene_server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("scene")
    model = save_diffusers(tiny_sd_pipeline(root / "src"), root / "tiny-sd")
    flux = write_header_only(root / "tiny-flux.safetensors", "flux")
    toml = root / "keygrip.toml"
    toml.write_text(f'[models.tiny]\npath = "{model}"\n\n[models.dit]\npath = "{flux}"\nconfig = "{model}"\n')
    srv = ServerProcess(root / "data", "--config", str(toml), workers=1)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def scene(scene_server) -> keygrip.Client:
    with keygrip.Client(scene_server.address) as c:
        yield c


def _image(client: keygrip.Client, ref) -> Image.Image:
    return Image.open(io.BytesIO(client.download_bytes(ref.id)))


def test_texture_with_provenance_and_reproducible(scene: keygrip.Client) -> None:
    job = scene.generate_texture("tiny", "weathered oak planks", seed=7, steps=2, width=SIZE, height=SIZE)
    previews, stages = [], set()
    for ev in job.watch():
        if isinstance(ev, events.ProgressEvent):
            stages.add(ev.stage)
            if ev.preview_png:
                previews.append(ev.preview_png)
    result = job.result()
    assert {"denoise", "export"} <= stages and previews  # a preview per few steps reaches the client
    assert (result.width, result.height, result.seed, result.model) == (SIZE, SIZE, 7, "tiny")
    assert len(result.model_hash) == 64
    meta = dict(result.metadata)
    assert meta["prompt"] == "weathered oak planks" and meta["seed"] == "7" and meta["tileable"] == "True"
    assert meta["model_hash"] == result.model_hash and meta["steps"] == "2"
    png = _image(scene, result.image)
    assert png.size == (SIZE, SIZE) and png.mode == "RGB"
    assert png.text["keygrip:prompt"] == "weathered oak planks"  # provenance travels with the file
    # The same request again gives the same bytes (content-addressed: the same artifact); another seed does not.
    again = scene.generate_texture("tiny", "weathered oak planks", seed=7, steps=2, width=SIZE, height=SIZE).result()
    assert again.image.id == result.image.id and again.exr.id == result.exr.id
    other_job = scene.generate_texture("tiny", "weathered oak planks", seed=8, steps=2, width=SIZE, height=SIZE)
    assert other_job.result().image.id != result.image.id
    # The local executor too: a GPU job type runs on the CPU when there is no GPU, and the worker keeps
    # the model loaded for the next job.
    loads = [e.message for e in other_job.watch() if isinstance(e, events.ProgressEvent) and e.stage == "load"]
    assert len(loads) == 1 and loads[0].startswith("model tiny already loaded on cpu in worker process ")


def test_world_is_2_to_1_linear_exr(scene: keygrip.Client, tmp_path: Path) -> None:
    from inference_server.scene.exr import read_exr, srgb_to_linear

    result = scene.generate_world("tiny", "overcast sky over hills", seed=3, steps=2, height=SIZE).result()
    assert (result.width, result.height) == (2 * SIZE, SIZE)
    linear = read_exr(scene.download(result.exr.id, tmp_path / "world.exr"))
    assert linear.shape == (SIZE, 2 * SIZE, 3) and linear.dtype == np.float32
    srgb = np.asarray(_image(scene, result.image), dtype=np.float32) / 255.0
    # The EXR is the PNG's image decoded to linear light (up to 8-bit rounding and half floats).
    assert np.abs(linear - srgb_to_linear(srgb)).max() < 0.02
    assert result.metadata["projection"] == "equirectangular"


def test_texture_maps_height_and_normal(scene: keygrip.Client) -> None:
    from inference_server.scene.maps import height_map, normal_map

    plain = scene.generate_texture("tiny", "cracked clay", seed=5, steps=2, width=SIZE, height=SIZE).result()
    assert not plain.height_map.id and not plain.normal_map.id  # only when asked for
    result = scene.generate_texture("tiny", "cracked clay", seed=5, steps=2, width=SIZE, height=SIZE,
                                    maps=True).result()
    # The maps add files; the texture's pixels are the same (its PNG's provenance says "maps").
    assert np.array_equal(np.asarray(_image(scene, result.image)), np.asarray(_image(scene, plain.image)))
    height, normal = _image(scene, result.height_map), _image(scene, result.normal_map)
    assert (height.size, height.mode, normal.size, normal.mode) == ((SIZE, SIZE), "I;16", (SIZE, SIZE), "RGB")
    assert result.metadata["maps"] == "height,normal" and height.text["keygrip:seed"] == "5"
    # They are the maps of the texture, wrapping around as it does (made from its float pixels, so
    # recomputed from its 8-bit PNG they agree to within the rounding).
    srgb = np.asarray(_image(scene, result.image), dtype=np.float32) / 255.0
    expected = height_map(srgb, periodic=True)
    assert np.abs(np.asarray(height, dtype=np.float64) / 65535.0 - expected).max() < 0.01
    decoded = np.asarray(normal, dtype=np.float32) / 255.0
    assert np.abs(decoded - normal_map(expected, periodic=True)).max() < 0.02


def test_world_highlight_gain_brightens_only_the_highlights(scene: keygrip.Client, tmp_path: Path) -> None:
    from inference_server.scene.exr import expand_highlights, read_exr, srgb_to_linear

    result = scene.generate_world("tiny", "sunset", seed=3, steps=2, height=SIZE, highlight_gain=16).result()
    linear = read_exr(scene.download(result.exr.id, tmp_path / "world.exr"))
    srgb = np.asarray(_image(scene, result.image), dtype=np.float32) / 255.0
    expected = expand_highlights(srgb_to_linear(srgb), 16.0)
    assert np.abs(linear - expected).max() <= 0.02 * max(1.0, float(expected.max()))  # 8-bit and half floats
    assert result.metadata["highlight_gain"] == "16"
    with pytest.raises(keygrip.InvalidArgument, match="highlight_gain"):
        scene.generate_world("tiny", "sunset", height=SIZE, highlight_gain=-1)


def test_cancel_ends_within_a_step(scene: keygrip.Client) -> None:
    # At 2 x SIZE each step of the tiny model is slow enough that the job outlasts any delay of the cancel.
    job = scene.generate_texture("tiny", "slow", seed=1, steps=400, width=2 * SIZE, height=2 * SIZE)
    for ev in job.watch(timeout=120):
        if isinstance(ev, events.ProgressEvent) and ev.stage == "denoise" and ev.value >= 1:
            job.cancel()
            break
    job.wait(timeout=60)
    assert job.state == "cancelled"
    assert job.proto.progress.value < 400


@pytest.mark.parametrize(("call", "error", "words"), [
    (lambda c: c.generate_texture("nope", "x"), keygrip.NotFound, "keygrip models add"),
    (lambda c: c.generate_texture("tiny", "  "), keygrip.InvalidArgument, "prompt is empty"),
    (lambda c: c.generate_texture("tiny", "x", width=100), keygrip.InvalidArgument, "multiple of 8"),
    (lambda c: c.generate_world("tiny", "x", width=256, height=256), keygrip.InvalidArgument, "2:1"),
    (lambda c: c.generate_texture("tiny", "x", steps=-1), keygrip.InvalidArgument, "steps"),
    (lambda c: c.generate_texture("dit", "x"), keygrip.FailedPrecondition, "cannot do scene.texture"),
])
def test_clear_errors_at_submit(scene: keygrip.Client, call, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        call(scene)


def test_cli_generate(scene_server, tmp_path: Path) -> None:
    out = tmp_path / "t.png"
    run = subprocess.run([sys.executable, "-m", "keygrip.cli", "--address", scene_server.address, "generate",
                          "texture", "--model", "tiny", "--prompt", "moss", "--steps", "1", "--width", str(SIZE),
                          "--height", str(SIZE), "--out", str(out)],
                         capture_output=True, text=True, cwd=REPO, timeout=180, env={**os.environ})
    assert run.returncode == 0, run.stderr
    assert out.is_file() and Image.open(out).size == (SIZE, SIZE)
    assert "seed" in run.stdout and "model tiny" in run.stdout
    assert not (tmp_path / "t_normal.png").exists()
    run = subprocess.run([sys.executable, "-m", "keygrip.cli", "--address", scene_server.address, "generate",
                          "texture", "--model", "tiny", "--prompt", "moss", "--steps", "1", "--width", str(SIZE),
                          "--height", str(SIZE), "--maps", "--out", str(tmp_path / "m.exr")],
                         capture_output=True, text=True, cwd=REPO, timeout=180, env={**os.environ})
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "m.exr").is_file()
    assert Image.open(tmp_path / "m_height.png").mode == "I;16" and Image.open(tmp_path / "m_normal.png").mode == "RGB"
