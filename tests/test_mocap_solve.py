"""The mocap solver on real MediaPipe landmarks of real video (Pose2Sim balancing trial, cam01)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from pose2sim_trial import TOML, reference_body

from inference_server.errors import FailedPrecondition, InvalidInput, JobCancelled
from inference_server.jobs.context import NullContext
from inference_server.mocap import pose_fit, root_motion, skeleton_fit, swaps
from inference_server.mocap.inference import detect
from inference_server.mocap.options import SolveOptions
from inference_server.mocap.solve import MAX_INTERPOLATED_GAP_S, solve
from inference_server.motion import quat
from inference_server.motion.clip import FrameFlag, forward_kinematics
from inference_server.multicam.calibration_files import read_calibration
from keygrip import humanoid

DATA = Path(__file__).parent / "data" / "pose2sim"
CAM01 = DATA.parent / "video" / "pose2sim_cam01.mp4"  # one man balancing on his left leg, 60 fps, 100 frames
REFERENCE = DATA / "S00_P00_T01_BalancingTrial_0-100_filt_butterworth.trc"
FOCAL_CAM01 = 1681.24  # px, from Calib_qualisys_converted_by_pose2sim.toml
# Local-only data (GRID must not be copied into the repository).
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GRID = SHARED / "face_video" / "grid" / "id2_vcd_swwp2s.mpg"
GRID_ALIGN = SHARED / "face_video" / "grid" / "swwp2s.align"
ASTRONAUT = SHARED / "images" / "faces" / "astronaut_eileen_collins.png"

LIMB_BONES = [("leftUpperLeg", "leftLowerLeg"), ("leftLowerLeg", "leftFoot"),
              ("rightUpperArm", "rightLowerArm"), ("rightLowerArm", "rightHand"), ("neck", "head")]


@pytest.fixture(scope="module")
def landmarks():
    return detect(CAM01, workers=1, ctx=NullContext())


@pytest.fixture(scope="module")
def clip(landmarks):
    return solve(landmarks, SolveOptions(focal_length_px=FOCAL_CAM01))


def _positions(clip, names):
    _, pos = clip.global_transforms()
    return pos[:, [clip.skeleton.index(n) for n in names]]


def _ankle_slide(clip, side):
    """Mean ankle travel per frame (m) over frames where that foot is in contact both frames."""
    contact = clip.contacts[:, [humanoid.CONTACT_NAMES.index(f"{side}Heel"),
                                humanoid.CONTACT_NAMES.index(f"{side}Toes")]].any(axis=1)
    ankle = _positions(clip, [f"{side}Foot"])[:, 0]
    both = contact[1:] & contact[:-1]
    return float(np.linalg.norm(np.diff(ankle, axis=0), axis=-1)[both].mean()), int(both.sum())


def test_clip_layout(clip, landmarks):
    assert clip.skeleton.names == humanoid.BODY_JOINTS  # fingers omitted without hand tracking
    assert clip.num_frames == landmarks.num_frames == 100
    assert np.allclose(clip.skeleton.rest_rotations, quat.identity((clip.skeleton.num_joints,)))
    assert np.isfinite(clip.rotations).all() and np.isfinite(clip.root_translation).all()
    assert np.allclose(np.linalg.norm(clip.rotations, axis=-1), 1.0)
    assert clip.contact_names == humanoid.CONTACT_NAMES
    assert (clip.frame_flags == FrameFlag.TRACKED).all()
    assert ((clip.confidence >= 0) & (clip.confidence <= 1)).all()
    # T-pose rest facing +Z: left arm along +X, legs down, toes forward.
    rest = dict(zip(clip.skeleton.names, clip.skeleton.offsets, strict=True))
    assert rest["leftLowerArm"][0] > 0.15 and rest["rightLowerArm"][0] < -0.15
    assert rest["leftFoot"][1] < -0.25 and rest["leftToes"][2] > 0.05
    # The subject stands upright: head well above the hips, hips about a leg above the floor.
    head, hips = _positions(clip, ["head", "hips"]).transpose(1, 0, 2)
    assert np.median(head[:, 1] - hips[:, 1]) > 0.5
    assert 0.6 < np.median(hips[:, 1]) < 1.2


def test_bone_lengths_are_constant(clip, landmarks):
    _, pos = clip.global_transforms()
    names = clip.skeleton.names
    for a, b in LIMB_BONES:
        length = np.linalg.norm(pos[:, names.index(a)] - pos[:, names.index(b)], axis=-1)
        assert length.std() / length.mean() < 0.01, (a, b)
    # The raw landmarks are far from it (so the check above means something).
    w = landmarks.pose_world
    raw = np.linalg.norm(w[:, 25] - w[:, 27], axis=-1)
    assert raw.std() / raw.mean() > 0.02


def test_smoothing_lowers_acceleration(landmarks):
    def accel(options):
        pos = _positions(solve(landmarks, options), ["leftHand", "rightHand", "leftFoot", "head"])
        return float(np.linalg.norm(np.diff(pos, 2, axis=0), axis=-1).mean())

    raw = accel(SolveOptions(smoothing=0.0, foot_lock=False))
    light = accel(SolveOptions(smoothing=0.2, foot_lock=False))
    strong = accel(SolveOptions(smoothing=0.8, foot_lock=False))
    assert strong < light < raw
    assert strong < 0.5 * raw


def test_feet_on_the_floor_during_contacts(clip):
    heel_toe = _positions(clip, ["leftToes", "rightToes"])
    assert clip.contacts.any()
    toe_contact = clip.contacts[:, [1, 3]]
    assert np.abs(heel_toe[..., 1][toe_contact]).mean() < 0.06
    # The floor is the lowest the feet get, not below them.
    assert np.percentile(heel_toe[..., 1].min(axis=1), 5) > -0.05


def test_contacts_of_a_standing_subject(clip):
    left = clip.contacts[:, :2].any(axis=1)
    right = clip.contacts[:, 2:].any(axis=1)
    # He stands on his left leg and swings the right one.
    assert left.mean() > 0.5
    assert left.mean() > right.mean()


def test_foot_lock_reduces_sliding(landmarks, clip):
    free = solve(landmarks, SolveOptions(focal_length_px=FOCAL_CAM01, foot_lock=False))
    locked_slide, frames = _ankle_slide(clip, "left")
    free_slide, _ = _ankle_slide(free, "left")
    assert frames > 20
    assert locked_slide < 0.5 * free_slide
    assert np.array_equal(free.contacts, clip.contacts)


def test_person_lost_mid_clip(landmarks):
    lost = dataclasses.replace(landmarks, pose_world=landmarks.pose_world.copy(),
                               pose_image=landmarks.pose_image.copy(),
                               pose_visibility=landmarks.pose_visibility.copy(),
                               pose_present=landmarks.pose_present.copy())
    short = slice(20, 24)  # 4 frames: interpolated
    long_gap = slice(50, 80)  # 30 frames (0.5 s at 60 fps): missing
    assert 4 <= MAX_INTERPOLATED_GAP_S * 60 < 30
    for gap in (short, long_gap):
        lost.pose_world[gap] = np.nan
        lost.pose_image[gap] = np.nan
        lost.pose_visibility[gap] = 0.0
        lost.pose_present[gap] = False
    out = solve(lost, SolveOptions())
    assert (out.frame_flags[short] == FrameFlag.INTERPOLATED).all()
    assert (out.frame_flags[long_gap] == FrameFlag.MISSING).all()
    assert (out.frame_flags[:20] == FrameFlag.TRACKED).all()
    assert np.isfinite(out.rotations).all() and np.isfinite(out.root_translation).all()
    assert (out.confidence[long_gap] == 0).all()
    # Held, not drifting: the pose barely changes through the long gap.
    hold = quat.angle_between(out.rotations[55:75], out.rotations[55:56])
    assert np.degrees(hold).max() < 2.0
    assert landmarks.pose_present.all()  # the caller's raw landmarks are untouched


def test_subject_height_scales_the_skeleton(landmarks):
    def skeleton_height(height):
        sk = solve(landmarks, SolveOptions(subject_height_m=height, foot_lock=False)).skeleton
        _, rest = sk.rest_global()
        # Floor (toe tips) to the head joint, which sits at ear level.
        return rest[sk.index("head"), 1] - rest[sk.index("leftToes"), 1]

    short, tall = skeleton_height(1.5), skeleton_height(1.9)
    assert tall / short == pytest.approx(1.9 / 1.5, rel=0.02)
    # Ears sit about 0.9 of the standing height up.
    assert 0.85 * 1.9 < tall < 0.97 * 1.9


def test_closer_to_reference_than_raw(landmarks, clip):
    """Procrustes-aligned joint error against Pose2Sim's 4-camera reconstruction."""
    rows = [r.split("\t") for r in REFERENCE.read_text().splitlines()]
    names = [n for n in rows[3][2:] if n]
    ref = np.array([[float(v) for v in r[2:2 + 3 * len(names)]] for r in rows[5:] if r and r[0].strip()])
    ref = ref.reshape(len(ref), len(names), 3)
    joints = [("LHip", 23, "leftUpperLeg"), ("RHip", 24, "rightUpperLeg"), ("LKnee", 25, "leftLowerLeg"),
              ("RKnee", 26, "rightLowerLeg"), ("LAnkle", 27, "leftFoot"), ("RAnkle", 28, "rightFoot"),
              ("LShoulder", 11, "leftUpperArm"), ("RShoulder", 12, "rightUpperArm"),
              ("LElbow", 13, "leftLowerArm"), ("RElbow", 14, "rightLowerArm"),
              ("LWrist", 15, "leftHand"), ("RWrist", 16, "rightHand")]
    ref = ref[:, [names.index(j[0]) for j in joints]]

    def pa_mpjpe(pred):
        p = pred - pred.mean(axis=1, keepdims=True)
        r = ref - ref.mean(axis=1, keepdims=True)
        u, s, vt = np.linalg.svd(np.einsum("fki,fkj->fij", r, p))
        d = np.sign(np.linalg.det(u @ vt))
        s[:, 2] *= d
        u[:, :, 2] *= d[:, None]
        scale = s.sum(axis=1) / np.sum(p**2, axis=(1, 2))
        aligned = scale[:, None, None] * np.einsum("fij,fkj->fki", u @ vt, p)
        return float(np.linalg.norm(aligned - r, axis=-1).mean())

    raw = pa_mpjpe(skeleton_fit.to_y_up(landmarks.pose_world[:, [j[1] for j in joints]]))
    ours = pa_mpjpe(_positions(clip, [j[2] for j in joints]))
    assert ours < raw < 0.15


