"""OpenEXR files: generated images as linear float RGB (half by default) with string metadata,
one-channel depth maps from hosts, and any named channels (a matte in A, RGBA, a depth pass in Z:
write_exr_channels).

Generated images are sRGB-encoded; an environment map that lights a scene must be linear, so the
world is decoded with srgb_to_linear (the exact piecewise sRGB EOTF of IEC 61966-2-1) before it is
written. Channels are named R, G, B (what Blender, Nuke and every EXR reader expect); metadata
(prompt, seed, model, settings) goes in as string attributes of the header so that a result can be
reproduced from its file. expand_highlights gives a world's sun and sky the intensity an 8-bit image
cannot hold. Uses the `OpenEXR` module of the `openexr` package (3.x, `OpenEXR.File`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from inference_server.errors import InvalidInput

# Header attributes the format itself defines: metadata may not take these names.
_RESERVED = {"channels", "compression", "dataWindow", "displayWindow", "lineOrder", "pixelAspectRatio",
             "screenWindowCenter", "screenWindowWidth", "type", "tiles", "name", "version", "chunkCount"}


def _openexr() -> Any:
    """The OpenEXR module (a compiled extension that ships no type information)."""
    import OpenEXR

    return OpenEXR


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """Linear light from sRGB-encoded values in 0..1 (the exact EOTF: x / 12.92 up to 0.04045, then
    ((x + 0.055) / 1.055) ** 2.4), as float32. Values outside 0..1 keep the curve's shape (mirrored
    below 0) rather than being clipped."""
    x = np.asarray(rgb, dtype=np.float64)
    a = np.abs(x)
    lin = np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)
    return (np.sign(x) * lin).astype(np.float32)


def expand_highlights(linear: np.ndarray, gain: float, *, knee: float = 0.6) -> np.ndarray:
    """Linear RGB whose brightest pixels are scaled up smoothly, to at most `gain` times their value.

    A generated panorama stops at white, so as an environment it lights a scene like a grey card: no
    sun, no shadows. Pixels whose luminance is above `knee` (linear; sRGB 0.8) are multiplied by
    1 + (gain - 1) * w, where w rises from 0 at the knee to 1 at white along a smoothstep, so that
    everything below the knee is untouched and nothing steps. gain <= 1: a copy of the input.
    """
    a = np.asarray(linear, dtype=np.float32)
    if not gain > 1.0:
        return a.copy()
    luma = a @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    t = np.clip((luma - knee) / (1.0 - knee), 0.0, 1.0)
    w = t * t * (3.0 - 2.0 * t)
    return (a * (1.0 + (gain - 1.0) * w)[..., None]).astype(np.float32)


def write_exr(path: Path, rgb_linear: np.ndarray, *, half: bool = True, metadata: dict[str, str] | None = None) -> None:
    """Write (H, W, 3) linear RGB as a scanline EXR with ZIP compression, half floats unless half=False,
    channels R, G, B, and each metadata item as a string attribute of the header."""
    a = np.asarray(rgb_linear)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise InvalidInput(f"an EXR image must be (height, width, 3) RGB, not shape {a.shape}")
    write_exr_channels(path, {name: a[:, :, i] for i, name in enumerate("RGB")}, half=half, metadata=metadata)


def write_exr_channels(path: Path, channels: dict[str, np.ndarray], *, half: bool = True,
                       metadata: dict[str, str] | None = None) -> None:
    """Write named (H, W) channels (a matte as A, a depth pass as Z, RGBA) as a scanline EXR with ZIP
    compression, half floats unless half=False, each metadata item a string attribute of the header.
    Values are written as they are: linear data is never clamped (a half float holds up to 65504)."""
    OpenEXR = _openexr()

    shapes = {np.asarray(c).shape for c in channels.values()}
    if not channels or len(shapes) != 1 or len(next(iter(shapes))) != 2 or 0 in next(iter(shapes)):
        raise InvalidInput(f"EXR channels must be (height, width) arrays of one size, not {sorted(shapes)}")
    if not all(np.all(np.isfinite(c)) for c in channels.values()):
        raise InvalidInput("the image to write as EXR has NaN or infinite values")
    dtype = np.float16 if half else np.float32
    header: dict[str, object] = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    for key, value in (metadata or {}).items():
        if key in _RESERVED:
            raise InvalidInput(f"EXR metadata may not use the reserved attribute name {key!r}")
        header[key] = str(value)
    data = {name: np.ascontiguousarray(c, dtype=dtype) for name, c in channels.items()}
    with OpenEXR.File(header, data) as f:
        f.write(str(path))


def read_exr(path: Path) -> np.ndarray:
    """(H, W, 3) float32 RGB from an EXR's R, G, B channels (half or float)."""
    OpenEXR = _openexr()

    with OpenEXR.File(str(path), separate_channels=True) as f:
        channels = f.channels()
        missing = [c for c in "RGB" if c not in channels]
        if missing:
            raise InvalidInput(f"{Path(path).name} has no {', '.join(missing)} channel: "
                               f"it has {', '.join(sorted(channels)) or 'none'}")
        return np.stack([np.asarray(channels[c].pixels, dtype=np.float32) for c in "RGB"], axis=-1)


def read_exr_metadata(path: Path) -> dict[str, str]:
    """The string attributes of an EXR's header (what write_exr's metadata became)."""
    OpenEXR = _openexr()

    with OpenEXR.File(str(path)) as f:
        return {k: v for k, v in f.header().items() if isinstance(v, str) and k not in _RESERVED}


def read_exr_channel(path: Path, preferred: tuple[str, ...] = ("Z", "Y", "R")) -> np.ndarray:
    """(H, W) float32 of one channel of an EXR: the first of `preferred` it has (a depth pass is Z,
    a grey image Y, a colour one R), else its first channel (half or float)."""
    OpenEXR = _openexr()

    with OpenEXR.File(str(path), separate_channels=True) as f:
        channels = f.channels()
        if not channels:
            raise InvalidInput(f"{Path(path).name} has no channels")
        name = next((c for c in preferred if c in channels), next(iter(channels)))
        return np.asarray(channels[name].pixels, dtype=np.float32)
