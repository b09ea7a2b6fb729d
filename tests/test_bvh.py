"""BVH reading and writing on a real CMU file, checked against Blender's own BVH importer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference_server.errors import InvalidInput
from inference_server.motion import quat
from inference_server.motion.bvh import CMU_UNIT_M, read_bvh, write_bvh

DATA = Path(__file__).parent / "data" / "bvh"
WALK = DATA / "cmu_131_01_walk.bvh"

SMALL = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Spine
  {
    OFFSET 0 10 0
    CHANNELS 6 Xposition Yposition Zposition Xrotation Yrotation Zrotation
    End Site
    {
      OFFSET 0 10 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.04
1 90 2 10 20 30 0 11 0 5 -5 45
1 91 2 0 0 0 0 11 0 0 0 0
"""


@pytest.fixture(scope="module")
def walk():
    return read_bvh(WALK)


def test_reads_cmu_walk_in_metres(walk):
    assert walk.num_frames == 994
    assert walk.skeleton.num_joints == 31
    assert walk.fps == pytest.approx(120.0, rel=1e-4)
    assert float(walk.metadata["bvh_unit_m"]) == pytest.approx(CMU_UNIT_M)
    # Root height 16.9 CMU units is about 0.95 m (the bvh11 author's metre version says 0.954).
    assert walk.root_translation[0, 1] == pytest.approx(0.9539, abs=1e-3)
    _, pos = walk.global_transforms()
    assert 0.0 < pos[..., 1].min() < 0.05  # feet on the floor


def test_rotation_orders_position_channels_and_crlf():
    clip = read_bvh(SMALL.replace("\n", "\r\n"), scale="m")
    assert clip.num_frames == 2 and clip.fps == pytest.approx(25.0)
    expected = quat.multiply(quat.multiply(quat.from_axis_angle([0, 0, 1], np.radians(10)),
                                           quat.from_axis_angle([1, 0, 0], np.radians(20))),
                             quat.from_axis_angle([0, 1, 0], np.radians(30)))
    assert quat.angle_between(clip.rotations[0, 0], expected) < 1e-9
    # Non-root position channels replace the OFFSET (Blender's reading).
    np.testing.assert_allclose(clip.skeleton.offsets[1], [0, 11, 0])
    np.testing.assert_allclose(clip.root_translation[1], [1, 91, 2])


def test_explicit_units():
    assert read_bvh(SMALL, scale="cm").skeleton.offsets[1, 1] == pytest.approx(0.11)
    assert read_bvh(SMALL, scale=0.5).skeleton.offsets[1, 1] == pytest.approx(5.5)
    with pytest.raises(InvalidInput):
        read_bvh(SMALL, scale="furlong")


def test_round_trip_reproduces_rotations(walk, tmp_path):
    for order in ("ZXY", "XYZ", "ZYX"):
        path = tmp_path / f"walk_{order}.bvh"
        write_bvh(walk, path, order=order)
        back = read_bvh(path, scale="m")
        assert back.skeleton.names == walk.skeleton.names
        err = np.degrees(quat.angle_between(back.rotations, walk.rotations))
        assert err.max() < 1e-4
        np.testing.assert_allclose(back.root_translation, walk.root_translation, atol=1e-5)
        np.testing.assert_allclose(back.skeleton.offsets, walk.skeleton.offsets, atol=1e-6)


def test_syntax_error_names_line():
    broken = SMALL.replace("OFFSET 0 10 0\n    CHANNELS", "OFFSET 0 ten 0\n    CHANNELS")
    with pytest.raises(InvalidInput, match="line 8"):
        read_bvh(broken)


def test_wrong_channel_count_names_line():
    with pytest.raises(InvalidInput, match="line 5"):
        read_bvh(SMALL.replace("CHANNELS 6 Xposition Yposition Zposition Zrotation", "CHANNELS 5 Xposition "
                               "Yposition Zposition Zrotation"))
    short_frame = SMALL.replace("1 91 2 0 0 0 0 11 0 0 0 0", "1 91 2 0 0 0 0 11 0 0 0")
    with pytest.raises(InvalidInput, match="line 20"):
        read_bvh(short_frame)


def test_blender_imports_what_we_write(walk, tmp_path):
    bpy = pytest.importorskip("bpy")
    out = tmp_path / "walk_out.bvh"
    clip = walk
    write_bvh(clip, out, order="ZXY")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_anim.bvh(filepath=str(out), update_scene_fps=True, update_scene_duration=True)
    arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    assert sorted(b.name for b in arm.data.bones) == sorted(clip.skeleton.names)
    action = arm.animation_data.action
    start, end = action.frame_range
    assert int(round(end - start)) + 1 == clip.num_frames
    # Blender's pose at a frame puts the left ankle where our forward kinematics does (Z-up there).
    scene = bpy.context.scene
    frame = 500
    scene.frame_set(int(start) + frame)
    ankle = arm.matrix_world @ arm.pose.bones["LeftAnkle"].head
    _, pos = clip.global_transforms()
    ours = pos[frame, clip.skeleton.index("LeftAnkle")]
    np.testing.assert_allclose([ankle.x, ankle.z, -ankle.y], ours, atol=1e-3)
