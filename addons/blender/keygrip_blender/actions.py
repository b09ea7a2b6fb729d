"""New actions, F-curves and bulk keys on both of Blender's action APIs.

Blender 4.4 introduced layered actions (keys live in action.layers[..].strips[..].channelbag(slot)),
and 5.0 removed the old Action.fcurves; 4.2 and 4.3 have only Action.fcurves. Which API is used is
decided by feature detection on the action itself, never by version number.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import bpy
import numpy as np

PROVENANCE_KEY = "keygrip"


def _enum_value(struct: Any, prop: str, identifier: str) -> int:
    """Integer value of an RNA enum item, as foreach_set wants it (looked up, not hard-coded)."""
    items = struct.bl_rna.properties[prop].enum_items
    if identifier not in items:
        raise ValueError(f"unknown {prop} {identifier!r}; use one of {', '.join(items.keys())}")
    return items[identifier].value


@dataclass
class ActionWriter:
    """A freshly created action, the slot it animates through (None before Blender 4.4) and
    the F-curve collection new curves go into."""

    action: bpy.types.Action
    slot: Any
    fcurves: Any

    def new_fcurve(self, data_path: str, index: int, group: str) -> bpy.types.FCurve:
        if self.slot is not None:
            return self.fcurves.new(data_path, index=index, group_name=group)
        return self.fcurves.new(data_path, index=index, action_group=group)

    def write_curve(
        self,
        data_path: str,
        index: int,
        group: str,
        frames: np.ndarray,
        values: np.ndarray,
        interpolation: str = "LINEAR",
    ) -> bpy.types.FCurve:
        """One F-curve with a key per frame, written in bulk.

        frames: (F,) scene frames, increasing. values: (F,) key values.
        """
        fcurve = self.new_fcurve(data_path, index, group)
        points = fcurve.keyframe_points
        n = len(frames)
        points.add(n)
        co = np.empty((n, 2), dtype=np.float32)
        co[:, 0] = frames
        co[:, 1] = values
        points.foreach_set("co", co.ravel())
        mode = _enum_value(bpy.types.Keyframe, "interpolation", interpolation)
        points.foreach_set("interpolation", np.full(n, mode, dtype=np.int32))
        # Handles matter for BEZIER and for an artist who later switches to it; recalculating them
        # once per curve is what keyframe_insert would have done key by key.
        if hasattr(points, "handles_recalc"):
            points.handles_recalc()
        else:
            fcurve.update()
        return fcurve


def new_action(name: str, id_type: str, slot_name: str) -> ActionWriter:
    """A new, empty action ready for F-curves (the name gets a numeric suffix if taken).

    id_type: the RNA ID type the action animates ("OBJECT" for an armature, "KEY" for shape keys).
    """
    action = bpy.data.actions.new(name)
    if hasattr(action, "layers") and hasattr(action, "slots"):
        slot = action.slots.new(id_type, slot_name)
        strip = action.layers.new("Keygrip").strips.new(type="KEYFRAME")
        return ActionWriter(action, slot, strip.channelbag(slot, ensure=True).fcurves)
    action.id_root = id_type
    return ActionWriter(action, None, action.fcurves)


def assign_action(id_block: bpy.types.ID, writer: ActionWriter, *, push_previous_to_nla: bool) -> None:
    """Make the new action the active one of id_block, keeping the artist's previous action.

    With push_previous_to_nla the previous action goes onto a new, muted NLA track (muted so it
    does not blend under the new motion; the artist can unmute it). Otherwise it gets a fake user
    so that it is never lost on save.
    """
    anim = id_block.animation_data or id_block.animation_data_create()
    if anim.use_tweak_mode:
        raise ValueError(f"{id_block.name!r} is in NLA tweak mode; exit it (Tab in the NLA editor) and retry")
    previous = anim.action
    previous_slot = getattr(anim, "action_slot", None)
    if previous is not None:
        if push_previous_to_nla:
            track = anim.nla_tracks.new()
            track.name = previous.name
            strip = track.strips.new(previous.name, int(previous.frame_range[0]), previous)
            if previous_slot is not None and hasattr(strip, "action_slot"):
                strip.action_slot = previous_slot
            track.mute = True
        else:
            previous.use_fake_user = True
    anim.action = writer.action
    if writer.slot is not None:
        anim.action_slot = writer.slot


def _id_property_value(value: Any) -> Any:
    """Custom properties hold str/int/float/bool; anything richer is kept as JSON text."""
    if isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def stamp_provenance(
    id_blocks: list[bpy.types.ID], provenance: Mapping[str, Any] | None, **extra: Any
) -> None:
    """Store where a write-back came from as a "keygrip" custom property group on each ID.

    provenance: e.g. {"job_id": ..., "options": {...}, "server_version": ...}; dicts and lists are
    stored as JSON strings so a TD can feed them straight back into a new job.
    """
    record = {k: _id_property_value(v) for k, v in (provenance or {}).items()}
    record.update({k: _id_property_value(v) for k, v in extra.items()})
    record["written_utc"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    for id_block in id_blocks:
        id_block[PROVENANCE_KEY] = record
