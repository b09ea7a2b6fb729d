"""The host-neutral compositing client (keygrip.plates, keygrip.compositing) against the real server over
real gRPC, on image sequences written here from the bundled video: only the working range goes up (the
handles stay home), uploads are deduplicated and resume where they broke off, results land in a
destination pattern with the plate's own numbers, and a running pass cancels."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from server_process import ServerProcess

import keygrip
from keygrip import errors
from keygrip.client import CHUNK_BYTES, known_sha256
from keygrip.compositing import PassPlan, default_destination, download_result, steps
from keygrip.plates import FrameRange, Plate
from keygrip.sequences import SequenceError
from keygrip.session import Connection, MainQueue, Session

VIDEO = Path(__file__).parent / "data" / "video" / "pose2sim_cam01.mp4"  # 1080x1920, 100 frames, one man


def _video_frames(start: int, count: int, width: int | None = 120) -> list[np.ndarray]:
    """BGR frames of the test video, downsized to `width` pixels across (None: full size)."""
    from inference_server.media.video import iter_frames

    out = []
    for f in iter_frames(VIDEO, start, start + count):
        img = f.image if width is None else cv2.resize(
            f.image, (width, round(f.image.shape[0] * width / f.image.shape[1])), interpolation=cv2.INTER_AREA)
        out.append(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return out


def _plate(folder: Path, first: int, frames: list[np.ndarray], grain: int = 0) -> Path:
    """plate.NNNN.png from `first` on. grain: noise of that many levels added (frames no other test sent)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng()
    for i, img in enumerate(frames):
        if grain:
            img = np.clip(img.astype(np.int32) + rng.integers(0, grain, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"plate.{first + i:04d}.png"), img)
    return folder / "plate.####.png"


def test_working_range_is_sent_and_lands_in_a_destination_pattern(client: keygrip.Client, tmp_path: Path) -> None:
    plate = Plate.find(_plate(tmp_path / "shot010", 1001, _video_frames(40, 8), grain=4), handles=2)
    assert (plate.range, plate.working, plate.padding) == (FrameRange(1001, 1008), FrameRange(1003, 1006), 4)
    dest = str(tmp_path / "out" / "shot010_matte.%04d.exr")  # Nuke's printf spelling
    plan = PassPlan.for_plate("matte", plate, destination=dest, settings={"working_size": 128})
    assert plan.frame_range == (1003, 1007) and plan.out_dir == tmp_path / "out"
    assert plan.title == "matte plate.####.png"
    sent: list[tuple[int, int]] = []
    upload = plan.upload(client, progress=lambda done, total: sent.append((done, total)))
    assert upload.frames is not None
    # The handles stay on the artist's disk: four frames go up, numbered as on disk.
    assert [f.number for f in upload.frames.sequence.frames] == [1003, 1004, 1005, 1006]
    assert upload.frames.sent_frames == [1003, 1004, 1005, 1006] and not upload.frames.skipped_frames
    working_bytes = sum(plate.sequence.path(n).stat().st_size for n in range(1003, 1007))
    assert upload.frames.sent_bytes == upload.frames.total_bytes == working_bytes
    assert sent[-1] == (working_bytes, working_bytes)
    result = plan.submit(client, upload.media_input).result(timeout=120)
    assert [f.number for f in result.matte.frames] == [1003, 1004, 1005, 1006]
    files = download_result(client, result, plan.out_dir, destination=plan.destination)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"shot010_matte.{n}.exr" for n in range(1003, 1007)]
    assert files.downloaded == [1003, 1004, 1005, 1006] and files.frame_range == FrameRange(1003, 1006)
    assert files.pattern == str(tmp_path / "out" / "shot010_matte.####.exr")
    assert files.pattern_as("printf") == dest
    for frame in result.matte.frames:  # each file is the server's frame of that number
        assert hashlib.sha256(files.frames[frame.number].read_bytes()).hexdigest() == frame.image.id
    # Downloading again fetches only what is not there already.
    files.frames[1005].unlink()
    again = download_result(client, result, plan.out_dir, destination=plan.destination)
    assert again.downloaded == [1005] and again.frames[1005].is_file()
    # Another file under a frame's name is replaced: one of the same size (hashed, as this process never
    # saw it), one of another size (replaced unread).
    same_size = files.frames[1003].with_name("other.exr")
    data = bytearray(files.frames[1003].read_bytes())
    data[-1] ^= 0xFF
    same_size.write_bytes(bytes(data))
    os.replace(same_size, files.frames[1003])
    files.frames[1004].write_bytes(b"not a matte")
    again = download_result(client, result, plan.out_dir, destination=plan.destination)
    assert again.downloaded == [1003, 1004]
    for frame in result.matte.frames:
        assert hashlib.sha256(again.frames[frame.number].read_bytes()).hexdigest() == frame.image.id
    # The graph a host builds: the plate's working range beside the matte sequence, both numbered alike.
    graph = files.graph("matte", plate.path)
    assert graph.by_role("matte").settings == {"path": files.pattern, "first": 1003, "last": 1006,
                                               "colorspace": "raw", "role": "matte"}
    assert (graph.by_role("plate").settings["first"], graph.by_role("plate").settings["last"]) == (1003, 1006)
    # With the handles asked for, the whole plate goes; the four already sent are not sent again.
    full = PassPlan.for_plate("matte", plate, destination=dest, handles=True).upload(client)
    assert full.frames is not None and full.frames.skipped_frames == [1003, 1004, 1005, 1006]
    assert full.frames.sent_frames == [1001, 1002, 1007, 1008]


