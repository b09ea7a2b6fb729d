"""Security defaults: loopback or a private socket, tokens elsewhere, refusal to start unsafely."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import keygrip

REPO = Path(__file__).resolve().parents[1]


def test_refuses_public_address_without_token(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "inference_server", "--listen", "0.0.0.0:0", "--data-dir",
                          str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "without a token or TLS" in out.stderr


def test_token_required_when_configured(server_factory) -> None:
    srv = server_factory("--token", "s3cret")
    with keygrip.Client(srv.address) as c, pytest.raises(keygrip.Unauthenticated, match="requires a token"):
        c.info()
    with keygrip.Client(srv.address, token="wrong") as c, pytest.raises(keygrip.Unauthenticated, match="not accepted"):
        c.info()
    with keygrip.Client(srv.address, token="wrong") as c, pytest.raises(keygrip.Unauthenticated):
        list(keygrip.Job(c, keygrip.v1.common_pb2.Job(id="x")).watch())
    with keygrip.Client(srv.address, token="s3cret") as c:
        assert c.info().version


def test_token_protected_server_may_listen_on_all_interfaces(server_factory) -> None:
    srv = server_factory("--token", "t0ken", "--listen", "0.0.0.0:0")
    port = srv.address.rsplit(":", 1)[1]
    with keygrip.Client(f"127.0.0.1:{port}", token="t0ken") as c:
        assert c.info().version


def test_health_check_needs_no_token(server_factory) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    srv = server_factory("--token", "abc")
    with grpc.insecure_channel(srv.address) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_unix_socket_is_private(server_factory, tmp_path: Path) -> None:
    # A short path (sockets allow about 100 bytes) that no concurrent run shares.
    sock = Path(tempfile.mkdtemp(prefix="kg", dir="/tmp")) / "k.sock"
    srv = server_factory("--listen", f"unix://{sock}")
    try:
        assert srv.address == f"unix://{sock}"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        with keygrip.Client(srv.address) as c:
            assert c.info().version
    finally:
        srv.stop()
        shutil.rmtree(sock.parent, ignore_errors=True)


def test_reflection_lists_the_services(shared_server) -> None:
    import grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(shared_server.address) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        resp = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in resp.list_services_response.service}
    assert {"keygrip.v1.Jobs", "keygrip.v1.Artifacts", "keygrip.v1.Media", "grpc.health.v1.Health"} <= names
