"""Where the built plugin keeps its Python packages, and putting the right ones on sys.path.

scripts/build_nuke_plugin.py unpacks grpcio and protobuf into site-packages/<python>-<platform>/
(py3.10-linux-x64, ...), one folder per Nuke Python and platform, because Nuke installs no wheels and
grpcio's compiled part differs for each. The SDK (keygrip/) sits beside this package and is pure Python.

Standard library only: this runs before anything else is importable.
"""

from __future__ import annotations

import os
import platform
import sys

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITE_PACKAGES = os.path.join(PLUGIN_DIR, "site-packages")


def platform_name() -> str:
    """This machine as the build names platforms: linux-x64, windows-x64, macos-arm64, macos-x64."""
    system = {"linux": "linux", "win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)
    machine = platform.machine().lower()
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(machine, machine)
    return f"{system}-{machine}"


def folder_name(python: str, plat: str) -> str:
    """site-packages folder of a Python version ("3.10") on a platform ("linux-x64")."""
    return f"py{python}-{plat}"


def packages_dir() -> str:
    """This Nuke's folder of bundled packages (it may not exist: a plugin built without wheels)."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return os.path.join(SITE_PACKAGES, folder_name(python, platform_name()))


def add_to_path() -> str:
    """Put this Nuke's bundled packages first on sys.path (once); returns the folder, "" if absent.

    Without them the plugin still loads, and Process says which packages are missing.
    """
    folder = packages_dir()
    if not os.path.isdir(folder):
        return ""
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return folder
