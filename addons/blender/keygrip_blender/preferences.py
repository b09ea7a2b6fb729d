"""Add-on preferences: where the Keygrip server is, how to authenticate, and whether to start one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import bpy

from keygrip import local_server
from keygrip.client import DEFAULT_ADDRESS
from keygrip.session import ServerSettings
from keygrip.v1 import server_pb2


@dataclass
class ServerStatus:
    """What the last Connect found out, for the preferences and the panel (main thread only)."""

    state: str = "not connected"
    error: str = ""
    address: str = ""
    version: str = ""
    devices: list[str] = field(default_factory=list)
    capabilities: list[tuple[str, bool, str]] = field(default_factory=list)   # (name, available, reason)

    def reset(self, state: str, error: str = "") -> None:
        """Forget the last answer: a new state (and error message) and nothing else."""
        self.state, self.error, self.address, self.version = state, error, "", ""
        self.devices, self.capabilities = [], []

    def record(self, info: server_pb2.ServerInfo, address: str) -> None:
        """Remember a GetServerInfo answer."""
        self.reset("connected")
        self.address = address
        self.version = info.version
        self.devices = [f"{d.kind} {d.name}".strip() for d in info.devices]
        self.capabilities = [(c.name, c.available, c.reason) for c in info.capabilities]


server_status = ServerStatus()


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
        row.label(text=server_status.state)
        draw_server_status(layout)


def draw_server_status(layout: bpy.types.UILayout) -> None:
    status = server_status
    for line in wrap(status.error) if status.error else ():
        layout.label(text=line, icon="ERROR")
    if not status.version:
        return
    box = layout.box()
    box.label(text=f"Keygrip server {status.version} at {status.address}")
    for device in status.devices:
        box.label(text=device, icon="MEMORY")
    for name, available, reason in status.capabilities:
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


def server_settings(context: bpy.types.Context | None = None) -> ServerSettings:
    """The preferences as a plain snapshot for the worker thread."""
    prefs = get(context)
    return ServerSettings(
        address=prefs.server_address.strip() or DEFAULT_ADDRESS,
        token=prefs.token,
        start_local=prefs.start_local,
        python=bpy.path.abspath(prefs.server_python) if prefs.server_python else "",
        data_dir=bpy.path.abspath(prefs.data_dir) if prefs.data_dir else _default_data_dir(),
    )

