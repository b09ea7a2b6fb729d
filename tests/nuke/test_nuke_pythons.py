"""The SDK and the Nuke plugin import and work on the Pythons Nuke embeds: 3.9 (Nuke 14) and 3.10
(Nuke 15) from pyenv, each in a child process (3.11, Nuke 16, is the test environment itself).

What runs there is real: every SDK module, the plugin's init.py and menu.py, the Keygrip node made
and its Process pressed with a bad frame range, against the fake `nuke`; protobuf is the test
environment's own (its compiled part is built for the stable ABI, so it loads on 3.9 too). grpcio
is the exception: its compiled part is built for one Python, and nothing may be installed here, so
a stand-in `grpc` module answers the SDK's import-time look-ups (grpc.StatusCode.UNAVAILABLE, ...).
That grpcio itself runs on these Pythons is its own promise (it publishes wheels for them); what
this test checks is our code: syntax, standard library, typing and dataclass use on 3.9 and 3.10.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import google.protobuf
import pytest
from nuke_paths import HERE, PLUGIN, REPO

PYENV = Path.home() / ".pyenv" / "versions"

# Answers any attribute with a placeholder class, whose attributes are placeholders too: enough for
# `import grpc`, `grpc.StatusCode.UNAVAILABLE` and classes the stubs define; never for a call.
GRPC_STAND_IN = '''
class _Placeholder(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(name, (), {})

def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _Placeholder(name, (), {})
'''

CHILD = r'''
import importlib, pkgutil, runpy, sys
import nuke_fake
sys.modules["nuke"] = nuke_fake
nuke_fake.reset()
import keygrip
skipped = {"keygrip.bake"}   # numpy at import (bake is Blender's projection, not a Nuke module)
names = [m.name for m in pkgutil.walk_packages(keygrip.__path__, "keygrip.") if m.name not in skipped]
for name in names:
    importlib.import_module(name)
runpy.run_path(sys.argv[1] + "/init.py")
runpy.run_path(sys.argv[1] + "/menu.py")
import keygrip_nuke.node
read = nuke_fake.nodes.Read(file=sys.argv[1] + "/selftest_data/plate.####.exr", first=1001, last=1003)
read.setSelected(True)
nuke_fake.menu("Nuke").findItem("Keygrip/Keygrip Node").invoke()
group = nuke_fake.selectedNode()
group["frame_range"].setValue("1001-1200")
group["process"].execute()
assert "lies outside the plate's frames 1001-1003" in group["status"].value(), group["status"].value()
assert not nuke_fake.violations
print("imported", len(names), "SDK modules and the plugin on", sys.version.split()[0])
'''


@pytest.mark.parametrize("version", ["3.9", "3.10"])
def test_sdk_and_plugin_import_and_run(version: str, tmp_path: Path) -> None:
    found = sorted(PYENV.glob(f"{version}.*/bin/python"))
    if not found:
        pytest.skip(f"no Python {version} under {PYENV} (pyenv install {version}) to check Nuke's Python on")
    (tmp_path / "grpc").mkdir()
    (tmp_path / "grpc" / "__init__.py").write_text(GRPC_STAND_IN)
    # Only protobuf from the test environment: google/protobuf and its compiled google/_upb.
    installed = Path(google.protobuf.__file__).parents[1]
    (tmp_path / "google").mkdir()
    for part in ("protobuf", "_upb"):
        (tmp_path / "google" / part).symlink_to(installed / part)
    path = [str(tmp_path), str(REPO), str(PLUGIN), str(HERE)]
    proc = subprocess.run([str(found[-1]), "-I", "-c", f"import sys; sys.path[:0] = {path!r}\n" + CHILD,
                           str(PLUGIN)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"on {version}." in proc.stdout
