"""Keygrip for Nuke, run by Nuke at start-up (GUI and `nuke -t`) because this folder is on NUKE_PATH.

Only makes the bundled packages importable: the Keygrip SDK (beside this file) and, from the built
plugin, the grpcio and protobuf of this Nuke's Python and platform. Nothing here touches the graph.
"""

import keygrip_nuke.bundled

keygrip_nuke.bundled.add_to_path()
