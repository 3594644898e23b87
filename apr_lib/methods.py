"""Training methods: how a batch of training images becomes a loss.

Order of the pipeline, as in the released code (facts 1.2, 1.3): APR-S (per image) -> random crop
and flip -> APR-P (on the batch). The loss is the summed cross-entropy divided by the batch size
before APR-P; with APR-P's clean batch kept this is the released CE(clean) + CE(recombined).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from apr_lib.augment import APRP, APRS, RandomCropFlip


@dataclass(frozen=True)
class MethodSpec:
    description: str
    apr_s: bool = False
    apr_p: bool = False


METHODS: dict[str, MethodSpec] = {
    "standard": MethodSpec("random crop and flip only (Table 1 'Standard')"),
    "apr_p": MethodSpec("APR for pairs: amplitude from another image of the batch (Eq. 5)", apr_p=True),
    "apr_s": MethodSpec("APR for a single image: amplitude from an augmented view (Eq. 6)", apr_s=True),
    "apr_sp": MethodSpec("APR-S then APR-P (released code's combination)", apr_s=True, apr_p=True),
}


def uses_apr(method: str) -> bool:
    spec = METHODS[method]
    return spec.apr_s or spec.apr_p


class TrainingMethod:
    """The augmentations of `method`, built from a run's resolved config, and its loss."""

    def __init__(self, method: str, config: dict, generator: torch.Generator | None = None):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; registered: {', '.join(METHODS)}")
        spec, train, apr = METHODS[method], config["train"], config.get("apr")
        self.crop_flip = RandomCropFlip(train["crop_padding"], train["flip"], fill=train["crop_fill"] / 255,
                                        generator=generator)
        self.aprs = APRS(severity=apr["s_severity"], mode=apr["fft_mode"], swap_prob=apr["s_swap_prob"],
                         distracter=apr["s_distracter"], overflow=apr["s_overflow"],
                         generator=generator) if spec.apr_s else None
        self.aprp = APRP(prob=apr["p_prob"], mode=apr["fft_mode"], keep_clean=apr["keep_clean"],
                         generator=generator) if spec.apr_p else None

    def loss(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss of `model` on one batch of uint8 images (B, C, H, W) with integer labels."""
        x = images.float() / 255
        if self.aprs is not None:
            x = self.aprs(x)
        x = self.crop_flip(x)
        batch_size = len(x)
        if self.aprp is not None:
            x, labels = self.aprp(x, labels)
        return F.cross_entropy(model(x), labels, reduction="sum") / batch_size