def test_a_file_is_hashed_again_only_when_its_size_time_or_inode_changed(tmp_path: Path) -> None:
    frame = tmp_path / "matte.1001.exr"
    frame.write_bytes(b"a" * 100)
    first = known_sha256(frame)
    assert first == hashlib.sha256(b"a" * 100).hexdigest()
    # Rewritten in place with its size and time put back: taken as the file already hashed (not read).
    st = frame.stat()
    frame.write_bytes(b"b" * 100)
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert known_sha256(frame) == first
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a new time: read again
    assert known_sha256(frame) == hashlib.sha256(b"b" * 100).hexdigest()


def test_a_second_upload_sends_nothing_and_a_broken_one_resumes(client: keygrip.Client, tmp_path: Path) -> None:
    # Full-size 16-bit frames with grain (what a scan looks like), each bigger than one 2 MiB chunk.
    folder = tmp_path / "scan"
    folder.mkdir()
    rng = np.random.default_rng()
    for i, img in enumerate(_video_frames(20, 3, width=None)):
        cv2.imwrite(str(folder / f"scan_{101 + i}.png"), img.astype(np.uint16) * 257 + rng.integers(0, 256, img.shape,
                                                                                                     dtype=np.uint16))
    plate = Plate.find(folder / "scan_$F.png")
    sizes = {n: p.stat().st_size for n, p in plate.sequence.paths()}
    assert min(sizes.values()) > CHUNK_BYTES

    class CableCut(Exception):
        pass

    def cut_in_frame_102(done: int, total: int) -> None:
        if done > sizes[101]:  # the first chunk of frame 102 has been handed to the stream
            raise CableCut

    with pytest.raises(CableCut):
        client.upload_frames(plate.sequence, progress=cut_in_frame_102)
    # Run again: frame 101 is on the server, 102 resumes after its first chunk, 103 goes whole.
    report = client.upload_frames(plate.sequence)
    assert report.skipped_frames == [101] and report.sent_frames == [102, 103]
    assert report.sent_bytes == sizes[102] - CHUNK_BYTES + sizes[103]
    for frame in report.sequence.frames:
        assert frame.artifact_id == hashlib.sha256(plate.sequence.path(frame.number).read_bytes()).hexdigest()
    # And once more: nothing at all is sent.
    again = client.upload_frames(plate.sequence)
    assert again.sent_bytes == 0 and again.sent_frames == [] and again.skipped_frames == [101, 102, 103]
    assert again.sequence == report.sequence


