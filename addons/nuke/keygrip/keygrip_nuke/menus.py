"""The Keygrip menu in Nuke's menu bar, the Keygrip node in the Nodes toolbar, the preferences tab,
and stopping a local server this Nuke started when Nuke quits (menu.py runs register)."""

from __future__ import annotations

import atexit

from keygrip import local_server

from . import settings
from .host import nuke

CREATE = "import keygrip_nuke.node\nkeygrip_nuke.node.create()"


def register() -> None:
    keygrip_menu = nuke.menu("Nuke").addMenu("Keygrip")
    keygrip_menu.addCommand("Keygrip Node", CREATE)
    keygrip_menu.addCommand("Stop Local Server", local_server.stop)
    nuke.menu("Nodes").addMenu("Keygrip").addCommand("Keygrip", CREATE)
    settings.add_preferences()
    atexit.unregister(local_server.stop)   # once, however often menus are registered
    atexit.register(local_server.stop)
