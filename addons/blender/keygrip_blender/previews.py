"""The latest step preview of each running generation, as an icon the panel can draw.

Previews live in a bpy.utils.previews collection (UI data, not the .blend), so a cancelled job leaves
nothing in the file. The PNGs go to a temporary folder, one file per preview.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

_state: dict[str, Any] = {"collection": None, "count": 0, "folder": None}
latest: dict[str, int] = {}   # session title -> icon id of its latest preview


def show(key: str, png: bytes) -> int:
    """Load `png` as the latest preview of `key` (a session's title); returns its icon id."""
    import bpy.utils.previews

    if _state["collection"] is None:
        _state["collection"] = bpy.utils.previews.new()
        _state["folder"] = tempfile.TemporaryDirectory(prefix="keygrip_previews_")
    _state["count"] += 1
    path = Path(_state["folder"].name) / f"preview_{_state['count']}.png"
    path.write_bytes(png)
    preview = _state["collection"].load(path.name, str(path), "IMAGE")
    preview.icon_size  # noqa: B018 - touching it makes Blender load the image now
    latest[key] = preview.icon_id
    return int(preview.icon_id)


def clear() -> None:
    """Forget every preview (add-on unregister)."""
    import bpy.utils.previews

    latest.clear()
    if _state["collection"] is not None:
        bpy.utils.previews.remove(_state["collection"])
        _state["folder"].cleanup()
    _state.update(collection=None, count=0, folder=None)
