#!/usr/bin/env bash
# The main job end to end on the bundled sample video: install into .venv if needed, start a
# server, capture the motion, retarget it onto rigs in Blender (bpy) and write the results into
# demo_out/ (a .blend, BVH files and a QA preview video).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
exec .venv/bin/python scripts/demo.py "$@"
