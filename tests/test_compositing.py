"""Compositing through the real server: mattes from real MediaPipe on real footage, clean plates and
depth from a tiny random-weight Depth Anything built here, as EXR sequences numbered like the plate."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from server_process import ServerProcess

import keygrip
from keygrip.v1 import compositing_pb2

DATA = Path(__file__).parent / "data"
VIDEO = DATA / "video" / "pose2sim_cam01.mp4"  # 1080x1920, 100 frames, one man balancing


def _frames(start: int, count: int, width: int = 180) -> list[np.ndarray]:
    """RGB frames of the test video, downsized to `width` pixels across (the plate stays small)."""
    from inference_server.media.video import iter_frames

    out = []
    for f in iter_frames(VIDEO, start, start + count):
        h, w = f.image.shape[:2]
        out.append(cv2.resize(f.image, (width, round(h * width / w)), interpolation=cv2.INTER_AREA))
    return out


def _write_sequence(folder: Path, images: dict[int, np.ndarray], stem: str = "plate") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n, rgb in images.items():
        cv2.imwrite(str(folder / f"{stem}.{n}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder / f"{stem}.{min(images)}.png"  # a sequence named by its first frame


def _channels(path: Path) -> dict[str, np.ndarray]:
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {name: np.asarray(c.pixels, dtype=np.float32) for name, c in f.channels().items()}


def _exr_header(path: Path) -> dict[str, str]:
    from inference_server.scene.exr import read_exr_metadata

    return read_exr_metadata(path)


def test_matte_of_a_video_is_numbered_like_it_with_settings_in_metadata(client: keygrip.Client, tmp_path: Path
                                                                         ) -> None:
    job = client.matte(VIDEO, start_frame=40, end_frame=43, working_size=256, preview=True)
    result = job.result()
    seq = result.matte
    assert seq.pattern == "matte.####.exr" and seq.channels == "A"
    assert [f.number for f in seq.frames] == [40, 41, 42] and (seq.width, seq.height) == (1080, 1920)
    path = client.download(seq.frames[0].image.id, tmp_path / seq.frames[0].image.name)
    assert path.name == "matte.0040.exr"
    channels = _channels(path)
    assert list(channels) == ["A"] and channels["A"].shape == (1920, 1080)
    alpha = channels["A"]
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    assert 0.02 < (alpha > 0.5).mean() < 0.5  # one man, full body, in a lab
    head = _exr_header(path)
    assert head["matte_refine"] == "fast_guided_filter" and head["matte_stabilize"] == "dis_flow_blend"
    assert head["frame"] == "40" and head["matte_working_size"] == "256"
    assert head["matte_mirror"] == "alternate, paired along the flow"
    assert head["matte_band_matting"].startswith("closed_form band 1 px")
    assert result.preview.size > 0 and result.processing_fps > 0
    # Each stage can be switched off, and says so; the bare matte differs from the refined one.
    bare = client.matte(VIDEO, start_frame=40, end_frame=41, working_size=256, refine=False, stabilize=False,
                        mirror=False, band_matting=False).result()
    bare_path = client.download(bare.matte.frames[0].image.id, tmp_path / "bare.exr")
    assert _exr_header(bare_path)["matte_refine"] == "off" and bare.matte.metadata["matte_stabilize"] == "off"
    assert bare.matte.metadata["matte_mirror"] == "off" and bare.matte.metadata["matte_band_matting"] == "off"
    assert np.abs(_channels(bare_path)["A"] - alpha).mean() > 1e-3


def test_band_matting_moves_a_blurred_matte_onto_the_colour_edge() -> None:
    """A disc of one colour over noisy ground of another, its matte blurred and shifted as a
    segmenter's would be: the solve on the band brings the matte closer to the true alpha, and
    leaves pixels far from the edge alone."""
    from inference_server.compositing.band_matting import band_matting
    from inference_server.compositing.options import BAND_MATTING

    rng = np.random.default_rng(3)
    h, w = 96, 128
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    truth = np.clip(30.5 - np.hypot(yy - 48, xx - 64), 0.0, 1.0)  # anti-aliased disc, radius 30 px
    fg = np.array([200.0, 60.0, 40.0], np.float32)
    bg = np.array([40.0, 120.0, 70.0], np.float32) + rng.normal(0.0, 6.0, (h, w, 3)).astype(np.float32)
    rgb = np.clip(truth[..., None] * fg + (1.0 - truth[..., None]) * bg, 0, 255).astype(np.uint8)
    coarse = cv2.GaussianBlur(np.clip(32.5 - np.hypot(yy - 49, xx - 65), 0.0, 1.0), (0, 0), 2.0)
    refined = band_matting(rgb, coarse, BAND_MATTING)
    assert refined.shape == coarse.shape and refined.dtype == np.float32
    assert np.abs(refined - truth).mean() < 0.6 * np.abs(coarse - truth).mean()
    far = cv2.dilate(((coarse > 0.01) & (coarse < 0.99)).astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    assert np.array_equal(refined[far], coarse[far])
    # Nothing to solve where the matte has no transition.
    empty = np.zeros((h, w), np.float32)
    assert np.array_equal(band_matting(rgb, empty, BAND_MATTING), empty)


def test_stabilised_chain_segments_once_a_frame_alternating_the_mirror() -> None:
    """With stabilisation on, mirror averaging costs one segmenter call a frame (the mirrored view on
    every other frame); without the flow, both views every frame; either way the mirror changes the
    matte."""
    from inference_server.compositing.matte import MatteChain, Segmenter
    from inference_server.compositing.options import MatteOptions

    frames = _frames(40, 4, width=270)
    seg = Segmenter()
    calls: list[bool] = []  # whether each call saw the mirror image (a flipped view of the frame)

    class Counting:
        def __call__(self, rgb: np.ndarray) -> np.ndarray:
            calls.append(bool(rgb.strides[1] < 0))
            return seg(rgb)

        def close(self) -> None:
            pass

    try:
        def run(**options: bool) -> list[np.ndarray]:
            calls.clear()
            chain = MatteChain(MatteOptions(**options), Counting())
            try:
                return [chain(f) for f in frames]
            finally:
                chain.close()

        alternating = run()
        assert calls == [False, True, False, True]
        plain = run(mirror=False)
        assert calls == [False] * 4
        assert max(float(np.abs(a - b).max()) for a, b in zip(alternating[1:], plain[1:], strict=True)) > 0.05
        run(stabilize=False)
        assert len(calls) == 8 and sum(calls) == 4
    finally:
        seg.close()


def test_sequence_keeps_numbers_across_a_gap_premultiplied_rgba(client: keygrip.Client, tmp_path: Path) -> None:
    frames = _frames(30, 6)
    numbers = [1001, 1002, 1004, 1005, 1006]  # 1003 missing on disk
    pattern = _write_sequence(tmp_path / "plate", {n: frames[n - 1001] for n in numbers})
    result = client.matte(pattern, premultiplied_rgba=True, working_size=128).result()
    assert [f.number for f in result.matte.frames] == numbers
    assert result.matte.pattern == "matte.####.exr" and result.matte.channels == "RGBA"
    assert any("1003" in w and "missing" in w for w in result.warnings)
    path = client.download(result.matte.frames[2].image.id, tmp_path / result.matte.frames[2].image.name)
    assert path.name == "matte.1004.exr"
    ch = _channels(path)
    assert set(ch) == {"R", "G", "B", "A"}
    from inference_server.scene.exr import srgb_to_linear

    linear = srgb_to_linear(frames[3].astype(np.float32) / 255.0)
    # Premultiplied: the plate's linear colour times the matte (half floats: 1e-3 relative).
    np.testing.assert_allclose(ch["G"], linear[..., 1] * ch["A"], atol=2e-3)
    # A range in the plate's numbers: 1004-1005 only.
    part = client.matte(pattern, start_frame=1004, end_frame=1006, working_size=128).result()
    assert [f.number for f in part.matte.frames] == [1004, 1005] and not part.warnings


def test_plate_with_nobody_gives_empty_mattes_not_an_error(client: keygrip.Client, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (120, 160, 3)).astype(np.uint8), (0, 0), 6)
    pattern = _write_sequence(tmp_path / "empty", {n: np.roll(base, n, axis=1) for n in range(1, 4)})
    result = client.matte(pattern, format=compositing_pb2.OUTPUT_FORMAT_PNG16).result()
    assert [f.number for f in result.matte.frames] == [1, 2, 3] and result.matte.pattern == "matte.#.png"
    assert any("nobody was found in 3 of 3 frames" in w for w in result.warnings)
    png = cv2.imread(str(client.download(result.matte.frames[0].image.id, tmp_path / "m.png")), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and png.shape == (120, 160) and png.max() < 32768


def test_bad_plates_fail_naming_the_file(client: keygrip.Client, tmp_path: Path) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("this is not a video\n" * 50)
    with pytest.raises(keygrip.JobFailed, match="notes.mp4: not a readable video"):
        client.matte(notes).result()
    frames = _frames(10, 3)
    odd = {1: frames[0], 2: frames[1], 3: cv2.resize(frames[2], (100, 100))}
    with pytest.raises(keygrip.JobFailed, match=r"plate\.3\.png is 100x100 pixels but plate\.1\.png is 180x320"):
        client.matte(_write_sequence(tmp_path / "odd", odd), working_size=128).result()
    with pytest.raises(keygrip.JobFailed, match=r"frame range 500-510 holds no frame: .* has 100 frames \(0-99\)"):
        client.matte(VIDEO, start_frame=500, end_frame=510).result()
    with pytest.raises(keygrip.InvalidArgument, match="settings.temporal_weight must lie in 0..0.95"):
        client.matte(VIDEO, temporal_weight=2.0)
    with pytest.raises(keygrip.InvalidArgument, match="frame_range"):
        client.matte(VIDEO, start_frame=10, end_frame=5)


def test_depth_without_a_depth_model_says_how_to_add_one(client: keygrip.Client) -> None:
    with pytest.raises(keygrip.FailedPrecondition, match=r"no depth model .*keygrip models add"):
        client.depth(VIDEO, start_frame=0, end_frame=2)


def test_clean_plate_of_a_locked_off_shot(client: keygrip.Client, tmp_path: Path) -> None:
    """A person (cut out of real footage) walks across a static background: the median over the
    frames where each pixel is uncovered gives the background back."""
    person = _frames(40, 1, width=90)[0]
    from inference_server.compositing.matte import Segmenter

    seg = Segmenter()
    alpha = (seg(person) > 0.5).astype(np.float32)[..., None]
    seg.close()
    rng = np.random.default_rng(5)
    bg = cv2.GaussianBlur(rng.uniform(0, 255, (200, 320, 3)).astype(np.uint8), (0, 0), 3)
    ph, pw = person.shape[:2]
    covered = []
    images = {}
    for k in range(8):
        img = bg.astype(np.float32).copy()
        x, y = 10 + 30 * k, 200 - ph
        region = img[y:y + ph, x:x + pw]
        img[y:y + ph, x:x + pw] = region * (1 - alpha) + person * alpha
        mask = np.zeros(bg.shape[:2], bool)
        mask[y:y + ph, x:x + pw] = alpha[..., 0] > 0
        covered.append(mask)
        images[101 + k] = np.clip(img, 0, 255).astype(np.uint8)
    pattern = _write_sequence(tmp_path / "walk", images)
    result = client.clean_plate(pattern, register=False, dilate=6, preview=True).result()
    assert result.reference_frame == 105 and (result.width, result.height) == (320, 200)
    from inference_server.scene.exr import read_exr

    plate = read_exr(client.download(result.plate.id, tmp_path / "plate.exr"))
    unseen = cv2.imread(str(client.download(result.coverage.id, tmp_path / "cov.png")), cv2.IMREAD_GRAYSCALE) > 0
    never = np.logical_and.reduce(covered)
    assert unseen.mean() == pytest.approx(result.unseen_fraction, abs=1e-6)
    assert not (never & ~unseen).any()  # the map holds every pixel the person always covered
    assert unseen.mean() < 0.05
    from inference_server.scene.exr import srgb_to_linear

    truth = srgb_to_linear(bg.astype(np.float32) / 255.0)
    err = ((plate - truth)[~unseen] ** 2).mean()
    assert 10 * np.log10(1.0 / err) >= 35.0
    assert result.preview.size > 0 and result.metadata["register"] == "off"


@pytest.fixture(scope="module")
def depth_client(tmp_path_factory: pytest.TempPathFactory):
    """A server with a tiny random-weight Depth Anything registered in its TOML."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    root = tmp_path_factory.mktemp("depth")
    torch.manual_seed(0)
    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
                            patch_size=14, image_size=70, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 8, 16, 16],
                                 fusion_hidden_size=8, head_hidden_size=8, patch_size=14)
    model = DepthAnythingForDepthEstimation(config)
    for folder, license in (("tiny-depth", "apache-2.0"), ("nc-depth", "cc-by-nc-4.0")):
        model.save_pretrained(root / folder)
        # The licence a model card declares, as Hugging Face cards do.
        (root / folder / "README.md").write_text(f"---\nlicense: {license}\n---\n# a depth model\n")
    toml = root / "keygrip.toml"
    toml.write_text(f'[models.tiny-depth]\npath = "{root / "tiny-depth"}"\n\n'
                    f'[models.nc-depth]\npath = "{root / "nc-depth"}"\n')
    srv = ServerProcess(root / "data", "--config", str(toml), workers=1)
    srv.start()
    with keygrip.Client(srv.address) as c:
        yield c
    srv.stop()


