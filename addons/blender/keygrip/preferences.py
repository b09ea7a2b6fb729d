"""Add-on preferences: where the Keygrip server is and how to authenticate."""

from __future__ import annotations

import bpy

DEFAULT_ADDRESS = "127.0.0.1:50051"


class KeygripPreferences(bpy.types.AddonPreferences):
    # Blender looks preferences up by the add-on's module name, which differs between an
    # installed extension (bl_ext.<repo>.keygrip) and a legacy add-on (keygrip).
    bl_idname = __package__

    server_address: bpy.props.StringProperty(
        name="Server address",
        description="host:port of the Keygrip inference server",
        default=DEFAULT_ADDRESS,
    )
    token: bpy.props.StringProperty(
        name="Token",
        description="Bearer token, needed only when the server listens beyond this machine",
        default="",
        subtype="PASSWORD",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "server_address")
        layout.prop(self, "token")
