"""Build the Keygrip Blender extension zip: dist/keygrip-<version>.zip.

The zip holds the add-on (addons/blender/keygrip_blender, at the zip's root: Blender installs it
under the manifest's id, "keygrip") and, under wheels/, every Python package it imports besides
Blender's own: the Keygrip SDK (the repository's `keygrip/` package) as a pure-Python wheel built here
with setuptools, and the grpcio and protobuf wheels the SDK needs with what they require in turn
(grpcio: typing_extensions, which `import grpc` needs and Blender's Python does not have). All of them are listed in the
manifest's `wheels`, so that Blender installs them into its own Python; the add-on never edits sys.path.

Where the grpcio and protobuf wheels come from (exactly one of):
  --wheels-dir DIR   pick them from a folder of .whl files (offline);
  --download         fetch them with `pip download` for every --platforms x --python-versions
                     (the only path that touches the network);
  --no-wheels        bundle only the SDK's wheel: the extension then relies on grpcio and protobuf
                     being importable in Blender's Python already.

Blender 4.2-5.0 embed Python 3.11 and later releases 3.13, so both are bundled by default; Blender
installs only the wheels that match the running platform and Python.
"""

from __future__ import annotations

import argparse
import email.parser
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import parse_wheel_filename

REPO = Path(__file__).resolve().parents[1]
ADDON_DIR = REPO / "addons" / "blender" / "keygrip_blender"
SDK_DIR = REPO / "keygrip"
# The distributions bundled as wheels; their version ranges come from pyproject.toml.
WHEEL_DISTRIBUTIONS = ("grpcio", "protobuf")
PYTHON_VERSIONS = ("3.11", "3.13")

# Blender platform name -> pip --platform tags. pip widens macOS tags to older releases and
# universal2 by itself; manylinux wheels carry both the 2014 and the 2_17 name.
PIP_PLATFORMS = {
    "linux-x64": ["manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_11_0_arm64"],
    "macos-x64": ["macosx_11_0_x86_64"],
}


