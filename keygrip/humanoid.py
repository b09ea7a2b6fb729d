"""The canonical humanoid: VRM 1.0 humanoid bone names and their hierarchy, ARKit face names.

Part of the protocol's vocabulary, so it lives in the SDK (pure Python) where hosts and the server
both read it: captured clips use exactly these names, retargeting maps every other scheme onto them,
and bone maps use them as roles.
"""

from __future__ import annotations

# (name, parent) with parents listed before children.
_BODY: list[tuple[str, str | None]] = [
    ("hips", None),
    ("spine", "hips"),
    ("chest", "spine"),
    ("upperChest", "chest"),
    ("neck", "upperChest"),
    ("head", "neck"),
    ("leftShoulder", "upperChest"),
    ("leftUpperArm", "leftShoulder"),
    ("leftLowerArm", "leftUpperArm"),
    ("leftHand", "leftLowerArm"),
    ("rightShoulder", "upperChest"),
    ("rightUpperArm", "rightShoulder"),
    ("rightLowerArm", "rightUpperArm"),
    ("rightHand", "rightLowerArm"),
    ("leftUpperLeg", "hips"),
    ("leftLowerLeg", "leftUpperLeg"),
    ("leftFoot", "leftLowerLeg"),
    ("leftToes", "leftFoot"),
    ("rightUpperLeg", "hips"),
    ("rightLowerLeg", "rightUpperLeg"),
    ("rightFoot", "rightLowerLeg"),
    ("rightToes", "rightFoot"),
]

FINGERS = ["Thumb", "Index", "Middle", "Ring", "Little"]
# VRM 1.0 names the thumb segments Metacarpal/Proximal/Distal and the others Proximal/Intermediate/Distal.
_SEGMENTS = {
    "Thumb": ["Metacarpal", "Proximal", "Distal"],
    "Index": ["Proximal", "Intermediate", "Distal"],
    "Middle": ["Proximal", "Intermediate", "Distal"],
    "Ring": ["Proximal", "Intermediate", "Distal"],
    "Little": ["Proximal", "Intermediate", "Distal"],
}


def finger_joints(side: str) -> list[tuple[str, str]]:
    """The 15 finger joints of one hand ("left" or "right") as (name, parent)."""
    out: list[tuple[str, str]] = []
    for finger in FINGERS:
        parent = f"{side}Hand"
        for seg in _SEGMENTS[finger]:
            name = f"{side}{finger}{seg}"
            out.append((name, parent))
            parent = name
    return out


BODY_JOINTS: list[str] = [n for n, _ in _BODY]
HAND_JOINTS: dict[str, list[str]] = {s: [n for n, _ in finger_joints(s)] for s in ("left", "right")}


def hierarchy(with_fingers: bool = True) -> list[tuple[str, str | None]]:
    """The canonical joints as (name, parent), body first, then left and right fingers."""
    joints = list(_BODY)
    if with_fingers:
        joints += finger_joints("left") + finger_joints("right")
    return joints


# Every role a bone map may give a bone: body first, then left and right fingers.
ROLES: list[str] = [name for name, _ in hierarchy(with_fingers=True)]

CONTACT_NAMES = ["leftHeel", "leftToes", "rightHeel", "rightToes"]

# The 52 ARKit blendshape names, in Apple's documented order.
ARKIT_BLENDSHAPES = [
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight",
    "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight", "eyeWideRight", "jawForward",
    "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft",
    "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft",
    "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut",
]
