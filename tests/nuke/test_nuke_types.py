"""The plugin type-checks against the published Nuke stubs (types-nuke, Nuke 13.2), so a misspelt
or misused `nuke` call fails here rather than in an artist's Nuke. The same mypy run checks a file
with two such mistakes, to show that the stubs, not Any, are what the plugin is checked against."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nuke_paths import PLUGIN, REPO

MISTAKES = """\
import nuke

nuke.exectueInMainThread(print)
nuke.createNode("Read").knob("file").setValue("plate.####.exr")
"""


def test_plugin_type_checks_against_the_nuke_stubs(tmp_path: Path) -> None:
    mistakes = tmp_path / "mistakes.py"
    mistakes.write_text(MISTAKES)
    proc = subprocess.run([sys.executable, "-m", "mypy", str(PLUGIN), str(mistakes)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    # (mypy may name the file by the path its cache first saw it at: compare names)
    assert all(Path(line.split(":")[0]).name == mistakes.name for line in errors), proc.stdout
    assert len(errors) == 2, proc.stdout
    assert 'Module has no attribute "exectueInMainThread"' in errors[0]
    assert '"None" of "Knob | None" has no attribute "setValue"' in errors[1]
