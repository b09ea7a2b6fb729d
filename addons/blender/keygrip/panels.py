"""The Keygrip tab in the 3D view's sidebar."""

from __future__ import annotations

import bpy


class KeygripPanel(bpy.types.Panel):
    bl_label = "Keygrip"
    bl_idname = "KEYGRIP_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Keygrip"

    def draw(self, context: bpy.types.Context) -> None:
        self.layout.label(text="Connect to a Keygrip server in Preferences", icon="INFO")
