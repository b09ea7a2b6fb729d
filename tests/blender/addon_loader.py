"""Puts the repository and the add-on loader (scripts/blender_addon.py) on sys.path for the Blender tests."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The tests use the server's code (inference_server) and load the add-on (keygrip_blender) from the
# checkout through the same loader as the demo and the benchmark.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "scripts") not in sys.path:
    sys.path.append(str(REPO / "scripts"))

from blender_addon import ADDON_MODULE, load_addon  # noqa: E402

__all__ = ["ADDON_MODULE", "REPO", "load_addon"]
