"""Fit the canonical humanoid to MediaPipe pose landmarks: constant bone lengths and joint rotations.

Axes: MediaPipe world landmarks (x right, y down, z away from the camera) are turned into a
right-handed Y-up frame (x right, y up, z towards the camera) by flipping y and z, a proper
rotation. A subject facing the camera then faces +Z with their left towards +X, which is exactly
the canonical rest orientation, so the rest pose needs no extra turn.

Rest pose: a T-pose with identity rest rotations; the pose lives in the offsets. Spine chain and
limbs point along +Y, arms along +X (left) / -X (right), legs along -Y, feet forward and down.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from inference_server.motion import quat
from inference_server.motion.clip import Skeleton, forward_kinematics
from keygrip import humanoid

# MediaPipe Pose landmark indices.
NOSE = 0
L_EYE, R_EYE = 2, 5
L_EAR, R_EAR = 7, 8
MOUTH_L, MOUTH_R = 9, 10
L_SHOULDER, R_SHOULDER = 11, 12
L_ELBOW, R_ELBOW = 13, 14
L_WRIST, R_WRIST = 15, 16
L_PINKY, R_PINKY = 17, 18
L_INDEX, R_INDEX = 19, 20
L_HIP, R_HIP = 23, 24
L_KNEE, R_KNEE = 25, 26
L_ANKLE, R_ANKLE = 27, 28
L_HEEL, R_HEEL = 29, 30
L_TOE, R_TOE = 31, 32

MP_TO_Y_UP = np.array([1.0, -1.0, -1.0])

# Where the spine joints sit along the hips -> shoulder-midpoint line, as fractions of its length
# (spine, chest, upperChest, neck); they sum to 1 so the neck lands on the shoulder midpoint.
_SPINE_SPLIT = (0.2, 0.25, 0.25, 0.3)
# Top of the skull above the ear line, as a fraction of the ear-to-ear width (adult head
# proportions); only used to turn a subject height into a scale.
_HEAD_TOP_PER_EAR_WIDTH = 0.85
# Weight of the fallback hinge axis of elbows and knees: large enough to fix the twist of a
# straight limb, small enough that any visible bend (above ~10 degrees) decides it.
_HINGE_FALLBACK = 0.1

# The limbs' bones: the joint whose rest offset is the bone -> the landmarks at its two ends.
LIMB_BONES: dict[str, tuple[int, int]] = {
    "leftLowerArm": (L_SHOULDER, L_ELBOW), "leftHand": (L_ELBOW, L_WRIST),
    "rightLowerArm": (R_SHOULDER, R_ELBOW), "rightHand": (R_ELBOW, R_WRIST),
    "leftLowerLeg": (L_HIP, L_KNEE), "leftFoot": (L_KNEE, L_ANKLE),
    "rightLowerLeg": (R_HIP, R_KNEE), "rightFoot": (R_KNEE, R_ANKLE),
}

# Landmarks that decide each body joint's confidence (min of their visibilities).
JOINT_LANDMARKS: dict[str, tuple[int, ...]] = {
    "hips": (L_HIP, R_HIP),
    "spine": (L_HIP, R_HIP, L_SHOULDER, R_SHOULDER),
    "chest": (L_HIP, R_HIP, L_SHOULDER, R_SHOULDER),
    "upperChest": (L_SHOULDER, R_SHOULDER),
    "neck": (L_SHOULDER, R_SHOULDER, L_EAR, R_EAR),
    "head": (L_EAR, R_EAR, NOSE),
    "leftShoulder": (L_SHOULDER,),
    "leftUpperArm": (L_SHOULDER, L_ELBOW),
    "leftLowerArm": (L_ELBOW, L_WRIST),
    "leftHand": (L_WRIST, L_INDEX, L_PINKY),
    "rightShoulder": (R_SHOULDER,),
    "rightUpperArm": (R_SHOULDER, R_ELBOW),
    "rightLowerArm": (R_ELBOW, R_WRIST),
    "rightHand": (R_WRIST, R_INDEX, R_PINKY),
    "leftUpperLeg": (L_HIP, L_KNEE),
    "leftLowerLeg": (L_KNEE, L_ANKLE),
    "leftFoot": (L_ANKLE, L_HEEL, L_TOE),
    "leftToes": (L_TOE,),
    "rightUpperLeg": (R_HIP, R_KNEE),
    "rightLowerLeg": (R_KNEE, R_ANKLE),
    "rightFoot": (R_ANKLE, R_HEEL, R_TOE),
    "rightToes": (R_TOE,),
}


@dataclass
class BodyMeasures:
    """Robust body dimensions of one subject, metres (left and right averaged)."""

    hip_half_width: float
    trunk: float  # hips midpoint to shoulder midpoint
    neck: float  # shoulder midpoint to ear midpoint
    shoulder_half_width: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    ankle_height: float  # ankle above the floor with the foot flat
    heel_back: float  # heel behind the ankle
    toe_front: float  # toe tip in front of the ankle
    ear_width: float
    # Each limb bone's own length by LIMB_BONES' joint names, left and right apart; empty: both
    # sides take upper_arm, forearm, thigh and shin (see measure_body's per_side).
    limbs: dict[str, float] = field(default_factory=dict)

    def standing_height(self) -> float:
        """Floor to the top of the head, upright."""
        return (self.ankle_height + self.shin + self.thigh + self.trunk + self.neck
                + _HEAD_TOP_PER_EAR_WIDTH * self.ear_width)

    def scaled(self, factor: float) -> BodyMeasures:
        lengths = {k: v * factor for k, v in vars(self).items() if k != "limbs"}
        return replace(self, **lengths, limbs={k: v * factor for k, v in self.limbs.items()})


def to_y_up(points: np.ndarray) -> np.ndarray:
    """MediaPipe-axis points (..., 3) to the Y-up frame (x right, y up, z towards the camera)."""
    return np.asarray(points, dtype=np.float64) * MP_TO_Y_UP


def _norm(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _robust_length(points: np.ndarray, vis: np.ndarray, pairs: list[tuple[int, int]]) -> float:
    """Median distance between landmark pairs over confident frames, pooled over the pairs."""
    samples = []
    for a, b in pairs:
        d = np.linalg.norm(points[:, a] - points[:, b], axis=-1)
        ok = np.isfinite(d) & (np.minimum(vis[:, a], vis[:, b]) > 0.5)
        if ok.sum() < 3:  # too few confident frames: use every detected one
            ok = np.isfinite(d)
        samples.append(d[ok])
    pooled = np.concatenate(samples)
    return float(np.median(pooled)) if len(pooled) else 0.0


def _mean_length(points: np.ndarray, vis: np.ndarray, pair: tuple[int, int]) -> float:
    """Confidence-weighted mean distance between two landmarks: the constant length nearest the
    per-frame lengths in the least-squares sense. Like _robust_length, every frame counts alike where
    fewer than 3 have any confidence (points placed from one view only)."""
    a, b = pair
    d = np.linalg.norm(points[:, a] - points[:, b], axis=-1)
    w = np.where(np.isfinite(d), np.minimum(vis[:, a], vis[:, b]), 0.0)
    if (w > 0).sum() < 3:
        w = np.isfinite(d).astype(np.float64)
    return float(np.sum(w * np.nan_to_num(d)) / np.sum(w)) if w.any() else 0.0


def measure_body(points: np.ndarray, vis: np.ndarray, per_side: bool = False) -> BodyMeasures:
    """Bone lengths from world landmarks (F, 33, 3) and visibility (F, 33), medians over the clip.

    Medians over confident frames ignore the frames where MediaPipe foreshortens or mislocates a
    limb, and pooling left with right gives a symmetric skeleton. per_side: the limbs also keep
    each side's own lengths (BodyMeasures.limbs), for points triangulated from calibrated views,
    which measure each limb where it is (on the Pose2Sim trial the triangulated left leg is 3 cm
    shorter than the right, and a pooled length put each ankle 1-2 cm off its point). Those limbs,
    the pelvis, the trunk and the shoulders' width are then confidence-weighted means: a triangulated
    length has no foreshortened frames to ignore, and the mean is the constant length nearest all the
    frame's lengths (least squares), where the median of a skewed spread is not (the Pose2Sim trial's
    left forearm: median 260 mm, mean 254 mm).
    """
    mid_hip = 0.5 * (points[:, L_HIP] + points[:, R_HIP])
    mid_sh = 0.5 * (points[:, L_SHOULDER] + points[:, R_SHOULDER])
    mid_ear = 0.5 * (points[:, L_EAR] + points[:, R_EAR])
    vis_hip = np.minimum(vis[:, L_HIP], vis[:, R_HIP])
    vis_sh = np.minimum(vis[:, L_SHOULDER], vis[:, R_SHOULDER])
    vis_ear = np.minimum(vis[:, L_EAR], vis[:, R_EAR])
    ext = np.concatenate([points, mid_hip[:, None], mid_sh[:, None], mid_ear[:, None]], axis=1)
    ext_vis = np.concatenate([vis, vis_hip[:, None], vis_sh[:, None], vis_ear[:, None]], axis=1)
    hip_c, sh_c, ear_c = 33, 34, 35

    def length(pair: tuple[int, int]) -> float:
        return _mean_length(ext, ext_vis, pair) if per_side else _robust_length(ext, ext_vis, [pair])

    heel_ankle = _robust_length(ext, ext_vis, [(L_HEEL, L_ANKLE), (R_HEEL, R_ANKLE)])
    toe_ankle = _robust_length(ext, ext_vis, [(L_TOE, L_ANKLE), (R_TOE, R_ANKLE)])
    foot = _robust_length(ext, ext_vis, [(L_TOE, L_HEEL), (R_TOE, R_HEEL)])
    # Lay heel and toe flat on the floor below the ankle: a triangle with the three measured sides.
    foot = max(foot, 1e-3)
    toe_front = float(np.clip(0.5 * (foot + (toe_ankle**2 - heel_ankle**2) / foot), 0.0, foot))
    heel_back = foot - toe_front
    ankle_height = float(np.sqrt(max(toe_ankle**2 - toe_front**2, (0.2 * foot) ** 2)))

    return BodyMeasures(
        hip_half_width=0.5 * length((L_HIP, R_HIP)),
        trunk=length((hip_c, sh_c)),
        neck=_robust_length(ext, ext_vis, [(sh_c, ear_c)]),
        shoulder_half_width=0.5 * length((L_SHOULDER, R_SHOULDER)),
        upper_arm=_robust_length(ext, ext_vis, [(L_SHOULDER, L_ELBOW), (R_SHOULDER, R_ELBOW)]),
        forearm=_robust_length(ext, ext_vis, [(L_ELBOW, L_WRIST), (R_ELBOW, R_WRIST)]),
        thigh=_robust_length(ext, ext_vis, [(L_HIP, L_KNEE), (R_HIP, R_KNEE)]),
        shin=_robust_length(ext, ext_vis, [(L_KNEE, L_ANKLE), (R_KNEE, R_ANKLE)]),
        ankle_height=ankle_height,
        heel_back=heel_back,
        toe_front=toe_front,
        ear_width=_robust_length(ext, ext_vis, [(L_EAR, R_EAR)]),
        limbs={name: length(pair) for name, pair in LIMB_BONES.items()} if per_side else {},
    )


def heel_offset(m: BodyMeasures) -> np.ndarray:
    """Heel contact point in the foot joint's rest frame (3,)."""
    return np.array([0.0, -m.ankle_height, -m.heel_back])


