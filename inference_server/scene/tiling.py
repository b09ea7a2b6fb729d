"""Seamless tiling: circular padding in every convolution of a diffusion pipeline's UNet and VAE.

A texture tiles when the network that makes it cannot tell where the image edge is: every Conv2d of
the denoiser and of the whole VAE (encoder and decoder) then sees the image as a torus (periodic in X
and Y) or, for an equirectangular world, as a cylinder (periodic in X only, zero padding at the poles).
`nn.Conv2d.padding_mode` cannot mix axes, so each convolution's forward is wrapped instead: pad with
F.pad ("circular" on the periodic axes, zeros on the others), then convolve with no padding of its own.
diffusers' Downsample2D pads explicitly with F.pad before a convolution with padding=0; that pad is
made the same way. Attention and group norms are position-free, so the whole network is then
equivariant under circular shifts by a multiple of its downsampling factor.

Everything is restored exactly on exit, on exceptions too. Only for pipelines with a convolutional
UNet: a transformer (DiT) denoiser is refused with InvalidInput rather than giving a result that
silently does not tile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn import functional as nnf

from inference_server.errors import InvalidInput

AXES = ("xy", "x")

# Padding as F.pad takes it for a 4-D tensor: (left, right, top, bottom).
Pad = tuple[int, int, int, int]


def _model_family(pipe: Any) -> str:
    """A name for the pipeline's model family, for messages ("Flux", "SD3", or the pipeline's class)."""
    name = type(pipe).__name__
    for key, family in (("Flux", "Flux"), ("StableDiffusion3", "SD3"), ("PixArt", "PixArt"),
                        ("Sana", "Sana"), ("HunyuanDiT", "Hunyuan-DiT"), ("AuraFlow", "AuraFlow")):
        if key in name:
            return family
    return name


TURN_OFF = "turn tiling off or pick an SD 1.x/2.x/XL model"


def check_tileable(pipe: Any, *, fix: str = TURN_OFF) -> None:
    """InvalidInput unless the pipeline denoises with a convolutional UNet and has a VAE; `fix` says what to do."""
    if getattr(pipe, "unet", None) is None:
        if getattr(pipe, "transformer", None) is not None:
            raise InvalidInput(f"tiling needs a convolutional UNet; {_model_family(pipe)} is a transformer: {fix}")
        raise InvalidInput(f"tiling needs a convolutional UNet, and {_model_family(pipe)} has none: {fix}")
    if getattr(pipe, "vae", None) is None:
        raise InvalidInput(f"tiling needs the pipeline's VAE, and {_model_family(pipe)} has none: {fix}")


def _padded_forward(conv: nn.Conv2d, pad: Pad, periodic_x: bool,
                    periodic_y: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    left, right, top, bottom = pad

    def forward(x: torch.Tensor) -> torch.Tensor:
        if left or right:
            x = nnf.pad(x, (left, right, 0, 0), mode="circular" if periodic_x else "constant")
        if top or bottom:
            x = nnf.pad(x, (0, 0, top, bottom), mode="circular" if periodic_y else "constant")
        return nnf.conv2d(x, conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)

    return forward


def _conv_pad(conv: nn.Conv2d) -> Pad | None:
    """The padding a convolution applies itself, or None when it cannot be redone by hand."""
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return None  # "same"/"valid" or a non-zero padding mode: leave it as it is
    ph, pw = conv.padding
    return (pw, pw, ph, ph)


@contextmanager
def seamless(pipe: Any, axes: str = "xy") -> Iterator[None]:
    """Make `pipe` (a diffusers pipeline with `unet` and `vae`) periodic along `axes` while inside.

    axes="xy": a texture tiling in both directions; axes="x": a world periodic in X only (zero padding
    in Y). Patches every padded Conv2d of the UNet and the whole VAE, and the explicit pad of
    Downsample2D; restores all of it on exit, also when the body raises. InvalidInput for a pipeline
    without a convolutional UNet (a transformer/DiT) or with unknown axes.
    """
    if axes not in AXES:
        raise InvalidInput(f"tiling axes must be one of {', '.join(AXES)}, not {axes!r}")
    check_tileable(pipe)
    from diffusers.models.downsampling import Downsample2D

    periodic_x, periodic_y = "x" in axes, "y" in axes
    patched: list[tuple[nn.Module, str, bool, Any]] = []  # (module, attribute, had own attribute, old value)

    def patch(module: nn.Module, name: str, value: Any) -> None:
        # Plain instance attributes: a "forward" in the instance's __dict__ shadows the class's method.
        patched.append((module, name, name in module.__dict__, module.__dict__.get(name)))
        module.__dict__[name] = value

    try:
        for model in (pipe.unet, pipe.vae):
            # Convolutions behind Downsample2D's explicit pad: pad (0, 1, 0, 1) by hand, then skip its own.
            explicit: dict[int, Pad] = {}
            for module in model.modules():
                if (isinstance(module, Downsample2D) and module.use_conv and module.padding == 0
                        and isinstance(module.conv, nn.Conv2d)):
                    explicit[id(module.conv)] = (0, 1, 0, 1)
                    # Downsample2D pads only when its padding is 0; a non-zero value skips its F.pad
                    # (the value is used nowhere else), and the convolution's own wrapper pads instead.
                    patch(module, "padding", 1)
            for module in model.modules():
                if not isinstance(module, nn.Conv2d):
                    continue
                pad = explicit.get(id(module)) or _conv_pad(module)
                if pad is None or not any(pad):
                    continue
                patch(module, "forward", _padded_forward(module, pad, periodic_x, periodic_y))
        yield
    finally:
        for module, name, had, old in reversed(patched):
            if had:
                module.__dict__[name] = old
            else:
                del module.__dict__[name]
