"""Keygrip for Blender: motion capture and retargeting, and generated textures and worlds, from a local
Keygrip server.

The add-on is thin: the Keygrip SDK (the `keygrip` package, vendored into the extension zip under
vendor/) holds the host-neutral flow (keygrip.session, keygrip.animate); the add-on keeps Blender's
main-thread scheduling (main_thread.py) and turns results into Blender data (apply.py, writeback.py,
rig.py, shading.py, projection.py). Network calls run on worker threads; the scene changes only on the main thread.

Its modules import each other without a cycle (A <- B: B imports A):

    axes <- rig, writeback;  actions <- writeback, apply, shading, projection;  rig, writeback <- apply <- shading
    shading <- projection
    apply, rig, preferences, previews, projection, properties, shading <- tasks
    tasks, apply, rig, shading, projection, main_thread, preferences, properties <- operators
    main_thread, preferences, previews, projection <- panels
    axes, actions, properties, preferences, previews and main_thread import no sibling.
"""

from __future__ import annotations

import atexit
import sys
from pathlib import Path

import bpy

# The built extension carries the SDK as vendor/keygrip; in a development checkout the SDK is
# importable already and this folder does not exist. It must be on sys.path before the modules
# below import the SDK.
_VENDOR = Path(__file__).resolve().parent / "vendor"


def _add_vendored_sdk() -> None:
    if _VENDOR.is_dir() and str(_VENDOR) not in sys.path:
        sys.path.insert(0, str(_VENDOR))


def _remove_vendored_sdk() -> None:
    if str(_VENDOR) in sys.path:
        sys.path.remove(str(_VENDOR))
    # Forget the vendored modules too, so that an updated extension imports its own SDK.
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None) or ""
        if (name == "keygrip" or name.startswith("keygrip.")) and origin.startswith(str(_VENDOR)):
            del sys.modules[name]


_add_vendored_sdk()

from keygrip import local_server  # noqa: E402

from . import main_thread, operators, panels, previews, properties  # noqa: E402
from .preferences import KeygripPreferences  # noqa: E402

_CLASSES = (KeygripPreferences, *operators.CLASSES, *panels.CLASSES)


def register() -> None:
    _add_vendored_sdk()
    properties.register()
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    main_thread.listeners.append(operators.update_ui)
    atexit.register(local_server.stop)


def unregister() -> None:
    main_thread.shutdown()
    previews.clear()
    local_server.stop()
    atexit.unregister(local_server.stop)
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
    properties.unregister()
    _remove_vendored_sdk()