def toe_offset(m: BodyMeasures) -> np.ndarray:
    """Toe tip (the toes joint) in the foot joint's rest frame (3,)."""
    return np.array([0.0, -m.ankle_height, m.toe_front])


def build_skeleton(m: BodyMeasures, finger_offsets: dict[str, np.ndarray] | None = None) -> Skeleton:
    """The canonical T-pose skeleton for these measures; fingers only when finger_offsets is given
    (name -> (3,) offset in the parent's frame, for the left and right finger joints)."""
    t = m.trunk
    s = _SPINE_SPLIT
    body = {
        "hips": (0.0, 0.0, 0.0),
        "spine": (0.0, s[0] * t, 0.0),
        "chest": (0.0, s[1] * t, 0.0),
        "upperChest": (0.0, s[2] * t, 0.0),
        "neck": (0.0, s[3] * t, 0.0),
        "head": (0.0, m.neck, 0.0),
        # The clavicle joint starts 15% of the way out so the upper arm lands on the shoulder.
        "leftShoulder": (0.15 * m.shoulder_half_width, s[3] * t, 0.0),
        "leftUpperArm": (0.85 * m.shoulder_half_width, 0.0, 0.0),
        "leftLowerArm": (m.upper_arm, 0.0, 0.0),
        "leftHand": (m.forearm, 0.0, 0.0),
        "leftUpperLeg": (m.hip_half_width, 0.0, 0.0),
        "leftLowerLeg": (0.0, -m.thigh, 0.0),
        "leftFoot": (0.0, -m.shin, 0.0),
        "leftToes": tuple(toe_offset(m)),
    }
    for name in list(body):
        if name.startswith("left"):
            x, y, z = body[name]
            body["right" + name[4:]] = (-x, y, z)
    joints = humanoid.hierarchy(with_fingers=finger_offsets is not None)
    names = [n for n, _ in joints]
    parents = [-1 if p is None else names.index(p) for _, p in joints]
    for name, length in m.limbs.items():
        bone = np.array(body[name])
        body[name] = tuple(bone * (length / np.linalg.norm(bone)))
    fingers = finger_offsets or {}
    offsets = np.array([body[n] if n in body else fingers[n] for n in names])
    return Skeleton(names=names, parents=np.array(parents), offsets=offsets)


