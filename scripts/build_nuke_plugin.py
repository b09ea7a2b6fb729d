"""Build the Keygrip Nuke plugin: dist/keygrip-nuke-<version>/ (and --zip: the same as a zip), one
folder for a studio to add to NUKE_PATH.

The folder holds the plugin (addons/nuke/keygrip: init.py, menu.py, keygrip_nuke/, selftest.py and its
plate), the Keygrip SDK (the repository's `keygrip/` package, pure Python) beside it, and grpcio and
protobuf (and what they require, such as typing_extensions) unpacked under
site-packages/py<python>-<platform>/ for each Nuke Python and platform: Nuke
installs no wheels, and grpcio's compiled part differs for each. At start-up init.py puts the folder
of the running Nuke's Python and platform on sys.path (keygrip_nuke/bundled.py).

Where the grpcio and protobuf wheels come from (exactly one of), as for the Blender build:
  --wheels-dir DIR   pick them from a folder of .whl files (offline);
  --download         fetch them with `pip download` for every --platforms x --python-versions
                     (the only path that touches the network);
  --no-wheels        bundle only the SDK: grpcio and protobuf must then be importable in Nuke's
                     Python already.

Nuke 14 embeds Python 3.9, Nuke 15 3.10 and Nuke 16 3.11: all three are bundled by default.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

from build_blender_extension import (
    REPO,
    SDK_DIR,
    _package_files,
    add_build_arguments,
    wheels_for,
)

PLUGIN_DIR = REPO / "addons" / "nuke" / "keygrip"
PYTHON_VERSIONS = ("3.9", "3.10", "3.11")

sys.path.insert(0, str(PLUGIN_DIR))
from keygrip_nuke.bundled import folder_name, platform_name  # noqa: E402 - the plugin's own naming


def _copy_tree(src: Path, dest: Path) -> None:
    for path in _package_files(src):
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def _unpack(wheel: Path, dest: Path) -> None:
    """A wheel's files into a site-packages folder, as an installer would lay out a purelib/platlib wheel."""
    with zipfile.ZipFile(wheel) as zf:
        if any(name.split("/")[0].endswith(".data") for name in zf.namelist()):
            raise SystemExit(f"{wheel.name} has a .data folder, which this build does not install")
        zf.extractall(dest)


def build(out_dir: Path, wheel_sets: dict[str, list[Path]], sdk_dir: Path = SDK_DIR) -> Path:
    """Write the plugin folder: the plugin, the SDK, and each folder_name -> its wheels unpacked."""
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    if not (sdk_dir / "__init__.py").is_file():  # before the previous build is removed
        raise SystemExit(f"the Keygrip SDK package was not found at {sdk_dir}")
    folder = out_dir / f"keygrip-nuke-{version}"
    if folder.exists():
        shutil.rmtree(folder)
    _copy_tree(PLUGIN_DIR, folder)
    _copy_tree(sdk_dir, folder / "keygrip")
    for name, wheels in wheel_sets.items():
        for wheel in wheels:
            _unpack(wheel, folder / "site-packages" / name)
    return folder


def zip_folder(folder: Path) -> Path:
    """folder.zip beside it, the folder itself at the zip's root (unzip, then add it to NUKE_PATH)."""
    zip_path = folder.parent / f"{folder.name}.zip"   # (with_suffix would eat the version's ".0")
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(folder.parent).as_posix())
    return zip_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_build_arguments(parser, "Nuke", platform_name(), PYTHON_VERSIONS)
    parser.add_argument("--zip", action="store_true", help="also write the folder as a zip beside it")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="keygrip-wheels-") as tmp:
        wheel_sets = {folder_name(py, plat): wheels for (plat, py), wheels in wheels_for(args, Path(tmp)).items()}
        plugin = build(args.out, wheel_sets, args.sdk)
    print(f"built {plugin}: add it to NUKE_PATH")
    for name, wheels in wheel_sets.items():
        print(f"  site-packages/{name}: {', '.join(w.name for w in wheels)}")
    if args.zip:
        print(f"zipped {zip_folder(plugin)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
