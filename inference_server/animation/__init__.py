"""The character animation capability: motion onto an artist's own rig.

Takes motion as a MotionClip or BVH (motion/: the shared motion data model, whether it came from
mocap/ or from a file) and a rig as a host describes it, and answers with animation keyed on that
rig's own bones. It knows nothing about video: capturing the motion in the first place is mocap/.

- service.py: the Animation gRPC service (MapBones at once, Retarget as a job);
- jobs.py: RetargetHandler, the retarget job (RigAnimation and BVH out);
- rig.py: the target rig (bones, rest frames) with its forward kinematics, to_clip for BVH export;
- rig_files.py: the character file a RigFile names as a rig (gltf_rig.py: glTF and VRM skeletons
  with their declared humanoid maps; BVH skeletons); gltf_write.py writes a result back into the
  character's own GLB as a glTF animation;
- mapping.py: which bone plays which humanoid role (VRM names): declared maps first, then guesses;
- retarget.py: the retargeting itself (rest alignment, swing, root motion, foot locking with
  motion/foot_lock.py);
- cliptools.py: trim, resample, smooth, remove foot sliding, export BVH.

Host-neutral numpy; importing this package stays light (the gRPC front does).
"""

from __future__ import annotations

from inference_server.capability import Capability, Feature
from keygrip.v1 import animation_pb2


def features() -> list[Feature]:
    return [Feature("animation.retarget", True), Feature("animation.bvh", True)]


CAPABILITY = Capability(
    name="animation",
    service_name=animation_pb2.DESCRIPTOR.services_by_name["Animation"].full_name,
    service="inference_server.animation.service:add_to_server",
    handlers={"retarget": "inference_server.animation.jobs:RetargetHandler"},
    features=features,
)
