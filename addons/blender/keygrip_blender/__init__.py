"""Keygrip for Blender: motion capture and retargeting, and generated textures and worlds, from a local
Keygrip server.

The add-on is thin: the Keygrip SDK (the `keygrip` package, which the extension zip carries as a wheel
listed in its manifest, so that Blender installs it like grpcio and protobuf) holds the host-neutral
flow (keygrip.session, keygrip.animate); the add-on keeps Blender's main-thread scheduling
(main_thread.py) and turns results into Blender data (apply.py, writeback.py, rig.py, shading.py,
projection.py). Network calls run on worker threads; the scene changes only on the main thread.

Its modules import each other without a cycle (A <- B: B imports A):

    axes <- rig, writeback;  actions <- writeback, apply, shading, projection;  rig, writeback <- apply <- shading
    shading <- projection
    apply, rig, preferences, previews, projection, properties, shading <- tasks
    tasks, apply, rig, shading, projection, main_thread, preferences, properties <- operators
    main_thread, preferences, previews, projection, properties <- panels
    axes, actions, properties, preferences, previews and main_thread import no sibling.
"""

from __future__ import annotations

import atexit
import os
import sys

import bpy

from keygrip import local_server

from . import main_thread, operators, panels, previews, properties
from .preferences import KeygripPreferences

_CLASSES = (KeygripPreferences, *operators.CLASSES, *panels.CLASSES)


def _forget_sdk_from_wheel() -> None:
    """Forget the SDK's modules when they came from the wheel Blender installed for this extension.

    Blender replaces the wheel's files when the extension is updated or removes them when it is
    disabled; the next enable must import those files, not the modules already in memory. An SDK
    imported from anywhere else (a development checkout) is left alone.
    """
    wheels_dir = os.path.realpath(bpy.utils.user_resource("EXTENSIONS")) + os.sep
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if (name == "keygrip" or name.startswith("keygrip.")) and origin and \
                os.path.realpath(origin).startswith(wheels_dir):
            del sys.modules[name]


def register() -> None:
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
    _forget_sdk_from_wheel()
