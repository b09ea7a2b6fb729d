"""Shared fixtures: the real server in a subprocess, talking real gRPC."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from server_process import REPO, ServerProcess

DATA = Path(__file__).parent / "data"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """make(*extra_args, workers=1, data_dir=None, launcher=...) -> a started ServerProcess, stopped after the test."""
    started: list[ServerProcess] = []

    def make(*extra: str, workers: int = 1, data_dir: Path | None = None,
             launcher: Sequence[str] = ("-m", "inference_server")) -> ServerProcess:
        srv = ServerProcess(data_dir or tmp_path / f"data{len(started)}", *extra, workers=workers,
                            launcher=launcher)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that do not restart or reconfigure it."""
    media_root = DATA
    srv = ServerProcess(tmp_path_factory.mktemp("shared-server"), "--allowed-root", str(media_root), workers=2)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(shared_server: ServerProcess):
    from keygrip import Client

    with Client(shared_server.address) as c:
        yield c
