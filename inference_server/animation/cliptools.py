"""Clip tools on MotionClip: trim, resample, smooth, remove foot sliding, export BVH.

All tools return a new clip and leave the input untouched; all are vectorised over frames. They
work at any frame rate and on clips from one frame up; values they cannot work with (an empty
clip, a rate or strength that is not a positive number) raise InvalidInput.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import IO

import numpy as np
from scipy.ndimage import gaussian_filter1d

from inference_server.animation.mapping import map_skeleton
from inference_server.animation.retarget import RetargetOptions, retarget
from inference_server.animation.rig import Rig
from inference_server.errors import InvalidInput
from inference_server.motion import bvh, quat
from inference_server.motion.clip import MotionClip
from keygrip import humanoid


def _take(clip: MotionClip, index: np.ndarray, times: np.ndarray) -> MotionClip:
    return replace(
        clip, times=times, rotations=clip.rotations[index], root_translation=clip.root_translation[index],
        confidence=clip.confidence[index], frame_flags=clip.frame_flags[index],
        contacts=clip.contacts[index], face_curves=clip.face_curves[index], metadata=dict(clip.metadata))


def _check_frames(clip: MotionClip, tool: str) -> None:
    if clip.num_frames == 0:
        raise InvalidInput(f"cannot {tool} a clip without frames")


def trim(clip: MotionClip, start: float, end: float) -> MotionClip:
    """Frames with start <= time <= end (seconds); times restart at 0."""
    _check_frames(clip, "trim")
    keep = np.flatnonzero((clip.times >= start - 1e-9) & (clip.times <= end + 1e-9))
    if len(keep) == 0:
        raise InvalidInput(f"trim {start:.3f}-{end:.3f} s keeps no frame of a {clip.times[-1]:.3f} s clip; "
                           "pick a range inside the clip")
    out = _take(clip, keep, clip.times[keep] - clip.times[keep[0]])
    # A captured clip has one frame per video frame: its first frame is now keep[0] frames later.
    out.cameras = [replace(c, frame_offset=c.frame_offset + int(keep[0])) for c in clip.cameras]
    return out


def resample(clip: MotionClip, fps: float) -> MotionClip:
    """Resample to a uniform `fps`: slerp for rotations, linear for translation and face curves,
    nearest frame for contacts and flags. Also turns a variable-rate clip into a uniform one."""
    if not 0 < fps < float("inf"):  # also refuses NaN
        raise InvalidInput(f"fps must be a positive number, got {fps}")
    _check_frames(clip, "resample")
    duration = clip.times[-1] - clip.times[0]
    new_times = np.arange(int(np.floor(duration * fps + 1e-6)) + 1) / fps
    t = new_times + clip.times[0]
    hi = np.clip(np.searchsorted(clip.times, t, side="right"), 1, clip.num_frames - 1)
    lo = hi - 1
    span = np.maximum(clip.times[hi] - clip.times[lo], 1e-12)
    w = np.clip((t - clip.times[lo]) / span, 0.0, 1.0)
    if clip.num_frames == 1:
        lo = hi = np.zeros_like(lo)
    rot = quat.slerp(clip.rotations[lo], clip.rotations[hi], np.broadcast_to(w[:, None], lo.shape + (
        clip.skeleton.num_joints,)))
    nearest = np.where(w < 0.5, lo, hi)
    out = _take(clip, nearest, new_times)
    out.fps = float(fps)
    out.rotations = quat.make_continuous(rot, axis=0)
    out.root_translation = clip.root_translation[lo] * (1 - w[:, None]) + clip.root_translation[hi] * w[:, None]
    out.face_curves = (clip.face_curves[lo] * (1 - w[:, None]) + clip.face_curves[hi] * w[:, None]).astype(
        clip.face_curves.dtype)
    return out


def smooth(clip: MotionClip, strength: float) -> MotionClip:
    """Zero-phase Gaussian smoothing; strength is the kernel's sigma in seconds (0 = unchanged).

    Quaternions are made sign-continuous first (q and -q would average to nothing), filtered
    component-wise forwards and backwards at once (a symmetric kernel has no lag) and renormalised.
    """
    if not 0 <= strength < float("inf"):  # also refuses NaN
        raise InvalidInput(f"smoothing strength must be >= 0 seconds, got {strength}")
    if strength == 0 or clip.num_frames < 3:
        return _take(clip, np.arange(clip.num_frames), clip.times.copy())
    # Beyond the clip's length a wider kernel changes nothing but its cost.
    sigma = min(strength * clip.frame_rate, float(clip.num_frames))
    out = _take(clip, np.arange(clip.num_frames), clip.times.copy())
    rot = quat.make_continuous(clip.rotations, axis=0)
    out.rotations = quat.normalize(gaussian_filter1d(rot, sigma, axis=0, mode="nearest"))
    out.root_translation = gaussian_filter1d(clip.root_translation, sigma, axis=0, mode="nearest")
    return out


def remove_foot_sliding(clip: MotionClip, *, blend_s: float = 0.1) -> MotionClip:
    """Pin the feet of a humanoid clip on its contact frames (the clip's own contacts, or ones
    detected from foot height and speed) with two-bone IK on the legs."""
    rig = Rig.from_skeleton(clip.skeleton)
    smap = map_skeleton(clip.skeleton)
    # Retargeting a clip onto its own skeleton is the identity; only the foot lock changes it.
    result = retarget(clip, rig, bone_map=smap, source_map=smap,
                      options=RetargetOptions(foot_lock=True, lock_blend_s=blend_s))
    out = _take(clip, np.arange(clip.num_frames), clip.times.copy())
    # The rig's bones have the joints' rest world frames, so a joint's local rotation is its rest
    # local rotation followed by the rig's rest-relative rotation.
    out.rotations = quat.make_continuous(
        quat.multiply(clip.skeleton.rest_rotations[None], result.rotations), axis=0)
    if not out.contact_names and result.contacts is not None:
        out.contact_names = list(humanoid.CONTACT_NAMES)
        out.contacts = result.contacts
    return out


def export_bvh(clip: MotionClip, destination: str | Path | IO[str], *, order: str = "ZXY",
               scale: float = 1.0) -> None:
    """Write any clip as BVH (see inference_server.motion.bvh.write_bvh)."""
    bvh.write_bvh(clip, destination, order=order, scale=scale)

