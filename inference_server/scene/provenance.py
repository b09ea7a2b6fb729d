"""What reproduces a generated image: the model's fingerprint and the settings, as metadata."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from inference_server import __version__
from keygrip.v1 import scene_pb2

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".json", ".txt", ".model")
_SAMPLE = 1 << 20


def model_fingerprint(path: Path) -> str:
    """model_fingerprint_of, computed once per model and state of its files (see there)."""
    st = path.stat()
    return _fingerprint(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=32)
def _fingerprint(path: str, mtime_ns: int, size: int) -> str:
    return model_fingerprint_of(Path(path))


def model_fingerprint_of(path: Path) -> str:
    """sha256 over a model's files: relative name, size, and the first and last MiB of each.

    Hashing every byte of a multi-GB checkpoint would cost as long as loading it; the ends of each
    file hold the safetensors header (every tensor's name, dtype, shape and offset) and the last
    weights, so a changed or swapped model changes the fingerprint, and copies of one model agree.
    """
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*")
                                                 if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.relative_to(path) if f != path else f.name}\0{size}\0".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(_SAMPLE))
            if size > 2 * _SAMPLE:
                fh.seek(size - _SAMPLE)
                h.update(fh.read(_SAMPLE))
    return h.hexdigest()


def settings_metadata(settings: scene_pb2.GenerationSettings, model_hash: str, **extra: object) -> dict[str, str]:
    """Everything that reproduces the image, as strings (PNG text, EXR attributes, the result's map)."""
    meta = {
        "keygrip_version": __version__, "model": settings.model, "model_hash": model_hash,
        "prompt": settings.prompt, "negative_prompt": settings.negative_prompt, "seed": str(settings.seed),
        "steps": str(settings.steps), "guidance": f"{settings.guidance:g}", "width": str(settings.width),
        "height": str(settings.height), "scheduler": settings.scheduler,
    }
    meta.update({k: str(v) for k, v in extra.items()})
    return meta
