#!/usr/bin/env bash
# Install into .venv if needed, then lint, type-check and run the whole test suite.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
.venv/bin/ruff check .
# The SDK, the server and the Blender add-on; what and how is in pyproject.toml ([tool.mypy]).
.venv/bin/python -m mypy
.venv/bin/python -m pytest "$@"
