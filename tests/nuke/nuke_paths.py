"""Where the Nuke tests find things (a plain module, not conftest: with several test folders
collected, `from conftest import ...` may get another folder's conftest)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PLUGIN = REPO / "addons" / "nuke" / "keygrip"   # the folder that goes on NUKE_PATH
