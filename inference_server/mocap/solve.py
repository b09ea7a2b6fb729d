"""Turn raw MediaPipe landmarks into a clean animated canonical skeleton.

Stages: undo left/right label swaps, scale, place the body in space through a pinhole camera,
fit the limbs to the image, MediaPipe's depth and constant bone lengths, fill detection gaps,
low-pass filter without phase lag, derive joint rotations, put the feet on the floor, detect foot
contacts and lock the feet, then solve fingers and the face when asked.

The output MotionClip follows DESIGN.md: Y-up metres, quaternions (x, y, z, w), a T-pose rest with
identity rest rotations, VRM humanoid joint names. The world frame is the camera's, levelled: x to
the image right, y up, z towards the camera, with the floor at y = 0; a subject facing the camera
faces +Z. The camera's pitch and roll are found from the body (root_motion.estimate_up). The clip
carries that camera (MotionClip.cameras): the pinhole the body was placed through, turned and lifted
as the world was, so that through it the skeleton lies on the person in the video.

Finger joints are in the skeleton only when SolveOptions.hands is on; without hand tracking they
are omitted rather than left at a rest pose the artist would take for captured data.

Any frame rate and any clip length from one frame up solve: steps that need more frames than the
clip has (smoothing, foot contacts and locking, finding the floor's tilt, the face's neutral) are
skipped or fall back, and the clip's warnings say which and why, as they say when a low frame rate
limits smoothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from inference_server.errors import FailedPrecondition, InvalidInput
from inference_server.jobs.context import JobContext, NullContext
from inference_server.mocap import face as face_solver
from inference_server.mocap import filters, pose_fit, root_motion, skeleton_fit, swaps
from inference_server.mocap import hands as hand_solver
from inference_server.mocap.landmarks import Landmarks
from inference_server.mocap.options import SolveOptions, check_solve
from inference_server.motion import foot_lock, quat
from inference_server.motion.clip import FrameFlag, MotionClip, Skeleton, forward_kinematics, frame_rate
from keygrip import humanoid
from keygrip.projection import Camera, VideoCamera

# Detection gaps up to this long are interpolated; longer ones are held and flagged MISSING.
MAX_INTERPOLATED_GAP_S = 0.25
_STAGES = 7


def _check_input(lm: Landmarks, options: SolveOptions) -> None:
    if lm.num_frames == 0:
        raise InvalidInput("The landmarks hold no frames; run detection on a video with frames.")
    if not np.any(lm.pose_present):
        raise FailedPrecondition("No person was found in any frame. Use a video where one person's "
                                 "whole body is visible, or widen the frame range.")
    if options.hands and lm.left_hand_image is None and lm.right_hand_image is None:
        raise InvalidInput("Hands were asked for but the landmarks have no hand tracks; "
                           "run detection with hands on, or turn hands off.")
    if options.face and lm.face_image is None:
        raise InvalidInput("The face was asked for but the landmarks have no face mesh; "
                           "run detection with the face on, or turn the face off.")


@dataclass
class PlacedBody:
    """The body in a Y-up world, metres: what the shared solving passes start from.

    world: (F, 33, 3) MediaPipe's 33 body points relative to root, NaN where not placed.
    root: (F, 3) world position of those points' origin.
    placed: (F,) bool, frames where the body is in the world.
    visibility: (F, 33) 0..1 per point.
    measures: the body's bone lengths.
    calibrated: True when the world comes from calibrated cameras (multicam/): its up axis and
        floor are the calibration's and stay, the body's up is not looked for, and the floor the
        feet show is used for contacts only. False for a single camera's levelled view.
    view: the view hands and face are solved from (single view: the one there is).
    view_rotation: (4,) the rotation from that view's Y-up camera axes into the world.
    camera_position: (3,) where the one camera is in the world (contact speeds and the foot lock work
        across its view, depth being the uncertain direction); None for calibrated views.
    focal: a single view's focal length in pixels: the clip carries the camera the body was placed
        through (calibrated views: None, their cameras are the calibration's).
    """

    world: np.ndarray
    root: np.ndarray
    placed: np.ndarray
    visibility: np.ndarray
    measures: skeleton_fit.BodyMeasures
    calibrated: bool
    view: Landmarks
    view_rotation: np.ndarray
    camera_position: np.ndarray | None
    focal: float | None = None


def solve(landmarks: Landmarks, options: SolveOptions, ctx: JobContext | None = None) -> MotionClip:
    """Solve landmarks into a MotionClip on the canonical humanoid (see the module docstring).

    The Landmarks are not modified; the caller keeps them as the raw capture.
    """
    ctx = ctx or NullContext()
    check_solve(options)
    _check_input(landmarks, options)
    lm = landmarks
    warnings: list[str] = []
    fps = frame_rate(lm.fps, lm.times)
    if fps != lm.fps:
        warnings.append(f"the clip has no usable frame rate ({lm.fps:g}): {fps:g} fps was assumed; "
                        "set fps_override to the footage's real rate")
    stages = _Stages(ctx)
    stages("placing the body")
    present = np.asarray(lm.pose_present, dtype=bool) & np.all(np.isfinite(lm.pose_world), axis=(1, 2))
    w, h = lm.image_size
    lm = swaps.unswap(lm, swaps.find_swaps(lm.pose_image[..., :2] * (w, h), lm.pose_visibility, present))
    vis = np.where(present[:, None], np.nan_to_num(lm.pose_visibility), 0.0)
    measures = skeleton_fit.measure_body(skeleton_fit.to_y_up(lm.pose_world[present]), vis[present])
    scale = 1.0
    if options.subject_height_m is not None:
        scale = options.subject_height_m / measures.standing_height()
    pose_world = lm.pose_world * scale
    focal = root_motion.focal_length_px(lm.image_size, options.focal_length_px, options.fov_deg)
    cam = root_motion.camera_translation(lm.pose_image, pose_world, vis, lm.image_size, focal)
    placed = present & np.all(np.isfinite(cam), axis=1)
    if not placed.any():
        raise FailedPrecondition("The person could not be placed in the camera view in any frame; "
                                 "check the focal length or field of view you gave.")
    pose_world = root_motion.snap_to_rays(lm.pose_image, pose_world, cam, lm.image_size, focal)
    # Bone lengths from the landmarks as the solver will use them, so the fit follows the pose.
    measures = skeleton_fit.measure_body(skeleton_fit.to_y_up(pose_world[placed]), vis[placed])
    pose_world = pose_fit.fit_pose(pose_world + cam[:, None], _rays(lm, focal), vis, measures) - cam[:, None]
    body = PlacedBody(world=skeleton_fit.to_y_up(pose_world), root=skeleton_fit.to_y_up(cam), placed=placed,
                      visibility=vis, measures=measures, calibrated=False, view=lm,
                      view_rotation=quat.identity(()), camera_position=np.zeros(3), focal=focal)
    clip = solve_placed(body, fps, options, stages, warnings)
    clip.metadata.update(focal_length_px=f"{focal:.1f}", scale=f"{scale:.4f}")
    return clip


class _Stages:
    """Progress through the solver's stages, with a cancel check at each."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx, self.step = ctx, 0

    def __call__(self, message: str) -> None:
        self.ctx.check_cancelled()
        self.ctx.progress("solve", self.step, _STAGES, message)
        self.step += 1


def solve_world(body: PlacedBody, fps: float, options: SolveOptions, ctx: JobContext | None = None,
                warnings: list[str] | None = None) -> MotionClip:
    """The solving passes from body points already placed in a world (multi-view triangulation):
    the same constant bone lengths, gap filling, filtering, contacts, foot lock, hands and face as
    solve() after it has placed a single view's landmarks."""
    ctx = ctx or NullContext()
    check_solve(options)
    _check_input(body.view, options)
    stages = _Stages(ctx)
    stages("placing the body")
    return solve_placed(body, fps, options, stages, list(warnings or []))


def solve_placed(body: PlacedBody, fps: float, options: SolveOptions, stage: _Stages,
                 warnings: list[str]) -> MotionClip:
    """The passes after placing: gaps, levelling, filtering, skeleton, floor, feet, face."""
    lm, placed, vis, measures = body.view, body.placed, body.visibility, body.measures
    frames = len(placed)
    max_gap = max(1, round(MAX_INTERPOLATED_GAP_S * fps))

    stage("filling gaps")
    world, flags = filters.fill_gaps(body.world, placed, max_gap)
    root = filters.fill_gaps(body.root, placed, max_gap)[0]
    level = quat.identity(())
    if not body.calibrated:
        # Level the world: turn the body's up onto +Y so the floor is horizontal.
        up = root_motion.estimate_up(world[placed], vis[placed])
        if placed.sum() < root_motion.MIN_UP_FRAMES:
            warnings.append(f"the body was placed in {filters.frames_text(int(placed.sum()))}: the floor is "
                            f"taken as level with the camera (finding it from the body needs at least "
                            f"{root_motion.MIN_UP_FRAMES})")
        level = quat.between(up, np.array([0.0, 1.0, 0.0]))
        world = quat.rotate(level, world)
        root = quat.rotate(level, root)

    stage("filtering")
    asked = filters.smoothing_cutoff_hz(options.smoothing)
    warnings.extend(filters.smoothing_notes("the body", frames, fps, asked))
    # lowpass keeps any cut-off under the clip's Nyquist frequency; cutoff is what it will use.
    cutoff = filters.smoothing_cutoff_hz(options.smoothing, fps)
    world = filters.lowpass(world, fps, asked)
    root = filters.lowpass(root, fps, asked)

    stage("fitting the skeleton")
    view_present = np.asarray(lm.pose_present, dtype=bool) & np.all(np.isfinite(lm.pose_world), axis=(1, 2))
    hand_tracks = hand_solver.HandTracks.from_landmarks(lm, view_present, max_gap, fps, asked,
                                                        quat.multiply(level, body.view_rotation)) \
        if options.hands else None
    if hand_tracks is not None:
        lost = [side for side in ("left", "right") if side not in hand_tracks.points]
        if lost:
            warnings.append(f"the {' and '.join(lost)} hand{'s were' if len(lost) > 1 else ' was'} not found in "
                            "any frame: those fingers keep their rest pose")
    finger_offsets = hand_solver.finger_offsets(hand_tracks, measures) if hand_tracks else None
    skeleton = skeleton_fit.build_skeleton(measures, finger_offsets)
    names = skeleton.names
    g_rot = skeleton_fit.body_global_rotations(world, measures, names)
    # The hips joint sits on the hips midpoint, the world landmarks' origin.
    hips = world[:, [skeleton_fit.L_HIP, skeleton_fit.R_HIP]].mean(axis=1)
    if body.calibrated:
        # Triangulated points each sit where the cameras put them: the clavicles and limbs reach for
        # them from the skeleton's own joints, so that the offsets of a pelvis, a trunk and bones of
        # constant size do not add up down the limbs (single view: pose_fit has fitted its limbs to the
        # image already).
        g_rot = skeleton_fit.aim_limbs(skeleton, g_rot, root + hips, world + root[:, None], vis)
    confidence = skeleton_fit.joint_confidence(vis, names)
    if hand_tracks is not None:
        hand_solver.apply_finger_rotations(hand_tracks, g_rot, confidence, names)
    rotations = skeleton_fit.to_local(skeleton, g_rot)
    root = root + hips

    stage("finding the floor")
    heel, toe = skeleton_fit.heel_offset(measures), skeleton_fit.toe_offset(measures)
    points = _contact_points(skeleton, rotations, root, heel, toe)
    floor = root_motion.floor_height(points[..., 1])
    root[:, 1] -= floor
    camera = None if body.camera_position is None else \
        quat.rotate(level, body.camera_position) - np.array([0.0, floor, 0.0])
    points = _contact_points(skeleton, rotations, root, heel, toe)
    contacts = foot_lock.floor_contacts(points, fps, camera)
    min_contact = foot_lock.min_contact_frames(fps)
    if frames < min_contact:
        steps = "foot contact detection and foot locking" if options.foot_lock else "foot contact detection"
        warnings.append(f"clip has {filters.frames_text(frames)}: {steps} skipped "
                        f"(needs at least {min_contact} at {fps:g} fps)")

    stage("locking feet")
    if options.foot_lock and frames >= min_contact:
        per_foot = {"left": contacts[:, 0] | contacts[:, 1], "right": contacts[:, 2] | contacts[:, 3]}
        rotations, root = foot_lock.lock_skeleton_feet(skeleton, rotations, root, per_foot, fps, camera)
    if body.calibrated:
        # The calibration's world stays: the feet's floor served the contacts above only.
        root[:, 1] += floor

    stage("solving the face")
    face_names: list[str] = []
    face_curves = None
    if options.face:
        assert lm.face_image is not None  # _check_input refused a face without face landmarks
        face_names = list(face_solver.FACE_CURVES)
        face_curves = face_solver.solve_face(lm.face_image, lm.image_size, fps, asked, warnings)

    # Filtering and foot locking reach into long gaps; a lost person must hold still there.
    tracked = flags != FrameFlag.MISSING
    rotations = filters.fill_gaps(rotations, tracked, max_gap=0)[0]
    root = filters.fill_gaps(root, tracked, max_gap=0)[0]
    contacts = filters.fill_gaps(contacts, tracked, max_gap=0)[0] > 0.5
    if face_curves is not None:
        face_curves = filters.fill_gaps(face_curves, tracked, max_gap=0)[0]
    cameras = [] if body.focal is None else [_solve_camera(lm, body.focal, level, floor)]
    if not options.root_motion:
        # In place: the hips stay above the origin (feet locked in the world slide with it), where no
        # fixed camera sees them as the video did.
        root[:, [0, 2]] = 0.0
        cameras = []
    stage.ctx.progress("solve", _STAGES, _STAGES, "done")
    meta = {k: str(v) for k, v in asdict(options).items()}
    meta.update(cutoff_hz="none" if cutoff is None else f"{cutoff:.2f}", floor_height_m=f"{floor:.4f}")
    return MotionClip(
        skeleton=skeleton,
        fps=fps,
        times=np.asarray(lm.times, dtype=np.float64),
        rotations=rotations,
        root_translation=root,
        confidence=np.where((flags == FrameFlag.TRACKED)[:, None], confidence, 0.0).astype(np.float32),
        frame_flags=flags,
        contact_names=list(humanoid.CONTACT_NAMES),
        contacts=contacts,
        face_names=face_names,
        face_curves=face_curves,
        metadata=meta,
        warnings=warnings,
        cameras=cameras,
    )


def _solve_camera(lm: Landmarks, focal: float, level: np.ndarray, floor: float) -> VideoCamera:
    """The pinhole the body was placed through, in the clip's world: it sat at the origin looking down
    -Z (the Y-up camera frame), then the world turned by `level` about it and dropped by `floor`."""
    w, h = lm.image_size
    camera_to_world = np.eye(4)
    camera_to_world[:3, :3] = quat.to_matrix(level)
    camera_to_world[1, 3] = -floor
    # MediaPipe's normalised coordinates span the image edge to edge: the centre is at w/2, h/2.
    camera = Camera(width=w, height=h, focal_x=focal, focal_y=focal, center_x=0.5 * w, center_y=0.5 * h,
                    camera_to_world=camera_to_world)
    return VideoCamera("camera", camera, frame_offset=int(lm.frame_indices[0]))


def _contact_points(skeleton: Skeleton, rotations: np.ndarray, root: np.ndarray, heel: np.ndarray,
                    toe: np.ndarray) -> np.ndarray:
    """World positions (F, 4, 3) of leftHeel, leftToes, rightHeel, rightToes (CONTACT_NAMES)."""
    g_rot, g_pos = forward_kinematics(skeleton, rotations, root)
    out = []
    for side in ("left", "right"):
        foot = skeleton.index(f"{side}Foot")
        for offset in (heel, toe):
            out.append(g_pos[:, foot] + quat.rotate(g_rot[:, foot], offset))
    return np.stack(out, axis=1)


def _rays(lm: Landmarks, focal: float) -> np.ndarray:
    """Image landmarks (F, 33, 2) as pinhole ray slopes (x - cx) / f, (y - cy) / f."""
    w, h = lm.image_size
    return (lm.pose_image[..., :2] * (w, h) - 0.5 * np.array([w, h])) / focal
