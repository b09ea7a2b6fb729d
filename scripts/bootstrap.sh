#!/usr/bin/env bash
# Create .venv in the checkout and install Keygrip with its server and dev extras into it.
# Re-runs are cheap: nothing is installed again while pyproject.toml is unchanged.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "Keygrip needs Python 3.11 (Blender 4.2-5.0 and the bpy wheel are 3.11); set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
STAMP="$VENV/.keygrip-installed"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
    exit 0
fi
echo "Setting up $VENV (first run takes a few minutes) ..." >&2
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# torch first, pinned: the server extra asks only for torch>=2.4 (so a GPU user can bring a CUDA build),
# and a torch resolved through diffusers/accelerate could be a CUDA build of several GB. A GPU user
# installs their CUDA torch into the venv before running this script instead (see the README).
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    "$VENV/bin/python" -m pip install --quiet "torch==${KEYGRIP_TORCH_VERSION:-2.13.0}"
fi
"$VENV/bin/python" -m pip install --quiet -e "$ROOT[server,dev]"
echo "$WANT" > "$STAMP"