def test_depth_from_a_registered_model(depth_client: keygrip.Client, tmp_path: Path) -> None:
    info = depth_client.info()
    model = next(m for m in info.models if m.name == "tiny-depth")
    assert model.family == "depth_estimator" and "compositing.depth" in model.capabilities
    pattern = _write_sequence(tmp_path / "plate", dict(zip((11, 12, 13), _frames(50, 3), strict=True)))
    result = depth_client.depth(pattern, working_size=112).result()
    assert [f.number for f in result.depth.frames] == [11, 12, 13] and result.depth.pattern == "depth.##.exr"
    assert result.model == "tiny-depth" and result.near <= result.far
    path = depth_client.download(result.depth.frames[1].image.id, tmp_path / "depth.12.exr")
    ch = _channels(path)
    assert list(ch) == ["Z"] and ch["Z"].shape == (320, 180) and np.isfinite(ch["Z"]).all()
    head = _exr_header(path)
    assert head["model"] == "tiny-depth" and len(head["model_hash"]) == 64 and head["model_license"] == "apache-2.0"
    assert result.depth.metadata["near"] == f"{result.near:g}" and head["depth_stabilize"] != "off"
    with pytest.raises(keygrip.NotFound, match="no model named 'other'"):
        depth_client.depth(pattern, model="other")
    # A non-commercial model needs an explicit opt-in: listed with the reason, refused when named.
    nc = next(m for m in info.models if m.name == "nc-depth")
    assert not nc.capabilities and "cc-by-nc-4.0" in nc.reason and "allow_restricted_license" in nc.reason
    with pytest.raises(keygrip.FailedPrecondition, match="licence is cc-by-nc-4.0"):
        depth_client.depth(pattern, model="nc-depth")


