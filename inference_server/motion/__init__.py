"""The shared motion data model: what mocap/ produces and animation/ consumes. Not a capability.

A skeleton and a clip of its joint rotations over time, with the conventions every capability and
host agree on (Y-up metres, seconds, quaternions x, y, z, w, VRM humanoid joint names), and the
tools that work on any such clip whoever made it:

- clip.py: Skeleton, MotionClip, FrameFlag and their forward kinematics;
- quat.py: vectorised quaternion maths;
- bvh.py: BVH in and out;
- wire.py: MotionClip, Rig and bone maps to and from their keygrip.v1 messages;
- foot_lock.py: foot contacts and foot locking with one two-bone IK, for captures and rigs alike.

mocap/ makes motion from video; animation/ puts motion on a rig. Nothing here uses mocap/; wire.py
also converts animation/'s Rig and bone maps for the wire, importing them where it does.
"""
