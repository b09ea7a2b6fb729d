"""ProjectTexture: textures painted onto a scene from its cameras.

Reprojection on synthetic planes with answers worked out from the geometry (coverage across a shift,
an oblique camera, an occluder, the mask, the best-facing source), the feather and the control image,
the host's depth and mask files; then the real server with tiny random-weight models (an SD pipeline
with a depth ControlNet, an SD 2 depth pipeline) registered in its TOML: one view on each path with
previews, reproducible bytes, two views (an identical camera is all kept; a shifted one keeps what
geometry says), cancel, clear statuses for bad requests, and the CLI with a views.json.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from diffusion_models import save_diffusers, tiny_controlnet, tiny_depth2img_pipeline, tiny_sd_pipeline
from PIL import Image
from server_process import ServerProcess

import keygrip
from inference_server.errors import InvalidInput
from inference_server.scene.project import control_image, read_view
from inference_server.scene.reproject import ViewGeometry, keep_weights, reproject
from keygrip import events
from keygrip.projection import Camera, View

REPO = Path(__file__).resolve().parents[1]
SIZE = 64
FOCAL = 64.0  # at depth 2 a SIZE-wide view spans 2 m


# ---- synthetic scenes ----

def camera(angle_deg: float = 0.0, x: float = 0.0, distance: float = 2.0, size: int = SIZE) -> Camera:
    """A camera `distance` from the origin, turned about +Y by `angle_deg` to look at it, moved by x."""
    a = math.radians(angle_deg)
    m = np.eye(4)
    m[:3, :3] = [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
    m[:3, 3] = [distance * math.sin(a) + x, 0.0, distance * math.cos(a)]
    return Camera(size, size, FOCAL * size / SIZE, FOCAL * size / SIZE, size / 2, size / 2, m)


# Rectangles facing +Z: (z, x0, x1, y0, y1)
BACKGROUND = (0.0, -5.0, 5.0, -5.0, 5.0)
OCCLUDER = (1.0, -0.25, 0.25, -0.25, 0.25)


def hit(origin: np.ndarray, directions: np.ndarray, rects: list[tuple[float, ...]]) -> np.ndarray:
    """Depth along the rays (directions scaled to depth 1) to the first rectangle hit; NaN for none."""
    best = np.full(directions.shape[:-1], np.inf)
    for z, x0, x1, y0, y1 in rects:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (z - origin[2]) / directions[..., 2]
        p = origin + directions * t[..., None]
        ok = (t > 0) & (p[..., 0] >= x0) & (p[..., 0] <= x1) & (p[..., 1] >= y0) & (p[..., 1] <= y1)
        best = np.where(ok & (t < best), t, best)
    return np.where(np.isfinite(best), best, np.nan)


def render(cam: Camera, rects: list[tuple[float, ...]]) -> np.ndarray:
    return hit(cam.position, cam.ray_directions(), rects)


def geometry(cam: Camera, rects: list[tuple[float, ...]], mask: np.ndarray | None = None) -> ViewGeometry:
    depth = render(cam, rects)
    paint = np.isfinite(depth) if mask is None else np.isfinite(depth) & mask
    return ViewGeometry(cam, depth, paint)


def seen_by(target: Camera, source: Camera, rects: list[tuple[float, ...]]) -> np.ndarray:
    """The exact answer: target's pixels whose surface point the source camera sees (inside its image,
    and the first thing along the source's ray through that point)."""
    points = target.unproject(render(target, rects))
    u, v, z = source.project(points)
    inside = (z > 0) & (u >= 0) & (u < source.width) & (v >= 0) & (v < source.height)
    towards = points - source.position
    with np.errstate(invalid="ignore", divide="ignore"):
        first = hit(source.position, towards / z[..., None], rects)
        return inside & (np.abs(first - z) <= 1e-6 * z)


def colours(seed: int, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).random((size, size, 3)).astype(np.float32)


# ---- reprojection ----

