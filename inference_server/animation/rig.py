"""The target rig as a host describes it: bones, parents and rest matrices in rig space.

A host sends each bone's rest matrix in the armature's own space converted to Y-up metres. For
Blender that is bone.matrix_local left-multiplied by the Z-up -> Y-up basis change
(x, y, z) -> (x, z, -y); the bone's own local axes stay as Blender defines them (Y along the bone),
so rotations computed against these matrices are exactly what pose_bone.rotation_quaternion holds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from inference_server.errors import InvalidInput
from inference_server.motion import quat
from inference_server.motion.clip import MotionClip, Skeleton

# Z-up (Blender) to Y-up (glTF) basis change: x stays, Blender's z becomes y, Blender's -y becomes z.
Z_UP_TO_Y_UP = np.array([
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, -1.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
])

_SCALE_TOL = 1e-3


@dataclass
class Rig:
    """A target armature.

    names: (B,) bone names.
    parents: (B,) index of each bone's parent, -1 for a root. Any order is accepted; bones are
        validated to form a forest (no cycles, no out-of-range parents).
    rest_matrices: (B, 4, 4) rest transform of each bone in rig space (Y-up, metres): the columns
        of the 3x3 part are the bone's local axes, the last column its head position.
    tails: optional (B, 3) rest tail positions in rig space (metres), used to spot zero-length bones.
    warnings: filled by validation (orthonormalised matrices, zero-length bones).

    After construction, rest_rotations (B, 4) and heads (B, 3) hold the orthonormal rest frames.
    """

    names: list[str]
    parents: np.ndarray
    rest_matrices: np.ndarray
    tails: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = [str(n) for n in self.names]
        self.parents = np.asarray(self.parents, dtype=np.int64).reshape(-1)
        self.rest_matrices = np.asarray(self.rest_matrices, dtype=np.float64)
        count = len(self.names)
        if count == 0:
            raise InvalidInput("the rig has no bones; select an armature with bones")
        if len(set(self.names)) != count:
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise InvalidInput(f"bone names must be unique; repeated: {dup}")
        if self.rest_matrices.shape != (count, 4, 4) or len(self.parents) != count:
            raise InvalidInput(f"a rig of {count} bones needs {count} parents and ({count}, 4, 4) rest "
                               f"matrices; got {len(self.parents)} and {self.rest_matrices.shape}")
        if not np.all(np.isfinite(self.rest_matrices)):
            raise InvalidInput("rest matrices contain NaN or infinity; re-export the rig")
        self._check_parents()
        self._orthonormalise()
        if self.tails is not None:
            self.tails = np.asarray(self.tails, dtype=np.float64).reshape(count, 3)
            short = np.linalg.norm(self.tails - self.heads, axis=-1) < 1e-6
            for b in np.nonzero(short)[0]:
                self._warn(f"bone {self.names[b]!r} has zero length; its direction comes from its "
                           "rest rotation only")

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        warnings.warn(message, stacklevel=3)

    def _check_parents(self) -> None:
        count = len(self.names)
        for b, p in enumerate(self.parents):
            if p < -1 or p >= count or p == b:
                raise InvalidInput(f"bone {self.names[b]!r} has an invalid parent index {int(p)}")
        # Walk up from every bone; a path longer than the bone count is a cycle.
        for b in range(count):
            seen = 0
            p = b
            while p >= 0:
                p = int(self.parents[p])
                seen += 1
                if seen > count:
                    raise InvalidInput(f"bone {self.names[b]!r} is part of a parent cycle; fix the hierarchy")
        self.order = self._topological_order()

    def _topological_order(self) -> np.ndarray:
        depth = np.zeros(len(self.names), dtype=np.int64)
        for b in range(len(self.names)):
            p = int(self.parents[b])
            while p >= 0:
                depth[b] += 1
                p = int(self.parents[p])
        return np.argsort(depth, kind="stable")

    def _orthonormalise(self) -> None:
        m = self.rest_matrices[:, :3, :3]
        u, s, vt = np.linalg.svd(m)
        det = np.linalg.det(m)
        for b in np.nonzero((det <= 1e-12) | (s[:, -1] < 1e-9))[0]:
            raise InvalidInput(f"bone {self.names[b]!r} has a mirrored or degenerate rest matrix "
                               "(negative or zero scale); apply transforms in your DCC and try again")
        rot = u @ vt
        nonuniform = (s.max(axis=1) - s.min(axis=1)) > _SCALE_TOL * s.max(axis=1)
        sheared = np.abs(m - rot * s.mean(axis=1)[:, None, None]).max(axis=(1, 2)) > _SCALE_TOL * s.max(axis=1)
        for b in np.nonzero(nonuniform | sheared)[0]:
            self._warn(f"bone {self.names[b]!r} has non-uniform scale or shear in its rest matrix "
                       f"(scales {np.round(s[b], 4).tolist()}); using its nearest rotation")
        self.rest_rotations = quat.from_matrix(rot)
        self.heads = self.rest_matrices[:, :3, 3].copy()

    @property
    def num_bones(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def children(self, b: int) -> list[int]:
        return [int(c) for c in np.nonzero(self.parents == b)[0]]

    def top_root(self, b: int) -> int:
        """The top-most ancestor of bone b (b itself when it is a root)."""
        while self.parents[b] >= 0:
            b = int(self.parents[b])
        return b

    def forward_kinematics(self, local_rotations: np.ndarray, locations: dict[int, np.ndarray] | None = None,
                           bones: set[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Posed world rotations (F, B, 4) and head positions (F, B, 3) in rig space.

        local_rotations: (F, B, 4) rotations relative to rest in each bone's rest frame
            (Blender's pose_bone.rotation_quaternion).
        locations: {bone index: (F, 3)} translations in the bone's rest frame (pose_bone.location).
        bones: compute only these and their ancestors; the other entries are left unset.
        Blender's rule: posed = parent_posed @ (parent_rest^-1 @ rest) @ (T(location) R(rotation)).
        """
        locations = locations or {}
        f = local_rotations.shape[0]
        world = np.empty((f, self.num_bones, 4))
        heads = np.empty((f, self.num_bones, 3))
        needed = None
        if bones is not None:
            needed = set()
            for b in bones:
                while b >= 0 and b not in needed:
                    needed.add(b)
                    b = int(self.parents[b])
        for b in self.order:
            if needed is not None and int(b) not in needed:
                continue
            p = int(self.parents[b])
            loc = locations.get(int(b))
            if p < 0:
                world[:, b] = quat.multiply(self.rest_rotations[b], local_rotations[:, b])
                heads[:, b] = self.heads[b]
                if loc is not None:
                    heads[:, b] += quat.rotate(self.rest_rotations[b], loc)
                continue
            rel_rot = quat.multiply(quat.conjugate(self.rest_rotations[p]), self.rest_rotations[b])
            rel_off = quat.rotate(quat.conjugate(self.rest_rotations[p]), self.heads[b] - self.heads[p])
            if loc is not None:
                rel_off = rel_off + quat.rotate(rel_rot, loc)
            world[:, b] = quat.multiply(world[:, p], quat.multiply(rel_rot, local_rotations[:, b]))
            heads[:, b] = heads[:, p] + quat.rotate(world[:, p], rel_off)
        return world, heads

    def to_clip(self, local_rotations: np.ndarray, locations: dict[int, np.ndarray], times: np.ndarray,
                fps: float) -> MotionClip:
        """A pose sequence as a BVH-style clip on the rig's own skeleton (identity rest rotations).

        local_rotations / locations: as forward_kinematics takes them. The clip keeps translation on
        the skeleton's root only; bvh_positions gives the other moving bones' for write_bvh.
        """
        index = {int(b): i for i, b in enumerate(self.order)}
        world, heads = self.forward_kinematics(local_rotations, locations)
        order = [int(b) for b in self.order]
        parents = np.array([index[int(self.parents[b])] if self.parents[b] >= 0 else -1 for b in order])
        offsets = np.array([self.heads[b] - (self.heads[self.parents[b]] if self.parents[b] >= 0 else 0.0)
                            for b in order])
        # BVH joints carry no rest rotation: take each bone's posed-vs-rest world rotation.
        g = quat.multiply(world[:, order], quat.conjugate(self.rest_rotations[order]))
        local = g.copy()
        for i, p in enumerate(parents):
            if p >= 0:
                local[:, i] = quat.multiply(quat.conjugate(g[:, p]), g[:, i])
        root_ids = [i for i, p in enumerate(parents) if p < 0]
        skeleton = Skeleton([self.names[b] for b in order], parents, offsets)
        return MotionClip(skeleton, fps, times, quat.make_continuous(local), heads[:, order[root_ids[0]]])

    def bvh_positions(self, local_rotations: np.ndarray, locations: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        """For to_clip's clip, {joint: (F, 3)} of every non-root bone with a location (a hips under a
        root bone): its head's offset from its parent's, in the parent's posed frame (BVH joints have
        no rest rotation), metres: write_bvh's `positions`, without which BVH keeps only the root's."""
        moved = [int(b) for b in locations if self.parents[b] >= 0]
        if not moved:
            return {}
        world, heads = self.forward_kinematics(local_rotations, locations, bones=set(moved))
        joint = {int(b): i for i, b in enumerate(self.order)}
        out = {}
        for b in moved:
            p = int(self.parents[b])
            turn = quat.multiply(world[:, p], quat.conjugate(self.rest_rotations[p]))
            out[joint[b]] = quat.rotate(quat.conjugate(turn), heads[:, b] - heads[:, p])
        return out

    def to_local(self, world: np.ndarray, bones: list[int] | None = None) -> np.ndarray:
        """Local rotations relative to rest (F, B, 4) from posed world rotations (F, B, 4).

        bones: compute only these (the others are left as identity).
        """
        local = quat.identity(world.shape[:2])
        for b in range(self.num_bones) if bones is None else bones:
            p = int(self.parents[b])
            if p < 0:
                parent_part = quat.conjugate(self.rest_rotations[b])
                local[:, b] = quat.multiply(parent_part, world[:, b])
            else:
                # L = R_b^-1 R_p W_p^-1 W_b
                rel = quat.multiply(quat.conjugate(self.rest_rotations[b]), self.rest_rotations[p])
                local[:, b] = quat.multiply(rel, quat.multiply(quat.conjugate(world[:, p]), world[:, b]))
        return quat.normalize(local)

    def location_for(self, b: int, world_head: np.ndarray, parent_world: np.ndarray | None,
                     parent_head: np.ndarray | None) -> np.ndarray:
        """pose_bone.location (F, 3) that puts bone b's head at world_head (F, 3).

        parent_world (F, 4) / parent_head (F, 3): the parent's posed rotation and head (None for a root).
        """
        rest = self.rest_rotations[b]
        p = int(self.parents[b])
        if p < 0:
            return quat.rotate(quat.conjugate(rest), world_head - self.heads[b])
        assert parent_world is not None and parent_head is not None, "a child bone needs its parent's pose"
        # head = parent_head + W_p (R_p^-1 (h_b - h_p) + R_p^-1 R_b loc)
        frame = quat.multiply(parent_world, quat.multiply(quat.conjugate(self.rest_rotations[p]), rest))
        rest_part = quat.rotate(quat.conjugate(rest), self.heads[b] - self.heads[p])
        return quat.rotate(quat.conjugate(frame), world_head - parent_head) - rest_part

    @classmethod
    def from_skeleton(cls, skeleton: Skeleton, scale: float = 1.0) -> Rig:
        """A rig whose bones are a MotionClip skeleton's joints at rest (identity-axis bones for BVH)."""
        rot, pos = skeleton.rest_global()
        mats = np.tile(np.eye(4), (skeleton.num_joints, 1, 1))
        mats[:, :3, :3] = quat.to_matrix(rot)
        mats[:, :3, 3] = pos * scale
        return cls(list(skeleton.names), skeleton.parents.copy(), mats)

    @classmethod
    def from_z_up(cls, names: list[str], parents: np.ndarray | list[int], matrices_z_up: np.ndarray,
                  tails_z_up: np.ndarray | None = None) -> Rig:
        """A rig from Blender-style Z-up armature-space rest matrices (B, 4, 4) and tails (B, 3)."""
        mats = Z_UP_TO_Y_UP @ np.asarray(matrices_z_up, dtype=np.float64)
        tails = None
        if tails_z_up is not None:
            tails = np.asarray(tails_z_up, dtype=np.float64) @ Z_UP_TO_Y_UP[:3, :3].T
        return cls(list(names), np.asarray(parents), mats, tails)
