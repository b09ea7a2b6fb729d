"""Nuke plugin tests: the plugin from the checkout (addons/nuke/keygrip) against the stateful fake
`nuke` module (nuke_fake.py), installed as `nuke` before the plugin imports it, fresh for each test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))   # nuke_paths, nuke_fake
from nuke_paths import PLUGIN  # noqa: E402

# The NUKE_PATH folder itself goes on sys.path, as Nuke puts it (not addons/nuke: its `keygrip`
# folder would hide the SDK package of the same name).
sys.path.insert(0, str(PLUGIN))

import nuke_fake  # noqa: E402

sys.modules["nuke"] = nuke_fake


@pytest.fixture
def nuke() -> Iterator[ModuleType]:
    """The fake nuke, reset, with the plugin's menus registered as menu.py does; after the test,
    nothing may have touched the graph off the main thread and no queued call may have failed."""
    import keygrip_nuke.menus
    import keygrip_nuke.node

    nuke_fake.reset()
    keygrip_nuke.menus.register()
    yield nuke_fake
    for session in keygrip_nuke.node.running():
        session.cancel()
        session.join(10)
    assert not nuke_fake.violations, "\n".join(nuke_fake.violations)
    assert not nuke_fake.errors, nuke_fake.errors