def test_left_right_swaps_are_undone(landmarks):
    """MediaPipe's label swaps (seen on cam02 of this trial) are found from the image tracks."""
    w, h = landmarks.image_size
    xy = landmarks.pose_image[..., :2] * (w, h)
    vis, present = landmarks.pose_visibility, landmarks.pose_present
    assert not swaps.find_swaps(xy, vis, present).any()  # cam01 has none
    swapped = np.zeros(landmarks.num_frames, dtype=bool)
    swapped[40:65] = True
    relabelled = swaps.unswap(landmarks, swapped)
    assert np.array_equal(relabelled.pose_world[50, 11], landmarks.pose_world[50, 12])
    found = swaps.find_swaps(relabelled.pose_image[..., :2] * (w, h), relabelled.pose_visibility, present)
    assert np.array_equal(found, swapped)
    # Relabelling the found frames back restores the capture exactly.
    restored = swaps.unswap(relabelled, found)
    assert np.array_equal(restored.pose_world, landmarks.pose_world, equal_nan=True)
    # Hand tracks follow the pose's labels.
    f = landmarks.num_frames
    with_hands = dataclasses.replace(landmarks, left_hand_image=np.zeros((f, 21, 3)),
                                     right_hand_image=np.ones((f, 21, 3)))
    moved = swaps.unswap(with_hands, swapped)
    assert (moved.left_hand_image[swapped] == 1).all() and (moved.left_hand_image[~swapped] == 0).all()
    assert (moved.right_hand_image[swapped] == 0).all()


