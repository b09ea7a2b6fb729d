"""Configuration precedence and the keygrip command against a real server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from inference_server.config import Config, is_local_address, load_config

REPO = Path(__file__).resolve().parents[1]
CLIP = Path(__file__).parent / "data" / "video" / "pose2sim_cam01.mp4"


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    toml = tmp_path / "keygrip.toml"
    toml.write_text('listen = "127.0.0.1:6000"\nworkers = 3\nmax_queue = 5\nallowed_roots = ["/srv/a"]\n')
    cfg = load_config(toml, environ={})
    assert (cfg.listen, cfg.workers, cfg.max_queue, cfg.allowed_roots) == ("127.0.0.1:6000", 3, 5, ["/srv/a"])
    cfg = load_config(toml, environ={"KEYGRIP_WORKERS": "2", "KEYGRIP_LISTEN": "127.0.0.1:7000"})
    assert (cfg.listen, cfg.workers, cfg.max_queue) == ("127.0.0.1:7000", 2, 5)
    cfg = load_config(toml, {"workers": 1, "listen": None}, environ={"KEYGRIP_WORKERS": "2"})
    assert (cfg.workers, cfg.listen) == (1, "127.0.0.1:6000")


def test_unknown_setting_is_an_error(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text("lisen = 'oops'\n")
    try:
        load_config(toml, environ={})
    except ValueError as exc:
        assert "lisen" in str(exc)
    else:
        raise AssertionError("a misspelt setting was accepted")


def test_local_addresses() -> None:
    assert is_local_address("127.0.0.1:1") and is_local_address("[::1]:1") and is_local_address("unix:///x")
    assert not is_local_address("0.0.0.0:1") and not is_local_address("10.1.2.3:50051")
    Config(listen="0.0.0.0:1", token="x").validate()


def test_executor_and_attempts_settings(tmp_path: Path) -> None:
    toml = tmp_path / "k.toml"
    toml.write_text('executor = "ray"\nray_address = "auto"\nmax_attempts = 5\nray_storage = "object_store"\n')
    config = load_config(toml, environ={"KEYGRIP_RAY_ACTORS_PER_NODE": "2"})
    assert (config.executor, config.ray_address, config.max_attempts) == ("ray", "auto", 5)
    assert (config.ray_storage, config.ray_actors_per_node) == ("object_store", 2)
    config.validate()  # Ray is installed with the dev extra
    for bad, words in (({"executor": "spark"}, "executor must be"), ({"max_attempts": 0}, "max_attempts"),
                       ({"ray_storage": "nfs"}, "ray_storage must be 'shared'"),
                       ({"ray_actors_per_node": 0}, "ray_actors_per_node must be 1 or more")):
        try:
            Config(**bad).validate()  # type: ignore[arg-type]
        except ValueError as exc:
            assert words in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")


def _keygrip(address: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keygrip.cli", "--address", address, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=180)


def test_cli_info_probe_and_jobs(shared_server, tmp_path: Path) -> None:
    out = _keygrip(shared_server.address, "info")
    assert out.returncode == 0 and "mocap.body" in out.stdout
    out = _keygrip(shared_server.address, "--json", "probe", str(CLIP))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["frame_count"] == "100"  # int64 is a string in proto3 JSON
    out = _keygrip(shared_server.address, "probe", str(CLIP), "--thumbnail", str(tmp_path / "p.png"), "--no-requeue")
    assert "h264 1080x1920 60.000 fps, 100 frames" in out.stdout
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    out = _keygrip(shared_server.address, "--json", "jobs", "ls", "--type", "probe_media", "--limit", "1")
    job_id = json.loads(out.stdout)[0]["id"]
    assert json.loads(out.stdout)[0]["options"] == {"no_requeue": True}  # the last probe ran with --no-requeue
    assert _keygrip(shared_server.address, "jobs", "watch", job_id).returncode == 0
    assert _keygrip(shared_server.address, "jobs", "rm", job_id).returncode == 0
    missing = _keygrip(shared_server.address, "jobs", "get", job_id)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_cli_reports_a_dead_server() -> None:
    # A port this test holds without listening: connections are refused, and no other process can take it.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        out = _keygrip(f"127.0.0.1:{held.getsockname()[1]}", "info")
    assert out.returncode == 1
    assert "cannot reach the Keygrip server" in out.stderr


def test_keygrip_serve_starts_a_server(server_factory, tmp_path: Path) -> None:
    import keygrip

    # The fixture waits (with a timeout) for the "listening on" line, however slowly the server starts.
    srv = server_factory(workers=1, data_dir=tmp_path, launcher=("-m", "keygrip.cli", "serve"))
    with keygrip.Client(srv.address) as c:
        assert c.info().limits.workers == 1
    assert srv.proc is not None
    srv.proc.terminate()
    assert srv.proc.wait(30) == 0  # SIGTERM is a clean shutdown
    assert (tmp_path / "jobs.sqlite3").exists()
