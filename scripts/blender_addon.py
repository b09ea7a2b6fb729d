"""Import the Blender add-on straight from a repository checkout, inside the bpy wheel.

The tests, the demo and the write-back benchmark use this; an installed extension is imported by
Blender itself (as bl_ext.<repository>.keygrip). In a checkout the add-on package is
addons/blender/keygrip_blender: a name of its own, so putting addons/blender on sys.path never
shadows the SDK (`keygrip`).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
ADDONS_DIR = REPO / "addons" / "blender"
ADDON_MODULE = "keygrip_blender"
ADDON_DIR = ADDONS_DIR / ADDON_MODULE


def load_addon() -> ModuleType:
    """The add-on package, imported as `keygrip_blender` (once per process), with this checkout's SDK
    first on sys.path (the built extension gets its SDK from the wheel Blender installs instead)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    if str(ADDONS_DIR) not in sys.path:
        sys.path.append(str(ADDONS_DIR))
    fresh = ADDON_MODULE not in sys.modules
    module = importlib.import_module(ADDON_MODULE)
    if fresh and module.__file__:
        # addon_utils.enable reloads a module whose file changed since import; this one is fresh.
        module.__time__ = os.path.getmtime(module.__file__)  # type: ignore[attr-defined]
    return module