@pytest.mark.parametrize("recording", ["cam02_distractor_landmarks.npz", "cam02_distractor_flicker_landmarks.npz",
                                       "cam02_flicker_landmarks.npz", "cam02_flicker_every_frame_landmarks.npz"])
def test_a_few_unclear_frames_do_not_flip_the_labels(recording: str):
    """Four recorded cam02 captures (tests/data/pose2sim/README.txt): MediaPipe swaps left and right
    for a while, and a few frames fit neither labelling (its pose took the limbs of someone beside
    the subject) or both about equally (it flickers while the body turns side-on), or it flickers
    every frame. A chain from each frame to the one before got 25-58 of the 100 frames' labels right;
    solved over all pairs of nearby frames at once, the labels agree with the reference's on all but
    a frame or two (the reference's left and right joints projected through the calibration)."""
    data = np.load(DATA / recording)
    xy = data["image_xy"].astype(np.float64)
    found = swaps.find_swaps(xy, data["visibility"], data["present"])
    cam02 = read_calibration(TOML).cameras[1].camera
    u, v, _ = cam02.project(reference_body()[: len(xy)])
    truth = np.stack([u, v], axis=-1) * 0.5  # the recordings' frames are half the video's size
    left, right = [11, 23, 25, 27, 15], [12, 24, 26, 28, 16]  # shoulders, hips, knees, ankles, wrists

    def off(a: list[int], b: list[int]) -> np.ndarray:
        return np.linalg.norm(xy[:, a] - truth[:, b], axis=-1).sum(axis=1)

    swapped = off(left, right) + off(right, left) < off(left, left) + off(right, right)
    assert (found == swapped).sum() >= 97, ("".join("S" if s else "." for s in found),
                                            "".join("S" if s else "." for s in swapped))


