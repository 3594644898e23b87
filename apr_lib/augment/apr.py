"""Amplitude-Phase Recombination as transforms (paper section 4): APR-P for pairs (Eq. 5), APR-S for one image (Eq. 6).

Both are `torch.nn.Module`s that take float images in [0, 1] or uint8 images (returned in the same dtype), on any
device, and draw their randomness per sample from an optional `torch.Generator` (on the generator's device; without
one, from torch's default generator of the images' device). APRS takes one image (C, H, W) or a batch (B, C, H, W)
and goes into `torchvision.transforms.v2.Compose` like any v2 transform; APRP pairs images within a batch, so it
takes a batch and its labels, `x, y = aprp(x, y)`, after collation, where v2.MixUp and v2.CutMix go.

Where they go in a pipeline, as released for CIFAR (released code: `datasets/transforms.py`, `core/train.py`): APR-S
on the raw image, before crop and flip; APR-P on the [0, 1] batch before `Normalize` (the released FGSM and ImageNet
code apply it after normalising: `APRP(normalization=(mean, std))`, the profiles' `apr.p_after_normalize`).

Each has two execution paths with one result distribution (`path`): "grouped", the default on a CPU, works on the
images each step changes only (host synchronisations find them) and draws as earlier versions did, so a seed gives
the same images; "sync_free", the default on other devices, computes every step for the whole batch and selects per
image, so a GPU never waits for the host.
"""
from __future__ import annotations

import sys

import torch
from torch import nn

from apr_lib.augment.ops import (OPS, PATHS, _constant, _draw_device, apply_ops, check_ops, check_severity,
                                 default_path, draw_ops, settle_heap, to_pixels)
from apr_lib.spectral import MODES, swap_amplitude_with_partners, swap_stacked

OVERFLOWS = ("wrap", "clip")
DISTRACTERS = ("nested", "independent")
CHOICES = {"path": ("auto",) + PATHS, "overflow": OVERFLOWS, "distracter": DISTRACTERS, "mode": MODES}


def _check_choice(name: str, value: object) -> None:
    if value not in CHOICES[name]:
        raise ValueError(f"{name}={value!r} is not one of {CHOICES[name]}")


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r} must lie in [0, 1]")


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=_draw_device(generator, device)).to(device)


def _check_images(x: object, who: str, shapes: str) -> None:
    if not torch.is_tensor(x) or x.ndim not in (3, 4) or not (x.is_floating_point() or x.dtype == torch.uint8):
        raise ValueError(f"{who} takes float images in [0, 1] or uint8 images shaped {shapes}, got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")


def _quantize(levels: torch.Tensor, overflow: str) -> torch.Tensor:
    """Float levels to the 256 uint8 levels as `ndarray.astype(np.uint8)` truncates them; "wrap" takes values
    outside 0..255 modulo 256 as that cast does, "clip" clamps them."""
    levels = torch.trunc(levels)
    return levels.sub_(torch.floor(levels / 256).mul_(256)) if overflow == "wrap" else levels.clamp_(0, 255)


def to_uint8_levels(x: torch.Tensor, overflow: str) -> torch.Tensor:
    """Quantise a float image in [0, 1] to the 256 uint8 levels, as `ndarray.astype(np.uint8)` would.

    "wrap" is the released code's behaviour (truncation, then values outside 0..255 wrap around modulo
    256: -1.7 -> 255, 256.2 -> 0, 300 -> 44); "clip" clamps to 0..255 first. Both truncate, so they
    differ only where values leave the range.
    """
    _check_choice("overflow", overflow)
    return _quantize(x * 255, overflow) / 255


