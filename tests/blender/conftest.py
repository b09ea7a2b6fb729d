"""Blender tests run in the bpy wheel, in process, in background mode."""

from __future__ import annotations

import importlib.util

import pytest

# Without the bpy wheel (Blender as a Python module) there is nothing here to run.
collect_ignore_glob = ["test_*.py"] if importlib.util.find_spec("bpy") is None else []


@pytest.fixture
def empty_scene():
    """A factory-settings scene with nothing in it."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene
