"""ARKit face curves from the MediaPipe face mesh, calibrated to the clip's own neutral face.

Each curve comes from a geometric feature of the 468-point mesh measured in units of the outer
eye-corner distance, so it does not depend on how far the face is from the camera, and along the
face's own axes, so head turns do not read as expressions. A person's resting face differs from
the next one's, so every feature is measured against a per-clip neutral (a percentile of the
feature over the clip: the closed, resting mouth is its low end, open eyes its median), blended with an
average-face prior for clips too short to show a resting face. The distance from neutral is divided
by the change that means a full expression and clipped to 0..1.
"""

from __future__ import annotations

import numpy as np

from inference_server.mocap import filters
from inference_server.mocap.skeleton_fit import to_y_up

FACE_CURVES = [
    "eyeBlinkLeft", "eyeBlinkRight", "eyeWideLeft", "eyeWideRight",
    "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthSmileLeft", "mouthSmileRight",
    "browInnerUp", "browDownLeft", "browDownRight", "browOuterUpLeft", "browOuterUpRight",
]

# Face mesh indices (the subject's left / right).
_EYE_OUTER_L, _EYE_INNER_L, _LID_UP_L, _LID_LOW_L = 263, 362, 386, 374
_EYE_OUTER_R, _EYE_INNER_R, _LID_UP_R, _LID_LOW_R = 33, 133, 159, 145
_LIP_UP_IN, _LIP_LOW_IN, _LIP_UP_OUT = 13, 14, 0
_MOUTH_L, _MOUTH_R = 291, 61
_NOSE_TIP, _CHIN, _FOREHEAD = 1, 152, 10
_BROW_IN_L, _BROW_OUT_L, _BROW_IN_R, _BROW_OUT_R = 336, 300, 107, 70

# feature -> (neutral percentile over the clip, prior neutral value, change for a full expression)
# Priors and full-expression changes are in eye-corner-distance units; the priors were read from
# a frontal GRID talker (percentiles over a spoken sentence).
_FEATURES: dict[str, tuple[float, float, float]] = {
    "eye_open_l": (60.0, 0.31, 0.25),
    "eye_open_r": (60.0, 0.31, 0.25),
    "jaw": (10.0, 0.96, 0.30),
    "lip_gap": (10.0, 0.01, 0.35),
    "mouth_width": (50.0, 0.53, 0.12),
    "corner_l": (10.0, 0.24, 0.08),
    "corner_r": (10.0, 0.23, 0.08),
    "brow_in_l": (50.0, 0.17, 0.08),
    "brow_in_r": (50.0, 0.17, 0.08),
    "brow_out_l": (50.0, 0.145, 0.08),
    "brow_out_r": (50.0, 0.145, 0.08),
}
# Seconds of clip needed before its own neutral fully replaces the prior.
_CALIBRATION_S = 1.0
# The face is filtered at this multiple of the body's cut-off: blinks last about 0.1 s and must
# survive. The low-pass keeps the result under the clip's Nyquist frequency.
_FACE_CUTOFF_FACTOR = 2.0


def _features(p: np.ndarray) -> dict[str, np.ndarray]:
    """Features (F,) from face points p (F, 468, 3) in a Y-up metric-free frame."""
    def dist(a: int, b: int) -> np.ndarray:
        return np.linalg.norm(p[:, a] - p[:, b], axis=-1)

    scale = np.maximum(dist(_EYE_OUTER_L, _EYE_OUTER_R), 1e-9)
    # The face's own up axis: forehead over the nose tip, made normal to the eye line.
    side = p[:, _EYE_OUTER_L] - p[:, _EYE_OUTER_R]
    side /= np.linalg.norm(side, axis=-1, keepdims=True)
    up = p[:, _FOREHEAD] - p[:, _NOSE_TIP]
    up -= np.sum(up * side, axis=-1, keepdims=True) * side
    up /= np.maximum(np.linalg.norm(up, axis=-1, keepdims=True), 1e-9)

    def height(a: int, b: int) -> np.ndarray:
        """How far point a is above point b along the face's up axis, in scale units."""
        return np.sum((p[:, a] - p[:, b]) * up, axis=-1) / scale

    return {
        "eye_open_l": dist(_LID_UP_L, _LID_LOW_L) / dist(_EYE_OUTER_L, _EYE_INNER_L),
        "eye_open_r": dist(_LID_UP_R, _LID_LOW_R) / dist(_EYE_OUTER_R, _EYE_INNER_R),
        "jaw": dist(_NOSE_TIP, _CHIN) / scale,
        "lip_gap": dist(_LIP_UP_IN, _LIP_LOW_IN) / scale,
        "mouth_width": dist(_MOUTH_L, _MOUTH_R) / scale,
        # Mouth corners below the nose tip; a smile raises them (the value drops).
        "corner_l": height(_NOSE_TIP, _MOUTH_L),
        "corner_r": height(_NOSE_TIP, _MOUTH_R),
        "brow_in_l": height(_BROW_IN_L, _EYE_INNER_L),
        "brow_in_r": height(_BROW_IN_R, _EYE_INNER_R),
        "brow_out_l": height(_BROW_OUT_L, _EYE_OUTER_L),
        "brow_out_r": height(_BROW_OUT_R, _EYE_OUTER_R),
    }


