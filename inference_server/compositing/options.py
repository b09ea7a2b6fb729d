"""Compositing requests: the one place their settings are checked and their defaults filled in.

The Compositing service applies these at submit time (INVALID_ARGUMENT naming the request's field);
the jobs apply them again to get their settings. Whether a frame range lies inside the clip is known
only once the clip is opened (media.video.frames_in_range, in the job).

This module stays light (no numpy, no OpenCV): the gRPC front imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

from inference_server.errors import InvalidInput
from keygrip.v1 import common_pb2, compositing_pb2

DEFAULT_DILATE = 15
DEFAULT_INPAINT_STEPS = 25
DEPTH_TEMPORAL_WEIGHT = 0.5  # the depth job's blend of the flow-warped previous frame


@dataclass(frozen=True)
class Output:
    """How a job writes its images: EXR (half or float) or 16-bit PNG."""

    exr: bool
    half: bool

    @property
    def suffix(self) -> str:
        return ".exr" if self.exr else ".png"

    @property
    def media_type(self) -> str:
        return "image/x-exr" if self.exr else "image/png"

    def metadata(self) -> dict[str, str]:
        return {"format": ("exr half" if self.half else "exr float") if self.exr else "png 16-bit"}


def output(fmt: compositing_pb2.OutputFormat.ValueType) -> Output:
    if fmt not in (compositing_pb2.OUTPUT_FORMAT_UNSPECIFIED, compositing_pb2.OUTPUT_FORMAT_EXR_HALF,
                   compositing_pb2.OUTPUT_FORMAT_EXR_FLOAT, compositing_pb2.OUTPUT_FORMAT_PNG16):
        raise InvalidInput(f"format {fmt} is not an OutputFormat: use EXR_HALF, EXR_FLOAT or PNG16")
    return Output(exr=fmt != compositing_pb2.OUTPUT_FORMAT_PNG16, half=fmt != compositing_pb2.OUTPUT_FORMAT_EXR_FLOAT)


def frame_range(r: common_pb2.FrameRange) -> tuple[int, int | None]:
    """(start, end) of a request's frame range; end None: to the last frame."""
    end = r.end if r.end > 0 else None
    if r.start < 0 or (end is not None and end <= r.start):
        raise InvalidInput(f"frame_range [{r.start}, {r.end}) is empty or negative: give start < end "
                           "(end 0: to the last frame)")
    return r.start, end


def _weight(name: str, value: float, default: float) -> float:
    if value == 0:
        return default
    if not 0.0 < value <= 0.95:  # also refuses NaN; at 1 the first frame's matte would never change
        raise InvalidInput(f"{name} must lie in 0..0.95 (0: {default:g}), got {value}")
    return float(value)


def _positive(name: str, value: float, default: float) -> float:
    if value == 0:
        return default
    if not 0.0 < value < float("inf"):
        raise InvalidInput(f"{name} must be positive (0: automatic), got {value}")
    return float(value)


def _size(name: str, value: int, default: int, *, multiple: int = 1) -> int:
    if value == 0:
        return default
    if not 32 <= value <= 8192:
        raise InvalidInput(f"{name} must lie in 32..8192 pixels (0: {default}), got {value}")
    return max(multiple, round(value / multiple) * multiple)


@dataclass(frozen=True)
class BandMatting:
    """The matte chain's band matting (band_matting.py). Measured in scripts/eval_matte.py (20 frames a
    clip): a band of 1 px around the matte's 0.05..0.95 transition within 12 px of its 0.5 contour, at
    the working size, and 30 conjugate-gradient steps: gradient error 0.694x of bare (10 steps: 0.71x;
    within 8 px of the contour: 0.70x; bands of 2-5 px, epsilon 1e-5 to 1e-2 and priors 0.003-0.05 no
    better). Without the reach limit, a segmenter's faint probability over the background made the
    band an eighth of a 1080p frame (30 ms a frame)."""

    band: int = 1
    epsilon: float = 1e-3
    prior: float = 0.01
    iterations: int = 30
    lo: float = 0.05
    hi: float = 0.95
    reach: int = 12

    def describe(self) -> str:
        return (f"closed_form band {self.band} px of {self.lo:g}..{self.hi:g} within {self.reach} px of the edge, "
                f"epsilon {self.epsilon:g}, prior {self.prior:g}, {self.iterations} iterations")


BAND_MATTING = BandMatting()