def test_a_shifted_camera_keeps_exactly_the_columns_the_first_one_saw() -> None:
    first, second = camera(), camera(x=1.0)
    image = colours(1)
    r = reproject(geometry(second, [BACKGROUND]), [(geometry(first, [BACKGROUND]), image)])
    # second's pixel centre u sees x = 1 + (u - 32) / 32, which first sees while x < 1
    assert r.covered[:, :32].all() and not r.covered[:, 32:].any()
    assert np.allclose(r.colours[:, :32], image[:, 32:], atol=1e-5)
    assert (r.source[:, :32] == 0).all() and (r.source[:, 32:] == -1).all()


def test_an_oblique_camera_and_an_occluder_agree_with_the_geometry() -> None:
    rects = [BACKGROUND, OCCLUDER]
    first, second = camera(), camera(angle_deg=35.0)
    expected = seen_by(second, first, rects)
    r = reproject(geometry(second, rects), [(geometry(first, rects), colours(2))])
    shadow = np.isfinite(render(second, rects)) & ~expected & (first.project(second.unproject(
        render(second, rects)))[0] < SIZE)  # inside first's image, hidden from it by the occluder
    assert shadow.sum() > 50  # the scene has a real shadow
    wrong = r.covered != expected
    print(f"covered {r.covered.mean():.3f}, expected {expected.mean():.3f}, wrong {wrong.mean():.4f}, "
          f"shadow kept {r.covered[shadow].mean():.3f}")
    assert wrong.mean() < 0.02  # at most the pixels along the edges
    assert r.covered[shadow].mean() < 0.05


def test_only_what_the_earlier_mask_painted_is_kept() -> None:
    first, second = camera(), camera(x=0.5)
    left = np.zeros((SIZE, SIZE), bool)
    left[:, :SIZE // 2] = True
    r = reproject(geometry(second, [BACKGROUND]), [(geometry(first, [BACKGROUND], left), colours(3))])
    # second's columns 0..15 see first's columns 16..31 (painted), 16..31 its 32..47 (not painted)
    assert r.covered[:, :16].all() and not r.covered[:, 16:].any()


def test_the_earlier_view_facing_the_surface_best_wins() -> None:
    grazing, head_on, target = camera(angle_deg=65.0), camera(distance=3.0), camera(angle_deg=10.0)
    r = reproject(geometry(target, [BACKGROUND]), [(geometry(grazing, [BACKGROUND]), colours(4)),
                                                   (geometry(head_on, [BACKGROUND]), colours(5))])
    both = seen_by(target, grazing, [BACKGROUND]) & seen_by(target, head_on, [BACKGROUND])
    assert both.sum() > 100
    assert (r.source[both] == 1).mean() > 0.98


def test_feathering_blends_over_a_few_pixels_into_what_is_generated() -> None:
    covered = np.zeros((8, 12), bool)
    covered[:, :6] = True
    paint = np.ones_like(covered)
    w = keep_weights(covered, paint, feather=3)
    assert np.allclose(w[0, :6], [1, 1, 1, 0.75, 0.5, 0.25]) and not w[:, 6:].any()
    assert (keep_weights(np.ones_like(covered), paint) == 1).all()  # nothing new: kept exactly
    # pixels with nothing to paint are no seam
    assert (keep_weights(covered, covered) == covered).all()


def test_control_image_is_normalised_inverse_depth_near_white() -> None:
    depth = np.array([[1.0, 2.0], [4.0, np.nan]])
    c = control_image(depth)
    assert c.dtype == np.float32
    assert np.allclose(c, [[1.0, 0.5], [0.25, 0.0]])  # nothing is black; the farthest surface keeps its outline
    assert np.allclose(control_image(np.array([[2.0, 3.0], [6.0, 6.0]])), [[1.0, 0.5], [0.0, 0.0]])
    assert (control_image(np.full((2, 2), 3.0)) == 1).all()


# ---- the host's files ----

def _view_proto(cam: Camera, name: str = "Cam") -> Any:
    return cam.to_proto(name)


def test_depth_and_mask_files_in_each_format(tmp_path: Path) -> None:
    from inference_server.scene.exr import write_exr

    cam = camera(size=16)
    depth = render(cam, [OCCLUDER]).astype(np.float32)
    np.save(tmp_path / "d.npy", np.nan_to_num(depth, nan=0.0))
    g = read_view(_view_proto(cam), tmp_path / "d.npy", None)
    assert np.array_equal(g.paint, np.isfinite(depth)) and np.allclose(g.depth[g.paint], depth[g.paint])
    # a one-channel EXR named Z, as renderers write a depth pass (inf where there is nothing)
    import OpenEXR

    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                      {"Z": np.nan_to_num(depth, nan=np.inf)}) as f:
        f.write(str(tmp_path / "d.exr"))
    assert np.array_equal(read_view(_view_proto(cam), tmp_path / "d.exr", None).paint, g.paint)
    write_exr(tmp_path / "rgb.exr", np.repeat(np.nan_to_num(depth, nan=0.0)[..., None], 3, axis=2), half=False)
    assert np.array_equal(read_view(_view_proto(cam), tmp_path / "rgb.exr", None).paint, g.paint)  # R
    top = np.zeros((16, 16), np.uint8)
    top[:8] = 255
    Image.fromarray(top, "L").save(tmp_path / "m.png")
    np.save(tmp_path / "m.npy", top > 0)
    for mask in ("m.png", "m.npy"):
        assert np.array_equal(read_view(_view_proto(cam), tmp_path / "d.npy", tmp_path / mask).paint,
                              g.paint & (top > 0))