def frame_rotation(primary: np.ndarray, secondary: np.ndarray,
                   primary_rest: np.ndarray, secondary_rest: np.ndarray) -> np.ndarray:
    """Rotation (..., 4) taking the rest frame built from (primary, secondary) rest directions onto
    the observed one: primary is matched exactly, secondary fixes the twist about it."""
    def basis(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        e1 = _norm(a)
        e3 = _norm(np.cross(e1, b))
        e2 = np.cross(e3, e1)
        return np.stack([e1, e2, e3], axis=-1)

    rest = basis(np.broadcast_to(primary_rest, primary.shape), np.broadcast_to(secondary_rest, primary.shape))
    return quat.from_matrix(basis(primary, secondary) @ np.swapaxes(rest, -1, -2))


def _hinge(upper: np.ndarray, lower: np.ndarray, fallback_dir: np.ndarray) -> np.ndarray:
    """Bend axis of a two-bone limb (F, 3), with a fallback that decides it when straight."""
    u, low = _norm(upper), _norm(lower)
    return np.cross(u, low) + _HINGE_FALLBACK * _norm(np.cross(u, fallback_dir))


def body_global_rotations(p: np.ndarray, m: BodyMeasures, names: list[str]) -> np.ndarray:
    """Global rotations (F, J, 4) of the body joints from Y-up landmarks p (F, 33, 3).

    Finger joints (if any in names) are left at identity for hands.py to fill in.
    """
    f = len(p)
    g = quat.identity((f, len(names)))
    x_axis, y_axis, z_axis = np.eye(3)
    mid_hip = 0.5 * (p[:, L_HIP] + p[:, R_HIP])
    mid_sh = 0.5 * (p[:, L_SHOULDER] + p[:, R_SHOULDER])
    trunk = mid_sh - mid_hip

    def put(name: str, q: np.ndarray) -> None:
        g[:, names.index(name)] = q

    hips = frame_rotation(trunk, p[:, L_HIP] - p[:, R_HIP], y_axis, x_axis)
    upper_chest = frame_rotation(trunk, p[:, L_SHOULDER] - p[:, R_SHOULDER], y_axis, x_axis)
    put("hips", hips)
    # Share the twist between pelvis and shoulders along the spine; all share the trunk axis,
    # so the neck still lands on the shoulder midpoint.
    put("spine", quat.slerp(hips, upper_chest, np.full(f, 1.0 / 3.0)))
    put("chest", quat.slerp(hips, upper_chest, np.full(f, 2.0 / 3.0)))
    put("upperChest", upper_chest)
    put("leftShoulder", upper_chest)
    put("rightShoulder", upper_chest)

    mid_ear = 0.5 * (p[:, L_EAR] + p[:, R_EAR])
    neck = quat.multiply(quat.between(quat.rotate(upper_chest, y_axis), mid_ear - mid_sh), upper_chest)
    put("neck", neck)
    face_up = 0.5 * (p[:, L_EYE] + p[:, R_EYE]) - 0.5 * (p[:, MOUTH_L] + p[:, MOUTH_R])
    put("head", frame_rotation(p[:, L_EAR] - p[:, R_EAR], face_up, x_axis, y_axis))

    forward = quat.rotate(upper_chest, z_axis)
    backward = -quat.rotate(hips, z_axis)
    for side, sign, (sh, el, wr, pk, ix) in (
        ("left", 1.0, (L_SHOULDER, L_ELBOW, L_WRIST, L_PINKY, L_INDEX)),
        ("right", -1.0, (R_SHOULDER, R_ELBOW, R_WRIST, R_PINKY, R_INDEX)),
    ):
        upper, lower = p[:, el] - p[:, sh], p[:, wr] - p[:, el]
        hinge = _hinge(upper, lower, forward)
        # Rest: arm along +-X, elbow bending the forearm forward, so the hinge is -+Y.
        put(f"{side}UpperArm", frame_rotation(upper, hinge, sign * x_axis, -sign * y_axis))
        put(f"{side}LowerArm", frame_rotation(lower, hinge, sign * x_axis, -sign * y_axis))
        hand_dir = 0.5 * (p[:, pk] + p[:, ix]) - p[:, wr]
        put(f"{side}Hand", frame_rotation(hand_dir, p[:, ix] - p[:, pk], sign * x_axis, z_axis))

    heel_rest, toe_rest = heel_offset(m), toe_offset(m)
    foot_side_rest = np.cross(heel_rest, toe_rest)
    for side, (hp, kn, an, he, to) in (
        ("left", (L_HIP, L_KNEE, L_ANKLE, L_HEEL, L_TOE)),
        ("right", (R_HIP, R_KNEE, R_ANKLE, R_HEEL, R_TOE)),
    ):
        upper, lower = p[:, kn] - p[:, hp], p[:, an] - p[:, kn]
        # Rest: leg along -Y, knee bending the shin backwards, so the hinge is +X.
        hinge = _hinge(upper, lower, backward)
        put(f"{side}UpperLeg", frame_rotation(upper, hinge, -y_axis, x_axis))
        put(f"{side}LowerLeg", frame_rotation(lower, hinge, -y_axis, x_axis))
        to_toe, to_heel = p[:, to] - p[:, an], p[:, he] - p[:, an]
        put(f"{side}Foot", frame_rotation(to_toe, np.cross(to_heel, to_toe), toe_rest, foot_side_rest))
        put(f"{side}Toes", g[:, names.index(f"{side}Foot")])
    return g


def fit_chain(start: np.ndarray, mid: np.ndarray, end: np.ndarray, upper: float, lower: float,
              w_mid: np.ndarray, w_end: np.ndarray) -> np.ndarray:
    """Where (F, 3) the middle joint of a two-bone chain of fixed lengths goes (a knee, an elbow) from
    start (F, 3) so that it and the chain's end lie nearest their points mid and end (F, 3): the least
    squares of w_mid |knee - mid|^2 + w_end |ankle - end|^2 over the upper bone's direction, the lower
    bone pointing at end (which is best for any knee). Aiming each bone at its point in turn instead
    puts the whole of a frame's length mismatch on the far joints.

    SciPy's least_squares over all frames at once (two unknowns a frame, each frame's block of the
    Jacobian apart), starting from the greedy aim: the upper bone's direction turned in its tangent plane.
    """
    from scipy.optimize import least_squares
    from scipy.sparse import block_diag

    f = len(start)
    d0 = _norm(mid - start)
    helper = np.where(np.abs(d0[:, :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    t1 = _norm(np.cross(d0, helper))
    t2 = np.cross(d0, t1)
    s_mid, s_end = np.sqrt(np.maximum(w_mid, 0.0))[:, None], np.sqrt(np.maximum(w_end, 0.0))

    def knee(x: np.ndarray) -> np.ndarray:
        a, b = x.reshape(f, 2).T
        return start + upper * _norm(d0 + a[:, None] * t1 + b[:, None] * t2)

    def residuals(x: np.ndarray) -> np.ndarray:
        k = knee(x)
        r_end = s_end * (np.linalg.norm(end - k, axis=-1) - lower)
        return np.concatenate([s_mid * (k - mid), r_end[:, None]], axis=1).ravel()

    sparsity = block_diag([np.ones((4, 2))] * f)
    fit = least_squares(residuals, np.zeros(2 * f), jac_sparsity=sparsity, method="trf")
    return knee(fit.x)


# Each limb as a chain: the joints whose rest offsets are its two bones (the middle joint's and the
# end's), and the landmarks of its middle and its end.
LIMB_CHAINS = (("leftLowerArm", "leftHand", L_ELBOW, L_WRIST), ("rightLowerArm", "rightHand", R_ELBOW, R_WRIST),
               ("leftLowerLeg", "leftFoot", L_KNEE, L_ANKLE), ("rightLowerLeg", "rightFoot", R_KNEE, R_ANKLE))
# The clavicles: the joint that turns, the joint it carries, and that joint's landmark.
_CLAVICLES = (("leftShoulder", "leftUpperArm", L_SHOULDER), ("rightShoulder", "rightUpperArm", R_SHOULDER))


def aim_limbs(skeleton: Skeleton, global_rot: np.ndarray, root: np.ndarray, points: np.ndarray,
              confidence: np.ndarray) -> np.ndarray:
    """Global rotations (F, J, 4) with the clavicles and each limb's bones turned to reach from where
    their joints are in the skeleton to the points (F, 33, 3), the landmarks in the world, weighted
    by confidence (F, 33).

    body_global_rotations gives every bone its landmarks' direction, so each joint inherits its
    parent's whole offset from its landmark (a hip joint placed across a pelvis whose landmark
    width jitters, a bone longer or shorter than the landmarks are apart that frame) and the
    offsets add up along the limb. Each clavicle turns its upper-arm joint towards the shoulder's
    landmark (it turned with the upper chest, which left a shoulder joint about a centimetre off its
    point wherever the trunk and shoulder width of constant size did not fit that frame; a clavicle
    does move). Reaching from the skeleton's own joint, the knee or elbow goes where fit_chain puts
    it (this frame's length mismatch shared between it and the ankle or wrist), and the lower bone
    points at its end's landmark.
    Each bone turns by the shortest arc, so the hinge's twist stays; hands and feet keep their
    global rotations. root: (F, 3) the hips joint's world position.
    """
    g_rot = global_rot.copy()
    _, g_pos = forward_kinematics(skeleton, to_local(skeleton, global_rot), root)

    def aim(j: int, c: int, target: np.ndarray) -> None:  # turn joint j so that its child c lies towards target
        turn = quat.between(quat.rotate(g_rot[:, j], skeleton.offsets[c]), target - g_pos[:, j])
        g_rot[:, j] = quat.multiply(turn, g_rot[:, j])
        g_pos[:, c] = g_pos[:, j] + quat.rotate(g_rot[:, j], skeleton.offsets[c])

    for clavicle, arm, shoulder in _CLAVICLES:
        aim(skeleton.index(clavicle), skeleton.index(arm), points[:, shoulder])
    for mid_joint, end_joint, mid, end in LIMB_CHAINS:
        m, e = skeleton.index(mid_joint), skeleton.index(end_joint)
        s = int(skeleton.parents[m])
        knee = fit_chain(g_pos[:, s], points[:, mid], points[:, end], float(np.linalg.norm(skeleton.offsets[m])),
                         float(np.linalg.norm(skeleton.offsets[e])), confidence[:, mid], confidence[:, end])
        aim(s, m, knee)
        aim(m, e, points[:, end])
    return g_rot


def to_local(skeleton: Skeleton, global_rot: np.ndarray) -> np.ndarray:
    """Local rotations (F, J, 4) from global ones: inverse(G[parent]) * G[joint]."""
    local = global_rot.copy()
    for j, parent in enumerate(skeleton.parents):
        if parent >= 0:
            local[:, j] = quat.multiply(quat.inverse(global_rot[:, parent]), global_rot[:, j])
    return quat.make_continuous(quat.normalize(local), axis=0)


def joint_confidence(vis: np.ndarray, names: list[str]) -> np.ndarray:
    """Per-joint confidence (F, J) float32: the lowest visibility of the landmarks that drive it.
    Joints without landmarks of their own (fingers) are set by the caller."""
    conf = np.zeros((len(vis), len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        if name in JOINT_LANDMARKS:
            conf[:, j] = vis[:, list(JOINT_LANDMARKS[name])].min(axis=1)
    return conf
