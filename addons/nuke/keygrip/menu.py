"""Keygrip for Nuke's menus, run by Nuke's GUI at start-up (not by `nuke -t`): the Keygrip menu,
the Keygrip node in the Nodes toolbar, and the Keygrip tab in the preferences."""

import keygrip_nuke.menus

keygrip_nuke.menus.register()
