"""Image sequences as inputs, end to end through the real server: every spelling (plate.####.png,
plate.%04d.png, plate.$F4.png, a folder, the first frame), uploaded frame by frame or read from a
server path, with frame numbers kept (a plate from 1001) and gaps reported, not closed.

The plate is made here from the repository's clip: frames of pose2sim_cam01.mp4, downsized to
270x480, written as plate.1001.png ... plate.1036.png without 1004 and 1005.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import keygrip
from inference_server.motion.clip import FrameFlag
from inference_server.motion.wire import clip_from_proto
from keygrip.v1 import artifacts_pb2_grpc, common_pb2, media_pb2, media_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
CLIP = Path(__file__).parent / "data" / "video" / "pose2sim_cam01.mp4"
FIRST, LAST = 1001, 1036
GAP = (1004, 1005)  # inclusive: the numbers the plate skips
MISSING = [common_pb2.FrameRange(start=1004, end=1006)]


def _write_plate(folder: Path, numbers: list[int]) -> Path:
    """plate.<number>.png for each number: frame (number - FIRST) of the clip, 270x480."""
    from inference_server.media.video import iter_frames

    folder.mkdir(parents=True)
    wanted = set(numbers)
    for frame in iter_frames(CLIP, 0, LAST - FIRST + 1, max_side=480):
        if FIRST + frame.index in wanted:
            cv2.imwrite(str(folder / f"plate.{FIRST + frame.index}.png"),
                        cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    numbers = [n for n in range(FIRST, LAST + 1) if not GAP[0] <= n <= GAP[1]]
    return _write_plate(tmp_path_factory.mktemp("seq") / "plate", numbers)


def _spellings(folder: Path) -> dict[str, Path]:
    return {"hash": folder / "plate.####.png", "printf": folder / "plate.%04d.png",
            "houdini": folder / "plate.$F4.png", "folder": folder, "first frame": folder / f"plate.{FIRST}.png"}


def _check_probe(result: media_pb2.ProbeMediaResult) -> None:
    assert result.is_image_sequence and (result.width, result.height) == (270, 480)
    assert (result.first_frame, result.frame_count) == (FIRST, LAST - FIRST + 1)
    assert list(result.missing_frames) == MISSING
    assert result.sequence_pattern == "plate.####.png"


class CountingClient(keygrip.Client):
    """A client that counts the Upload streams it opens (a frame whose bytes it actually sends)."""

    uploads = 0

    @property
    def artifacts_stub(self) -> artifacts_pb2_grpc.ArtifactsStub:
        stub = super().artifacts_stub
        owner = self

        class Counting:
            def __getattr__(self, name: str) -> object:
                return getattr(stub, name)

            def Upload(self, chunks: object, **kwargs: object) -> object:  # noqa: N802 - the rpc's name
                owner.uploads += 1
                return stub.Upload(chunks, **kwargs)

        return Counting()  # type: ignore[return-value]  # the stub's calls, one of them counted


def test_probe_uploads_every_spelling(client: keygrip.Client, plate: Path) -> None:
    for spelling, source in _spellings(plate).items():
        result = client.probe(source).result(timeout=120)
        _check_probe(result)
        assert result.fps == pytest.approx(24.0), spelling


def test_server_paths_and_frame_ranges(server_factory, plate: Path, tmp_path: Path) -> None:
    srv = server_factory("--allowed-root", str(plate.parent), "--allowed-root", str(tmp_path / "root"))
    with keygrip.Client(srv.address) as c:
        for source in _spellings(plate).values():
            _check_probe(c.probe(source, server_path=True).result(timeout=120))
        with pytest.raises(keygrip.NotFound, match=r"pattern shot\.####\.png in the folder .*plate"):
            c.probe(plate / "shot.####.png", server_path=True)
        # A frame linked from outside the allowed roots is refused, though its folder is inside one.
        outside, linked = tmp_path / "outside", tmp_path / "root" / "linked"
        shutil.copytree(plate, outside)
        linked.mkdir(parents=True)
        for n in (1, 2, 3):
            (linked / f"shot.{n:04d}.png").symlink_to(outside / f"plate.{FIRST + n - 1}.png")
        with pytest.raises(keygrip.PermissionDenied, match="shot.0001.png"):
            c.probe(linked / "shot.####.png", server_path=True)
        # Frame ranges count the numbers on disk: [1003, 1010) is 1003 and 1006-1009, with 1004-1005 between.
        result = c.capture_motion(plate / "plate.%04d.png", server_path=True,
                                  start_frame=1003, end_frame=1010).result(timeout=300)
    assert (result.summary.first_frame, result.summary.frames) == (1003, 7)
    assert any("1004-1005" in w for w in result.warnings)


def test_capture_keeps_numbers_and_fills_the_gap(client: keygrip.Client, plate: Path) -> None:
    result = client.capture_motion(plate / "plate.$F4.png", fps_override=30).result(timeout=300)
    s = result.summary
    assert (s.first_frame, s.frames) == (FIRST, LAST - FIRST + 1)
    clip = clip_from_proto(client.read_clip(result.clip))
    assert clip.metadata["first_frame"] == str(FIRST) and clip.metadata["source"] == "plate.####.png"
    # One frame per number from the first to the last, timed from the first at the asked rate.
    assert clip.num_frames == LAST - FIRST + 1
    assert clip.times == pytest.approx(np.arange(clip.num_frames) / 30.0)
    gap = [n - FIRST for n in range(GAP[0], GAP[1] + 1)]
    assert set(clip.frame_flags[gap].tolist()) <= {FrameFlag.INTERPOLATED, FrameFlag.MISSING}
    assert s.interpolated_frames + s.missing_frames >= len(gap)
    assert np.all(np.isfinite(clip.rotations))
    (warning,) = [w for w in result.warnings if "missing on disk" in w]
    assert "plate.####.png" in warning and "1004-1005" in warning and "2 frames" in warning


def test_a_second_upload_sends_no_frame_again(shared_server, plate: Path, tmp_path: Path) -> None:
    # Frames of their own (noise), so that no other test has put them on the server before.
    folder = tmp_path / "noise"
    folder.mkdir()
    rng = np.random.default_rng()
    for n in range(1, 6):
        cv2.imwrite(str(folder / f"noise_{n:03d}.png"), rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    total = sum(p.stat().st_size for p in folder.iterdir())
    with CountingClient(shared_server.address) as c:
        seen: list[tuple[int, int]] = []
        first = c.media_input(folder / "noise_%03d.png", progress=lambda done, all_: seen.append((done, all_)))
        assert c.uploads == 5 and first.sequence.pattern == "noise_###.png"
        assert [f.number for f in first.sequence.frames] == [1, 2, 3, 4, 5]
        assert seen[-1] == (total, total) and all(a <= b for (a, _), (b, _) in zip(seen, seen[1:], strict=False))
        assert {t for _, t in seen} == {total}
        again = c.media_input(folder)
        assert c.uploads == 5 and again == first
        # One frame changed: only that one is sent.
        cv2.imwrite(str(folder / "noise_003.png"), np.zeros((32, 48, 3), np.uint8))
        third = c.media_input(folder / "noise_001.png")
        assert c.uploads == 6 and third.sequence.frames[2].artifact_id != first.sequence.frames[2].artifact_id
        assert c.probe(third).result(timeout=120).frame_count == 5


def test_clear_errors(client: keygrip.Client, plate: Path, tmp_path: Path) -> None:
    with pytest.raises(keygrip.NotFound, match=r"pattern take\.####\.png in the folder .*plate"):
        client.probe(plate / "take.####.png")
    # A frame listed by a sequence but never uploaded is named at submit time.
    missing = common_pb2.MediaInput(sequence=common_pb2.ImageSequence(pattern="plate.####.png", frames=[
        common_pb2.SequenceFrame(number=1001, artifact_id="0" * 64)]))
    with pytest.raises(keygrip.NotFound, match=r"frame 1001 \(plate\.1001\.png\)"):
        client.call(client.stub(media_pb2_grpc.MediaStub).ProbeMedia, media_pb2.ProbeMediaRequest(input=missing))
    # A range of numbers the plate does not have.
    with pytest.raises(keygrip.JobFailed, match=r"frame range 1004-1006 holds no frame.*1001-1036"):
        client.capture_motion(plate / "plate.####.png", start_frame=1004, end_frame=1006).result(timeout=120)
    # A damaged frame: capture fails on it with INVALID_ARGUMENT naming the file.
    broken = tmp_path / "broken"
    shutil.copytree(plate, broken)
    (broken / "plate.1010.png").write_bytes(b"this is not a PNG")
    with pytest.raises(keygrip.JobFailed, match=r"plate\.1010\.png") as info:
        client.capture_motion(broken / "plate.####.png").result(timeout=300)
    assert info.value.code == "INVALID_ARGUMENT"
    (broken / "plate.1001.png").write_bytes(b"")
    with pytest.raises(keygrip.JobFailed, match=r"plate\.1001\.png") as info:
        client.probe(broken).result(timeout=120)
    assert info.value.code == "INVALID_ARGUMENT"


def _keygrip(address: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keygrip.cli", "--address", address, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_cli_on_a_pattern(shared_server, plate: Path, tmp_path: Path) -> None:
    out = _keygrip(shared_server.address, "probe", str(plate / "plate.####.png"))
    assert out.returncode == 0, out.stderr
    assert "plate.####.png frames 1001-1036, missing 1004-1005" in out.stdout
    out = _keygrip(shared_server.address, "--json", "probe", str(plate))
    assert json.loads(out.stdout)["first_frame"] == "1001"  # int64 is a string in proto3 JSON
    bvh = tmp_path / "plate.bvh"
    out = _keygrip(shared_server.address, "mocap", str(plate / "plate.%04d.png"), "--end", "1012", "--out", str(bvh))
    assert out.returncode == 0, out.stderr
    assert "plate.####.png frames 1001-1036, missing 1004-1005" in out.stdout
    assert "captured 11 frames 1001-1011" in out.stdout and "warning: plate.####.png: 2 frames missing" in out.stdout
    assert bvh.read_text().startswith("HIERARCHY")
    out = _keygrip(shared_server.address, "mocap", str(plate / "take.####.png"), "--out", str(bvh))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "no file matches the pattern take.####.png in the folder" in out.stderr
