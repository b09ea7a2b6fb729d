"""The protocol as committed: stubs match the .proto files, and the SDK stays light."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_committed_stubs_match_protos(tmp_path: Path) -> None:
    """keygrip/v1 holds exactly what scripts/gen_protos.py makes, byte for byte: *_pb2.py and *_pb2_grpc.py,
    each with the .pyi type stub beside it."""
    subprocess.run([sys.executable, str(REPO / "scripts" / "gen_protos.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    fresh = tmp_path / "keygrip" / "v1"
    committed = REPO / "keygrip" / "v1"
    names = sorted(p.name for p in fresh.iterdir())
    modules = [n for n in names if n.endswith(("_pb2.py", "_pb2_grpc.py"))]
    assert modules and all(n + "i" in names for n in modules), f"a generated module without its .pyi: {names}"
    have = sorted(p.name for p in committed.iterdir() if p.name != "__pycache__")
    missing, extra = sorted(set(names) - set(have)), sorted(set(have) - set(names))
    assert not missing and not extra, f"run scripts/gen_protos.py: missing {missing}, not generated {extra}"
    stale = [n for n in names if not filecmp.cmp(fresh / n, committed / n, shallow=False)]
    assert not stale, f"stubs differ from the .proto files; run scripts/gen_protos.py: {stale}"


def test_importing_the_sdk_loads_no_heavy_package() -> None:
    code = ("import sys, keygrip, keygrip.cli; from keygrip import Client; "
            "heavy = [m for m in ('torch', 'mediapipe', 'diffusers', 'cv2', 'numpy', 'av', 'inference_server.app')"
            " if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