def test_pose_fit_keeps_the_image_and_fixes_bone_lengths(landmarks):
    vis = landmarks.pose_visibility
    cam = root_motion.camera_translation(landmarks.pose_image, landmarks.pose_world, vis,
                                         landmarks.image_size, FOCAL_CAM01)
    w, h = landmarks.image_size
    rays = (landmarks.pose_image[..., :2] * (w, h) - 0.5 * np.array([w, h])) / FOCAL_CAM01
    world = root_motion.snap_to_rays(landmarks.pose_image, landmarks.pose_world, cam, landmarks.image_size,
                                     FOCAL_CAM01)
    measures = skeleton_fit.measure_body(skeleton_fit.to_y_up(world), vis)
    before = world + cam[:, None]
    after = pose_fit.fit_pose(before, rays, vis, measures)

    def shin_cv(p):
        length = np.linalg.norm(p[:, 25] - p[:, 27], axis=-1)
        return length.std() / length.mean()

    assert shin_cv(after) < 0.5 * shin_cv(before)
    # Visible joints stay within a few pixels of where MediaPipe saw them.
    pixels = after[..., :2] / after[..., 2:] * FOCAL_CAM01 - rays * FOCAL_CAM01
    error = np.linalg.norm(pixels, axis=-1)[:, pose_fit.FITTED]
    assert np.median(error[vis[:, pose_fit.FITTED] > 0.9]) < 5.0
    assert np.array_equal(after[:, 0], before[:, 0])  # the nose is not fitted


def test_progress_and_cancel(landmarks):
    ctx = NullContext()
    solve(landmarks, SolveOptions(), ctx)
    stages = [e for e in ctx.events if e[0] == "solve"]
    assert stages[-1][1] == stages[-1][2] and len(stages) >= 5

    class Cancelled(NullContext):
        def check_cancelled(self):
            raise JobCancelled("cancelled by the user")

    with pytest.raises(JobCancelled):
        solve(landmarks, SolveOptions(), Cancelled())


