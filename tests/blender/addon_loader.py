"""Import the Blender add-on in tests and scripts that run in the bpy wheel.

The add-on's package is called `keygrip` like the SDK, so it is imported under another name (its
modules import each other relatively, so the name does not matter to them).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
ADDON_DIR = REPO / "addons" / "blender" / "keygrip"
ADDON_MODULE = "keygrip_blender_addon"

# The tests build their rigs from the project's canonical humanoid (inference_server.motion).
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def load_addon() -> ModuleType:
    """The add-on package imported as `keygrip_blender_addon` (once per process)."""
    if ADDON_MODULE in sys.modules:
        return sys.modules[ADDON_MODULE]
    spec = importlib.util.spec_from_file_location(
        ADDON_MODULE, ADDON_DIR / "__init__.py", submodule_search_locations=[str(ADDON_DIR)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[ADDON_MODULE] = module
    spec.loader.exec_module(module)
    return module
