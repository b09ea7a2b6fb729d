"""Regenerate the committed Python stubs in keygrip/v1 from protos/keygrip/v1/*.proto.

Run with the dev extra installed (grpcio-tools and mypy-protobuf as pinned in pyproject: the protobuf
runtime they target must match the server's):
    python scripts/gen_protos.py            # write keygrip/v1/
    python scripts/gen_protos.py --out DIR  # write elsewhere (the staleness test uses this)

For each proto it writes the code (*_pb2.py, *_pb2_grpc.py, from grpcio-tools) and the type stubs the
type checker reads (*_pb2.pyi, *_pb2_grpc.pyi, from mypy-protobuf: enums get a ValueType, so that
`RootMotion.Value("ROOT_MOTION_HIPS")` and `JobState.ValueType(n)` are typed, and the gRPC stubs and
servicers are typed with their request and response messages).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"


def _plugin(name: str) -> Path:
    """mypy-protobuf's protoc plugin, installed beside this interpreter (or else on PATH)."""
    beside = Path(sys.executable).parent / name
    found = beside if beside.is_file() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: install the dev extra (mypy-protobuf, pinned in pyproject.toml)")
    return Path(found)


def generate(out_dir: Path) -> list[Path]:
    """Generate *_pb2.py(i) and *_pb2_grpc.py(i) for every proto into out_dir/keygrip/v1."""
    protos = sorted(PROTO_ROOT.glob("keygrip/v1/*.proto"))
    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto shipped with grpcio-tools
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out=quiet:{out_dir}",
        f"--mypy_grpc_out=quiet:{out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    pkg = out_dir / "keygrip" / "v1"
    init = pkg / "__init__.py"
    init.write_text('"""Generated gRPC stubs for keygrip.v1. Do not edit: run scripts/gen_protos.py."""\n')
    return sorted(pkg.glob("*.py*"))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: the repository)")
    args = parser.parse_args()
    for path in generate(args.out):
        print(path.relative_to(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