def test_bad_input(landmarks):
    nobody = dataclasses.replace(landmarks, pose_present=np.zeros_like(landmarks.pose_present))
    with pytest.raises(FailedPrecondition, match="No person"):
        solve(nobody, SolveOptions())
    with pytest.raises(InvalidInput, match="hand"):
        solve(landmarks, SolveOptions(hands=True))
    with pytest.raises(InvalidInput, match="smoothing"):
        solve(landmarks, SolveOptions(smoothing=2.0))


def test_fingers_from_hand_landmarks():
    lm = detect(CAM01, hands=True, workers=1, ctx=NullContext())
    out = solve(lm, SolveOptions(hands=True))
    names = out.skeleton.names
    for side in ("left", "right"):
        fingers = [names.index(n) for n in humanoid.HAND_JOINTS[side]]
        assert len(fingers) == 15
        seen = np.isfinite(getattr(lm, f"{side}_hand_image")[:, 0, 0])
        assert seen.any()
        conf = out.confidence[:, fingers]
        assert (conf[seen] == 1.0).all()
        # Real fingers bend: the middle joints turn away from the rest pose where the hand is seen.
        middle = [names.index(f"{side}{f}Intermediate") for f in ("Index", "Middle", "Ring", "Little")]
        bend = np.degrees(quat.angle_between(out.rotations[:, middle], quat.identity((1, 4))))
        assert bend[seen].max() > 10.0
    assert np.isfinite(out.rotations).all()


