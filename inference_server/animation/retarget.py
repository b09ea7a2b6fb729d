"""Retarget any humanoid MotionClip onto any humanoid Rig.

How a mapped target bone is posed, for each frame (all frames at once, looping over bones only):
1. Rest alignment: the target's rest pose is first turned into the source's rest pose, so that
   T-pose, A-pose, bone roll and facing do not matter: the hips by matching the frames made of
   (hips -> neck, left hip - right hip), each other bone by the shortest arc between its rest
   segment directions (its head to the head of its mapped child), after the hips alignment.
2. Twist: the source joint's world rotation relative to its own rest carries the target bone.
3. Swing: the result is turned by the shortest arc that makes the target segment point exactly
   where the source segment points in world space (this absorbs joints the target does not have).
Bones without a mapped child (head, toes, fingertips, a hand without fingers) take steps 1-2 only.
Unmapped target bones keep their rest pose relative to their parent, except bones whose name
matches an unmapped source joint (a clip retargeted onto its own skeleton), which copy its motion.

Root motion is the source hips' trajectory scaled by the ratio of leg lengths (thigh + shin). The
clip's cameras move with it (scaled and lifted as the travel is), so that through each the rig
stands where the person stood in its video.
Feet are then locked on the source's contact frames (motion/foot_lock.py). Any frame rate and any
clip length from one frame up retarget; a clip too short to find foot contacts on is retargeted
without locking, and the result's warnings say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from inference_server.animation.mapping import BoneMap, map_rig, map_skeleton
from inference_server.animation.rig import Rig
from inference_server.errors import InvalidInput
from inference_server.jobs.context import JobContext, NullContext
from inference_server.motion import foot_lock, quat
from inference_server.motion.clip import MotionClip
from keygrip import humanoid
from keygrip.projection import Camera, VideoCamera

ROOT_MODES = ("hips", "keep", "in_place", "root_bone")

_SPINE = ["spine", "chest", "upperChest", "neck", "head"]


def _child_candidates(role: str) -> list[str]:
    """Roles whose head ends the segment of `role`, best first."""
    if role in _SPINE:
        return _SPINE[_SPINE.index(role) + 1:]
    for side in ("left", "right"):
        if not role.startswith(side):
            continue
        part = role[len(side):]
        chain = {"Shoulder": "UpperArm", "UpperArm": "LowerArm", "LowerArm": "Hand",
                 "UpperLeg": "LowerLeg", "LowerLeg": "Foot", "Foot": "Toes"}
        if part in chain:
            return [side + chain[part]]
        if part == "Hand":
            return [f"{side}{f}Proximal" for f in ("Middle", "Index", "Ring", "Little")]
        fingers = humanoid.HAND_JOINTS[side]
        if role in fingers:
            i = fingers.index(role)
            if i % 3 < 2:
                return [fingers[i + 1]]
    return []


@dataclass
class RetargetOptions:
    """root_motion: "hips" (scaled trajectory on the hips bone), "keep" (unscaled, as captured, on
        the hips), "in_place" (ground-plane travel removed, height kept), "root_bone" (ground-plane
        travel on the rig's top root bone, height on the hips).
    foot_lock: pin the feet on contact frames with two-bone IK (not in "in_place" mode).
    lock_blend_s: seconds over which a foot lock fades in and out.
    match_directions: step 3 of the module docstring; off copies rotations only.
    copy_unmapped_by_name: unmapped target bones copy the motion of same-named source joints.
    face_mapping: {ARKit name: target shape key}; missing names map to themselves.
    face_shape_keys: the target's shape keys; when given, curves without one are dropped (warned).
    """

    root_motion: str = "hips"
    foot_lock: bool = True
    lock_blend_s: float = 0.1
    match_directions: bool = True
    copy_unmapped_by_name: bool = True
    face_mapping: dict[str, str] | None = None
    face_shape_keys: list[str] | None = None


@dataclass
class RetargetResult:
    """A target rig's animation, ready for a host to key.

    bone_names: (B,) the rig's bones, in the rig's order.
    rotations: (F, B, 4) xyzw rotation of each bone relative to its rest, in its own rest frame
        (Blender's pose_bone.rotation_quaternion), sign-continuous over time.
    locations: {bone name: (F, 3)} translation in the bone's rest frame relative to its rest head,
        metres (pose_bone.location); the hips and, in "root_bone" mode, the top root bone.
    root_bone: the bone that carries the travel; root_location its (F, 3) entry of locations.
    root_position_world: (F, 3) the hips head in rig space, metres.
    contact_names / contacts: CONTACT_NAMES and (F, 4) the contacts the feet were locked on.
    face_names / face_curves: target shape-key names and (F, K) weights.
    """

    bone_names: list[str]
    times: np.ndarray
    fps: float
    rotations: np.ndarray
    locations: dict[str, np.ndarray]
    root_bone: str
    root_position_world: np.ndarray
    bone_map: BoneMap
    source_map: BoneMap
    contact_names: list[str] = field(default_factory=list)
    contacts: np.ndarray | None = None
    face_names: list[str] = field(default_factory=list)
    face_curves: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    cameras: list[VideoCamera] = field(default_factory=list)

    @property
    def root_location(self) -> np.ndarray:
        return self.locations[self.root_bone]


def _frame(up: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Rotation (4,) whose Y axis is `up` and X axis is `side` made orthogonal to it."""
    y = up / max(np.linalg.norm(up), 1e-12)
    x = side - y * np.dot(side, y)
    x = x / max(np.linalg.norm(x), 1e-12)
    return quat.from_matrix(np.stack([x, y, np.cross(x, y)], axis=-1))


def leg_length(positions: np.ndarray, index: dict[str, int]) -> float:
    """Mean thigh + shin length (metres) from rest positions (J, 3) and a role -> index map."""
    lengths = []
    for side in ("left", "right"):
        roles = [f"{side}UpperLeg", f"{side}LowerLeg", f"{side}Foot"]
        if all(r in index for r in roles):
            pts = positions[[index[r] for r in roles]]
            lengths.append(np.linalg.norm(np.diff(pts, axis=0), axis=-1).sum())
    if not lengths:
        raise InvalidInput("cannot measure leg length: upper leg, lower leg and foot must be mapped")
    return float(np.mean(lengths))


def source_contacts(clip: MotionClip, src_index: dict[str, int], world_pos: np.ndarray,
                    leg: float) -> np.ndarray:
    """(F, 4) contacts in CONTACT_NAMES order: the clip's own, or detected from foot motion."""
    names = humanoid.CONTACT_NAMES
    if clip.contacts is not None and all(n in clip.contact_names for n in names) and clip.contacts.any():
        return clip.contacts[:, [clip.contact_names.index(n) for n in names]].astype(bool)
    if clip.num_frames < foot_lock.min_contact_frames(clip.frame_rate):
        return np.zeros((clip.num_frames, len(names)), dtype=bool)
    points, have = [], []
    for side in ("left", "right"):
        for part in ("Foot", "Toes"):
            role = side + part
            have.append(role in src_index)
            points.append(world_pos[:, src_index[role]] if role in src_index else world_pos[:, 0] * np.nan)
    pts = np.stack(points, axis=1)
    contacts = foot_lock.relative_contacts(np.nan_to_num(pts, nan=1e9), clip.frame_rate, leg)
    contacts[:, ~np.array(have)] = False
    return contacts


def retarget(source: MotionClip, rig: Rig, bone_map: BoneMap | None = None,
             source_map: BoneMap | None = None, options: RetargetOptions | None = None,
             context: JobContext | None = None) -> RetargetResult:
    """Retarget `source` onto `rig`. Maps are found automatically when not given.

    Missing bones on either side (fingers, neck, toes) give a partial retarget and a warning.
    """
    options = options or RetargetOptions()
    context = context or NullContext()
    if options.root_motion not in ROOT_MODES:
        raise InvalidInput(f"root_motion {options.root_motion!r} is not one of {ROOT_MODES}")
    warnings: list[str] = list(rig.warnings)
    source_map = source_map or map_skeleton(source.skeleton)
    bone_map = bone_map or map_rig(rig)
    s_names = source.skeleton.names
    s_idx = {r: s_names.index(b) for b, r in source_map.bone_to_role.items() if b in s_names}
    t_idx = {r: rig.index(b) for b, r in bone_map.bone_to_role.items() if b in rig.names}
    common = [r for r in t_idx if r in s_idx]
    for group, roles in (("fingers", [r for r in t_idx if "Proximal" in r or "Metacarpal" in r]),
                         ("neck/head", [r for r in ("neck", "head") if r in t_idx]),
                         ("toes", [r for r in ("leftToes", "rightToes") if r in t_idx])):
        lost = [r for r in roles if r not in s_idx]
        if lost:
            warnings.append(f"the source has no {group} for {', '.join(lost)}: those bones keep their rest pose")
    for group, roles in (("neck", ["neck"]), ("fingers", [r for r in s_idx if "Proximal" in r])):
        lost = [r for r in roles if r in s_idx and r not in t_idx]
        if lost and group == "neck":
            warnings.append("the rig has no neck bone: the source's neck motion is dropped")
        elif lost:
            warnings.append(f"the rig has no finger bones for {len(lost)} source finger joints: "
                            "finger motion is dropped")
    context.progress("retarget", 0, 4, "forward kinematics")
    context.check_cancelled()

    g_src, p_src = source.global_transforms()
    g_src0, p_src0 = source.skeleton.rest_global()
    f = source.num_frames
    heads = rig.heads
    r_rest = rig.rest_rotations

    # 1. Rest alignment of the hips: (up, side) frames of both rests.
    c_hips = quat.identity()
    up_role = next((r for r in ("neck", "upperChest", "chest", "head", "spine")
                    if r in common and "hips" in common
                    and np.linalg.norm(p_src0[s_idx[r]] - p_src0[s_idx["hips"]]) > 1e-6
                    and np.linalg.norm(heads[t_idx[r]] - heads[t_idx["hips"]]) > 1e-6), None)
    if up_role and "leftUpperLeg" in common and "rightUpperLeg" in common:
        fs = _frame(p_src0[s_idx[up_role]] - p_src0[s_idx["hips"]],
                    p_src0[s_idx["leftUpperLeg"]] - p_src0[s_idx["rightUpperLeg"]])
        ft = _frame(heads[t_idx[up_role]] - heads[t_idx["hips"]],
                    heads[t_idx["leftUpperLeg"]] - heads[t_idx["rightUpperLeg"]])
        c_hips = quat.multiply(fs, quat.conjugate(ft))

    # Per role: child role for the segment, rest correction, pre-swing world rotation.
    child_of: dict[str, str | None] = {}
    correction: dict[str, np.ndarray] = {}
    zero_length: list[str] = []
    order = [r for r in (n for n, _ in humanoid.hierarchy()) if r in common]
    parent_role = dict(humanoid.hierarchy())
    for role in order:
        inherited = correction.get(parent_role.get(role) or "", c_hips)
        if role == "hips":
            child_of[role] = None
            correction[role] = c_hips
            continue
        # The first mapped candidate ends the segment: skipping it would leave a posed bone inside.
        child = next((c for c in _child_candidates(role) if c in common), None)
        if child is not None:
            d_t0 = heads[t_idx[child]] - heads[t_idx[role]]
            d_s0 = p_src0[s_idx[child]] - p_src0[s_idx[role]]
            if np.linalg.norm(d_t0) < 1e-6:
                zero_length.append(bone_map.role_to_bone[role])
                child = None
            elif np.linalg.norm(d_s0) < 1e-6:
                child = None
        child_of[role] = child
        if child is None:
            correction[role] = inherited
            continue
        correction[role] = quat.multiply(quat.between(quat.rotate(c_hips, d_t0), d_s0), c_hips)
    if zero_length:
        warnings.append(f"zero-length bones {zero_length}: they follow the source's rotation without "
                        "direction matching")

    # Unmapped target bones copying same-named unmapped source joints.
    copied: dict[int, np.ndarray] = {}
    if options.copy_unmapped_by_name:
        mapped_src = set(source_map.bone_to_role)
        for b, name in enumerate(rig.names):
            if name in bone_map.bone_to_role or name in mapped_src or name not in s_names:
                continue
            j = s_names.index(name)
            delta = quat.multiply(quat.conjugate(source.skeleton.rest_rotations[j]), source.rotations[:, j])
            world_axes = quat.multiply(quat.multiply(g_src0[j], delta), quat.conjugate(g_src0[j]))
            copied[b] = quat.multiply(quat.multiply(quat.conjugate(r_rest[b]), world_axes), r_rest[b])

    context.progress("retarget", 1, 4, "solving rotations")
    world_of: dict[int, np.ndarray] = {}
    for role in order:
        b, j = t_idx[role], s_idx[role]
        w = quat.multiply(quat.multiply(g_src[:, j], quat.conjugate(g_src0[j])),
                          quat.multiply(correction[role], r_rest[b]))
        child = child_of[role]
        if options.match_directions and child is not None:
            v = _segment_in_bone_frame(rig, b, t_idx[child], copied, f)
            d_s = p_src[:, s_idx[child]] - p_src[:, j]
            ok = np.linalg.norm(d_s, axis=-1) > 1e-9
            swing = quat.between(quat.rotate(w, v), d_s)
            w = np.where(ok[:, None], quat.multiply(swing, w), w)
        world_of[b] = w
    context.check_cancelled()

    world = np.empty((f, rig.num_bones, 4))
    for b in rig.order:
        if b in world_of:
            world[:, b] = world_of[b]
            continue
        p = int(rig.parents[b])
        local = copied.get(int(b), quat.identity((f,)))
        if p < 0:
            world[:, b] = quat.multiply(r_rest[b], local)
        else:
            rel = quat.multiply(quat.conjugate(r_rest[p]), r_rest[b])
            world[:, b] = quat.multiply(world[:, p], quat.multiply(rel, local))
    local = rig.to_local(world)

    # Root motion.
    context.progress("retarget", 2, 4, "root motion")
    s_leg = leg_length(p_src0, s_idx)
    t_leg = leg_length(heads, t_idx)
    ratio = t_leg / s_leg
    hips_b = t_idx["hips"]
    hips_pos = p_src[:, s_idx["hips"]] * (1.0 if options.root_motion == "keep" else ratio)
    if options.root_motion == "in_place":
        hips_pos[:, [0, 2]] = heads[hips_b, [0, 2]]
    locations: dict[int, np.ndarray] = {}
    root_b = hips_b
    top = rig.top_root(hips_b)
    if options.root_motion == "root_bone":
        if top == hips_b:
            warnings.append("root_bone mode: the hips are the rig's top bone, so the travel stays on the hips")
        else:
            root_b = top
            travel = np.zeros((f, 3))
            travel[:, [0, 2]] = hips_pos[:, [0, 2]] - heads[hips_b, [0, 2]]
            locations[top] = quat.rotate(quat.conjugate(r_rest[top]), travel)
    contacts = source_contacts(source, s_idx, p_src, s_leg)
    _place_hips(rig, local, locations, hips_b, hips_pos)
    # Rigs differ in where their hips bone sits relative to the legs (Rigify's "spine" head lies
    # below the thighs), so scaled hips heights alone leave feet above or below the floor. Shift
    # the whole clip vertically so that the feet touch down where the source's scaled feet do.
    scale = 1.0 if options.root_motion == "keep" else ratio
    offset = _ground_offset(rig, local, locations, t_idx, s_idx, p_src, contacts, scale)
    if offset:
        hips_pos[:, 1] -= offset
        _place_hips(rig, local, locations, hips_b, hips_pos)
    if options.foot_lock and options.root_motion != "in_place":
        min_contact = foot_lock.min_contact_frames(source.frame_rate)
        if f < min_contact and not contacts.any():
            warnings.append(f"clip has {f} frame{'' if f == 1 else 's'}: foot locking skipped "
                            f"(finding foot contacts needs at least {min_contact} at {source.frame_rate:g} fps)")
        else:
            context.progress("retarget", 3, 4, "foot locking")
            local = _lock_feet(rig, local, locations, t_idx, contacts,
                               max(1, round(options.lock_blend_s * source.frame_rate)))

    face_names, face_curves = _map_face(source, options, warnings)
    cameras = [_moved(c, scale, offset) for c in source.cameras]
    if cameras and options.root_motion == "in_place":
        cameras = []
        warnings.append("in_place root motion: the clip's cameras are left out (no fixed camera sees the motion "
                        "with its travel removed); use hips or root_bone to get them")
    context.progress("retarget", 4, 4, "done")
    return RetargetResult(
        bone_names=list(rig.names), times=source.times.copy(), fps=source.frame_rate,
        rotations=quat.make_continuous(local, axis=0),
        locations={rig.names[b]: v for b, v in locations.items()},
        root_bone=rig.names[root_b], root_position_world=hips_pos,
        bone_map=bone_map, source_map=source_map,
        contact_names=list(humanoid.CONTACT_NAMES), contacts=contacts,
        face_names=face_names, face_curves=face_curves, warnings=warnings, cameras=cameras)


def _moved(camera: VideoCamera, scale: float, lift: float) -> VideoCamera:
    """A source camera where it sees the retargeted motion as it saw the source: the travel was
    scaled about the origin and lowered by `lift`, so is the camera (a pinhole sees a scene scaled
    about its own centre unchanged)."""
    m = camera.camera.camera_to_world.copy()
    m[:3, 3] = m[:3, 3] * scale - (0.0, lift, 0.0)
    c = camera.camera
    moved = Camera(width=c.width, height=c.height, focal_x=c.focal_x, focal_y=c.focal_y, center_x=c.center_x,
                   center_y=c.center_y, camera_to_world=m)
    return VideoCamera(camera.name, moved, camera.distortion, camera.video, camera.frame_offset)


def _place_hips(rig: Rig, local: np.ndarray, locations: dict[int, np.ndarray], hips_b: int,
                hips_pos: np.ndarray) -> None:
    """Set the hips location so its head lands on hips_pos, against its parent's posed frame."""
    p = int(rig.parents[hips_b])
    locations.pop(hips_b, None)
    if p >= 0:
        w_all, h_all = rig.forward_kinematics(local, locations)
        locations[hips_b] = rig.location_for(hips_b, hips_pos, w_all[:, p], h_all[:, p])
    else:
        locations[hips_b] = rig.location_for(hips_b, hips_pos, None, None)


def _ground_offset(rig: Rig, local: np.ndarray, locations: dict[int, np.ndarray], t_idx: dict[str, int],
                   s_idx: dict[str, int], p_src: np.ndarray, contacts: np.ndarray, scale: float) -> float:
    """Median height (m) of the target's feet above the source's scaled feet on contact frames."""
    _, heads = rig.forward_kinematics(local, locations)
    diffs = []
    for c, name in enumerate(humanoid.CONTACT_NAMES):
        role = name.replace("Heel", "Foot")
        if role in t_idx and role in s_idx and contacts[:, c].any():
            d = heads[:, t_idx[role], 1] - scale * p_src[:, s_idx[role], 1]
            diffs.append(d[contacts[:, c]])
    return float(np.median(np.concatenate(diffs))) if diffs else 0.0


def _segment_in_bone_frame(rig: Rig, top: int, bottom: int, copied: dict[int, np.ndarray],
                           f: int) -> np.ndarray:
    """Offset (F, 3) from bone top's head to bone bottom's head in top's posed frame.

    Bones in between keep their rest or their copied motion, which is what they will have.
    """
    path = [bottom]
    while path[-1] != top:
        path.append(int(rig.parents[path[-1]]))
        if path[-1] < 0:
            return np.broadcast_to(quat.rotate(quat.conjugate(rig.rest_rotations[top]),
                                               rig.heads[bottom] - rig.heads[top]), (f, 3))
    path.reverse()
    rot = quat.identity((f,))
    pos = np.zeros((f, 3))
    for parent, child in zip(path[:-1], path[1:], strict=True):
        rp = rig.rest_rotations[parent]
        pos = pos + quat.rotate(rot, quat.rotate(quat.conjugate(rp), rig.heads[child] - rig.heads[parent]))
        if child != bottom:
            rel = quat.multiply(quat.conjugate(rp), rig.rest_rotations[child])
            rot = quat.multiply(rot, quat.multiply(rel, copied.get(child, quat.identity((f,)))))
    return pos


def _lock_feet(rig: Rig, local: np.ndarray, locations: dict[int, np.ndarray], t_idx: dict[str, int],
               contacts: np.ndarray, blend: int) -> np.ndarray:
    world, heads = rig.forward_kinematics(local, locations)
    names = humanoid.CONTACT_NAMES
    fixed: list[int] = []
    for side in ("left", "right"):
        roles = [f"{side}UpperLeg", f"{side}LowerLeg", f"{side}Foot"]
        if not all(r in t_idx for r in roles):
            continue
        up, low, foot = (t_idx[r] for r in roles)
        heel = contacts[:, names.index(f"{side}Heel")]
        toes = contacts[:, names.index(f"{side}Toes")] & (f"{side}Toes" in t_idx)
        ankle = heads[:, foot]
        # Heel down: lock the ankle. Toes only: lock the toes and carry the ankle with them.
        offset = foot_lock.lock_offsets(ankle, heel, blend)
        if f"{side}Toes" in t_idx:
            toe_only = toes & ~heel
            offset = offset + foot_lock.lock_offsets(heads[:, t_idx[f"{side}Toes"]], toe_only, blend) * (
                ~heel)[:, None]
        if not np.any(offset):
            continue
        side_axis = heads[:, t_idx["leftUpperLeg"]] - heads[:, t_idx["rightUpperLeg"]] if (
            "leftUpperLeg" in t_idx and "rightUpperLeg" in t_idx) else np.tile([1.0, 0.0, 0.0], (len(ankle), 1))
        up_delta, low_delta = foot_lock.two_bone_ik(heads[:, up], heads[:, low], ankle, ankle + offset, side_axis)
        # Bones from the thigh down to the shin turn with the thigh, from the shin to the foot with
        # the shin; the foot keeps its world rotation so it stays flat on the ground.
        chain = _path_down(rig, up, foot)
        lower = chain.index(low)
        for i, b in enumerate(chain[:-1]):
            world[:, b] = quat.multiply(up_delta if i < lower else low_delta, world[:, b])
        fixed.extend(chain)
    if not fixed:
        return local
    local = local.copy()
    local[:, fixed] = rig.to_local(world, bones=fixed)[:, fixed]
    return local


def _path_down(rig: Rig, top: int, bottom: int) -> list[int]:
    """Bones from top down to bottom, both included (bottom must descend from top)."""
    path = [bottom]
    while path[-1] != top:
        path.append(int(rig.parents[path[-1]]))
    return path[::-1]


def _map_face(source: MotionClip, options: RetargetOptions, warnings: list[str]) -> tuple[list[str], np.ndarray]:
    mapping = options.face_mapping or {}
    names = [mapping.get(n, n) for n in source.face_names]
    curves = np.asarray(source.face_curves, dtype=np.float32)
    if options.face_shape_keys is not None and names:
        available = set(options.face_shape_keys)
        keep = [i for i, n in enumerate(names) if n in available]
        dropped = [n for n in names if n not in available]
        if dropped:
            warnings.append(f"{len(dropped)} face curves have no shape key on the target and are dropped "
                            f"(e.g. {dropped[:3]}); pass face_mapping to rename them")
        names = [names[i] for i in keep]
        curves = curves[:, keep]
    return names, curves