def current_platform() -> str:
    """This machine as a Blender platform name (linux-x64, windows-x64, macos-arm64, ...)."""
    system = {"linux": "linux", "win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower())
    return f"{system}-{machine}"


def wheel_platform_matches(platform_tag: str, blender_platform: str) -> bool:
    """Whether a wheel platform tag runs on a Blender platform (the rules Blender applies)."""
    if platform_tag == "any":
        return True
    system, machine = blender_platform.split("-")
    if system == "linux":
        arch = {"x64": "x86_64"}.get(machine, machine)
        return platform_tag.startswith(("manylinux", "linux")) and platform_tag.endswith("_" + arch)
    if system == "windows":
        return platform_tag == {"x64": "win_amd64"}.get(machine, f"win_{machine}")
    if system == "macos":
        arch = {"x64": "x86_64"}.get(machine, machine)
        return platform_tag.startswith("macosx_") and platform_tag.endswith(("_" + arch, "_universal2"))
    return False


def wheel_python_matches(interpreter: str, abi: str, python_version: str) -> bool:
    """Whether a wheel's interpreter/ABI tags load on CPython `python_version` ("3.11")."""
    major, minor = (int(p) for p in python_version.split("."))
    match = re.fullmatch(r"(cp|py)(\d)(\d*)", interpreter)
    if match is None or int(match.group(2)) != major:
        return False
    if match.group(1) == "py" or not match.group(3):
        return True
    built_for = int(match.group(3))
    # A stable-ABI (abi3) wheel built for 3.x also runs on every later 3.y.
    return built_for == minor or (abi == "abi3" and built_for <= minor)


class MissingWheels(SystemExit):
    """The wheels a build lacks, named (missing: "grpcio==1.62.3 for linux-x64 / Python 3.11", ...)."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__("no wheel for: " + "; ".join(missing)
                         + ". Add them to the wheels folder, build with --download, or use --no-wheels.")


def select_wheels(
    wheel_files: list[Path], requirements: list[Requirement], platforms: list[str], pythons: list[str]
) -> list[Path]:
    """The newest wheel of each requirement for every platform x Python, without duplicates.

    Raises MissingWheels naming what is missing, so the user knows which wheel to add.
    """
    chosen: list[Path] = []
    missing: list[str] = []
    parsed = []
    for path in wheel_files:
        name, version, _, tags = parse_wheel_filename(path.name)
        parsed.append((path, name, version, tags))
    for req in requirements:
        for plat in platforms:
            for py in pythons:
                fits = [
                    (version, path)
                    for path, name, version, tags in parsed
                    if name == req.name and req.specifier.contains(version, prereleases=False)
                    and any(wheel_platform_matches(t.platform, plat)
                            and wheel_python_matches(t.interpreter, t.abi, py) for t in tags)
                ]
                if not fits:
                    missing.append(f"{req} for {plat} / Python {py}")
                    continue
                best = max(fits)[1]
                if best not in chosen:
                    chosen.append(best)
    if missing:
        raise MissingWheels(missing)
    return chosen


def download_wheels(
    requirements: list[Requirement], platforms: list[str], pythons: list[str], dest: Path
) -> None:
    """`pip download` binary wheels for every platform x Python into dest (needs the network)."""
    for plat in platforms:
        for py in pythons:
            cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps",
                   "--implementation", "cp", "--python-version", py, "--dest", str(dest)]
            for tag in PIP_PLATFORMS[plat]:
                cmd += ["--platform", tag]
            subprocess.run(cmd + [str(r) for r in requirements], check=True)


# Platform name -> the marker values of a host's Python there (for the Requires-Dist of the bundled wheels).
_MARKERS = {"linux": {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"},
            "windows": {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt"},
            "macos": {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix"}}


def wheel_dependencies(wheel: Path, python: str, plat: str) -> list[Requirement]:
    """What a wheel's METADATA requires on that Python and platform (grpcio needs typing_extensions,
    which neither Blender's nor Nuke's Python has)."""
    with zipfile.ZipFile(wheel) as zf:
        metadata = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
        if metadata is None:
            return []
        message = email.parser.Parser().parsestr(zf.read(metadata).decode())
    env = {"python_version": python, "python_full_version": f"{python}.0", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "extra": "", **_MARKERS[plat.split("-")[0]]}
    reqs = [Requirement(r) for r in message.get_all("Requires-Dist") or []]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(env)]


def select_with_dependencies(available: list[Path], requirements: list[Requirement], plat: str, python: str,
                             fetch: Path | None = None) -> list[Path]:
    """The wheels of `requirements` for one platform and Python, and of what they require in turn.
    fetch: a folder to `pip download` each newly required distribution into first (--download)."""
    wanted = list(requirements)
    while True:
        if fetch is not None:
            download_wheels(wanted, [plat], [python], fetch)
            available = sorted(fetch.glob("*.whl"))
        chosen = select_wheels(available, wanted, [plat], [python])
        names = {r.name for r in wanted}
        more = [r for w in chosen for r in wheel_dependencies(w, python, plat) if r.name not in names]
        if not more:
            return chosen
        wanted += list({r.name: r for r in more}.values())


def select_for_all(available: list[Path], requirements: list[Requirement], platforms: list[str],
                   pythons: list[str], fetch: Path | None = None) -> dict[tuple[str, str], list[Path]]:
    """select_with_dependencies for every (platform, Python); MissingWheels naming every missing wheel
    at once, before anything is written."""
    chosen: dict[tuple[str, str], list[Path]] = {}
    missing: list[str] = []
    for plat in platforms:
        for py in pythons:
            try:
                chosen[plat, py] = select_with_dependencies(available, requirements, plat, py, fetch)
            except MissingWheels as exc:
                missing += exc.missing
    if missing:
        raise MissingWheels(missing)
    return chosen


def wheel_requirements() -> list[Requirement]:
    """grpcio and protobuf with the version ranges the SDK declares in pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    return [r for r in reqs if r.name in WHEEL_DISTRIBUTIONS]


def manifest_with_wheels(text: str, wheels: list[str], platforms: list[str]) -> str:
    """The manifest with its `wheels = []` line filled in (and `platforms` when wheels are
    platform-specific), checked by parsing it back."""
    if not re.search(r"^wheels = \[\]$", text, flags=re.M):
        raise SystemExit("blender_manifest.toml must contain the line `wheels = []` for the build to fill in")
    lines = "wheels = [\n" + "".join(f'  "./wheels/{w}",\n' for w in wheels) + "]"
    if any(not w.endswith("-any.whl") for w in wheels):
        lines += "\nplatforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]"
    out = re.sub(r"^wheels = \[\]$", lambda _: lines, text, count=1, flags=re.M)
    parsed = tomllib.loads(out)
    if parsed["wheels"] != [f"./wheels/{w}" for w in wheels]:
        raise SystemExit("internal error: the manifest's wheels list did not round-trip")
    return out


def _package_files(root: Path) -> list[Path]:
    """Source files of a package folder, without caches."""
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".pyc", ".pyo"}
    )


# The SDK's own project: only the `keygrip` package (the repository's pyproject.toml also holds the
# server, which never goes into a host). Hosts embed Python 3.9 and newer (Nuke 14), hence the floor.
_SDK_PYPROJECT = """\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "keygrip"
version = {version}
description = "Keygrip SDK: the client of the Keygrip inference server"
requires-python = ">=3.9"
license = "Apache-2.0"
dependencies = {dependencies}

[tool.setuptools.packages.find]
include = ["keygrip*"]

[tool.setuptools.package-data]
"*" = ["*.pyi"]
"""


