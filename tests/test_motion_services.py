"""Capture and retarget jobs through the real server, from the SDK and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keygrip
from inference_server.animation.gltf_rig import read_gltf_rig
from inference_server.motion.bvh import read_bvh
from inference_server.motion.wire import clip_from_proto, rig_to_proto
from keygrip.tensors import from_tensor
from keygrip.v1 import animation_pb2

DATA = Path(__file__).parent / "data"
CLIP = DATA / "video" / "pose2sim_cam01.mp4"
BVH = DATA / "bvh" / "cmu_131_01_walk.bvh"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def capture(shared_server):
    with keygrip.Client(shared_server.address) as c:
        job = c.capture_motion(CLIP, preview=True, smoothing=0.5)
        return job.id, job.result(timeout=300)


def test_capture_results(client: keygrip.Client, capture, tmp_path: Path) -> None:
    _, result = capture
    clip = clip_from_proto(client.read_clip(result.clip))
    assert clip.num_frames == 100 and clip.fps == pytest.approx(60.0)
    assert clip.skeleton.names[0] == "hips" and "leftFoot" in clip.skeleton.names
    assert np.all(np.isfinite(clip.rotations))
    assert result.summary.tracked_frames + result.summary.interpolated_frames == 100
    bvh = read_bvh(client.download(result.bvh.id, tmp_path / "c.bvh"), scale=1.0)
    assert bvh.num_frames == 100 and bvh.skeleton.names == clip.skeleton.names
    preview = client.probe(result.preview).result(timeout=60)
    assert preview.frame_count == 100
    lm = np.load(client.download(result.landmarks.id, tmp_path / "lm.npz"))
    assert lm["pose_world"].shape == (100, 33, 3)


def test_capture_split_over_chunk_tasks(client: keygrip.Client) -> None:
    # workers=2: the job's worker process runs the second chunk as a task in a process of its own.
    result = client.capture_motion(CLIP, end_frame=40, workers=2).result(timeout=300)
    assert result.summary.frames == 40
    assert result.summary.tracked_frames + result.summary.interpolated_frames == 40


def test_nobody_in_the_video_is_a_failed_precondition(client: keygrip.Client, tmp_path: Path) -> None:
    import av

    empty = tmp_path / "empty_room.mp4"
    with av.open(str(empty), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(20):
            img = np.full((240, 320, 3), 90 + i, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())
    with pytest.raises(keygrip.JobFailed) as info:
        client.capture_motion(empty).result(timeout=120)
    assert info.value.code == "FAILED_PRECONDITION"
    assert "no person" in info.value.message and "0-19" in info.value.message


def test_capture_of_something_that_is_not_a_video(client: keygrip.Client, tmp_path: Path) -> None:
    notes = tmp_path / "take3.mov"
    notes.write_text("shot list, not a video\n" * 20)
    with pytest.raises(keygrip.JobFailed) as info:
        client.capture_motion(notes).result(timeout=120)
    assert info.value.code == "INVALID_ARGUMENT"
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(CLIP.read_bytes()[: CLIP.stat().st_size // 3])
    with pytest.raises(keygrip.JobFailed) as info:
        client.capture_motion(truncated).result(timeout=120)
    assert info.value.code == "INVALID_ARGUMENT"


def test_bad_capture_options_fail_at_submit(client: keygrip.Client) -> None:
    with pytest.raises(keygrip.InvalidArgument, match="smoothing"):
        client.capture_motion(CLIP, smoothing=2.0)
    with pytest.raises(keygrip.InvalidArgument, match="metres"):
        client.capture_motion(CLIP, subject_height_m=175.0)


def test_retarget_capture_onto_cesium_man(client: keygrip.Client, capture) -> None:
    job_id, _ = capture
    rig = read_gltf_rig(DATA / "models" / "CesiumMan.glb")
    request = animation_pb2.RetargetRequest(source=animation_pb2.MotionSource(capture_job_id=job_id),
                                            rig=rig_to_proto(rig, "CesiumMan"))
    result = client.retarget(request).result(timeout=120)
    assert result.frames == 100
    roles = {m.role for m in result.bone_map.mappings}
    assert {"hips", "leftUpperLeg", "rightLowerArm", "head"} <= roles
    anim = client.read_message(result.animation, animation_pb2.RigAnimation)
    rotations = from_tensor(anim.rotations)
    assert rotations.shape == (100, rig.num_bones, 4)
    assert np.allclose(np.linalg.norm(rotations, axis=-1), 1.0, atol=1e-4)
    # The legs really move over the clip.
    thigh = list(anim.bone_names).index(next(m.bone for m in result.bone_map.mappings if m.role == "leftUpperLeg"))
    assert np.ptp(rotations[:, thigh], axis=0).max() > 0.01


def test_rig_without_humanoid_and_unknown_sources(client: keygrip.Client) -> None:
    mats = np.tile(np.eye(4), (3, 1, 1))
    mats[1, 1, 3], mats[2, 1, 3] = 1.0, 2.0
    rig = animation_pb2.Rig(bone_names=["root", "tail", "tail_tip"], parents=[-1, 0, 1],
                            rest_matrices=keygrip.tensors.to_tensor(mats))
    with pytest.raises(keygrip.FailedPrecondition, match="tail_tip"):
        client.map_bones(rig)
    with pytest.raises(keygrip.NotFound):
        client.retarget(animation_pb2.RetargetRequest(
            source=animation_pb2.MotionSource(capture_job_id="nope"), rig=rig))
    with pytest.raises(keygrip.InvalidArgument, match="bones"):
        client.retarget(animation_pb2.RetargetRequest(
            source=animation_pb2.MotionSource(bvh_artifact_id=client.upload(BVH).id),
            rig=animation_pb2.Rig(bone_names=["a", "b"], parents=[-1])))


def test_broken_bvh_fails_naming_the_line(client: keygrip.Client, tmp_path: Path) -> None:
    broken = tmp_path / "broken.bvh"
    broken.write_text(BVH.read_text().replace("CHANNELS 6", "CHANNELS 5", 1))
    rig = rig_to_proto(read_gltf_rig(DATA / "models" / "CesiumMan.glb"))
    job = client.retarget(animation_pb2.RetargetRequest(
        source=animation_pb2.MotionSource(bvh_artifact_id=client.upload(broken).id), rig=rig))
    with pytest.raises(keygrip.JobFailed) as info:
        job.result(timeout=120)
    assert info.value.code == "INVALID_ARGUMENT" and "line" in info.value.message


def test_cli_retarget_bvh_onto_a_rig_file(shared_server, tmp_path: Path) -> None:
    rig = read_gltf_rig(DATA / "models" / "CesiumMan.glb")
    rig_file = tmp_path / "rig.json"
    rig_file.write_text(json.dumps({"name": "CesiumMan", "bone_names": rig.names,
                                    "parents": [int(p) for p in rig.parents],
                                    "rest_matrices": rig.rest_matrices.tolist()}))
    out = tmp_path / "cesium.bvh"
    run = subprocess.run([sys.executable, "-m", "keygrip.cli", "--address", shared_server.address, "retarget",
                          str(BVH), "--rig", str(rig_file), "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "retargeted 994 frames onto 19 bones" in run.stdout
    result = read_bvh(out, scale=1.0)
    assert result.num_frames == 994 and set(result.skeleton.names) == set(rig.names)
