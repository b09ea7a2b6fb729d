"""Add-on preferences: where the Keygrip server is, how to authenticate, and whether to start one."""

from __future__ import annotations

from pathlib import Path

import bpy

from . import connection, local_server

DEFAULT_ADDRESS = "127.0.0.1:50051"

# What the last Connect found out, for the preferences to show (main thread only).
server_status: dict[str, object] = {"state": "not connected"}


class KeygripPreferences(bpy.types.AddonPreferences):
    # Blender looks preferences up by the add-on's module name, which differs between an
    # installed extension (bl_ext.<repo>.keygrip) and a checkout loaded by name (keygrip_blender).
    bl_idname = __package__

    server_address: bpy.props.StringProperty(
        name="Server address",
        description="host:port or unix:///path/to/socket of the Keygrip inference server",
        default=DEFAULT_ADDRESS,
    )
    token: bpy.props.StringProperty(
        name="Token",
        description="Bearer token, needed only when the server listens beyond this machine",
        default="",
        subtype="PASSWORD",
    )
    start_local: bpy.props.BoolProperty(
        name="Start a local server when needed",
        description="Start `<Server Python> -m inference_server` on a private socket when no server answers",
        default=False,
    )
    server_python: bpy.props.StringProperty(
        name="Server Python",
        description="The python executable of the environment where the Keygrip server is installed",
        default="",
        subtype="FILE_PATH",
    )
    data_dir: bpy.props.StringProperty(
        name="Server data folder",
        description="Where a local server keeps its jobs and results (empty: Blender's user data folder)",
        default="",
        subtype="DIR_PATH",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "server_address")
        layout.prop(self, "token")
        layout.prop(self, "start_local")
        col = layout.column()
        col.active = self.start_local
        col.prop(self, "server_python")
        col.prop(self, "data_dir")
        if self.start_local:
            col.label(text=f"Listens on {local_server.socket_address(local_server.default_socket_path())}")
        row = layout.row()
        row.operator("keygrip.connect", icon="LINKED")
        row.label(text=str(server_status["state"]))
        draw_server_status(layout)


def draw_server_status(layout: bpy.types.UILayout) -> None:
    if server_status.get("error"):
        for line in wrap(str(server_status["error"])):
            layout.label(text=line, icon="ERROR")
    if "version" not in server_status:
        return
    box = layout.box()
    box.label(text=f"Keygrip server {server_status['version']} at {server_status['address']}")
    for device in server_status.get("devices", []):
        box.label(text=device, icon="MEMORY")
    for name, available, reason in server_status.get("capabilities", []):
        box.label(text=name if available else f"{name}: {reason}", icon="CHECKMARK" if available else "CANCEL")


def wrap(text: str, width: int = 90) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


def get(context: bpy.types.Context | None = None) -> KeygripPreferences:
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


def _default_data_dir() -> str:
    try:
        # Extensions get a user folder that survives updates (Blender 4.2+).
        return bpy.utils.extension_path_user(__package__, path="server", create=True)
    except (ValueError, AttributeError):
        return str(Path(bpy.utils.user_resource("DATAFILES", path="keygrip", create=True)) / "server")


def server_settings(context: bpy.types.Context | None = None) -> connection.ServerSettings:
    """The preferences as a plain snapshot for the worker thread."""
    prefs = get(context)
    return connection.ServerSettings(
        address=prefs.server_address.strip() or DEFAULT_ADDRESS,
        token=prefs.token,
        start_local=prefs.start_local,
        python=bpy.path.abspath(prefs.server_python) if prefs.server_python else "",
        data_dir=bpy.path.abspath(prefs.data_dir) if prefs.data_dir else _default_data_dir(),
    )


def record_server_info(info, address: str) -> None:
    """Remember a GetServerInfo answer for the preferences and the panel."""
    server_status.clear()
    server_status.update({
        "state": "connected",
        "address": address,
        "version": info.version,
        "devices": [f"{d.kind} {d.name}".strip() for d in info.devices],
        "capabilities": [(c.name, c.available, c.reason) for c in info.capabilities],
    })


def record_error(message: str) -> None:
    server_status.clear()
    server_status.update({"state": "not connected", "error": message})
