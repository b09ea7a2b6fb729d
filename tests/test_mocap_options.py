"""Capture options: one set of rules, the same at submit time and for scripts (mocap/options.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from inference_server.errors import InvalidInput
from inference_server.mocap.options import (
    MocapOptions,
    SolveOptions,
    check,
    check_request,
    check_solve,
    options_from_request,
)
from keygrip.v1 import common_pb2, mocap_pb2


def _request(**fields: Any) -> mocap_pb2.CaptureMotionRequest:
    start, end = fields.pop("start", 0), fields.pop("end", 0)
    return mocap_pb2.CaptureMotionRequest(frame_range=common_pb2.FrameRange(start=start, end=end), **fields)


def test_unset_and_zero_mean_automatic() -> None:
    options = options_from_request(_request())
    assert options == MocapOptions()
    assert options.solve == SolveOptions()
    chosen = options_from_request(_request(smoothing=0.0, foot_lock=False, root_motion=False, hands=True,
                                           subject_height_m=1.8, fov_degrees=60.0, fps_override=24.0,
                                           start=10, end=50, workers=2, preview=True))
    assert chosen.solve == SolveOptions(smoothing=0.0, foot_lock=False, root_motion=False, hands=True,
                                        subject_height_m=1.8, fov_deg=60.0)
    assert (chosen.start_frame, chosen.end_frame, chosen.fps_override, chosen.workers, chosen.preview) == (
        10, 50, 24.0, 2, True)
    check(chosen)


@pytest.mark.parametrize(("fields", "message"), [
    ({"smoothing": 2.0}, "smoothing must lie in 0..1, got 2.0"),
    ({"smoothing": math.nan}, "smoothing must lie in 0..1, got nan"),
    ({"fps_override": -24.0}, "fps_override must be positive (or 0 for automatic), got -24.0"),
    ({"focal_length_px": math.nan}, "focal_length_px must be positive (or 0 for automatic), got nan"),
    ({"fov_degrees": -1.0}, "fov_degrees must be positive (or 0 for automatic), got -1.0"),
    ({"subject_height_m": 175.0}, "subject_height_m is in metres: 175.0 is not a person's height"),
    ({"fov_degrees": 200.0}, "fov_degrees must be below 180, got 200.0"),
    ({"fov_degrees": 0.5}, "fov_degrees must be between 1 and 179 degrees, got 0.5"),
    ({"start": -1}, "frame range [-1, 0) is empty"),
    ({"start": 20, "end": 10}, "frame range [20, 10) is empty"),
    ({"workers": -1}, "workers must not be negative"),
])
def test_bad_options_name_the_request_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_request(_request(**fields))
    assert info.value.message == message


def test_scripts_get_the_same_rules() -> None:
    with pytest.raises(InvalidInput, match="smoothing must lie in 0..1"):
        check_solve(SolveOptions(smoothing=-0.1))
    with pytest.raises(InvalidInput, match="subject_height_m is in metres"):
        check(MocapOptions(solve=SolveOptions(subject_height_m=3.0)))
    with pytest.raises(InvalidInput, match="focal_length_px must be positive"):
        check_solve(SolveOptions(focal_length_px=0.0))
    with pytest.raises(InvalidInput, match="frame range"):
        check(MocapOptions(start_frame=5, end_frame=5))
