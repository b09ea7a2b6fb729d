"""The depth job's stabilisation: frame-to-frame scale and shift matched without the shrinkage that
least squares has when both sides are noisy, so a long shot keeps its depth range."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from inference_server.compositing.depth import affine_match
from inference_server.media.video import iter_frames

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from eval_depth import SimulatedModel  # noqa: E402  (the evaluation's stand-in for a depth model)

VIDEO = Path(__file__).parent / "data" / "video" / "pose2sim_cam01.mp4"


def test_affine_match_keeps_the_scale_of_noisy_data() -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.0, 1.0, 20000)
    x = truth + rng.normal(0.0, 0.1, truth.size)
    y = 2.0 * truth - 0.5 + rng.normal(0.0, 0.2, truth.size)
    scale, shift = affine_match(x, y)
    assert abs(scale - 2.0) < 0.05 and abs(shift + 0.5) < 0.05
    # least squares on the same data shrinks the scale by the noise's share of x's spread (about 11 % here)
    ls_scale = np.polyfit(x, y, 1)[0]
    assert ls_scale < 1.85
    assert affine_match(-x, y)[0] < 0  # an inverted map stays inverted
    assert affine_match(np.full(10, 3.0), np.arange(10.0)) == (1.0, 1.5)  # a flat frame: shift only


def test_a_long_still_shot_keeps_its_depth_range() -> None:
    """30 frames of a real still background whose model output drifts in scale and shift and carries
    noise: the stabilised depth's near-far range stays that of the first frame (least squares chained
    frame to frame lost about 30 % of it)."""
    frame = next(iter_frames(VIDEO, 0, 1)).image
    rgb = cv2.resize(frame, (63, 112), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(1)
    truth = np.linspace(0.0, 1.0, 112, dtype=np.float32)[:, None].repeat(63, axis=1)
    outputs = [(truth * np.exp(rng.normal(0, 0.2)) + rng.normal(0, 0.2)
                + rng.normal(0, 0.08, truth.shape)).astype(np.float32) for _ in range(30)]
    chain = SimulatedModel(outputs, stabilize=True)
    depths = [chain(rgb) for _ in range(30)]
    # How much of the true near-far range each frame's depth spans (its slope against the truth).
    spans = [float(np.polyfit(truth.ravel(), 1.0 - d.ravel(), 1)[0]) for d in depths]
    assert spans[-1] > 0.95 * spans[0]
    steps = [float(np.abs(depths[i] - depths[i - 1]).mean()) for i in range(1, len(depths))]
    assert max(steps) < 0.05  # no frame jumps although each model output moved by about 0.2
