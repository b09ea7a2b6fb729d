"""A learned person segmenter from the model manager, in place of Selfie Segmentation (matte.py's first
stage).

The model is a transformers semantic-segmentation model (AutoModelForSemanticSegmentation: SegFormer,
BEiT, DPT, UperNet, MobileViT ...) registered as family "segmenter" (models/registry.py), loaded from
local files only by the worker's model cache. Its person probability is the softmax of its logits at
the class its id2label names person (or foreground); a one-class model (a background remover) gives
the sigmoid of its one logit. It runs on the frame at the chain's working size (the models named above
take any size); its normalisation comes from the folder's preprocessor_config.json (ImageNet's
statistics, what these models are trained with, when there is none).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inference_server.errors import FailedPrecondition, ResourceExhausted
from inference_server.models.registry import person_class

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _normalisation(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of the model's image processor, for 0..1 RGB."""
    config: dict[str, Any] = {}
    path = folder / "preprocessor_config.json"
    if path.is_file():
        config = json.loads(path.read_text())
    if config.get("do_normalize") is False:
        return np.zeros(3, np.float32), np.ones(3, np.float32)
    mean = config.get("image_mean") or _IMAGENET_MEAN
    std = config.get("image_std") or _IMAGENET_STD
    return np.asarray(mean, np.float32).reshape(3), np.asarray(std, np.float32).reshape(3)


class ModelSegmenter:
    """A person probability map at the size of the image given, from a semantic-segmentation model."""

    def __init__(self, net: Any, folder: Path, name: str) -> None:
        import torch

        self.torch = torch
        self.net = net
        self.param = next(net.parameters())
        config = net.config
        person = person_class({"id2label": config.id2label, "num_labels": config.num_labels})
        if person is None:
            raise FailedPrecondition(f"model {name!r} has no person class in its labels; pick a segmenter with a "
                                     "person or foreground label (keygrip models ls)", reason="MODEL_UNSUITED",
                                     metadata={"model": name})
        self.name = name
        self.person = person
        self.one_class = int(config.num_labels) == 1
        self.mean, self.std = _normalisation(folder)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        x = (rgb.astype(np.float32) * np.float32(1.0 / 255.0) - self.mean) / self.std
        t = self.torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
        try:
            with self.torch.inference_mode():
                x_in = t.to(device=self.param.device, dtype=self.param.dtype)
                logits = self.net(pixel_values=x_in).logits[0].float()
                prob = logits[0].sigmoid() if self.one_class else logits.softmax(dim=0)[self.person]
        except self.torch.cuda.OutOfMemoryError:
            self.torch.cuda.empty_cache()
            raise ResourceExhausted(f"out of GPU memory running segmenter {self.name!r} at {w}x{h}: lower the "
                                    "working_size, or close other GPU programs", reason="OUT_OF_MEMORY",
                                    metadata={"model": self.name}) from None
        except (RuntimeError, ValueError) as exc:
            # Some architectures take only the size they were trained at (fixed position embeddings).
            raise FailedPrecondition(f"segmenter {self.name!r} could not run on a {w}x{h} frame: "
                                     f"{' '.join(str(exc).split())[:300]}; set the working_size to the size it was "
                                     "trained at, or pick a model that takes any size (SegFormer)",
                                     reason="MODEL_RUN_FAILED", metadata={"model": self.name}) from None
        p = np.asarray(prob.cpu().numpy(), dtype=np.float32)
        return np.asarray(cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)

    def close(self) -> None:
        """Nothing: the worker's model cache owns the model (it stays loaded for the next job)."""