def _like(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`out` as the same kind of tensor as `x` (a torchvision tv_tensors.Image stays one). torchvision is not imported
    here (2 s of CPU time in every training job): a tv_tensor exists only where the caller imported it."""
    tv_tensors = sys.modules.get("torchvision.tv_tensors")
    return tv_tensors.wrap(out, like=x) if tv_tensors and isinstance(x, tv_tensors.TVTensor) else out


class APRP(nn.Module):
    """APR-P, APR for pairs (Eq. 5): each image takes the amplitude of a partner from the same batch.

    `x, y = aprp(x, y)` on a batch (B, C, H, W) and its labels (B, ...). Pairs come from one random permutation of
    the batch; each sample keeps its phase and its label (the label of the phase image). As released (released code:
    `core/train.py`, `mix_data`), the whole batch is recombined with probability `prob` (otherwise it passes
    unchanged) and, with `keep_clean`, the clean batch is returned too: 2B images and labels, clean first. A single
    image cannot be paired: it raises an error.

    The doubled batch of `keep_clean=True` is what the released training feeds the model, and it matters three ways:
    batch norm computes its statistics over clean and recombined images together; activations (and their memory)
    double; and the released loss is CE(clean) + CE(recombined), the sum of two means, which is
    `F.cross_entropy(model(x), y, reduction="sum") / B` with B the original batch size (half of len(x)).

    Apply it to [0, 1] images before `Normalize`, as the released CIFAR code does. With `normalization=(mean, std)`
    (per channel) the recombination happens in the normalised space (x - mean) / std and the result is mapped back
    to image space, as the released FGSM and ImageNet code apply APR-P to normalised tensors. The two differ by a
    constant per image and channel (normalising moves only the zero spatial frequency) and, with "channel3d"
    and unequal stds, also in the weight of each channel in the 3-D transform.

    Recombined images leave [0, 1] (as released: no clamp); uint8 batches come back rounded and clipped to 0..255.
    """

    def __init__(self, prob: float = 0.6, mode: str = "channel3d", keep_clean: bool = True,
                 normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
                 generator: torch.Generator | None = None, path: str = "auto"):
        super().__init__()
        _check_choice("mode", mode)
        _check_choice("path", path)
        _check_probability("prob", prob)
        self.prob, self.mode, self.keep_clean, self.generator, self.path = prob, mode, keep_clean, generator, path
        self.normalization = normalization

    def _recombine(self, x: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
        if self.normalization is None:
            return swap_amplitude_with_partners(x, partner, self.mode)
        mean, std = (_constant(tuple(v), x.dtype, x.device).view(1, -1, 1, 1) for v in self.normalization)
        return swap_amplitude_with_partners((x - mean) / std, partner, self.mode) * std + mean

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_images(x, "APRP", "(B, C, H, W)")
        if x.ndim != 4:
            raise ValueError(f"APRP pairs each image with another image of its batch, so it takes a batch (B, C, H, W) "
                             f"and its labels, got one image {tuple(x.shape)}: apply it to collated batches (after "
                             f"the DataLoader, where v2.MixUp and v2.CutMix go)")
        images = x.float() / 255 if x.dtype == torch.uint8 else x
        path = default_path(x.device) if self.path == "auto" else self.path
        settle_heap(x.device)
        gen_device = _draw_device(self.generator, x.device)
        recombined = images
        if path == "sync_free":  # draw and recombine always, keep the result or not
            apply = _rand((), self.generator, x.device) < self.prob
            partner = torch.randperm(len(x), generator=self.generator, device=gen_device).to(x.device)
            recombined = torch.where(apply, self._recombine(images, partner), images)
        elif _rand((), self.generator, x.device) < self.prob:
            partner = torch.randperm(len(x), generator=self.generator, device=gen_device).to(x.device)
            recombined = self._recombine(images, partner)
        if x.dtype == torch.uint8:
            recombined = (recombined * 255).round().clamp(0, 255).to(torch.uint8)
        if self.keep_clean:
            return _like(torch.cat([x, recombined]), x), torch.cat([y, y])
        return _like(recombined, x), y

    def extra_repr(self) -> str:
        return (f"prob={self.prob}, mode={self.mode!r}, keep_clean={self.keep_clean}, "
                f"normalization={self.normalization}, path={self.path!r}")


class APRS(nn.Module):
    """APR-S, APR for a single image (Eq. 6), per sample, on one image (C, H, W) or a batch (B, C, H, W).

    1. one random AugMix op (severity 3) is applied: S(x);
    2. with probability 1 - `swap_prob` that image is returned;
    3. otherwise a second random op gives the distracter S~(x) = op2(S(x)) ("nested", as released) or
       op2(x) ("independent"), and with equal probability the result takes the amplitude of one view
       and the phase of the other; it is quantised to uint8 levels, values outside 0..255 clipped (`overflow="clip"`,
       the paper's intent) or wrapped around as the released code's uint8 cast does (`overflow="wrap"`).

    `APRS.released()` is the released code's APR-S (released code: `datasets/APR.py`), wrap-around included; the
    profiles name `apr.s_overflow` explicitly. It goes first in a per-image pipeline, before crop and flip, as
    released: `v2.Compose([APRS(), v2.RandomCrop(32, padding=4, fill=128), v2.RandomHorizontalFlip(), ...])`.
    A uint8 image is rounded to uint8 after each op, as PIL ops return uint8 images.
    """

    def __init__(self, severity: float = 3, ops: tuple[str, ...] = OPS, mode: str = "channel3d",
                 swap_prob: float = 0.5, distracter: str = "nested", overflow: str = "clip",
                 generator: torch.Generator | None = None, path: str = "auto"):
        super().__init__()
        _check_choice("mode", mode)
        _check_choice("distracter", distracter)
        _check_choice("overflow", overflow)
        _check_choice("path", path)
        _check_probability("swap_prob", swap_prob)
        check_severity(severity)
        self.severity, self.ops, self.mode = severity, check_ops(ops), mode
        self.swap_prob, self.distracter, self.overflow = swap_prob, distracter, overflow
        self.generator, self.path = generator, path

    @classmethod
    def released(cls, **kwargs) -> APRS:
        """The released code's APR-S: the defaults with the uint8 wrap-around (`overflow="wrap"`)."""
        return cls(**{"overflow": "wrap", **kwargs})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "APRS", "(C, H, W) or (B, C, H, W)")
        batch = x if x.ndim == 4 else x[None]
        if batch.shape[1] not in (1, 3):
            raise ValueError(f"APRS's ops are PIL's for gray or RGB images: C = 1 or 3, got {tuple(x.shape)}")
        uint8 = batch.dtype == torch.uint8
        pixels = batch.float() if uint8 else to_pixels(batch)
        path = default_path(x.device) if self.path == "auto" else self.path
        settle_heap(x.device)
        out = self._grouped(pixels, uint8) if path == "grouped" else self._sync_free(pixels, uint8)
        out = out.to(torch.uint8) if uint8 else (out / 255).to(batch.dtype)
        return _like(out if x.ndim == 4 else out[0], x)

    def _ops(self, pixels: torch.Tensor, uint8: bool, path: str) -> torch.Tensor:
        code, level = draw_ops(len(pixels), pixels.shape[-2:], self.severity, self.ops, self.generator, path,
                               pixels.device)
        out = apply_ops(pixels, code.to(pixels.device), level.to(pixels), self.ops, path)
        return out.round() if uint8 else out

    def _recombine(self, view: torch.Tensor, distracter: torch.Tensor, phase_from_view: torch.Tensor) -> torch.Tensor:
        """Amplitude of one, phase of the other, per image (the released code builds both and keeps one)."""
        pair = torch.empty((2, *view.shape), dtype=view.dtype, device=view.device)
        torch.where(phase_from_view, view, distracter, out=pair[0])
        torch.where(phase_from_view, distracter, view, out=pair[1])
        return _quantize(swap_stacked(pair, self.mode), self.overflow)

    def _grouped(self, pixels: torch.Tensor, uint8: bool) -> torch.Tensor:
        single = self._ops(pixels, uint8, "grouped")
        swapped = (_rand((len(pixels),), self.generator, pixels.device) < self.swap_prob).nonzero().flatten()
        if len(swapped) == 0:
            return single
        view = single.index_select(0, swapped)
        source = view if self.distracter == "nested" else pixels.index_select(0, swapped)
        distracter = self._ops(source, uint8, "grouped")
        phase_from_view = (_rand((len(view),), self.generator, pixels.device) < 0.5)[:, None, None, None]
        return single.index_copy_(0, swapped, self._recombine(view, distracter, phase_from_view))

    def _sync_free(self, pixels: torch.Tensor, uint8: bool) -> torch.Tensor:
        single = self._ops(pixels, uint8, "sync_free")
        swapped = (_rand((len(pixels),), self.generator, pixels.device) < self.swap_prob)[:, None, None, None]
        distracter = self._ops(single if self.distracter == "nested" else pixels, uint8, "sync_free")
        phase_from_view = (_rand((len(pixels),), self.generator, pixels.device) < 0.5)[:, None, None, None]
        return torch.where(swapped, self._recombine(single, distracter, phase_from_view), single)

    def extra_repr(self) -> str:
        return (f"severity={self.severity}, ops={len(self.ops)} ops, mode={self.mode!r}, swap_prob={self.swap_prob}, "
                f"distracter={self.distracter!r}, overflow={self.overflow!r}, path={self.path!r}")
