"""Batched training augmentations with per-sample randomness (any device, optional torch.Generator)."""
from apr_lib.augment.apr import APRP, APRS
from apr_lib.augment.baselines import AugMix, AutoAugment, CutMix, Cutout, MixUp
from apr_lib.augment.standard import RandomCropFlip

__all__ = ["APRP", "APRS", "AugMix", "AutoAugment", "CutMix", "Cutout", "MixUp", "RandomCropFlip"]
