"""The built plugin folder (scripts/build_nuke_plugin.py): its layout for every Nuke Python and
platform, and a real run of it: a bare Python (no site-packages) with only the built folder on its
path runs init.py and menu.py, imports grpc, protobuf and the SDK from the folder, and talks to the
real server over real gRPC. Tests cannot download: the grpcio and protobuf wheels are the test
environment's installed distributions packed back into wheels (tests/wheels.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from nuke_paths import HERE, REPO
from server_process import ServerProcess
from wheels import repack_installed

sys.path.insert(0, str(REPO / "scripts"))
import build_nuke_plugin as build_script  # noqa: E402

import keygrip  # noqa: E402

CHILD = r'''
import json, os, runpy, sys
folder = sys.argv[1]
sys.path[:0] = [folder, sys.argv[2]]
import nuke_fake
sys.modules["nuke"] = nuke_fake
nuke_fake.reset()
runpy.run_path(os.path.join(folder, "init.py"))
runpy.run_path(os.path.join(folder, "menu.py"))
import grpc, google.protobuf, keygrip, keygrip_nuke
with keygrip.Client(sys.argv[3]) as client:
    info = client.info()
print("REPORT" + json.dumps({
    "path0": sys.path[0], "grpc": grpc.__file__, "protobuf": google.protobuf.__file__, "sdk": keygrip.__file__,
    "plugin": keygrip_nuke.__file__, "server_version": info.version,
    "menu": nuke_fake.menu("Nuke").findItem("Keygrip/Keygrip Node") is not None}))
'''


def test_built_folder_runs_from_nuke_path_alone(shared_server: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    # grpcio requires typing_extensions, which Nuke's Python lacks: the build bundles it too.
    for distribution in ("grpcio", "protobuf", "typing_extensions"):
        repack_installed(distribution, tmp_path / "wheels")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert build_script.main(["--wheels-dir", str(tmp_path / "wheels"), "--python-versions", python,
                              "--out", str(tmp_path / "dist")]) == 0
    (folder,) = (tmp_path / "dist").iterdir()
    assert folder.name == f"keygrip-nuke-{keygrip.__version__}"
    assert {"init.py", "menu.py", "selftest.py", "keygrip_nuke", "keygrip", "selftest_data",
            "site-packages"} <= {p.name for p in folder.iterdir()}
    assert not list(folder.rglob("__pycache__"))
    # -I -S: no site-packages, no PYTHONPATH; the built folder is all there is (as NUKE_PATH gives it).
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", CHILD, str(folder), str(HERE), shared_server.address],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    report = json.loads(lines[-1].removeprefix("REPORT"))
    site = folder / "site-packages" / f"py{python}-{build_script.platform_name()}"
    assert report["path0"] == str(site)
    assert Path(report["grpc"]).is_relative_to(site) and Path(report["protobuf"]).is_relative_to(site)
    assert Path(report["sdk"]) == folder / "keygrip" / "__init__.py"
    assert Path(report["plugin"]) == folder / "keygrip_nuke" / "__init__.py"
    assert report["server_version"] == keygrip.__version__ and report["menu"]
    assert list(site.glob("typing_extensions-*.dist-info"))


def _wheel(folder: Path, name: str) -> Path:
    """A stand-in wheel whose one module says which wheel it came from."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = name.split("-")[0]
    with zipfile.ZipFile(folder / name, "w") as zf:
        zf.writestr(f"{dist}_marker/__init__.py", f"WHEEL = {name!r}\n")
    return folder / name


def test_a_folder_per_nuke_python_and_platform_and_what_is_missing(tmp_path: Path) -> None:
    for name in ["grpcio-1.70.0-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                 "grpcio-1.70.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                 "grpcio-1.71.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                 "grpcio-1.70.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                 "grpcio-1.70.0-cp39-cp39-win_amd64.whl", "grpcio-1.70.0-cp310-cp310-win_amd64.whl",
                 "grpcio-1.70.0-cp311-cp311-win_amd64.whl",
                 "protobuf-4.25.9-cp37-abi3-manylinux2014_x86_64.whl", "protobuf-4.25.9-py3-none-any.whl",
                 "protobuf-6.33.6-py3-none-any.whl"]:   # outside the SDK's protobuf<5
        _wheel(tmp_path / "wheels", name)
    assert build_script.main(["--wheels-dir", str(tmp_path / "wheels"), "--platforms", "linux-x64", "windows-x64",
                              "--out", str(tmp_path / "dist"), "--zip"]) == 0
    folder = next(p for p in (tmp_path / "dist").iterdir() if p.is_dir())

    def bundled(name: str) -> dict[str, str]:
        site = folder / "site-packages" / name
        return {d: (site / f"{d}_marker" / "__init__.py").read_text().split("'")[1] for d in ("grpcio", "protobuf")}

    assert sorted(p.name for p in (folder / "site-packages").iterdir()) == sorted(
        f"py{v}-{p}" for p in ("linux-x64", "windows-x64") for v in ("3.9", "3.10", "3.11"))
    linux39 = bundled("py3.9-linux-x64")
    assert linux39["grpcio"] == "grpcio-1.70.0-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    assert linux39["protobuf"].startswith("protobuf-4.25.9-")   # not 6.x, which the SDK does not accept
    assert bundled("py3.11-linux-x64")["grpcio"].startswith("grpcio-1.71.0-cp311")   # the newest that fits
    assert bundled("py3.10-windows-x64") == {"grpcio": "grpcio-1.70.0-cp310-cp310-win_amd64.whl",
                                             "protobuf": "protobuf-4.25.9-py3-none-any.whl"}
    with zipfile.ZipFile(folder.parent / f"{folder.name}.zip") as zf:
        names = zf.namelist()
    assert f"{folder.name}/init.py" in names and f"{folder.name}/site-packages/py3.9-windows-x64/" \
        "grpcio_marker/__init__.py" in names
    # Every missing wheel is named at once, and nothing is built.
    with pytest.raises(SystemExit, match=r"grpcio>=1.62.3 for macos-arm64 / Python 3.9; .*macos-arm64 / Python 3.11"):
        build_script.main(["--wheels-dir", str(tmp_path / "wheels"), "--platforms", "macos-arm64",
                           "--out", str(tmp_path / "mac")])
    assert not (tmp_path / "mac").exists()
