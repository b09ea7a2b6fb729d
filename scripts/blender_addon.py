"""Import the Blender add-on straight from a repository checkout, inside the bpy wheel.

The tests, the demo and the write-back benchmark use this; an installed extension is imported by
Blender itself. The add-on package is called `keygrip` like the SDK, so it is imported as
`keygrip_blender_addon` (its modules import each other relatively, so the name does not matter).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

ADDON_DIR = Path(__file__).resolve().parents[1] / "addons" / "blender" / "keygrip"
ADDON_MODULE = "keygrip_blender_addon"


def load_addon() -> ModuleType:
    """The add-on package imported as `keygrip_blender_addon` (once per process)."""
    if ADDON_MODULE in sys.modules:
        return sys.modules[ADDON_MODULE]
    spec = importlib.util.spec_from_file_location(
        ADDON_MODULE, ADDON_DIR / "__init__.py", submodule_search_locations=[str(ADDON_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[ADDON_MODULE] = module
    spec.loader.exec_module(module)
    # addon_utils.enable reloads a module whose file changed since import; this one is fresh.
    module.__time__ = os.path.getmtime(module.__file__)
    return module
