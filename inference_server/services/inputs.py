"""Checking the inputs a request names, before a job is queued: the user hears at submit time."""

from __future__ import annotations

import itertools
from pathlib import Path

from inference_server.config import Config
from inference_server.errors import InvalidInput, NotFound, PermissionDenied
from inference_server.store.artifacts import ArtifactStore, check_digest, sequence_name
from keygrip.sequences import SequenceError, SequenceNotFound, find_sequence, format_pattern, frame_name, is_pattern
from keygrip.v1 import common_pb2


def _check_roots(config: Config, path: str, resolved: Path) -> None:
    if not config.allowed_roots:
        raise PermissionDenied(
            "this server accepts no file paths: upload the file instead, or start the server "
            "with --allowed-root DIR", reason="PATHS_DISABLED")
    if not any(resolved.is_relative_to(root) for root in config.allowed_roots):
        raise PermissionDenied(
            f"{path} is outside the directories this server may read "
            f"({', '.join(config.allowed_roots)}); upload the file instead or add its folder with --allowed-root",
            reason="PATH_NOT_ALLOWED")


def check_path(config: Config, path: str) -> str:
    """The resolved path if it lies inside an allowed root; symlinks cannot escape a root."""
    resolved = Path(path).expanduser().resolve()
    _check_roots(config, path, resolved)
    if not resolved.exists():
        raise NotFound(f"{path} does not exist on the server's machine")
    return str(resolved)


def check_media_path(config: Config, path: str) -> str:
    """A media path inside an allowed root: a file, or an image sequence named by a pattern
    (plate.####.png, plate.%04d.png, plate.$F4.png), a folder or its first frame.

    A sequence keeps its name in its resolved folder (its frames are found beside the name given,
    not beside a link's target), and every frame must lie inside a root too.
    """
    given = Path(path).expanduser()
    folder = given.resolve() if given.is_dir() else given.parent.resolve()
    _check_roots(config, path, folder)
    candidate = folder if given.is_dir() else folder / given.name
    if not candidate.exists() and not is_pattern(candidate):
        raise NotFound(f"{path} does not exist on the server's machine")
    try:
        seq = find_sequence(candidate)
    except SequenceNotFound:
        raise NotFound(f"{path}: no file on the server's machine matches the pattern {given.name} in the "
                       f"folder {given.parent}; check the folder, the name and the number of digits",
                       reason="NO_FRAMES") from None
    except SequenceError as exc:
        raise InvalidInput(str(exc).replace(str(candidate), path)) from None
    if seq is None:
        return check_path(config, path)
    for number, frame in seq.paths():
        if not frame.is_file():
            continue  # gone since the folder was read: reported when the job reads it
        try:
            _check_roots(config, str(frame), frame.resolve())
        except PermissionDenied:
            raise PermissionDenied(f"frame {number} of {path} ({frame.name}) links outside the directories "
                                   "this server may read; upload the sequence instead",
                                   reason="PATH_NOT_ALLOWED") from None
    return str(candidate)


def check_sequence(artifacts: ArtifactStore, sequence: common_pb2.ImageSequence) -> common_pb2.ImageSequence:
    """An uploaded sequence with a usable pattern and every frame on this server, frames in order."""
    head, padding, tail = sequence_name(sequence.pattern)
    pattern = format_pattern(head, padding, tail)
    if not sequence.frames:
        raise InvalidInput(f"input.sequence {pattern} lists no frames; upload its frames and list them")
    frames = sorted(sequence.frames, key=lambda f: f.number)
    for before, frame in itertools.pairwise(frames):
        if frame.number == before.number:
            raise InvalidInput(f"input.sequence {pattern} lists frame {frame.number} twice")
    if frames[0].number < 0:
        raise InvalidInput(f"input.sequence {pattern}: frame numbers start at 0, not {frames[0].number}")
    for frame in frames:
        name = frame_name(head, padding, tail, frame.number)
        try:
            check_digest(frame.artifact_id)
        except InvalidInput:
            raise InvalidInput(f"frame {frame.number} ({name}) of {pattern}: {frame.artifact_id or 'no artifact id'} "
                               "is not an artifact id (64 lower-case hex digits)") from None
        if not artifacts.exists(frame.artifact_id):
            raise NotFound(f"frame {frame.number} ({name}) of {pattern}: artifact {frame.artifact_id[:12]}... is "
                           "not on this server; upload the frame first", reason="ARTIFACT_NOT_FOUND")
    return common_pb2.ImageSequence(pattern=pattern, frames=frames)


def check_media_input(config: Config, artifacts: ArtifactStore, media: common_pb2.MediaInput) -> common_pb2.MediaInput:
    """A copy of the input with a checked artifact id, a resolved, allowed path, or a checked sequence."""
    which = media.WhichOneof("source")
    if which == "artifact_id":
        check_digest(media.artifact_id)
        artifacts.stat(media.artifact_id)
        return common_pb2.MediaInput(artifact_id=media.artifact_id)
    if which == "path":
        return common_pb2.MediaInput(path=check_media_path(config, media.path))
    if which == "sequence":
        return common_pb2.MediaInput(sequence=check_sequence(artifacts, media.sequence))
    raise InvalidInput("the request names no input: set input.artifact_id (after an upload), input.path "
                       "or input.sequence")
