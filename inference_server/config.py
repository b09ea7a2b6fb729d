"""Server configuration: a TOML file, overridden by KEYGRIP_* environment variables, overridden by flags.

Example keygrip.toml:

    listen = "127.0.0.1:50051"          # or "unix:///run/user/1000/keygrip.sock"
    data_dir = "~/.local/share/keygrip"
    token = ""                          # required for any non-loopback address unless TLS is set
    allowed_roots = ["~/footage"]       # where MediaInput.path may point; empty: paths refused
    workers = 2
    max_queue = 64
    max_attempts = 3                    # a job whose worker or server dies runs again, up to this often
    executor = "local"                  # or "ray": run jobs on a Ray cluster (pip install 'keygrip[cluster]')
    ray_address = ""                    # with "ray": "auto", "HOST:PORT", or "" to start a local one
    ray_actors_per_node = 1             # with "ray": actors per node keeping one model loaded (pool size)
    ray_storage = "shared"              # with "ray": "shared" (every node sees data_dir under its name)
                                        # or "object_store" (inputs and results travel through Ray)
    max_upload_bytes = 8589934592
    metrics_listen = "127.0.0.1:9464"   # Prometheus; empty: off
    retention_days = 30

    [models.sd15]                       # diffusion models (inference_server/models); relative paths
    path = "~/models/sd15"              # are taken from this file's folder. A diffusers folder, or
    # config = "~/models/sd15-config"   # a single .safetensors file (+ the diffusers config folder
    # allow_pickle = false              # from_single_file needs); pickle checkpoints only with true
    # compile = false                   # torch.compile the denoiser and the VAE decoder (GPU: faster
                                        # steps after a first job that compiles for a minute or more)
    # license = "apache-2.0"            # what the model's card says, when it says nothing itself;
    # allow_restricted_license = false  # true to use a non-commercial or GPL model knowingly
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_ADDRESS = "127.0.0.1:50051"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "keygrip"


@dataclass
class Config:
    listen: str = DEFAULT_ADDRESS
    data_dir: Path = field(default_factory=default_data_dir)
    token: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    allowed_roots: list[str] = field(default_factory=list)
    workers: int = 0                          # 0: one per core, at most 4
    max_queue: int = 64
    max_upload_bytes: int = 8 * 1024**3
    max_message_bytes: int = 8 * 1024**2
    metrics_listen: str = ""
    retention_days: float = 30.0
    log_level: str = "INFO"
    log_format: str = "json"                  # "json" or "text"
    cancel_grace_seconds: float = 2.0         # after this a worker that ignores cancel is killed
    max_attempts: int = 3                     # runs a job gets when the process running it dies; 1: no requeue
    executor: str = "local"                   # "local": worker processes here; "ray": actors on a Ray cluster
    ray_address: str = ""                     # with executor "ray": "auto", "HOST:PORT", or "" (a local cluster)
    ray_actors_per_node: int = 1              # with "ray": per node, the actors of one model's pool
    ray_storage: str = "shared"               # with "ray": "shared" data_dir on every node, or "object_store"
    # [models.NAME] tables: NAME -> {"path": ..., "config": ..., "allow_pickle": bool}; only from the file
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser()
        self.allowed_roots = [str(Path(r).expanduser().resolve()) for r in self.allowed_roots]
        if self.workers <= 0:
            self.workers = max(1, min(4, os.cpu_count() or 1))

    def validate(self) -> None:
        """Refuse unsafe or impossible settings before anything starts listening."""
        if not is_local_address(self.listen) and not (self.token or (self.tls_cert and self.tls_key)):
            raise ValueError(
                f"refusing to listen on {self.listen} without a token or TLS: set --token "
                "(or KEYGRIP_TOKEN) or --tls-cert/--tls-key, or listen on 127.0.0.1 or a unix socket"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("TLS needs both --tls-cert and --tls-key")
        if self.executor not in ("local", "ray"):
            raise ValueError(f"executor must be 'local' or 'ray', not {self.executor!r}")
        if self.executor == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError("--executor ray needs Ray installed beside the server: pip install 'keygrip[cluster]'")
        if self.ray_storage not in ("shared", "object_store"):
            raise ValueError(f"ray_storage must be 'shared' (every node sees the data directory under the same "
                             f"path) or 'object_store' (inputs and results travel through Ray), "
                             f"not {self.ray_storage!r}")
        if self.ray_actors_per_node < 1:
            raise ValueError(f"ray_actors_per_node must be 1 or more, not {self.ray_actors_per_node}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be 1 or more (1: a job whose process dies is not run again), "
                             f"not {self.max_attempts}")
        if self.log_format not in ("json", "text"):
            raise ValueError("log_format must be 'json' or 'text'")
        for name, table in self.models.items():
            if not isinstance(table, dict) or not isinstance(table.get("path"), str) or not table["path"]:
                raise ValueError(f"[models.{name}] needs a path: path = \"/models/{name}\" (a diffusers folder "
                                 "or a .safetensors file)")
            unknown = set(table) - MODEL_KEYS
            if unknown:
                raise ValueError(f"unknown settings in [models.{name}]: {', '.join(sorted(unknown))} "
                                 f"(known: {', '.join(sorted(MODEL_KEYS))})")
            for key in ("allow_pickle", "compile", "allow_restricted_license"):
                if not isinstance(table.get(key, False), bool):
                    raise ValueError(f"[models.{name}] {key} must be true or false")


# What a [models.NAME] table may hold.
MODEL_KEYS = frozenset({"path", "config", "allow_pickle", "family", "compile", "license", "allow_restricted_license"})


def _resolve_model_paths(models: Any, base: Path) -> Any:
    """[models.NAME] paths relative to the configuration file's folder, as absolute paths."""
    if not isinstance(models, dict):
        raise ValueError("models must be a table of [models.NAME] tables")
    resolved: dict[str, Any] = {}
    for name, table in models.items():
        if isinstance(table, dict):
            table = dict(table)
            for key in ("path", "config"):
                if isinstance(table.get(key), str) and table[key]:
                    table[key] = str((base / Path(table[key]).expanduser()).resolve())
        resolved[name] = table
    return resolved


def is_local_address(address: str) -> bool:
    """True for unix sockets and loopback TCP addresses."""
    if address.startswith("unix:"):
        return True
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_ENV_PREFIX = "KEYGRIP_"


def _coerce(name: str, value: Any) -> Any:
    kind = {f.name: f.type for f in fields(Config)}[name]
    if isinstance(value, str):
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "list[str]":
            return [v for v in value.split(os.pathsep) if v]
    return value


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                environ: dict[str, str] | None = None) -> Config:
    """Build the configuration from file, then environment, then explicit overrides (flags)."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    path = path or environ.get(_ENV_PREFIX + "CONFIG")
    if path:
        with open(Path(path).expanduser(), "rb") as fh:
            data = tomllib.load(fh)
        known = {f.name for f in fields(Config)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown settings in {path}: {', '.join(sorted(unknown))}")
        if "models" in data:
            data["models"] = _resolve_model_paths(data["models"], Path(path).expanduser().resolve().parent)
        values.update(data)
    for f in fields(Config):
        if f.name == "models":
            continue  # a table: only the file sets it
        env_value = environ.get(_ENV_PREFIX + f.name.upper())
        if env_value is not None:
            values[f.name] = _coerce(f.name, env_value)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    return Config(**values)
