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


@pytest.fixture(scope="module")
def addon(shared_server):
    """The add-on enabled and pointed at the shared server (a module's own `addon` fixture overrides it:
    one with a server of its own models, or none)."""
    import addon_utils
    import bpy
    from addon_helpers import ADDON_MODULE, enable_addon, prefs

    module = enable_addon()
    prefs().server_address = shared_server.address
    yield module
    if ADDON_MODULE in bpy.context.preferences.addons:
        addon_utils.disable(ADDON_MODULE, default_set=True)
