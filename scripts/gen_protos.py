"""Regenerate the committed Python stubs in keygrip/v1 from protos/keygrip/v1/*.proto.

Run with the grpcio-tools pinned in pyproject (its protobuf runtime must match the server's):
    python scripts/gen_protos.py            # write keygrip/v1/
    python scripts/gen_protos.py --out DIR  # write elsewhere (the staleness test uses this)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"


def generate(out_dir: Path) -> list[Path]:
    """Generate *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto into out_dir/keygrip/v1."""
    protos = sorted(PROTO_ROOT.glob("keygrip/v1/*.proto"))
    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto shipped with grpcio-tools
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    pkg = out_dir / "keygrip" / "v1"
    init = pkg / "__init__.py"
    init.write_text('"""Generated gRPC stubs for keygrip.v1. Do not edit: run scripts/gen_protos.py."""\n')
    return sorted(pkg.glob("*.py*"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: the repository)")
    args = parser.parse_args()
    for path in generate(args.out):
        print(path.relative_to(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
