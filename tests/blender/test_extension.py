"""The extension zip: what the build puts in it, that it passes Blender's own extension validator, and
that Blender installs, enables and disables it with only the wheels its manifest declares.

Installing runs in a child Python with BLENDER_USER_RESOURCES pointing into tmp_path, so the
extension lands in a throw-away user folder, never in the user's real Blender configuration.
Tests cannot download wheels: the grpcio and protobuf wheels of the install test are the test
environment's installed distributions packed back into wheels (same files, same tags), and the
child refuses to import the SDK, grpc or protobuf from anywhere but what Blender installed from them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from types import ModuleType

import addon_helpers  # noqa: F401 - first: puts the repository and scripts/ on sys.path
import build_blender_extension as build_script
import pytest
from wheels import repack_installed

import keygrip


def _bpy_scripts() -> Path:
    """The wheel's scripts folder, named for its Blender version (bpy 5.0.1: 5.0/scripts), beside the
    bpy module itself (bpy.__file__, once imported, is the scripts' own bpy package)."""
    import bpy

    spec = importlib.util.find_spec("bpy")
    assert spec is not None and spec.origin is not None
    major, minor = bpy.app.version[:2]
    return Path(spec.origin).parent / f"{major}.{minor}" / "scripts"


# Blender's extension tooling, as the bpy wheel ships it: `blender_ext.py validate` is what
# `blender --command extension validate` runs; tags.py is the tag list it enforces by default.
_BPY_SCRIPTS = _bpy_scripts()
_BLENDER_EXT = _BPY_SCRIPTS / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
_BLENDER_TAGS = _BPY_SCRIPTS / "modules" / "_bpy_internal" / "extensions" / "tags.py"

# Runs inside Blender (the bpy wheel): install, enable, disable, enable, disable; report as JSON.
_IN_BLENDER = r"""
import importlib.abc, importlib.machinery, json, os, sys

# Only what Blender installed (under the throw-away user folder) may provide these.
USER = os.path.realpath(os.environ["BLENDER_USER_RESOURCES"]) + os.sep
GUARDED = {"keygrip", "grpc", "google.protobuf", "google._upb", "typing_extensions"}

class OnlyFromExtensionWheels(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in GUARDED:
            return None
        allowed = [p for p in (sys.path if path is None else path) if os.path.realpath(p).startswith(USER)]
        spec = importlib.machinery.PathFinder.find_spec(name, allowed)
        if spec is None:
            raise ModuleNotFoundError(f"{name} is not installed from the extension's wheels", name=name)
        return spec

sys.meta_path.insert(0, OnlyFromExtensionWheels())
import bpy, addon_utils
path_before = list(sys.path)

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
import keygrip, grpc, google.protobuf, typing_extensions
report["sdk_file"] = keygrip.__file__
report["typing_extensions_file"] = typing_extensions.__file__
report["sdk_version"] = keygrip.__version__
report["grpc_file"] = grpc.__file__
report["protobuf_file"] = google.protobuf.__file__
report["path_added"] = [p for p in sys.path if p not in path_before]
report["distributions"] = sorted(
    n.split("-")[0] for p in report["path_added"] for n in os.listdir(p) if n.endswith(".dist-info"))
report["timers_enabled"] = addon_timers(module)
for cycle in range(2):
    addon_utils.disable(module, default_set=True)
    if cycle == 0:
        addon_utils.enable(module, default_set=True)
report["disabled"] = module not in bpy.context.preferences.addons
report["panel_after"] = hasattr(bpy.types, "KEYGRIP_PT_main")
report["sdk_in_modules_after"] = "keygrip" in sys.modules
report["extension_dir_on_path_after"] = [p for p in sys.path if "user_default" in p]
report["handlers_after"] = handler_counts()
report["timers_after"] = addon_timers(module)
print("REPORT" + json.dumps(report))
"""


def _install_in_blender(zip_path: Path, user_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["BLENDER_USER_RESOURCES"] = str(user_dir)
    proc = subprocess.run(
        [sys.executable, "-c", _IN_BLENDER, str(zip_path)],
        cwd=user_dir.parent, env=env, capture_output=True, text=True, timeout=180,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("REPORT"):])


def test_extension_installs_from_its_wheels_only_and_disables_cleanly(tmp_path: Path):
    (tmp_path / "wheels").mkdir()
    # grpcio requires typing_extensions (`import grpc` imports it), which Blender's Python lacks: the
    # build finds it in grpcio's metadata and bundles it too.
    for distribution in ("grpcio", "protobuf", "typing_extensions"):
        repack_installed(distribution, tmp_path / "wheels")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert build_script.main([
        "--wheels-dir", str(tmp_path / "wheels"), "--platforms", build_script.current_platform(),
        "--python-versions", python, "--out", str(tmp_path / "dist")]) == 0
    (zip_path,) = (tmp_path / "dist").glob("keygrip-*.zip")
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
    assert {"blender_manifest.toml", "__init__.py", "writeback.py", "rig.py", "axes.py"} <= names
    # Python packages only as wheels: the add-on's own modules at the root, nothing vendored.
    assert {n.split("/")[0] for n in names if "/" in n} == {"wheels"}
    assert not any("__pycache__" in n for n in names)
    wheel_names = sorted(n.removeprefix("wheels/") for n in names if n.startswith("wheels/"))
    assert sorted(w.removeprefix("./wheels/") for w in manifest["wheels"]) == wheel_names
    assert [w.split("-")[0] for w in wheel_names] == ["grpcio", "keygrip", "protobuf", "typing_extensions"]
    assert f"keygrip-{keygrip.__version__}-py3-none-any.whl" in wheel_names

    report = _install_in_blender(zip_path, tmp_path / "blender_user")

    assert report["install"] == ["FINISHED"] and report["enabled"]
    assert report["address"] == "127.0.0.1:50051" and report["token"] == ""
    assert report["panel"]
    # The SDK, grpc and protobuf the add-on runs on are the wheels Blender installed from the zip.
    site = tmp_path / "blender_user" / "extensions" / ".local" / "lib" / f"python{python}" / "site-packages"
    assert Path(report["sdk_file"]) == site / "keygrip" / "__init__.py"
    assert Path(report["grpc_file"]) == site / "grpc" / "__init__.py"
    assert Path(report["protobuf_file"]) == site / "google" / "protobuf" / "__init__.py"
    assert report["sdk_version"] == keygrip.__version__
    assert Path(report["typing_extensions_file"]) == site / "typing_extensions.py"
    assert report["distributions"] == ["grpcio", "keygrip", "protobuf", "typing_extensions"]
    # Blender put its wheels folder on sys.path; the add-on added nothing of its own.
    assert [Path(p) for p in report["path_added"]] == [site]
    assert report["timers_enabled"] == []
    assert report["disabled"] and not report["panel_after"]
    assert not report["sdk_in_modules_after"] and report["extension_dir_on_path_after"] == []
    assert report["handlers_after"] == report["handlers_before"]
    assert report["timers_after"] == []


def _fake_wheels(folder: Path, names: list[str]) -> list[Path]:
    """Wheels of nothing but their metadata, whose Requires-Dist is the real ones': grpcio requires
    typing_extensions."""
    folder.mkdir()
    for name in names:
        dist, version = name.split("-")[:2]
        requires = "Requires-Dist: typing-extensions~=4.12\n" if dist == "grpcio" else ""
        with zipfile.ZipFile(folder / name, "w") as zf:
            zf.writestr(f"{dist}-{version}.dist-info/METADATA",
                        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n{requires}")
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
        "typing_extensions-4.16.0-py3-none-any.whl",
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

    # What the chosen wheels require comes too (grpcio: typing_extensions), once for all platforms.
    every = build_script.select_for_all(wheels, reqs, ["macos-arm64"], ["3.13"])
    assert {w.name for w in every["macos-arm64", "3.13"]} == {
        "grpcio-1.84.0-cp313-cp313-macosx_11_0_universal2.whl", "protobuf-4.25.9-py3-none-any.whl",
        "typing_extensions-4.16.0-py3-none-any.whl"}
    with pytest.raises(SystemExit, match="typing-extensions~=4.12 for linux-x64 / Python 3.11"):
        build_script.select_for_all([w for w in wheels if "typing" not in w.name], reqs, ["linux-x64"], ["3.11"])

    # The built zip carries the chosen wheels and lists them (and the platform) in its manifest.
    assert build_script.main(["--wheels-dir", str(tmp_path / "wheels"), "--platforms", "linux-x64",
                              "--out", str(tmp_path / "dist")]) == 0
    (zip_path,) = (tmp_path / "dist").glob("keygrip-*.zip")
    with zipfile.ZipFile(zip_path) as zf:
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
        assert {f"./{n}" for n in zf.namelist() if n.startswith("wheels/")} == set(manifest["wheels"])
    assert len(manifest["wheels"]) == 5 and manifest["platforms"] == ["linux-x64"]
    assert "./wheels/typing_extensions-4.16.0-py3-none-any.whl" in manifest["wheels"]


def _blender_ext() -> ModuleType:
    """Blender's extension command-line module (stdlib only: it runs outside Blender too)."""
    spec = importlib.util.spec_from_file_location("blender_ext", _BLENDER_EXT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _blender_validate(path: Path) -> subprocess.CompletedProcess[str]:
    """`blender --command extension validate PATH`: Blender's own validator with Blender's tag list."""
    return subprocess.run(
        [sys.executable, str(_BLENDER_EXT), "validate", str(path), "--valid-tags", str(_BLENDER_TAGS)],
        capture_output=True, text=True, timeout=60,
    )


PLATFORMS = ["linux-x64", "windows-x64", "macos-arm64", "macos-x64"]


def test_release_zip_passes_blenders_extension_checks(tmp_path: Path):
    # A release build: grpcio for every platform and both Pythons, the pure-Python protobuf.
    grpcio = [f"grpcio-1.84.0-{py}-{py}-{plat}.whl" for py in ("cp311", "cp313") for plat in (
        "manylinux_2_17_x86_64.manylinux2014_x86_64", "win_amd64", "macosx_11_0_universal2")]
    _fake_wheels(tmp_path / "wheels", [*grpcio, "protobuf-4.25.9-py3-none-any.whl",
                                       "typing_extensions-4.16.0-py3-none-any.whl"])
    assert build_script.main(["--wheels-dir", str(tmp_path / "wheels"), "--platforms", *PLATFORMS,
                              "--out", str(tmp_path / "dist")]) == 0
    (zip_path,) = (tmp_path / "dist").glob("keygrip-*.zip")

    # Blender's validator: ids, versions, name, tagline, licence, tags, permissions, wheel paths,
    # platforms, and the add-on's __init__.py in the archive.
    proc = _blender_validate(zip_path)
    assert proc.returncode == 0 and "Success" in proc.stdout, proc.stdout + proc.stderr

    # What Blender checks when it installs and enables: every declared wheel is in the archive (and
    # nothing else under wheels/), each declared platform gets a wheel of every distribution for each
    # Python the wheels name, and the Python versions are the supported Blenders' (3.11 and 3.13).
    ext = _blender_ext()
    with zipfile.ZipFile(zip_path) as zf:
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
        in_zip = {n for n in zf.namelist() if n.startswith("wheels/")}
    wheels = manifest["wheels"]
    assert {w.removeprefix("./") for w in wheels} == in_zip
    assert ext.pkg_manifest_validate_field_wheels(wheels, True) is None
    assert ext.python_versions_from_wheels(wheels) == {(3, 11), (3, 13)}
    assert sorted(manifest["platforms"]) == sorted(PLATFORMS)
    for plat in manifest["platforms"]:
        usable = ext.paths_filter_wheels_by_platform(wheels, plat)
        assert {w.split("/")[-1].split("-")[0] for w in usable} == {"grpcio", "keygrip", "protobuf",
                                                                   "typing_extensions"}, plat
        grpc_pythons = {w.split("-")[2] for w in usable if "grpcio" in w}
        assert grpc_pythons == {"cp311", "cp313"}, plat
    for wheel in wheels:
        tag = wheel.removesuffix(".whl").split("-")[-1]
        assert tag == "any" or set(ext.blender_platforms_from_wheel_platform(tag)) & set(PLATFORMS), wheel
    # One version everywhere: the manifest, the project, the SDK's wheel and the SDK itself.
    project = tomllib.loads((addon_helpers.REPO / "pyproject.toml").read_text())["project"]
    assert manifest["version"] == project["version"] == keygrip.__version__
    assert f"./wheels/keygrip-{keygrip.__version__}-py3-none-any.whl" in wheels
    assert ext.pkg_idname_is_valid_or_error(manifest["id"]) is None
    assert ext.blender_version_parse_or_error(manifest["blender_version_min"]) == (4, 2, 0)


def test_blenders_validator_refuses_what_blender_would(tmp_path: Path):
    """The validator the test above relies on does refuse a broken manifest (so its pass means something)."""
    source = tmp_path / "broken"
    source.mkdir()
    (source / "__init__.py").write_text("")
    text = (build_script.ADDON_DIR / "blender_manifest.toml").read_text()
    for bad, needle in [
        (text.replace('id = "keygrip"', 'id = "key-grip"'), '"id"'),
        (text.replace('version = "0.1.0"', 'version = "0.1"'), '"version"'),
        (text.replace('network = "Talks', 'internet = "Talks'), '"permissions"'),
        (text.replace('tags = ["Animation", "Rigging"]', 'tags = ["Mocap"]'), "Mocap"),
        (text.replace("wheels = []", 'wheels = ["./wheels/keygrip.zip"]'), '"wheels"'),
    ]:
        assert bad != text
        (source / "blender_manifest.toml").write_text(bad)
        proc = _blender_validate(source)
        assert proc.returncode != 0 and needle in proc.stdout + proc.stderr, (needle, proc.stdout)