@pytest.mark.skipif(not GRID.exists(), reason="GRID clips are local-only evaluation data (../shared/data)")
def test_face_curves_follow_speech():
    lm = detect(GRID, face=True, workers=1, ctx=NullContext())
    out = solve(lm, SolveOptions(face=True))
    curves = out.face_curves
    assert out.face_names[:4] == ["eyeBlinkLeft", "eyeBlinkRight", "eyeWideLeft", "eyeWideRight"]
    assert set(out.face_names) <= set(humanoid.ARKIT_BLENDSHAPES)
    assert ((curves >= 0) & (curves <= 1)).all()
    jaw = curves[:, out.face_names.index("jawOpen")]
    # Word timing: start and end in 1/25000 s; divide by 1000 for the 25 fps frame.
    speech = np.zeros(len(jaw), dtype=bool)
    for line in GRID_ALIGN.read_text().split("\n"):
        parts = line.split()
        if len(parts) == 3 and parts[2] != "sil":
            speech[int(parts[0]) // 1000:int(parts[1]) // 1000] = True
    assert jaw.std() > 0.05
    assert jaw[speech].mean() > jaw[~speech].mean() + 0.05


@pytest.mark.skipif(not ASTRONAUT.exists(), reason="the astronaut photo is in ../shared/data")
def test_face_at_rest_on_a_photo():
    lm = detect(ASTRONAUT, face=True, workers=1, ctx=NullContext())
    out = solve(lm, SolveOptions(face=True))
    curves = dict(zip(out.face_names, out.face_curves[0], strict=True))
    assert all(0.0 <= v <= 1.0 for v in curves.values())
    # Eyes open, mouth closed (she smiles, so the smile curves are left free).
    assert curves["eyeBlinkLeft"] < 0.3 and curves["eyeBlinkRight"] < 0.3
    assert curves["jawOpen"] < 0.3


# Joints of the canonical skeleton that sit on one MediaPipe landmark each.
OVERLAY_LANDMARKS = {"leftUpperArm": 11, "rightUpperArm": 12, "leftLowerArm": 13, "rightLowerArm": 14,
                     "leftHand": 15, "rightHand": 16, "leftUpperLeg": 23, "rightUpperLeg": 24,
                     "leftLowerLeg": 25, "rightLowerLeg": 26, "leftFoot": 27, "rightFoot": 28}


def test_the_clip_camera_sees_the_skeleton_on_the_person(clip, landmarks):
    """Through the camera the solve placed the body with, the skeleton's joints land on MediaPipe's
    2D landmarks: median within 2% of the image height (the issue's overlay target)."""
    (cam,) = clip.cameras
    w, h = landmarks.image_size
    assert (cam.camera.width, cam.camera.height) == (w, h) and cam.camera.focal_x == pytest.approx(FOCAL_CAM01)
    assert cam.frame_offset == landmarks.frame_indices[0] == 0
    # Levelled and lifted with the world: the camera stands above the floor (y = 0), looking at the body.
    assert 0.3 < cam.camera.position[1] < 3.0
    joints = list(OVERLAY_LANDMARKS)
    u, v, depth = cam.camera.project(_positions(clip, joints))
    assert np.all(depth > 1.0)
    seen = landmarks.pose_image[:, list(OVERLAY_LANDMARKS.values()), :2] * (w, h)
    error = np.hypot(u - seen[..., 0], v - seen[..., 1])
    print(f"overlay through the clip camera: median {np.nanmedian(error):.1f} px "
          f"({np.nanmedian(error) / h:.2%} of the height)")
    assert np.nanmedian(error) <= 0.02 * h
    # In place, the body no longer stands where the camera saw it: no camera.
    in_place = solve(landmarks, SolveOptions(focal_length_px=FOCAL_CAM01, root_motion=False))
    assert in_place.cameras == []


def _triangulated_body(frames: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
    """(F, 33, 3) Y-up landmarks of a body whose limbs swing at random, its left limbs shorter than its
    right (as a triangulation measures them), its hip landmarks 1.5 cm wider or narrower each frame
    (as MediaPipe's hips jitter across views); and each limb bone's true length."""
    lengths = {"leftLowerLeg": 0.38, "leftFoot": 0.36, "rightLowerLeg": 0.40, "rightFoot": 0.38,
               "leftLowerArm": 0.27, "leftHand": 0.25, "rightLowerArm": 0.28, "rightHand": 0.26}
    p = np.zeros((frames, 33, 3))

    def swing(mean: tuple[float, float, float]) -> np.ndarray:
        d = np.array(mean) + rng.normal(scale=0.3, size=(frames, 3))
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    width = 0.1 + rng.uniform(-0.015, 0.015, frames)
    sk = skeleton_fit
    for side, x, (hip, knee, ankle, heel, toe, sh, el, wr, pk, ix, ear, eye, mouth) in (
        ("left", 1.0, (sk.L_HIP, sk.L_KNEE, sk.L_ANKLE, sk.L_HEEL, sk.L_TOE, sk.L_SHOULDER, sk.L_ELBOW, sk.L_WRIST,
                       sk.L_PINKY, sk.L_INDEX, sk.L_EAR, sk.L_EYE, sk.MOUTH_L)),
        ("right", -1.0, (sk.R_HIP, sk.R_KNEE, sk.R_ANKLE, sk.R_HEEL, sk.R_TOE, sk.R_SHOULDER, sk.R_ELBOW, sk.R_WRIST,
                         sk.R_PINKY, sk.R_INDEX, sk.R_EAR, sk.R_EYE, sk.MOUTH_R)),
    ):
        p[:, hip] = np.stack([x * width, np.zeros(frames), np.zeros(frames)], axis=-1)
        p[:, knee] = p[:, hip] + lengths[f"{side}LowerLeg"] * swing((0.0, -1.0, 0.3))
        p[:, ankle] = p[:, knee] + lengths[f"{side}Foot"] * swing((0.0, -1.0, -0.3))
        p[:, heel] = p[:, ankle] + (0.0, -0.07, -0.05)
        p[:, toe] = p[:, ankle] + (0.0, -0.07, 0.15)
        p[:, sh] = (x * 0.18, 0.5, 0.0)
        p[:, el] = p[:, sh] + lengths[f"{side}LowerArm"] * swing((x, -1.0, 0.0))
        p[:, wr] = p[:, el] + lengths[f"{side}Hand"] * swing((x, -1.0, 0.3))
        p[:, pk] = p[:, wr] + (0.0, -0.08, -0.02)
        p[:, ix] = p[:, wr] + (0.0, -0.08, 0.02)
        p[:, ear] = (x * 0.075, 0.7, 0.0)
        p[:, eye] = (x * 0.03, 0.72, 0.08)
        p[:, mouth] = (x * 0.02, 0.63, 0.08)
    return p, lengths


def test_a_triangulated_body_keeps_each_side_and_its_limbs_reach_their_points() -> None:
    points, lengths = _triangulated_body(60, np.random.default_rng(3))
    vis = np.ones(points.shape[:2])
    measures = skeleton_fit.measure_body(points, vis, per_side=True)
    assert measures.limbs == pytest.approx(lengths, abs=1e-9)
    assert skeleton_fit.measure_body(points, vis).limbs == {}  # one camera: left and right pooled
    skeleton = skeleton_fit.build_skeleton(measures)
    for name, length in lengths.items():
        assert np.linalg.norm(skeleton.offsets[skeleton.index(name)]) == pytest.approx(length)
    root = 0.5 * (points[:, skeleton_fit.L_HIP] + points[:, skeleton_fit.R_HIP])
    along = skeleton_fit.body_global_rotations(points, measures, skeleton.names)
    aimed = skeleton_fit.aim_limbs(skeleton, along, root, points, vis)
    ends = {"leftFoot": skeleton_fit.L_ANKLE, "rightFoot": skeleton_fit.R_ANKLE,
            "leftHand": skeleton_fit.L_WRIST, "rightHand": skeleton_fit.R_WRIST}

    def off(g_rot: np.ndarray) -> np.ndarray:
        _, pos = forward_kinematics(skeleton, skeleton_fit.to_local(skeleton, g_rot), root)
        return np.stack([np.linalg.norm(pos[:, skeleton.index(n)] - points[:, j], axis=-1) for n, j in ends.items()])

    # Bones along their landmarks' directions carry the pelvis's jitter down to the ankles; reaching
    # from the skeleton's own joints, ankles lie near their points but for the bones' length mismatch
    # that frame (a second-order effect of the jitter, shared with the knee), wrists on them.
    legs, arms = slice(0, 2), slice(2, 4)
    assert off(along)[legs].mean() > 0.005
    assert off(aimed)[legs].mean() < 0.2 * off(along)[legs].mean() and off(aimed)[legs].max() < 0.01
    assert off(aimed)[arms].max() < 1e-6
    # Hands and feet keep their orientation.
    for name in ends:
        j = skeleton.index(name)
        np.testing.assert_allclose(np.abs(np.sum(aimed[:, j] * along[:, j], axis=-1)), 1.0, atol=1e-9)
    # A shrug (the shoulder points up to 3 cm higher, the arms carried with them): the clavicles turn so
    # that the upper-arm joints follow, off only by the clavicle's reach changing (a few mm).
    shrugged = points.copy()
    lift = 0.03 * np.abs(np.sin(np.linspace(0.0, 3.0, len(points))))
    arms = [skeleton_fit.L_SHOULDER, skeleton_fit.L_ELBOW, skeleton_fit.L_WRIST, skeleton_fit.L_PINKY,
            skeleton_fit.L_INDEX]
    shrugged[:, arms, 1] += lift[:, None]
    shrug_rot = skeleton_fit.aim_limbs(skeleton, along, root, shrugged, vis)
    _, pos = forward_kinematics(skeleton, skeleton_fit.to_local(skeleton, shrug_rot), root)
    shoulder_off, wrist_off = (np.linalg.norm(pos[:, skeleton.index(n)] - shrugged[:, k], axis=-1) for n, k in
                               (("leftUpperArm", skeleton_fit.L_SHOULDER), ("leftHand", skeleton_fit.L_WRIST)))
    print(f"shrug: shoulder joint off by at most {1000 * shoulder_off.max():.1f} mm, "
          f"wrist {1000 * wrist_off.max():.1f} mm")
    assert shoulder_off.max() < 0.004 and wrist_off.max() < 0.004


def test_a_limb_fitted_to_all_its_points_at_once_beats_aiming_bone_by_bone() -> None:
    """Noisy points on a chain of fixed lengths (a thigh and shin): the least-squares knee shares a
    frame's length mismatch with the ankle, where aiming each bone at its point in turn puts it all
    on the ankle; confidences decide the share."""
    rng = np.random.default_rng(7)
    frames, upper, lower = 400, 0.40, 0.38
    hip = np.zeros((frames, 3))

    def unit(mean: tuple[float, float, float]) -> np.ndarray:
        d = np.array(mean) + rng.normal(scale=0.3, size=(frames, 3))
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    knee = hip + upper * unit((0.0, -1.0, 0.3))
    ankle = knee + lower * unit((0.0, -1.0, -0.3))
    knee_pt = knee + rng.normal(scale=0.012, size=(frames, 3))
    ankle_pt = ankle + rng.normal(scale=0.012, size=(frames, 3))
    ones = np.ones(frames)

    def chain_end(k: np.ndarray) -> np.ndarray:
        d = ankle_pt - k
        return k + lower * d / np.linalg.norm(d, axis=-1, keepdims=True)

    greedy_knee = hip + upper * (knee_pt - hip) / np.linalg.norm(knee_pt - hip, axis=-1, keepdims=True)
    fit_knee = skeleton_fit.fit_chain(hip, knee_pt, ankle_pt, upper, lower, ones, ones)
    np.testing.assert_allclose(np.linalg.norm(fit_knee - hip, axis=-1), upper, atol=1e-9)

    def squared(k: np.ndarray, to_knee: np.ndarray, to_ankle: np.ndarray) -> np.ndarray:
        return (np.sum((k - to_knee) ** 2, axis=-1), np.sum((chain_end(k) - to_ankle) ** 2, axis=-1))

    # What it minimises, over the points: never worse in any frame, clearly better in the sum.
    greedy = sum(squared(greedy_knee, knee_pt, ankle_pt))
    fit = sum(squared(fit_knee, knee_pt, ankle_pt))
    assert np.all(fit <= greedy + 1e-10) and fit.sum() < 0.9 * greedy.sum()
    # Against the true joints (the points' noise 12 mm a coordinate): each joint closer.
    g_knee, g_ankle = squared(greedy_knee, knee, ankle)
    f_knee, f_ankle = squared(fit_knee, knee, ankle)
    print(f"rms to the true joints, greedy knee / ankle {1000 * np.sqrt(g_knee.mean()):.1f} / "
          f"{1000 * np.sqrt(g_ankle.mean()):.1f} mm, least squares {1000 * np.sqrt(f_knee.mean()):.1f} / "
          f"{1000 * np.sqrt(f_ankle.mean()):.1f} mm")
    assert f_knee.mean() < g_knee.mean() and f_ankle.mean() < g_ankle.mean()
    assert (f_knee + f_ankle).mean() < 0.95 * (g_knee + g_ankle).mean()
    # An ankle with no confidence leaves the knee on the line to its point (the greedy aim); a knee
    # with none puts the ankle on its point wherever it can be reached.
    np.testing.assert_allclose(skeleton_fit.fit_chain(hip, knee_pt, ankle_pt, upper, lower, ones, 0 * ones),
                               greedy_knee, atol=1e-6)
    reach = np.linalg.norm(ankle_pt - hip, axis=-1) < upper + lower - 0.01
    free = chain_end(skeleton_fit.fit_chain(hip, knee_pt, ankle_pt, upper, lower, 1e-6 * ones, ones))
    assert np.linalg.norm(free - ankle_pt, axis=-1)[reach].max() < 1e-3