def test_cli_matte_and_cleanplate_write_files_numbered_like_the_plate(shared_server: ServerProcess, tmp_path: Path
                                                                      ) -> None:
    import subprocess
    import sys

    from keygrip.compositing import parse_range

    assert parse_range("1001-1100") == (1001, 1101) and parse_range("1001-") == (1001, 0)
    with pytest.raises(ValueError, match="FIRST-LAST"):
        parse_range("a-b")
    pattern = _write_sequence(tmp_path / "plate", dict(zip(range(1001, 1005), _frames(60, 4), strict=True)))
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "keygrip.cli", "--address", shared_server.address, "matte",
                          str(pattern), "--out", str(out), "--range", "1002-1003", "--no-stabilize"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["matte.1002.exr", "matte.1003.exr"]
    assert f"wrote 2 frames 1002-1003: {out / 'matte.####.exr'}" in run.stdout
    assert _exr_header(out / "matte.1002.exr")["matte_stabilize"] == "off"
    run = subprocess.run([sys.executable, "-m", "keygrip.cli", "--address", shared_server.address, "cleanplate",
                          str(pattern), "--out", str(out), "--locked-off", "--reference", "1002", "--preview"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert {"cleanplate.1002.exr", "coverage.1002.png", "cleanplate_preview.png"} <= {p.name for p in out.iterdir()}
    run = subprocess.run([sys.executable, "-m", "keygrip.cli", "--address", shared_server.address, "matte",
                          str(pattern), "--out", str(out), "--range", "2001-2005"], capture_output=True, text=True,
                         timeout=120)
    # Found before anything is uploaded: only the range's frames would be sent, and there are none.
    assert run.returncode == 1 and "frame range 2001-2005 holds no frame of" in run.stderr
    assert "plate.####.png frames 1001-1004" in run.stderr


def test_depth_estimator_family_and_licence_opt_in(tmp_path: Path) -> None:
    import json

    from inference_server.models.registry import inspect_entry

    folder = tmp_path / "da-large"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["DepthAnythingForDepthEstimation"],
                                                    "model_type": "depth_anything"}))
    (folder / "README.md").write_text("---\nlicense: cc-by-nc-4.0\npipeline_tag: depth-estimation\n---\n")
    refused = inspect_entry("large", {"path": str(folder)})
    assert refused.family == "depth_estimator" and not refused.available and refused.license == "cc-by-nc-4.0"
    allowed = inspect_entry("large", {"path": str(folder), "allow_restricted_license": True})
    assert allowed.available and allowed.capabilities == ("compositing.depth",) and allowed.format == "transformers"
    # The TOML may say what a card does not.
    (folder / "README.md").unlink()
    assert not inspect_entry("large", {"path": str(folder), "license": "GPL-3.0"}).available


def test_cancel_stops_a_matte_at_the_next_frame(client: keygrip.Client) -> None:
    from keygrip import events

    job = client.matte(VIDEO, working_size=256)  # 100 full-size frames: long enough to outlast the cancel
    for ev in job.watch():
        if isinstance(ev, events.ProgressEvent) and ev.stage == "matte" and ev.fraction > 0:
            job.cancel()
            break
    job.wait(timeout=60)
    assert job.state == "cancelled" and job.proto.progress.value < 100
    with pytest.raises(keygrip.JobCancelled):
        job.result()
