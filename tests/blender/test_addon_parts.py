"""The add-on's parts that need no capture: rig description for a new armature, bone-map presets
(the SDK's keygrip.rigs, shared with other hosts) and the local server the add-on starts itself."""

from __future__ import annotations

import json
import sys
from importlib import import_module

import bpy
import numpy as np
import pytest
from addon_helpers import ADDON_MODULE, canonical_skeleton, enable_addon, new_scene, prefs

from keygrip import local_server, rigs
from keygrip.v1 import animation_pb2

# Blender's scripts/modules (addon_utils) are importable only once bpy is.
addon_utils = import_module("addon_utils")


def test_bone_map_presets_round_trip_and_refuse_nonsense(tmp_path):
    mapping = {"mixamorig:Hips": "hips", "mixamorig:LeftArm": "leftUpperArm", "twist": ""}
    msg = rigs.bone_map_from_dict(mapping)
    assert rigs.bone_map_to_dict(msg) == {"mixamorig:Hips": "hips", "mixamorig:LeftArm": "leftUpperArm"}
    path = rigs.save_bone_map_preset(tmp_path / "p.json", mapping, rig_name="Mixamo")
    assert json.loads(path.read_text())["rig"] == "Mixamo"
    loaded, absent = rigs.load_bone_map_preset(path, ["mixamorig:Hips"])
    assert loaded == {"mixamorig:Hips": "hips"} and absent == ["mixamorig:LeftArm"]
    with pytest.raises(ValueError, match="unknown humanoid role"):
        rigs.bone_map_from_dict({"a": "leftElbow"})
    with pytest.raises(ValueError, match="both map to 'hips'"):
        rigs.bone_map_from_dict({"a": "hips", "b": "hips"})
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="not a Keygrip bone map preset"):
        rigs.load_bone_map_preset(tmp_path / "other.json")


def test_root_motion_choices_are_protocol_names():
    enable_addon()
    properties = import_module(f"{ADDON_MODULE}.properties")
    for identifier, _, _ in properties.ROOT_MOTION_ITEMS:
        animation_pb2.RootMotion.Value(f"ROOT_MOTION_{identifier}")  # raises ValueError when unknown


def test_the_panels_subject_goes_into_the_capture_plan(empty_scene, tmp_path):
    """Who to capture among several people: typed in the panel, sent as the capture's subject."""
    enable_addon()
    operators = import_module(f"{ADDON_MODULE}.operators")
    video = tmp_path / "shot.mp4"
    video.write_bytes(b"")
    s = bpy.context.scene.keygrip
    s.video_path = str(video)
    s.subject = " 640,360@12 "
    plan, _ = operators.plan_from_panel(bpy.context)
    assert plan.capture.subject == "640,360@12"
    assert plan.capture.request_fields()["subject"] == "640,360@12"
    s.subject = ""
    assert operators.plan_from_panel(bpy.context)[0].capture.subject == ""


def test_new_armature_is_described_before_it_exists(empty_scene):
    enable_addon()
    rig = import_module(f"{ADDON_MODULE}.rig")
    names, parents, offsets = canonical_skeleton()
    predicted = rig.describe_canonical(names, parents, offsets, name="Target")
    assert len(bpy.data.objects) == 0  # nothing was added to the scene
    actual = rig.describe_armature(rig.build_canonical_armature(names, parents, offsets, name="Target"))
    assert predicted.bone_names == actual.bone_names and predicted.parents == actual.parents
    np.testing.assert_allclose(predicted.rest_matrices, actual.rest_matrices, atol=1e-5)
    np.testing.assert_allclose(predicted.tails, actual.tails, atol=1e-5)
    msg = rigs.rig_from_description(predicted)
    assert list(msg.bone_names) == names and list(msg.rest_matrices.shape) == [len(names), 4, 4]


def test_connect_starts_a_local_server_and_unregister_stops_it(tmp_path):
    enable_addon()
    main_thread = import_module(f"{ADDON_MODULE}.main_thread")
    preferences = import_module(f"{ADDON_MODULE}.preferences")
    socket_path = tmp_path / "keygrip.sock"
    # A private socket for the test, so that no other Keygrip server of this user answers instead.
    default = local_server.default_socket_path
    local_server.default_socket_path = lambda: socket_path
    p = prefs()
    p.start_local, p.server_python, p.data_dir = True, sys.executable, str(tmp_path / "data")
    try:
        new_scene()
        assert bpy.ops.keygrip.connect() == {"FINISHED"}
        main_thread.drain(timeout=120)
        status = preferences.server_status
        assert status.state == "connected", status
        assert status.address == f"unix://{socket_path}" and status.version
        assert any(name == "mocap.body" for name, _, _ in status.capabilities)
        server = local_server._instance
        assert server is not None and server.running
        addon_utils.disable(ADDON_MODULE, default_set=True)
        assert server.proc.poll() is not None  # stopped with the add-on
    finally:
        local_server.default_socket_path = default
        enable_addon()
        p = prefs()
        p.start_local, p.server_python, p.data_dir = False, "", ""
