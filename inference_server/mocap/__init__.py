"""The motion capture capability: a person's motion from ordinary video.

Video in, a MotionClip out (motion/: the shared motion data model). This package owns everything
between the two: MediaPipe landmarks and the solver that turns them into a skeleton's motion on the
canonical humanoid. It is not about characters: putting that motion on an artist's rig is
animation/.

- service.py: the MotionCapture gRPC service (checks a request, queues a motion_capture or
  detect_people job);
- jobs.py: CaptureHandler, the motion_capture job (runs a capture, stores its results), and
  DetectPeopleHandler, the detect_people job;
- people.py: every person in a clip (MediaPipe's pose detector per frame), linked by tracks.py
  into tracks with stable ids; subject.py: the person a capture request chose, and their frames;
- options.py: MocapOptions / SolveOptions, and the one place their values are checked;
- capture.py: a capture end to end (run_mocap): inference, solve, QA preview;
- inference.py: MediaPipe landmarks of a clip, in chunks run side by side as tasks;
- landmarks.py: the raw capture (Landmarks); preview.py: the QA video;
- solve.py: landmarks -> MotionClip, in passes: swaps.py (left/right label swaps),
  skeleton_fit.py (bone lengths, rotations), root_motion.py (camera, floor), pose_fit.py (limbs to
  image rays), filters.py (gaps, low-pass), hands.py (fingers), face.py (ARKit curves); foot contacts
  and locking come from motion/foot_lock.py.

Importing this package stays light (the gRPC front does); MediaPipe loads inside workers only.
"""

from __future__ import annotations

from inference_server.capability import INSTALL_HINT, Capability, Feature, ModelSpec, package_dir
from keygrip.v1 import mocap_pb2, server_pb2

# Bundled MediaPipe graphs the capture job uses, relative to the mediapipe package.
MEDIAPIPE_MODELS = {
    "mediapipe.pose_landmark_full": "modules/pose_landmark/pose_landmark_full.tflite",
    "mediapipe.pose_detection": "modules/pose_detection/pose_detection.tflite",
    "mediapipe.hand_landmark_full": "modules/hand_landmark/hand_landmark_full.tflite",
    "mediapipe.face_landmark": "modules/face_landmark/face_landmark.tflite",
}


def models() -> list[ModelSpec]:
    mp_dir = package_dir("mediapipe")
    out = []
    for name, rel in MEDIAPIPE_MODELS.items():
        present = mp_dir is not None and (mp_dir / rel).is_file()
        out.append(ModelSpec(
            name=name, kind="mediapipe",
            state=server_pb2.MODEL_STATE_AVAILABLE if present else server_pb2.MODEL_STATE_MISSING,
            reason="" if present else f"not found in the mediapipe package; {INSTALL_HINT}",
            source=str(mp_dir / rel) if mp_dir else ""))
    return out


def features() -> list[Feature]:
    available = {m.name for m in models() if m.available}
    pose_ok = package_dir("av") is not None and "mediapipe.pose_landmark_full" in available
    return [
        Feature("mocap.body", pose_ok, "MediaPipe Pose is unavailable; " + INSTALL_HINT),
        Feature("mocap.hands", pose_ok and "mediapipe.hand_landmark_full" in available,
                "MediaPipe Holistic hands are unavailable; " + INSTALL_HINT),
        Feature("mocap.face", pose_ok and "mediapipe.face_landmark" in available,
                "MediaPipe Holistic face is unavailable; " + INSTALL_HINT),
    ]


CAPABILITY = Capability(
    name="mocap",
    service_name=mocap_pb2.DESCRIPTOR.services_by_name["MotionCapture"].full_name,
    service="inference_server.mocap.service:add_to_server",
    handlers={"motion_capture": "inference_server.mocap.jobs:CaptureHandler",
              "detect_people": "inference_server.mocap.jobs:DetectPeopleHandler"},
    features=features,
    models=models,
)
