"""The Pose2Sim balancing trial as the tests carry it (tests/data): two of its videos, its calibrations
and its reference 3D, with the reference laid out as MediaPipe's 33 landmarks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from eval_mocap import load_trc  # noqa: E402  (the evaluation's own reader of the reference)

DATA = Path(__file__).parent / "data"
TOML = DATA / "pose2sim" / "Calib_qualisys_converted_by_pose2sim.toml"
QCA = DATA / "pose2sim" / "Calib.qca.txt"
TRC = DATA / "pose2sim" / "S00_P00_T01_BalancingTrial_0-100_filt_butterworth.trc"
CAM01 = DATA / "video" / "pose2sim_cam01.mp4"
CAM02 = DATA / "video" / "pose2sim_cam02_vp9_audio.mp4"
# .trc keypoint -> MediaPipe landmark, for synthetic MediaPipe-like views of the reference body.
TRC_TO_MP = {"LHip": 23, "RHip": 24, "LKnee": 25, "RKnee": 26, "LAnkle": 27, "RAnkle": 28, "LShoulder": 11,
             "RShoulder": 12, "LElbow": 13, "RElbow": 14, "LWrist": 15, "RWrist": 16, "LHeel": 29, "RHeel": 30,
             "LBigToe": 31, "RBigToe": 32, "Nose": 0}


def reference_body() -> np.ndarray:
    """(100, 33, 3) the reference body in MediaPipe's layout (NaN where BODY_25B has no such point), Y-up m."""
    names, pts = load_trc(TRC)
    out = np.full((len(pts), 33, 3), np.nan)
    for name, mp in TRC_TO_MP.items():
        out[:, mp] = pts[:, names.index(name)]
    return out
