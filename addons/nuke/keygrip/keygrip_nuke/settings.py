"""Where the Keygrip server is, from the node, Nuke's preferences and the environment.

The Keygrip tab in Nuke's preferences holds the artist's choice; a studio sets the environment
(KEYGRIP_ADDRESS, KEYGRIP_TOKEN, KEYGRIP_SERVER_PYTHON, KEYGRIP_DATA_DIR) for everyone. A value set in
the node's own `server` knob wins, then the preferences, then the environment, then the defaults.
Read on Nuke's main thread when Process is pressed; the worker gets a snapshot (ServerSettings).
"""

from __future__ import annotations

import os

from keygrip.client import DEFAULT_ADDRESS
from keygrip.session import ServerSettings

from .host import nuke

# Preference knob name -> (label, kind, tooltip). The names carry the plugin's prefix: the
# preferences node is shared by every plugin.
PREFERENCES = {
    "keygrip_server": ("server address", "string",
                       "host:port or unix:///path/to/socket of the Keygrip server (empty: $KEYGRIP_ADDRESS, "
                       f"else {DEFAULT_ADDRESS})"),
    "keygrip_token": ("token", "password",
                      "Bearer token, needed only when the server listens beyond this machine "
                      "(empty: $KEYGRIP_TOKEN)"),
    "keygrip_start_local": ("start a local server", "bool",
                            "when nothing answers, start a Keygrip server on this machine with the Python below"),
    "keygrip_server_python": ("server Python", "file",
                              "the python of the environment where the Keygrip server is installed "
                              "(empty: $KEYGRIP_SERVER_PYTHON)"),
    "keygrip_data_dir": ("local server data", "file",
                         "where a local server keeps its jobs and results (empty: $KEYGRIP_DATA_DIR, "
                         "else ~/.keygrip/nuke-server)"),
}


def add_preferences() -> None:
    """The Keygrip tab in Nuke's preferences (once; Nuke saves the values with its preferences)."""
    prefs = nuke.toNode("preferences")
    if prefs is None or prefs.knob("keygrip_server") is not None:
        return
    prefs.addKnob(nuke.Tab_Knob("keygrip_tab", "Keygrip"))
    for name, (label, kind, tooltip) in PREFERENCES.items():
        knob: nuke.Knob
        if kind == "bool":
            knob = nuke.Boolean_Knob(name, label)
        elif kind == "password":
            knob = nuke.Password_Knob(name, label)
        elif kind == "file":
            knob = nuke.File_Knob(name, label)
        else:
            knob = nuke.String_Knob(name, label)
        knob.setTooltip(tooltip)
        prefs.addKnob(knob)


def _preference(name: str) -> object:
    prefs = nuke.toNode("preferences")
    knob = prefs.knob(name) if prefs is not None else None
    return knob.value() if knob is not None else None


def _text(name: str, env: str, default: str = "") -> str:
    value = _preference(name)
    return str(value).strip() if value else os.environ.get(env, "").strip() or default


def server_settings(node_address: str = "") -> ServerSettings:
    """The server to use for a run (main thread); node_address: the node's own `server` knob."""
    start_local = bool(_preference("keygrip_start_local")) or os.environ.get("KEYGRIP_START_LOCAL", "") == "1"
    return ServerSettings(
        address=node_address.strip() or _text("keygrip_server", "KEYGRIP_ADDRESS", DEFAULT_ADDRESS),
        token=_text("keygrip_token", "KEYGRIP_TOKEN"),
        start_local=start_local,
        python=_text("keygrip_server_python", "KEYGRIP_SERVER_PYTHON"),
        data_dir=_text("keygrip_data_dir", "KEYGRIP_DATA_DIR",
                       os.path.join(os.path.expanduser("~"), ".keygrip", "nuke-server")),
    )
