"""Artifacts for jobs on Ray nodes that do not share the server's data directory
(`ray_storage = "object_store"`).

The front starts a Depot actor pinned to its own node, over its artifact store. A job's process on any
node gets a NodeArtifacts store instead of the server's: a cache on that node's own disk that fetches
an input from the Depot the first time a job reads it (the bytes travel through Ray's object store),
and sends every result the job writes back to the Depot, so results land in the front's artifact store
under the same content address, whichever node made them. What stays on the node is a cache.

Not shipped: the model files a job loads (they must lie at the same path on every node that runs such
jobs) and MediaInput paths on the server's disk (use uploads). The model registry's two small JSON files
travel with the job's set-up (NodeSetup.registry).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from inference_server.models.registry import CONFIG_MODELS_FILE, MODELS_FILE
from inference_server.store.artifacts import Artifact, ArtifactStore

log = logging.getLogger("keygrip.workers")


class _Depot:
    """The front's artifact store, for jobs on other nodes."""

    def __init__(self, root: str) -> None:
        self.store = ArtifactStore(Path(root))

    def get(self, digest: str) -> tuple[bytes, str, str]:
        art = self.store.stat(digest)  # NotFound, as the server's own store says it
        return self.store.read_bytes(digest), art.name, art.media_type

    def put(self, data: bytes, name: str, media_type: str) -> str:
        return self.store.put_bytes(data, name, media_type).id


Depot: Any = ray.remote(_Depot)  # ray.remote's type hints do not describe an actor class


def start_depot(data_dir: Path) -> Any:
    """The Depot over data_dir's artifacts, on this (the front's) node: it reads and writes that disk."""
    here = ray.get_runtime_context().get_node_id()
    return Depot.options(num_cpus=0, max_concurrency=8, max_restarts=0,
                         scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False)
                         ).remote(str(data_dir / "artifacts"))


def registry_files(data_dir: Path) -> tuple[tuple[str, str], ...]:
    """The model registry's JSON files in the front's data directory, for a node's own one."""
    return tuple((name, (data_dir / name).read_text()) for name in (CONFIG_MODELS_FILE, MODELS_FILE)
                 if (data_dir / name).is_file())


class NodeArtifacts(ArtifactStore):
    """A node's cache of the front's artifact store: inputs fetched when read, results sent back."""

    def __init__(self, root: Path, depot: Any) -> None:
        super().__init__(root)
        self.depot = depot

    def path(self, digest: str) -> Path:
        local = self._object(digest)
        if not local.is_file():
            data, name, media_type = ray.get(self.depot.get.remote(digest))
            super().put_bytes(data, name, media_type)
            log.info("input fetched through the object store", extra={"artifact": digest, "bytes": len(data)})
        return local

    def put_bytes(self, data: bytes, name: str = "", media_type: str = "") -> Artifact:
        art = super().put_bytes(data, name, media_type)
        ray.get(self.depot.put.remote(data, name, media_type))
        return art

    def put_file(self, src: Path, name: str = "", media_type: str = "") -> Artifact:
        art = super().put_file(src, name, media_type)
        ray.get(self.depot.put.remote(self._object(art.id).read_bytes(), art.name, media_type))
        return art


@dataclass(frozen=True)
class NodeSetup:
    """What a job's process needs to set itself up on a node: the server's data directory (shared
    storage), or with a depot a folder of the node's own and the registry's files."""

    data_dir: str
    log_level: str
    log_format: str
    depot: Any = field(default=None, compare=False)
    registry: tuple[tuple[str, str], ...] = ()

    def local_dir(self) -> Path:
        """This node's folder for the server's jobs (object store): named after the node and the server."""
        server = hashlib.sha256(self.data_dir.encode()).hexdigest()[:12]
        node = ray.get_runtime_context().get_node_id()[:12]
        return Path(tempfile.gettempdir()) / "keygrip-node" / node / server