def build_sdk_wheel(dest: Path, sdk_dir: Path = SDK_DIR) -> Path:
    """Build the SDK as a pure-Python wheel (keygrip-<version>-py3-none-any.whl) into dest.

    setuptools builds it from a staging copy of the package, in a child process (setuptools keeps
    global state), with the version and dependencies of the repository's pyproject.toml.
    """
    if not (sdk_dir / "__init__.py").is_file():
        raise SystemExit(f"the Keygrip SDK package was not found at {sdk_dir}")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="keygrip-sdk-") as tmp:
        stage = Path(tmp)
        for path in _package_files(sdk_dir):
            target = stage / "keygrip" / path.relative_to(sdk_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        (stage / "pyproject.toml").write_text(_SDK_PYPROJECT.format(
            # JSON strings and lists are valid TOML for these plain ASCII values.
            version=json.dumps(project["version"]), dependencies=json.dumps(project["dependencies"]),
        ))
        proc = subprocess.run(
            [sys.executable, "-c",
             "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))",
             str(dest)],
            cwd=stage, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise SystemExit("building the SDK wheel failed:\n" + proc.stdout[-2000:] + proc.stderr[-2000:])
    return dest / proc.stdout.strip().splitlines()[-1]


def build(out_dir: Path, wheels: list[Path], platforms: list[str], sdk_dir: Path = SDK_DIR) -> Path:
    """Write the extension zip (the add-on, the SDK's wheel and `wheels`) and return its path."""
    manifest_text = (ADDON_DIR / "blender_manifest.toml").read_text()
    version = tomllib.loads(manifest_text)["version"]
    with tempfile.TemporaryDirectory(prefix="keygrip-sdk-wheel-") as tmp:
        wheels = [build_sdk_wheel(Path(tmp), sdk_dir), *wheels]
        return _write_zip(out_dir / f"keygrip-{version}.zip", manifest_text, wheels, platforms)


def _write_zip(zip_path: Path, manifest_text: str, wheels: list[Path], platforms: list[str]) -> Path:
    manifest_text = manifest_with_wheels(manifest_text, [w.name for w in wheels], platforms)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("blender_manifest.toml", manifest_text)
        for path in _package_files(ADDON_DIR):
            if path.name != "blender_manifest.toml":
                zf.write(path, path.relative_to(ADDON_DIR).as_posix())
        for wheel in wheels:
            zf.write(wheel, f"wheels/{wheel.name}")
    return zip_path


def add_build_arguments(parser: argparse.ArgumentParser, host: str, platform: str,
                        pythons: tuple[str, ...]) -> None:
    """The options every host build takes: where the wheels come from, for which platforms and Pythons
    of the host, the output folder and the SDK folder."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--wheels-dir", type=Path,
                        help="folder of grpcio/protobuf .whl files (and of what they require)")
    source.add_argument("--download", action="store_true", help="pip download the wheels (network)")
    source.add_argument("--no-wheels", action="store_true",
                        help=f"bundle only the SDK; grpcio and protobuf must already be in {host}'s Python")
    parser.add_argument("--platforms", nargs="+", choices=sorted(PIP_PLATFORMS), default=[platform],
                        help=f"{host} platforms to bundle wheels for (default: this machine's)")
    parser.add_argument("--python-versions", nargs="+", default=list(pythons),
                        help=f"Python versions of the {host} releases to support (default: {' '.join(pythons)})")
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default: dist/)")
    parser.add_argument("--sdk", type=Path, default=SDK_DIR, help="the SDK package folder to bundle")


def wheels_for(args: argparse.Namespace, download_dir: Path) -> dict[tuple[str, str], list[Path]]:
    """The wheels for each (platform, Python) add_build_arguments' options ask for: none with
    --no-wheels; from --wheels-dir; or downloaded into download_dir, then selected the same way."""
    if args.no_wheels:
        return {}
    folder = download_dir if args.download else args.wheels_dir
    if not folder.is_dir():
        raise SystemExit(f"--wheels-dir {folder} is not a folder")
    return select_for_all(sorted(folder.glob("*.whl")), wheel_requirements(), args.platforms,
                          args.python_versions, folder if args.download else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_build_arguments(parser, "Blender", current_platform(), PYTHON_VERSIONS)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="keygrip-wheels-") as tmp:
        # grpcio and protobuf, and what they require (grpcio: typing_extensions, which Blender's Python
        # lacks), once each however many platforms and Pythons share a wheel.
        wheels = list(dict.fromkeys(w for ws in wheels_for(args, Path(tmp)).values() for w in ws))
        zip_path = build(args.out, wheels, args.platforms, args.sdk)
    with zipfile.ZipFile(zip_path) as zf:
        bundled = [n.removeprefix("wheels/") for n in zf.namelist() if n.startswith("wheels/")]
    print(f"built {zip_path} ({zip_path.stat().st_size / 1e6:.1f} MB, {len(bundled)} wheels)")
    for name in bundled:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
