"""The local server a host starts on demand: a server that never comes up fails within the timeout."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from keygrip.local_server import LocalServer


def _fake_python(tmp_path: Path, body: str) -> str:
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.mark.skipif(os.name != "posix", reason="uses a shell script as the server's interpreter")
@pytest.mark.parametrize(("body", "expected"), [
    ("echo importing; sleep 30", "importing"),             # hangs silently after one line
    ("echo 'No module named inference_server' >&2; exit 1", "No module named inference_server"),
])
def test_a_server_that_does_not_come_up_fails_in_time(tmp_path: Path, body: str, expected: str) -> None:
    server = LocalServer(_fake_python(tmp_path, body), tmp_path / "data", socket_path=tmp_path / "k.sock")
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="did not start") as err:
        server.ensure_running(timeout=8.0)
    assert time.monotonic() - t0 < 25  # the old blocking readline waited out the 30 s sleep
    assert expected in str(err.value)
    assert not server.running
