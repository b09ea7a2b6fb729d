"""Bone mapping: which bone of a rig (or joint of a BVH) plays which canonical humanoid role.

Roles are the VRM 1.0 humanoid names of keygrip.humanoid. Mapping works on names
first, through alias tables for the usual conventions (VRM, Rigify metarig and its DEF-/ORG- bones,
Mixamo with any namespace prefix, Unreal mannequin, CMU/cgspeed BVH in both its MotionBuilder and
3ds Max flavours, Khronos CesiumMan), after normalising sides (.L, _l, Left, left_, L_, l...) and case.
The torso between hips and neck is always assigned by structure (how many spine bones the chain
has), and limbs whose names say nothing are found by structure too: the chains that leave the
hips downwards are legs, the chains that leave the upper torso sideways are arms, left is +X.

Declared maps win (resolve_map): a bone map the request passes (a user's preset) is used as given;
a map the character file declares (VRM humanoid, glTF node extras) is used as given and guessing
fills only the roles it leaves out. Every role carries where it came from and a confidence, so a
person sees what was guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from inference_server.errors import FailedPrecondition, InvalidInput

if TYPE_CHECKING:
    from inference_server.animation.rig import Rig
    from inference_server.motion.clip import Skeleton
from keygrip import humanoid

ROLE_PARENT: dict[str, str | None] = dict(humanoid.hierarchy(with_fingers=True))

# Leading tokens that only say which tool or namespace made the bone.
_PREFIX_TOKENS = {"def", "org", "mixamorig", "bip", "bip01", "bip001", "j", "cc", "base", "rig"}

# Roles without a side, by normalised base name.
_CENTER = {
    "hips": "hips", "hip": "hips", "pelvis": "hips", "skeletontorsojoint1": "hips",
    "neck": "neck", "neck01": "neck", "neck1": "neck", "lowerneck": "neck", "skeletonneckjoint1": "neck",
    "neck02": "", "upperneck": "", "head": "head", "skeletonneckjoint2": "head",
}
# Rigify metarig: "spine" is the pelvis, spine.004 the neck, spine.006 the head.
_RIGIFY_CENTER = {"spine": "hips", "spine004": "neck", "spine006": "head"}

# Limb roles (need a side), by normalised base name. "" marks names known to be no role.
_LIMB = {
    "shoulder": "Shoulder", "clavicle": "Shoulder", "collar": "Shoulder", "clav": "Shoulder",
    "upperarm": "UpperArm", "arm": "UpperArm", "humerus": "UpperArm", "uparm": "UpperArm",
    "forearm": "LowerArm", "lowerarm": "LowerArm", "elbow": "LowerArm", "radius": "LowerArm",
    "hand": "Hand", "wrist": "Hand",
    "upleg": "UpperLeg", "upperleg": "UpperLeg", "thigh": "UpperLeg", "hip": "UpperLeg", "femur": "UpperLeg",
    "leg": "LowerLeg", "lowerleg": "LowerLeg", "shin": "LowerLeg", "calf": "LowerLeg", "knee": "LowerLeg",
    "tibia": "LowerLeg",
    "foot": "Foot", "ankle": "Foot",
    "toebase": "Toes", "toe": "Toes", "toes": "Toes", "ball": "Toes",
    # CesiumMan (Khronos sample): legs run leg_joint 1 -> 2 -> 3 -> 5 on both sides; its arms are
    # numbered differently per side, so they are found by structure.
    "legjoint1": "UpperLeg", "legjoint2": "LowerLeg", "legjoint3": "Foot", "legjoint5": "Toes",
    # Known non-roles: CMU's zero-length hip joints and palm bones, twist and helper bones.
    "hipjoint": "", "fingerbase": "", "fingers": "", "palm": "", "heel": "",
}
# Always placed by structure (the spine chain's length), whatever the bones are called.
_TORSO = ("spine", "chest", "upperChest")
# The order limb roles follow down a chain, used to resolve two bones claiming one role.
_ARM_CHAIN = ["Shoulder", "UpperArm", "LowerArm", "Hand"]
_LEG_CHAIN = ["UpperLeg", "LowerLeg", "Foot", "Toes"]
_FINGER_RE = re.compile(r"^(?:hand|f)?(thumb|index|middle|ring|little|pinky)(?:finger)?"
                        r"(?:0?([1-3])|(metacarpal|proximal|intermediate|distal))?$")
_FINGER_NAMES = {"thumb": "Thumb", "index": "Index", "middle": "Middle", "ring": "Ring",
                 "little": "Little", "pinky": "Little"}

# Where a role came from (the proto's RoleSource, by name), with how far a person may trust it.
PRESET, DECLARED, NAME, STRUCTURE = "preset", "declared", "name", "structure"
CONFIDENCE = {PRESET: 1.0, DECLARED: 1.0, NAME: 0.9, STRUCTURE: 0.6}
# A named bone that took the next role down its chain (CMU's LeftShoulder as the upper arm).
SHIFTED_NAME_CONFIDENCE = 0.75


def _tokens(name: str) -> list[str]:
    name = re.split(r"[:|]", name)[-1]  # namespaces: mixamorig:Hips, mixamorig1:Hips, Armature|Hips
    parts = re.split(r"[\s._\-]+", name)
    out: list[str] = []
    for part in parts:
        # camelCase and a leading capital side letter: LeftUpLeg -> Left Up Leg, LHipJoint -> L Hip Joint
        out += [t for t in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", part) if t]
    return [t.lower() for t in out]


def normalise(name: str) -> tuple[str | None, str]:
    """(side, base) of a bone name: side "left", "right" or None, base lower-case without separators.

    "upper_arm.L" -> ("left", "upperarm"); "mixamorig:LeftUpLeg" -> ("left", "upleg");
    "thigh_l" -> ("left", "thigh"); "DEF-spine.001" -> (None, "spine001"); "lhand" -> ("left", "hand").
    """
    toks = _tokens(name)
    while len(toks) > 1 and toks[0] in _PREFIX_TOKENS:
        toks = toks[1:]
    side = None
    kept = []
    for t in toks:
        if side is None and t in ("l", "left"):
            side = "left"
        elif side is None and t in ("r", "right"):
            side = "right"
        else:
            kept.append(t)
    base = "".join(kept)
    # CMU ASF style: lhand, rfemur, lthumb (a lower-case side letter glued to a known word).
    glued = base[1:]
    if side is None and len(base) > 1 and base[0] in "lr" and (glued in _LIMB or _FINGER_RE.match(glued)):
        side = "left" if base[0] == "l" else "right"
        base = base[1:]
    return side, base


def _name_role(side: str | None, base: str, rigify: bool) -> str | None:
    """The role a normalised name asks for, "" for a known non-role, None when unknown."""
    if side is None:
        if rigify and base in _RIGIFY_CENTER:
            return _RIGIFY_CENTER[base]
        if base in _CENTER:
            return _CENTER[base]
        # VRM names keep the side inside the word: leftUpperArm -> tokens left upper arm (handled),
        # but "lefthand" style single tokens need this.
        for s in ("left", "right"):
            if base.startswith(s) and len(base) > len(s):
                return _name_role(s, base[len(s):], rigify)
        return None
    if base in _LIMB:
        part = _LIMB[base]
        return f"{side}{part}" if part else ""
    m = _FINGER_RE.match(base)
    if m:
        finger = _FINGER_NAMES[m.group(1)]
        segs = humanoid._SEGMENTS[finger]
        if m.group(3):
            seg = m.group(3).capitalize()
            return f"{side}{finger}{seg}" if seg in segs else ""
        index = int(m.group(2)) - 1 if m.group(2) else 0
        return f"{side}{finger}{segs[index]}"
    return None


@dataclass
class BoneMap:
    """A bone -> canonical role mapping with a report of what could not be mapped.

    bone_to_role: {bone name: VRM humanoid role}.
    unmapped_bones: bones that play no role (twist, helper, control or face bones).
    missing_roles: canonical roles no bone plays (fingers on a rig without fingers ...).
    sources / confidence: {bone name: PRESET, DECLARED, NAME or STRUCTURE} and {bone name: 0..1}.
    declared_by: what the DECLARED roles came from ("VRM 1.0 humanoid"); warnings: conflicts seen.
    """

    bone_to_role: dict[str, str]
    unmapped_bones: list[str] = field(default_factory=list)
    missing_roles: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)
    declared_by: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def role_to_bone(self) -> dict[str, str]:
        return {r: b for b, r in self.bone_to_role.items()}

    @classmethod
    def from_roles(cls, names: list[str], bone_to_role: dict[str, str]) -> BoneMap:
        """A BoneMap from an explicit mapping (a user's preset edited by hand), with its report."""
        unknown = sorted(set(bone_to_role) - set(names))
        if unknown:
            raise InvalidInput(f"bone map names bones the rig does not have: {unknown}")
        bad = sorted(set(bone_to_role.values()) - set(humanoid.ROLES))
        if bad:
            raise InvalidInput(f"bone map uses unknown roles {bad}; roles are VRM humanoid names")
        return _report(names, dict(bone_to_role), dict.fromkeys(bone_to_role, PRESET))


def _report(names: list[str], bone_to_role: dict[str, str], sources: dict[str, str],
            confidence: dict[str, float] | None = None) -> BoneMap:
    used = set(bone_to_role.values())
    confidence = {b: (confidence or {}).get(b, CONFIDENCE[sources[b]]) for b in bone_to_role}
    return BoneMap(bone_to_role, [n for n in names if n not in bone_to_role],
                   [r for r in humanoid.ROLES if r not in used], {b: sources[b] for b in bone_to_role}, confidence)


def _ancestors(parents: np.ndarray, b: int) -> list[int]:
    out = []
    while parents[b] >= 0:
        b = int(parents[b])
        out.append(b)
    return out


def _path(parents: np.ndarray, top: int, bottom: int) -> list[int] | None:
    """Bones strictly between top and bottom when top is an ancestor of bottom, else None."""
    anc = _ancestors(parents, bottom)
    if top not in anc:
        return None
    return list(reversed(anc[:anc.index(top)]))


def _subtree_size(parents: np.ndarray) -> np.ndarray:
    size = np.ones(len(parents), dtype=np.int64)
    for b in np.argsort([-len(_ancestors(parents, i)) for i in range(len(parents))], kind="stable"):
        if parents[b] >= 0:
            size[parents[b]] += size[b]
    return size


def _main_chain(parents: np.ndarray, start: int, size: np.ndarray) -> list[int]:
    """start and then, at every branch, the child with the most descendants (the limb, not twist bones)."""
    chain = [start]
    while True:
        kids = np.nonzero(parents == chain[-1])[0]
        if len(kids) == 0:
            return chain
        chain.append(int(kids[np.argmax(size[kids])]))


def auto_map(names: list[str], parents: np.ndarray, rest_positions: np.ndarray,
             fixed: dict[str, str] | None = None) -> BoneMap:
    """Map bones to canonical roles from names first, then structure.

    names: (B,) bone names; parents: (B,) parent indices (-1 root);
    rest_positions: (B, 3) rest head positions, Y-up, character facing +Z (left is +X).
    fixed: {bone: role} already known (declared by the file): kept as they are and reported as
        DECLARED; guessing fills only the other bones and roles (the torso only when no torso role
        is fixed).
    Raises FailedPrecondition listing the bones found when no humanoid (hips, two legs, a spine
    chain) can be recognised.
    """
    parents = np.asarray(parents, dtype=np.int64)
    pos = np.asarray(rest_positions, dtype=np.float64).reshape(-1, 3)
    count = len(names)
    role_of: dict[int, str] = {names.index(b): r for b, r in (fixed or {}).items()}
    how: dict[int, float] = {}  # the confidence of name guesses that took a shifted role
    normed = [normalise(n) for n in names]
    rigify = any(side is None and base == "spine006" for side, base in normed)
    depth = [len(_ancestors(parents, b)) for b in range(count)]
    taken = set(role_of.values())
    claims: dict[str, list[int]] = {}
    for b, (side, base) in enumerate(normed):
        role = _name_role(side, base, rigify)
        if role and b not in role_of and role not in taken:
            claims.setdefault(role, []).append(b)
    named: set[int] = set()
    # Resolve claims in chain order so that a shifted bone can take the next free role
    # (CMU 3ds Max names: LeftCollar is the shoulder, so its child LeftShoulder is the upper arm).
    for side in ("left", "right"):
        for chain in (_ARM_CHAIN, _LEG_CHAIN):
            carry: list[int] = []
            for part in chain:
                role = side + part
                if role in taken:
                    carry = []
                    continue
                own = claims.pop(role, [])
                cands = sorted(set(own + carry), key=lambda b: depth[b])
                carry = []
                if cands:
                    role_of[cands[0]] = role
                    named.add(cands[0])
                    if cands[0] not in own:
                        how[cands[0]] = SHIFTED_NAME_CONFIDENCE
                    # Only a descendant of the winner moves on down the chain.
                    carry = [c for c in cands[1:] if cands[0] in _ancestors(parents, c)][:1]
    for role, cands in claims.items():
        winner = min(cands, key=lambda b: depth[b])
        role_of[winner] = role
        named.add(winner)

    def bone(role: str) -> int | None:
        for b, r in role_of.items():
            if r == role:
                return b
        return None

    size = _subtree_size(parents)
    hips = bone("hips")
    if hips is None:
        hips = _structural_hips(parents, pos, size)
        if hips is not None:
            role_of[hips] = "hips"
    if hips is not None:
        _structural_legs(parents, pos, size, hips, role_of, bone)
        if not taken & set(_TORSO):
            _structural_torso(parents, pos, size, hips, role_of, bone)
        _structural_arms(parents, pos, size, role_of, bone)
        _structural_neck(parents, role_of, bone)
    body_ok = hips is not None and all(
        bone(f"{s}{p}") is not None for s in ("left", "right") for p in ("UpperLeg", "LowerLeg"))
    torso_ok = any(bone(r) is not None for r in ("spine", "chest", "upperChest", "neck", "head"))
    if not (body_ok and torso_ok):
        raise FailedPrecondition(
            "no humanoid found in the rig (it needs hips, two legs and a spine chain). Bones found: "
            + ", ".join(names[:80]) + (" ..." if count > 80 else "")
            + ". Map the bones by hand and save the mapping as a preset.",
            metadata={"bones": json.dumps(names)})
    sources = {names[b]: DECLARED if r in taken else NAME if b in named and r not in _TORSO else STRUCTURE
               for b, r in role_of.items()}
    return _report(list(names), {names[b]: r for b, r in sorted(role_of.items())}, sources,
                   {names[b]: c for b, c in how.items()})


def _structural_hips(parents: np.ndarray, pos: np.ndarray, size: np.ndarray) -> int | None:
    """The first bone with a subtree going up and two going down on opposite sides."""
    for b in np.argsort([len(_ancestors(parents, i)) for i in range(len(parents))], kind="stable"):
        kids = np.nonzero(parents == b)[0]
        if len(kids) < 3:
            continue
        chains = [_main_chain(parents, int(k), size) for k in kids]
        # Arms may hang below the hips at rest, so "up" means any joint of the chain is higher.
        up = any(pos[c, 1].max() > pos[b, 1] for c in chains)
        tips = [pos[c[-1]] - pos[b] for c in chains]
        down = [t for t in tips if t[1] < 0]
        if up and any(t[0] > 0 for t in down) and any(t[0] < 0 for t in down):
            return int(b)
    return None


def _structural_legs(parents: np.ndarray, pos: np.ndarray, size: np.ndarray, hips: int, role_of: dict[int, str],
                     bone: Callable[[str], int | None]) -> None:
    for side, sign in (("left", 1.0), ("right", -1.0)):
        if bone(f"{side}UpperLeg") is not None:
            continue
        best = None
        for k in np.nonzero(parents == hips)[0]:
            chain = _main_chain(parents, int(k), size)
            tip = pos[chain[-1]] - pos[hips]
            # The leg is the chain reaching lowest on that side (arms may hang below the hips too).
            if (tip[1] < 0 and tip[0] * sign > 0 and not any(c in role_of for c in chain)
                    and (best is None or pos[chain[-1], 1] < pos[best[-1], 1])):
                best = chain
        if best is None:
            continue
        # Skip zero-length hip joints sitting on the hips (CMU LHipJoint style).
        best = [c for c in best if np.linalg.norm(pos[c] - pos[hips]) > 1e-4 or c != best[0]]
        for part, b in zip(_LEG_CHAIN, best, strict=False):
            if bone(side + part) is None:  # a declared toe elsewhere keeps its role
                role_of[b] = side + part


def _structural_arms(parents: np.ndarray, pos: np.ndarray, size: np.ndarray, role_of: dict[int, str],
                     bone: Callable[[str], int | None]) -> None:
    """Arms (and the neck, when unnamed) from the chains leaving the top of the torso."""
    top = next((bone(r) for r in ("upperChest", "chest", "spine") if bone(r) is not None), None)
    if top is None:
        return
    chains = [c for c in (_main_chain(parents, int(k), size) for k in np.nonzero(parents == top)[0])
              if not any(b in role_of for b in c)]
    if not chains:
        return
    if bone("neck") is None and bone("head") is None:
        # The chain reaching highest is the neck and head.
        neck = max(chains, key=lambda c: pos[c, 1].max())
        if pos[neck, 1].max() > pos[top, 1]:
            chains.remove(neck)
            for role, b in zip(("neck", "head"), neck, strict=False):
                role_of[b] = role
    for side, sign in (("left", 1.0), ("right", -1.0)):
        if bone(f"{side}UpperArm") is not None:
            continue
        sided = [c for c in chains if (pos[c[-1], 0] - pos[top, 0]) * sign > 0]
        if sided:
            chain = max(sided, key=lambda c: abs(pos[c[-1], 0] - pos[top, 0]))
            parts = _ARM_CHAIN if len(chain) >= 4 else _ARM_CHAIN[1:]
            for part, b in zip(parts, chain, strict=False):
                if bone(side + part) is None:
                    role_of[b] = side + part


def _structural_neck(parents: np.ndarray, role_of: dict[int, str], bone: Callable[[str], int | None]) -> None:
    """A head found without its neck: the first unmapped bone between the torso's top and the head."""
    head = bone("head")
    top = next((bone(r) for r in ("upperChest", "chest", "spine") if bone(r) is not None), None)
    if bone("neck") is not None or head is None or top is None:
        return
    between = [b for b in (_path(parents, top, head) or []) if b not in role_of]
    if between:
        role_of[between[0]] = "neck"


def _structural_torso(parents: np.ndarray, pos: np.ndarray, size: np.ndarray, hips: int, role_of: dict[int, str],
                      bone: Callable[[str], int | None]) -> None:
    """spine / chest / upperChest from the chain between hips and neck (or where the arms attach)."""
    for r in ("spine", "chest", "upperChest"):
        b = bone(r)
        if b is not None:
            del role_of[b]
    top = bone("neck")
    chain = _path(parents, hips, top) if top is not None else None
    if chain is None:
        arms = [a for s in ("left", "right") for p in ("Shoulder", "UpperArm") if (a := bone(f"{s}{p}")) is not None]
        if arms:
            chain = _path(parents, hips, arms[0])
            # Up to the arm's parent, inclusive: that is where the shoulders attach.
            chain = chain[:-1] if chain and chain[-1] in role_of else chain
        else:
            head = bone("head")
            chain = _path(parents, hips, head) if head is not None else None
    if chain is None:
        # No neck, arms or head named: follow the biggest upward subtree of the hips.
        ups = [int(k) for k in np.nonzero(parents == hips)[0]
               if pos[_main_chain(parents, int(k), size), 1].max() > pos[hips, 1] and int(k) not in role_of]
        chain = _main_chain(parents, max(ups, key=lambda k: size[k]), size)[:3] if ups else []
    chain = [b for b in chain if b not in role_of]
    if not chain:
        return
    picks = {"spine": chain[0]}
    if len(chain) >= 2:
        picks["chest"] = chain[len(chain) // 2] if len(chain) >= 3 else chain[1]
    if len(chain) >= 3:
        picks["upperChest"] = chain[-1]
    for r, b in picks.items():
        role_of[b] = r


def map_skeleton(skeleton: Skeleton) -> BoneMap:
    """auto_map for a MotionClip skeleton (a BVH or our canonical mocap skeleton)."""
    _, pos = skeleton.rest_global()
    return auto_map(list(skeleton.names), skeleton.parents, pos)


def map_rig(rig: Rig) -> BoneMap:
    """auto_map for a Rig."""
    return auto_map(list(rig.names), rig.parents, rig.heads)


def preset_over(preset: dict[str, str], declared: dict[str, str], declared_by: str,
                by: str = "the bone map preset") -> tuple[dict[str, str], list[str]]:
    """A preset's roles over a file's declared ones: (the declared roles that touch no bone or role of the
    preset, a warning for each one that does, naming both bones and the role). `by` names the preset in
    the warnings, `declared_by` what the file declares them by."""
    owner = {r: b for b, r in preset.items()}
    warnings = [f"{by} gives {role} to {owner.get(role, 'no bone')!r} and {bone!r} the role "
                f"{preset.get(bone) or 'none'}, where the file's {declared_by} gives {role} to {bone!r}; using "
                "the preset"
                for bone, role in declared.items()
                if preset.get(bone, role) != role or owner.get(role, bone) != bone]
    kept = {b: r for b, r in declared.items() if b not in preset and r not in owner}
    return kept, warnings


def resolve_map(rig: Rig, declared: dict[str, str] | None = None, declared_by: str = "",
                preset: dict[str, str] | None = None, warnings: Sequence[str] = ()) -> BoneMap:
    """The bone map retargeting uses: what is declared wins over what is guessed.

    preset: {bone: role} the request passed (a user's preset): used as given, nothing guessed.
    declared: {bone: role} the character file declares (declared_by says by what): used as given,
        with name and structure guessing filling the roles it leaves out; with a preset too, the
        declared roles that touch no bone or role of the preset are kept, and each conflict is
        a warning (the preset wins, preset_over).
    warnings: what reading the declared map found (a sidecar preset's conflicts), put first.
    """
    declared = dict(declared or {})
    if preset:
        kept, conflicts = preset_over(preset, declared, declared_by)
        bone_map = BoneMap.from_roles(rig.names, {**preset, **kept})
        bone_map.sources.update(dict.fromkeys(kept, DECLARED))
        bone_map.warnings = conflicts
    elif declared:
        bone_map = auto_map(list(rig.names), rig.parents, rig.heads, fixed=declared)
    else:
        bone_map = map_rig(rig)
    bone_map.warnings = [*warnings, *bone_map.warnings]
    if DECLARED in bone_map.sources.values():
        bone_map.declared_by = declared_by
    return bone_map