@pytest.mark.parametrize(("depth", "mask", "message"), [
    (np.ones((8, 16), np.float32), None, r"view 'Cam': the depth map is 16x8, the camera 16x16"),
    (np.ones((16, 16), np.int32), None, "holds int32, not floats"),
    (np.zeros((16, 16), np.float32), None, "no pixel with depth"),
    (np.full((16, 16), np.inf, np.float32), None, "no pixel with depth"),
    (np.array([[None]] * 16 * 16, dtype=object).reshape(16, 16), None, "cannot be read without pickle"),
    (np.ones((16, 16), np.float32), np.zeros((16, 16), np.uint8), "the mask covers no pixel with depth"),
    (np.ones((16, 16), np.float32), np.ones((16, 16), np.float32), "the mask holds float32"),
    (np.ones((16, 16), np.float32), np.ones((4, 4), np.uint8), "the mask is 4x4"),
])
def test_bad_depth_and_masks_name_the_view(tmp_path: Path, depth: np.ndarray, mask: np.ndarray | None,
                                           message: str) -> None:
    np.save(tmp_path / "d.npy", depth, allow_pickle=True)
    if mask is not None:
        np.save(tmp_path / "m.npy", mask)
    with pytest.raises(InvalidInput, match=message):
        read_view(_view_proto(camera(size=16)), tmp_path / "d.npy", tmp_path / "m.npy" if mask is not None else None)
    (tmp_path / "t.txt").write_text("depth")
    with pytest.raises(InvalidInput, match="not a .npy or an OpenEXR file"):
        read_view(_view_proto(camera(size=16)), tmp_path / "t.txt", None)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The tiny SD pipeline (in this process) and the folder with it, its depth ControlNet and an SD 2
    depth pipeline saved for the server."""
    root = tmp_path_factory.mktemp("project")
    pipe = tiny_sd_pipeline(root / "src")
    save_diffusers(pipe, root / "tiny-sd")
    tiny_controlnet(pipe, root / "tiny-depth-controlnet")
    save_diffusers(tiny_depth2img_pipeline(pipe), root / "tiny-sd2-depth")
    return root, pipe


def test_the_kept_region_follows_the_earlier_image_through_the_latents(models: tuple[Path, Any]) -> None:
    """The hook that keeps earlier views' latents: at the last step the kept latents are the encoded
    image exactly; before it they are that image noised to the next timestep; the rest is untouched."""
    import torch

    from inference_server.scene.project import _KeepKnown

    pipe = models[1]
    pipe.scheduler.set_timesteps(3)
    covered = np.zeros((SIZE, SIZE), bool)
    covered[:, :SIZE // 2] = True
    hook = _KeepKnown(colours(6), covered, seed=9)
    n = SIZE // pipe.vae_scale_factor
    latents = torch.randn(1, 4, n, n, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        last = hook(pipe, 2, latents)
        middle = hook(pipe, 0, latents)
        encoded = pipe.vae.encode(torch.from_numpy(colours(6)).permute(2, 0, 1)[None] * 2 - 1).latent_dist.mean
    encoded = encoded * pipe.vae.config.scaling_factor
    kept, new = slice(0, n // 2), slice(n // 2, n)
    assert torch.allclose(last[..., kept], encoded[..., kept], atol=1e-5)
    assert torch.equal(last[..., new], latents[..., new]) and torch.equal(middle[..., new], latents[..., new])
    noised = pipe.scheduler.add_noise(encoded, hook.noise, pipe.scheduler.timesteps[1:2])
    assert torch.allclose(middle[..., kept], noised[..., kept], atol=1e-5)


# ---- through the server ----

@pytest.fixture(scope="module")
def project_server(models: tuple[Path, Any]):
    root = models[0]
    (root / "keygrip.toml").write_text(f'[models.tiny]\npath = "{root / "tiny-sd"}"\n\n'
                                       f'[models.depthnet]\npath = "{root / "tiny-depth-controlnet"}"\n\n'
                                       f'[models.sd2depth]\npath = "{root / "tiny-sd2-depth"}"\n')
    srv = ServerProcess(root / "data", "--config", str(root / "keygrip.toml"), workers=1)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(project_server: ServerProcess):
    with keygrip.Client(project_server.address) as c:
        yield c


def _upload(client: keygrip.Client, folder: Path, name: str, cam: Camera, rects: list[tuple[float, ...]] | None = None,
            depth: np.ndarray | None = None) -> Any:
    """The view as a host sends it (View.upload); `depth` replaces the rendered one as given, unchecked."""
    if depth is None:
        return View(name, cam, np.nan_to_num(render(cam, rects or [BACKGROUND]), nan=0.0)).upload(client, folder)
    np.save(folder / f"{name}-raw.npy", depth.astype(np.float32))
    proto = cam.to_proto(name)
    proto.depth_artifact_id = client.upload(folder / f"{name}-raw.npy").id
    return proto


def _png(client: keygrip.Client, ref: Any) -> Image.Image:
    return Image.open(io.BytesIO(client.download_bytes(ref.id)))


def _run(job: Any) -> tuple[Any, list[bytes], list[tuple[float, float]]]:
    previews, denoise = [], []
    for ev in job.watch(timeout=120):
        if isinstance(ev, events.ProgressEvent) and ev.stage == "denoise":
            denoise.append((ev.value, ev.maximum))
            if ev.preview_png:
                previews.append(ev.preview_png)
    return job.result(), previews, denoise


@pytest.mark.parametrize(("model", "controlnet"), [("tiny", "depthnet"), ("sd2depth", "")])
def test_one_view_on_each_path(client: keygrip.Client, tmp_path: Path, model: str, controlnet: str) -> None:
    view = _upload(client, tmp_path, "Camera", camera(angle_deg=20.0), [BACKGROUND, OCCLUDER])
    result, previews, denoise = _run(client.project_texture(model, "mossy stone", [view], controlnet=controlnet,
                                                            seed=5, steps=2))
    assert denoise == [(1, 2), (2, 2)] and previews and all(p.startswith(b"\x89PNG") for p in previews)
    assert (result.model, result.controlnet, result.seed) == (model, controlnet, 5)
    assert len(result.model_hash) == 64 and len(result.controlnet_hash) == (64 if controlnet else 0)
    (v,) = result.views
    assert (v.name, v.width, v.height, v.seed) == ("Camera", SIZE, SIZE, 5)
    image = _png(client, v.image)
    assert image.size == (SIZE, SIZE) and image.mode == "RGB"
    assert image.text["keygrip:prompt"] == "mossy stone" and image.text["keygrip:view"] == "Camera"
    assert image.text["keygrip:depth"] == view.depth_artifact_id
    assert not np.asarray(_png(client, v.coverage)).any()  # the first view keeps nothing
    assert result.metadata["controlnet"] == controlnet and result.metadata["views"] == "1"
    if controlnet:  # the same request again: the same bytes (content-addressed, so the same artifact)
        again = client.project_texture(model, "mossy stone", [view], controlnet=controlnet, seed=5, steps=2).result()
        assert again.views[0].image.id == v.image.id


def test_two_views_keep_what_the_first_painted(client: keygrip.Client, tmp_path: Path) -> None:
    first = _upload(client, tmp_path, "A", camera())
    same = _upload(client, tmp_path, "B", camera())
    shifted = _upload(client, tmp_path, "C", camera(x=1.0))
    result, _, denoise = _run(client.project_texture("tiny", "bricks", [first, same, shifted], controlnet="depthnet",
                                                     seed=11, steps=2))
    assert [v.seed for v in result.views] == [11, 12, 13]
    assert denoise[-1] == (6, 6)
    a, b, c = (np.asarray(_png(client, v.image), dtype=np.int16) for v in result.views)
    cov_b, cov_c = (np.asarray(_png(client, v.coverage)) for v in result.views[1:])
    # an identical camera sees only painted surface: all of it kept, equal to the first image
    assert (cov_b == 255).all()
    assert np.abs(b - a).max() <= 1
    # a camera moved by half its view: the columns the first one saw are kept, the rest generated
    assert (cov_c[:, :32] == 255).all() and (cov_c[:, 32:] == 0).all()
    assert np.abs(c[:, :32 - 3] - a[:, 32:SIZE - 3]).max() <= 1  # up to the feather at the seam


def test_cancel_ends_within_a_step(client: keygrip.Client, tmp_path: Path) -> None:
    # At 2 x SIZE each step of the tiny model is slow enough that the job outlasts any delay of the cancel.
    view = _upload(client, tmp_path, "Big", camera(size=2 * SIZE))
    job = client.project_texture("tiny", "slow", [view], controlnet="depthnet", seed=1, steps=400)
    for ev in job.watch(timeout=120):
        if isinstance(ev, events.ProgressEvent) and ev.stage == "denoise" and ev.value >= 1:
            job.cancel()
            break
    job.wait(timeout=60)
    assert job.state == "cancelled"
    assert job.proto.progress.value < 400


def _bad(client: keygrip.Client, folder: Path, what: str) -> Any:
    ok = _upload(client, folder, "Cam", camera())
    if what == "no views":
        return client.project_texture("tiny", "x", [], controlnet="depthnet")
    if what == "wrong-size depth":
        return client.project_texture("tiny", "x", [_upload(client, folder, "Cam", camera(), depth=np.ones((32, 32)))],
                                      controlnet="depthnet").result()
    if what == "empty depth":
        empty = _upload(client, folder, "Cam", camera(), depth=np.zeros((SIZE, SIZE)))
        return client.project_texture("tiny", "x", [empty], controlnet="depthnet").result()
    if what == "non-rigid camera":
        ok.camera_to_world[0] = 2.0
        return client.project_texture("tiny", "x", [ok], controlnet="depthnet")
    if what == "size":
        ok.width = 60
        return client.project_texture("tiny", "x", [ok], controlnet="depthnet")
    model, controlnet = {"unknown controlnet": ("tiny", "nope"), "text model alone": ("tiny", ""),
                         "controlnet as the model": ("depthnet", ""), "depth model with a controlnet":
                         ("sd2depth", "depthnet"), "a text model as the controlnet": ("tiny", "tiny")}[what]
    return client.project_texture(model, "x", [ok], controlnet=controlnet)


@pytest.mark.parametrize(("what", "code", "words"), [
    ("no views", "INVALID_ARGUMENT", "no views: send at least one CameraView"),
    # checked in the worker, which reads the files: the job fails with the status
    ("wrong-size depth", "INVALID_ARGUMENT", "view 'Cam': the depth map is 32x32, the camera 64x64"),
    ("empty depth", "INVALID_ARGUMENT", "view 'Cam': the depth map has no pixel with depth"),
    ("non-rigid camera", "INVALID_ARGUMENT", "Cam: camera_to_world must be a rotation and a translation"),
    ("size", "INVALID_ARGUMENT", "view 'Cam': width 60 must be a positive multiple of 8: try 64"),
    ("unknown controlnet", "NOT_FOUND", "no model named 'nope'"),
    ("text model alone", "FAILED_PRECONDITION", "needs a depth ControlNet .* register one"),
    ("controlnet as the model", "FAILED_PRECONDITION", "'depthnet' is a ControlNet: give it as the controlnet"),
    ("depth model with a controlnet", "FAILED_PRECONDITION", "leave the controlnet empty"),
    ("a text model as the controlnet", "FAILED_PRECONDITION", "'tiny' is not a ControlNet"),
])
def test_clear_statuses(client: keygrip.Client, tmp_path: Path, what: str, code: str, words: str) -> None:
    with pytest.raises(keygrip.KeygripError, match=words) as caught:
        _bad(client, tmp_path, what)
    assert caught.value.code == code


def test_cli_generate_project(project_server: ServerProcess, tmp_path: Path) -> None:
    from inference_server.scene.exr import write_exr

    views = tmp_path / "shot"
    views.mkdir()
    a, b = camera(), camera(x=1.0)
    np.save(views / "a_depth.npy", np.nan_to_num(render(a, [BACKGROUND]), nan=0.0).astype(np.float32))
    write_exr(views / "b_depth.exr", np.repeat(render(b, [BACKGROUND])[..., None], 3, axis=2), half=False)
    Image.fromarray(np.full((SIZE, SIZE), 255, np.uint8), "L").save(views / "b_mask.png")
    nested: Callable[[Camera], list[list[float]]] = lambda cam: cam.camera_to_world.tolist()  # noqa: E731
    spec = [{"name": "Cam A", "width": SIZE, "height": SIZE, "focal_x": FOCAL, "focal_y": FOCAL, "center_x": 32,
             "center_y": 32, "camera_to_world": nested(a), "depth": "a_depth.npy"},
            {"name": "B", "width": SIZE, "height": SIZE, "focal_x": FOCAL, "focal_y": FOCAL, "center_x": 32,
             "center_y": 32, "camera_to_world": b.camera_to_world.reshape(-1).tolist(), "depth": "b_depth.exr",
             "mask": "b_mask.png"}]
    (views / "views.json").write_text(json.dumps({"views": spec}))
    out = tmp_path / "out" / "wall.png"
    out.parent.mkdir()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "keygrip.cli", "--address", project_server.address, "generate",
                               "project", "--model", "tiny", "--prompt", "plaster", "--steps", "1", "--seed", "3",
                               *args], capture_output=True, text=True, cwd=REPO, timeout=180, env={**os.environ})

    run = cli("--controlnet", "depthnet", "--views", str(views / "views.json"), "--out", str(out))
    assert run.returncode == 0, run.stderr
    for name in ("wall_Cam_A.png", "wall_B.png"):
        assert Image.open(out.parent / name).size == (SIZE, SIZE)
    assert "view B, 64x64, seed 4" in run.stdout and "with ControlNet depthnet" in run.stdout
    spec[1]["camera_to_world"] = [1, 2, 3]
    (views / "views.json").write_text(json.dumps(spec))
    bad = cli("--controlnet", "depthnet", "--views", str(views / "views.json"), "--out", str(out))
    assert bad.returncode == 1 and "view 'B'" in bad.stderr and "camera_to_world is a 4x4 matrix" in bad.stderr