def _activation(values: np.ndarray, neutral: float, full: float) -> np.ndarray:
    """Signed change from neutral in units of a full expression (positive = feature grows)."""
    return (values - neutral) / full


def face_cutoff_hz(body_cutoff_hz: float | None) -> float | None:
    """The cut-off the face is asked to be filtered at for a body cut-off (None: no filtering)."""
    return None if body_cutoff_hz is None else _FACE_CUTOFF_FACTOR * body_cutoff_hz


def solve_face(face_image: np.ndarray, image_size: tuple[int, int], fps: float,
               cutoff_hz: float | None, warnings: list[str] | None = None) -> np.ndarray:
    """Face curves (F, len(FACE_CURVES)) float32 in 0..1, columns in FACE_CURVES order.

    face_image: (F, 468, 3) normalised face mesh, NaN where no face was found. cutoff_hz: the
    body's low-pass cut-off (the face is filtered lighter, see face_cutoff_hz). Frames without a
    face hold the nearest solved values; a clip without any face is all zeros. warnings, when
    given, gets a line for a clip without a face and for one too short to calibrate on.
    """
    f = len(face_image)
    out = np.zeros((f, len(FACE_CURVES)), dtype=np.float32)
    valid = np.all(np.isfinite(face_image), axis=(1, 2))
    notes = warnings if warnings is not None else []
    if not valid.any():
        notes.append("the face was asked for but not found in any frame: its curves are all zero "
                     "(the face must be visible, unmasked and not too small in the picture)")
        return out
    w, h = image_size
    points = to_y_up(face_image * np.array([w, h, w], dtype=np.float64))
    points, _ = filters.fill_gaps(points, valid, max_gap=f)
    # Blinks last about 0.1 s: filter the face lighter than the body so they survive.
    face_cutoff = face_cutoff_hz(cutoff_hz)
    feats = _features(filters.lowpass(points, fps, face_cutoff))
    if f >= filters.MIN_FILTER_FRAMES:  # the body's note says when the clip is too short
        notes.extend(filters.smoothing_notes("the face", f, fps, face_cutoff))

    weight = min(1.0, valid.sum() / max(_CALIBRATION_S * fps, 1.0))
    if weight < 1.0:
        notes.append(f"the face was seen for {valid.sum() / fps:.2f} s ({int(valid.sum())} frames): its "
                     f"resting expression is {100 * (1 - weight):.0f}% an average face's "
                     f"({_CALIBRATION_S:g} s of face calibrates it fully)")
    act = {}
    for name, (pct, prior, full) in _FEATURES.items():
        neutral = weight * float(np.percentile(feats[name][valid], pct)) + (1.0 - weight) * prior
        act[name] = _activation(feats[name], neutral, full)

    pos = {k: np.clip(v, 0.0, 1.0) for k, v in act.items()}
    neg = {k: np.clip(-v, 0.0, 1.0) for k, v in act.items()}
    narrow = neg["mouth_width"]
    curves = {
        "eyeBlinkLeft": neg["eye_open_l"],
        "eyeBlinkRight": neg["eye_open_r"],
        "eyeWideLeft": pos["eye_open_l"],
        "eyeWideRight": pos["eye_open_r"],
        "jawOpen": pos["jaw"],
        # Lips held together while the jaw drops.
        "mouthClose": np.clip(pos["jaw"] - pos["lip_gap"], 0.0, 1.0),
        # Narrow and open lips funnel; narrow and closed lips pucker.
        "mouthFunnel": narrow * np.clip(pos["lip_gap"] * 4.0, 0.0, 1.0),
        "mouthPucker": narrow * np.clip(1.0 - pos["lip_gap"] * 4.0, 0.0, 1.0),
        "mouthSmileLeft": np.clip(neg["corner_l"] + 0.5 * pos["mouth_width"], 0.0, 1.0),
        "mouthSmileRight": np.clip(neg["corner_r"] + 0.5 * pos["mouth_width"], 0.0, 1.0),
        "browInnerUp": 0.5 * (pos["brow_in_l"] + pos["brow_in_r"]),
        "browDownLeft": 0.5 * (neg["brow_in_l"] + neg["brow_out_l"]),
        "browDownRight": 0.5 * (neg["brow_in_r"] + neg["brow_out_r"]),
        "browOuterUpLeft": pos["brow_out_l"],
        "browOuterUpRight": pos["brow_out_r"],
    }
    for k, name in enumerate(FACE_CURVES):
        out[:, k] = curves[name]
    return out
