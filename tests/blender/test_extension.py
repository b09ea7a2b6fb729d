"""The extension zip: what the build puts in it, and that Blender installs, enables and disables it.

Installing runs in a child Python with BLENDER_USER_RESOURCES pointing into tmp_path, so the
extension lands in a throw-away user folder, never in the user's real Blender configuration.
The zip is built with --no-wheels (tests cannot download wheels): grpcio and protobuf come from the
test environment, where they are installed already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import addon_helpers  # noqa: F401 - first: puts the repository and scripts/ on sys.path
import build_blender_extension as build_script
import pytest

# Runs inside Blender (the bpy wheel): install, enable, disable, enable, disable; report as JSON.
_IN_BLENDER = r"""
import json, sys
import bpy, addon_utils

HANDLER_LISTS = [n for n in dir(bpy.app.handlers) if isinstance(getattr(bpy.app.handlers, n), list)]
def handler_counts():
    return {n: len(getattr(bpy.app.handlers, n)) for n in HANDLER_LISTS}

def addon_timers(prefix):
    # bpy.app.timers cannot be listed: ask about every function the add-on's modules define.
    found = []
    for name, mod in list(sys.modules.items()):
        if name == prefix or name.startswith(prefix + "."):
            for attr in vars(mod).values():
                if callable(attr) and bpy.app.timers.is_registered(attr):
                    found.append(f"{name}.{attr.__name__}")
    return found

report = {"handlers_before": handler_counts()}
result = bpy.ops.extensions.package_install_files(
    filepath=sys.argv[-1], repo="user_default", enable_on_install=True)
module = "bl_ext.user_default.keygrip"
report["install"] = sorted(result)
report["enabled"] = module in bpy.context.preferences.addons
prefs = bpy.context.preferences.addons[module].preferences
report["address"] = prefs.server_address
report["token"] = prefs.token
report["panel"] = hasattr(bpy.types, "KEYGRIP_PT_main")
import keygrip
report["sdk_file"] = keygrip.__file__
report["sdk_version"] = keygrip.__version__
report["timers_enabled"] = addon_timers(module)
for cycle in range(2):
    addon_utils.disable(module, default_set=True)
    if cycle == 0:
        addon_utils.enable(module, default_set=True)
report["disabled"] = module not in bpy.context.preferences.addons
report["panel_after"] = hasattr(bpy.types, "KEYGRIP_PT_main")
report["sdk_in_modules_after"] = "keygrip" in sys.modules
report["vendor_on_path_after"] = [p for p in sys.path if p.endswith("vendor")]
report["handlers_after"] = handler_counts()
report["timers_after"] = addon_timers(module)
print("REPORT" + json.dumps(report))
"""


def test_extension_installs_enables_and_disables_cleanly(tmp_path: Path):
    assert build_script.main(["--no-wheels", "--out", str(tmp_path / "dist")]) == 0
    (zip_path,) = (tmp_path / "dist").glob("keygrip-*.zip")
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
    assert {"blender_manifest.toml", "__init__.py", "writeback.py", "rig.py", "axes.py"} <= names
    assert "vendor/keygrip/__init__.py" in names
    assert not any("__pycache__" in n for n in names)
    assert manifest["id"] == "keygrip" and manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) == {"network", "files"}
    assert manifest["wheels"] == []

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "blender_user")
    proc = subprocess.run(
        [sys.executable, "-c", _IN_BLENDER, str(zip_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(lines[-1][len("REPORT"):])

    assert report["install"] == ["FINISHED"] and report["enabled"]
    assert report["address"] == "127.0.0.1:50051" and report["token"] == ""
    assert report["panel"]
    # The add-on imports the SDK it carries, not one from elsewhere.
    installed = tmp_path / "blender_user" / "extensions" / "user_default" / "keygrip"
    assert Path(report["sdk_file"]) == installed / "vendor" / "keygrip" / "__init__.py"
    assert report["timers_enabled"] == []
    assert report["disabled"] and not report["panel_after"]
    assert not report["sdk_in_modules_after"] and report["vendor_on_path_after"] == []
    assert report["handlers_after"] == report["handlers_before"]
    assert report["timers_after"] == []


def _fake_wheels(folder: Path, names: list[str]) -> list[Path]:
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"")
    return sorted(folder.glob("*.whl"))


def test_wheel_selection_per_platform_and_python(tmp_path: Path):
    wheels = _fake_wheels(tmp_path / "wheels", [
        "grpcio-1.84.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "grpcio-1.84.0-cp313-cp313-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "grpcio-1.80.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "grpcio-1.84.0-cp311-cp311-win_amd64.whl",
        "grpcio-1.84.0-cp313-cp313-macosx_11_0_universal2.whl",
        "protobuf-4.25.9-py3-none-any.whl",
        "protobuf-6.33.6-cp39-abi3-manylinux2014_x86_64.whl",  # outside the SDK's protobuf<5
    ])
    reqs = build_script.wheel_requirements()
    chosen = build_script.select_wheels(wheels, reqs, ["linux-x64"], ["3.11", "3.13"])
    assert sorted(p.name for p in chosen) == [
        "grpcio-1.84.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "grpcio-1.84.0-cp313-cp313-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "protobuf-4.25.9-py3-none-any.whl",
    ]
    mac = build_script.select_wheels(wheels, reqs, ["macos-arm64"], ["3.13"])
    assert sorted(p.name for p in mac) == [
        "grpcio-1.84.0-cp313-cp313-macosx_11_0_universal2.whl", "protobuf-4.25.9-py3-none-any.whl"]
    with pytest.raises(SystemExit, match="windows-x64 / Python 3.13"):
        build_script.select_wheels(wheels, reqs, ["windows-x64"], ["3.11", "3.13"])

    # The built zip carries the chosen wheels and lists them (and the platform) in its manifest.
    assert build_script.main(["--wheels-dir", str(tmp_path / "wheels"), "--platforms", "linux-x64",
                              "--out", str(tmp_path / "dist")]) == 0
    (zip_path,) = (tmp_path / "dist").glob("keygrip-*.zip")
    with zipfile.ZipFile(zip_path) as zf:
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
        assert {f"./{n}" for n in zf.namelist() if n.startswith("wheels/")} == set(manifest["wheels"])
    assert len(manifest["wheels"]) == 3 and manifest["platforms"] == ["linux-x64"]
