"""`python -m inference_server`: run the server, or clean up its data directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference_server.config import DEFAULT_ADDRESS, Config, load_config


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `python -m inference_server` and `keygrip serve`; each overrides file and env."""
    parser.add_argument("--config", help="TOML configuration file (also KEYGRIP_CONFIG)")
    parser.add_argument("--listen", help=f"host:port or unix:///path (default {DEFAULT_ADDRESS})")
    parser.add_argument("--data-dir", type=Path, help="where jobs and artifacts are kept")
    parser.add_argument("--token", help="require 'authorization: Bearer TOKEN' on every call")
    parser.add_argument("--tls-cert", help="PEM certificate chain (with --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key")
    parser.add_argument("--allowed-root", action="append", dest="allowed_roots",
                        help="a directory whose files jobs may read by path (repeatable)")
    parser.add_argument("--workers", type=int, help="worker processes (default: cores, at most 4)")
    parser.add_argument("--max-queue", type=int, help="queued jobs before submits are refused")
    parser.add_argument("--max-upload-bytes", type=int, help="largest accepted upload")
    parser.add_argument("--executor", choices=["local", "ray"],
                        help="run jobs in worker processes here (local, the default) or on a Ray cluster")
    parser.add_argument("--ray-address", help="with --executor ray: auto, HOST:PORT, or empty for a local cluster")
    parser.add_argument("--ray-actors-per-node", type=int,
                        help="with --executor ray: actors per node that keep one model loaded (default 1)")
    parser.add_argument("--ray-storage", choices=["shared", "object_store"],
                        help="with --executor ray: a data directory every node shares (default), or inputs "
                             "and results through Ray's object store")
    parser.add_argument("--max-attempts", type=int,
                        help="runs a job gets when the process running it dies (default 3; 1: never requeued)")
    parser.add_argument("--metrics-listen", help="host:port for Prometheus metrics (default: off)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--log-format", choices=["json", "text"])


def config_from_args(args: argparse.Namespace) -> Config:
    keys = ["listen", "data_dir", "token", "tls_cert", "tls_key", "allowed_roots", "workers", "max_queue",
            "max_upload_bytes", "max_attempts", "executor", "ray_address", "ray_actors_per_node",
            "ray_storage", "metrics_listen", "log_level",
            "log_format"]
    return load_config(args.config, {k: getattr(args, k, None) for k in keys})


def serve_command(args: argparse.Namespace) -> int:
    from inference_server.app import run
    from inference_server.logs import setup_logging

    try:
        config = config_from_args(args)
        config.validate()
    except (ValueError, OSError) as exc:
        print(f"keygrip server: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, config.log_format)
    return run(config)


def cleanup_command(args: argparse.Namespace) -> int:
    from inference_server.cleanup import cleanup

    config = load_config(args.config, {"data_dir": args.data_dir})
    report = cleanup(config, args.max_age_days, args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {report.jobs_deleted} jobs, {report.artifacts_deleted} artifacts "
          f"({report.bytes_freed / 2**20:.1f} MiB), {report.uploads_deleted} stale uploads")
    return 0


def add_cleanup_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML configuration file")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--max-age-days", type=float, help="retention period (default: retention_days, 30)")
    parser.add_argument("--dry-run", action="store_true", help="report what would be deleted")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference_server", description="Keygrip inference server")
    sub = parser.add_subparsers(dest="command")
    add_serve_arguments(sub.add_parser("serve", help="run the server (the default)"))
    add_cleanup_arguments(sub.add_parser("cleanup", help="apply the retention policy to a data directory"))
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        argv.insert(0, "serve")
    args = parser.parse_args(argv)
    return cleanup_command(args) if args.command == "cleanup" else serve_command(args)


if __name__ == "__main__":
    sys.exit(main())
