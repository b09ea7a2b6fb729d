"""Checking the inputs a request names, before a job is queued: the user hears at submit time."""

from __future__ import annotations

from pathlib import Path

from inference_server.config import Config
from inference_server.errors import InvalidInput, NotFound, PermissionDenied
from inference_server.store.artifacts import ArtifactStore, check_digest
from keygrip.v1 import common_pb2


def check_path(config: Config, path: str) -> str:
    """The resolved path if it lies inside an allowed root; symlinks cannot escape a root."""
    if not config.allowed_roots:
        raise PermissionDenied(
            "this server accepts no file paths: upload the file instead, or start the server "
            "with --allowed-root DIR", reason="PATHS_DISABLED")
    resolved = Path(path).expanduser().resolve()
    if not any(resolved.is_relative_to(root) for root in config.allowed_roots):
        raise PermissionDenied(
            f"{path} is outside the directories this server may read "
            f"({', '.join(config.allowed_roots)}); upload the file instead or add its folder with --allowed-root",
            reason="PATH_NOT_ALLOWED")
    if not resolved.exists():
        raise NotFound(f"{path} does not exist on the server's machine")
    return str(resolved)


def check_media_input(config: Config, artifacts: ArtifactStore, media: common_pb2.MediaInput) -> common_pb2.MediaInput:
    """A copy of the input with a checked artifact id or a resolved, allowed path."""
    which = media.WhichOneof("source")
    if which == "artifact_id":
        check_digest(media.artifact_id)
        artifacts.stat(media.artifact_id)
        return common_pb2.MediaInput(artifact_id=media.artifact_id)
    if which == "path":
        return common_pb2.MediaInput(path=check_path(config, media.path))
    raise InvalidInput("the request names no input: set input.artifact_id (after an upload) or input.path")