def test_a_session_cancels_the_running_pass(shared_server: ServerProcess, tmp_path: Path) -> None:
    """steps() in a Session, as Blender and Nuke run it: Cancel while the matte runs cancels the server job
    and writes nothing into the host."""
    plan = PassPlan("matte", VIDEO, tmp_path / "out", settings={"working_size": 256})  # 100 frames: outlasts it
    written: list[object] = []

    def connect(_report) -> Connection:
        c = keygrip.Client(shared_server.address)
        return Connection(c, c.info(), shared_server.address)

    def on_progress(s: Session) -> None:
        if s.progress.stage.startswith("matte: matte") and s.progress.fraction > 0:
            s.cancel()

    session = Session(plan.title, steps(plan, write=written.append), connect, on_progress=on_progress)
    main = MainQueue()
    session.start(main)
    while session.busy:
        main.run_pending(wait=0.1)
    session.join(30)
    assert session.state == "cancelled" and written == []
    with keygrip.Client(shared_server.address) as c:
        job = c.get_job(session.job_ids[-1]).wait(timeout=60)
        assert job.state == "cancelled" and job.proto.progress.value < 100
        with pytest.raises(errors.JobCancelled):
            job.result()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_plan_errors_name_what_to_change(tmp_path: Path) -> None:
    plate = Plate.find(_plate(tmp_path / "p", 1001, _video_frames(0, 3)))
    with pytest.raises(ValueError, match=r"frame range 990-1002 is not inside plate\.####\.png \(frames 1001-1003\)"):
        PassPlan.for_plate("matte", plate, destination=str(tmp_path / "m.####.exr"), frames=FrameRange(990, 1002))
    with pytest.raises(ValueError, match=r"does not end in \.exr, which the exr-half format writes"):
        PassPlan.for_plate("matte", plate, destination=str(tmp_path / "m.####.png"))
    with pytest.raises(SequenceError, match=r"put the frame number in the name as ####"):
        PassPlan.for_plate("depth", plate, destination=str(tmp_path / "depth.exr"))
    assert default_destination(plate, "depth", tmp_path, style="houdini") == str(tmp_path / "plate_depth.$F4.exr")


def test_a_clean_plate_lands_at_its_reference_frame_in_the_destination(client: keygrip.Client, tmp_path: Path
                                                                       ) -> None:
    plate = Plate.find(_plate(tmp_path / "shot020", 1001, _video_frames(60, 5), grain=4), handles=1)
    dest = str(tmp_path / "comp" / "shot020_clean.####.exr")
    plan = PassPlan.for_plate("cleanplate", plate, destination=dest, settings={"register": False})
    files = download_result(client, plan.start(client).result(timeout=120), plan.out_dir, destination=dest)
    assert files.metadata["reference_frame"] == "1003"  # the middle of the working range 1002-1004
    assert files.files[0] == tmp_path / "comp" / "shot020_clean.1003.exr" and files.files[0].is_file()
    assert (tmp_path / "comp" / "coverage.1003.png").is_file()
    read = files.graph("cleanplate", plate.path).by_role("cleanplate").settings
    assert (read["path"], read["first"], read["last"], read["colorspace"]) == (str(files.files[0]), 1003, 1003,
                                                                               "linear")


def test_cli_handles_and_a_destination_pattern(shared_server: ServerProcess, tmp_path: Path) -> None:
    import subprocess
    import sys

    pattern = _plate(tmp_path / "shot030", 1001, _video_frames(70, 4), grain=4)
    cli = [sys.executable, "-m", "keygrip.cli", "--address", shared_server.address, "matte", str(pattern)]
    run = subprocess.run([*cli, "--out", str(tmp_path / "comp" / "shot030_matte.%04d.exr"), "--handles", "1",
                          "--no-stabilize"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "comp").iterdir()) == ["shot030_matte.1002.exr", "shot030_matte.1003.exr"]
    assert f"wrote 2 frames 1002-1003: {tmp_path / 'comp' / 'shot030_matte.####.exr'}" in run.stdout
    run = subprocess.run([*cli, "--out", str(tmp_path / "comp" / "m.####.png"), "--handles", "1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "does not end in .exr, which the exr-half format writes" in run.stderr


def test_server_path_sends_no_frame_and_keeps_the_working_range(server_factory, tmp_path: Path) -> None:
    """A server on the artist's machine (or one that mounts the same storage) reads the plate where it is."""
    plate = Plate.find(_plate(tmp_path / "shot040", 1001, _video_frames(80, 4)), handles=1)
    srv = server_factory("--allowed-root", str(tmp_path))
    with keygrip.Client(srv.address) as c:
        plan = PassPlan.for_plate("matte", plate, out_dir=tmp_path / "out", server_path=True,
                                  settings={"working_size": 128})
        upload = plan.upload(c)
        assert upload.frames is None and upload.media_input.path == str(tmp_path / "shot040" / "plate.####.png")
        files = download_result(c, plan.submit(c, upload.media_input).result(timeout=120), plan.out_dir)
    assert sorted(files.frames) == [1002, 1003] and files.pattern == str(tmp_path / "out" / "matte.####.exr")