@dataclass(frozen=True)
class MatteOptions:
    """The chain's settings (MatteSettings with its defaults filled in; see compositing.proto)."""

    refine: bool = True
    refine_radius: int = 0          # plate pixels; 0: long side / 240
    refine_epsilon: float = 1e-3
    stabilize: bool = True
    temporal_weight: float = 0.6
    flow_tolerance: float = 1.0     # working-size pixels
    working_size: int = 512
    mirror: bool = True
    model: str = ""                 # a registered segmenter; "": MediaPipe Selfie Segmentation
    band_matting: bool = True

    def metadata(self) -> dict[str, str]:
        """The settings as an output file's metadata (what reproduces the matte; a model's hash and
        licence are added where it is loaded)."""
        return {"matte_segmenter": f"model {self.model}" if self.model
                else "mediapipe selfie_segmentation general (bundled)",
                "matte_mirror": ("alternate, paired along the flow" if self.stabilize else "average") if self.mirror
                else "off",
                "matte_band_matting": BAND_MATTING.describe() if self.band_matting else "off",
                "matte_refine": "fast_guided_filter" if self.refine else "off",
                "matte_refine_radius": str(self.refine_radius), "matte_refine_epsilon": f"{self.refine_epsilon:g}",
                "matte_stabilize": "dis_flow_blend" if self.stabilize else "off",
                "matte_temporal_weight": f"{self.temporal_weight:g}",
                "matte_flow_tolerance": f"{self.flow_tolerance:g}", "matte_working_size": str(self.working_size)}


def matte_options(s: compositing_pb2.MatteSettings, field: str = "settings") -> MatteOptions:
    """The matte chain's options from a request's MatteSettings (InvalidInput naming the field)."""
    if s.refine_radius < 0 or s.refine_radius > 512:
        raise InvalidInput(f"{field}.refine_radius must lie in 0..512 pixels (0: automatic), got {s.refine_radius}")
    return MatteOptions(refine=s.refine if s.HasField("refine") else True,
                        refine_radius=int(s.refine_radius),
                        refine_epsilon=_positive(f"{field}.refine_epsilon", s.refine_epsilon, 1e-3),
                        stabilize=s.stabilize if s.HasField("stabilize") else True,
                        temporal_weight=_weight(f"{field}.temporal_weight", s.temporal_weight, 0.6),
                        flow_tolerance=_positive(f"{field}.flow_tolerance", s.flow_tolerance, 1.0),
                        working_size=_size(f"{field}.working_size", s.working_size, 512),
                        mirror=s.mirror if s.HasField("mirror") else True, model=s.model.strip(),
                        band_matting=s.band_matting if s.HasField("band_matting") else True)


def check_matte(req: compositing_pb2.MatteRequest) -> None:
    matte_options(req.settings)
    output(req.format)
    frame_range(req.frame_range)


@dataclass(frozen=True)
class DepthOptions:
    model: str
    stabilize: bool
    temporal_weight: float
    working_size: int


def depth_options(req: compositing_pb2.DepthRequest) -> DepthOptions:
    s = req.settings
    output(req.format)
    frame_range(req.frame_range)
    # Depth Anything's ViT works on 14-pixel patches.
    return DepthOptions(model=s.model, stabilize=s.stabilize if s.HasField("stabilize") else True,
                        temporal_weight=_weight("settings.temporal_weight", s.temporal_weight, DEPTH_TEMPORAL_WEIGHT),
                        working_size=_size("settings.working_size", s.working_size, 518, multiple=14))


@dataclass(frozen=True)
class CleanPlateOptions:
    dilate: int
    register: bool
    reference_frame: int | None
    inpaint_model: str      # "": the first registered inpainting model, if any
    classical_fill: bool    # OpenCV's inpainting even when a model is registered
    inpaint_steps: int


def clean_plate_options(req: compositing_pb2.CleanPlateRequest) -> CleanPlateOptions:
    matte_options(req.matte, "matte")
    output(req.format)
    frame_range(req.frame_range)
    if not 0 <= req.dilate <= 500:
        raise InvalidInput(f"dilate must lie in 0..500 pixels (0: {DEFAULT_DILATE}), got {req.dilate}")
    if req.reference_frame < 0:
        raise InvalidInput(f"reference_frame must not be negative, got {req.reference_frame}")
    if not 0 <= req.inpaint_steps <= 200:
        raise InvalidInput(f"inpaint_steps must lie in 0..200 (0: {DEFAULT_INPAINT_STEPS}), got {req.inpaint_steps}")
    if req.classical_fill and req.inpaint_model:
        raise InvalidInput(f"classical_fill and inpaint_model {req.inpaint_model!r} contradict each other: give one")
    return CleanPlateOptions(dilate=req.dilate or DEFAULT_DILATE,
                             register=req.register if req.HasField("register") else True,
                             reference_frame=req.reference_frame or None, inpaint_model=req.inpaint_model.strip(),
                             classical_fill=req.classical_fill,
                             inpaint_steps=req.inpaint_steps or DEFAULT_INPAINT_STEPS)
