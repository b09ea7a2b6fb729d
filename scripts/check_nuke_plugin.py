"""Run a built Nuke plugin folder on the Pythons Nuke embeds, with its own bundled grpcio and protobuf:

    .venv/bin/python scripts/build_nuke_plugin.py --download --out /tmp/dist
    .venv/bin/python scripts/check_nuke_plugin.py /tmp/dist/keygrip-nuke-0.1.0

For each of Python 3.9, 3.10 and 3.11 found under pyenv, a bare interpreter (-I -S: no site-packages)
with only the plugin folder on its path (and the tests' fake `nuke`, as there is no Nuke here) runs
init.py and menu.py, then the plugin's selftest.py (a Keygrip node on the bundled plate, a matte of
1001-1002) against a real server started here; it prints the grpc it used and the selftest's checks
(all but reading the matte's pixels, which needs Nuke). The test suite cannot do this itself: it may
not download the wheels for those Pythons.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from server_process import ServerProcess  # noqa: E402

# The plugin's own selftest (selftest.py, what `nuke -t selftest.py` runs) after init.py and menu.py, on
# the fake nuke; nuke.sample is left out (the fake reads EXR pixels with numpy, which a bare Python lacks).
CHILD = r'''
import os, runpy, sys
folder, fake, address, out = sys.argv[1:5]
sys.path[:0] = [folder, fake]
import nuke_fake
sys.modules["nuke"] = nuke_fake
nuke_fake.reset()
nuke_fake.GUI = False
runpy.run_path(os.path.join(folder, "init.py"))
runpy.run_path(os.path.join(folder, "menu.py"))
import grpc
selftest = runpy.run_path(os.path.join(folder, "selftest.py"))
print("  grpc", grpc.__version__, "from", os.path.relpath(grpc.__file__, folder))
failed = selftest["report"](selftest["run"](address, out=out, sample=False))
for what in nuke_fake.violations + nuke_fake.errors:
    print("FAIL ", what)
sys.exit(1 if failed or nuke_fake.violations or nuke_fake.errors else 0)
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plugin", type=Path, help="a folder built by scripts/build_nuke_plugin.py")
    args = parser.parse_args(argv)
    pythons = [p for v in ("3.9", "3.10", "3.11")
               for p in sorted((Path.home() / ".pyenv" / "versions").glob(f"{v}.*/bin/python"))[-1:]]
    if not pythons:
        raise SystemExit("no Python 3.9, 3.10 or 3.11 under ~/.pyenv/versions")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="keygrip-nuke-check-") as tmp:
        server = ServerProcess(Path(tmp) / "server", workers=1).start()
        try:
            for python in pythons:
                out = Path(tmp) / python.parts[-3]
                out.mkdir()
                print(f"Python {python.parts[-3]}:", flush=True)
                proc = subprocess.run([str(python), "-I", "-S", "-c", CHILD, str(args.plugin.resolve()),
                                       str(REPO / "tests" / "nuke"), server.address, str(out)], timeout=600)
                failed += proc.returncode != 0
        finally:
            server.stop()
    print(f"{len(pythons) - failed} of {len(pythons)} Pythons ran the plugin")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
