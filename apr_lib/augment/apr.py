"""Amplitude-Phase Recombination as batched augmentations (paper section 4).

Both classes take float batches (B, C, H, W) in [0, 1] on any device and draw their randomness per
sample from an optional `torch.Generator` (on the generator's device, then moved), so the same seed
gives the same augmentation on CPU and GPU.

Defaults follow the released code (facts 1.2, 1.3), which produced the paper's numbers; each
difference from the paper's text is a named option.
"""
from __future__ import annotations

import torch

from apr_lib.augment.ops import OPS, random_op
from apr_lib.spectral import MODES, swap_amplitude, swap_amplitude_with_partners

OVERFLOWS = ("wrap", "clip")
DISTRACTERS = ("nested", "independent")


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else "cpu"
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def _check_choice(name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {allowed}")


def _check_batch(x: torch.Tensor) -> None:
    if not torch.is_tensor(x) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"expected a float batch shaped (B, C, H, W) in [0, 1], got "
                         f"{getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}")


def to_uint8_levels(x: torch.Tensor, overflow: str) -> torch.Tensor:
    """Quantise a float image in [0, 1] to the 256 uint8 levels, as `ndarray.astype(np.uint8)` would.

    "wrap" is the released code's behaviour (truncation, then values outside 0..255 wrap around modulo
    256: -1.7 -> 255, 256.2 -> 0, 300 -> 44); "clip" clamps to 0..255 first. Both truncate, so they
    differ only where values leave the range.
    """
    _check_choice("overflow", overflow, OVERFLOWS)
    levels = torch.trunc(x * 255)
    levels = torch.remainder(levels, 256) if overflow == "wrap" else levels.clamp(0, 255)
    return levels / 255


class APRP:
    """APR-P, APR for pairs (Eq. 5): each image takes the amplitude of a partner from the same batch.

    Pairs come from one random permutation of the batch; each sample keeps its phase and its label
    (the label of the phase image). As released, the whole batch is recombined with probability `prob`
    (otherwise it passes unchanged) and, with `keep_clean`, the clean batch is returned too:
    `x, y = aprp(x, y)` then gives 2B images and labels (clean first).

    With `normalization=(mean, std)` (per channel) the recombination happens in the normalised space
    (x - mean) / std and the result is mapped back to image space, as the released FGSM and ImageNet code
    apply APR-P to normalised tensors (the CIFAR code: to [0, 1] images, the default). The two differ by a
    constant per image and channel (normalising moves only the zero spatial frequency) and, with "channel3d"
    and unequal stds, also in the weight of each channel in the 3-D transform.
    """

    def __init__(self, prob: float = 0.6, mode: str = "channel3d", keep_clean: bool = True,
                 normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
                 generator: torch.Generator | None = None):
        _check_choice("mode", mode, MODES)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob={prob!r} must lie in [0, 1]")
        self.prob, self.mode, self.keep_clean, self.generator = prob, mode, keep_clean, generator
        self.normalization = normalization

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_batch(x)
        recombined = x
        if _rand((), self.generator, x.device) < self.prob:
            gen_device = self.generator.device if self.generator is not None else "cpu"
            partner = torch.randperm(len(x), generator=self.generator, device=gen_device).to(x.device)
            if self.normalization is None:
                recombined = swap_amplitude_with_partners(x, partner, self.mode)
            else:
                mean, std = (torch.tensor(v, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
                             for v in self.normalization)
                normalized = (x - mean) / std
                recombined = swap_amplitude_with_partners(normalized, partner, self.mode) * std + mean
        if self.keep_clean:
            return torch.cat([x, recombined]), torch.cat([y, y])
        return recombined, y

    def __repr__(self) -> str:
        return (f"APRP(prob={self.prob}, mode={self.mode!r}, keep_clean={self.keep_clean}, "
                f"normalization={self.normalization})")


class APRS:
    """APR-S, APR for a single image (Eq. 6), per sample as released (facts 1.3).

    1. one random AugMix op (severity 3) is applied: S(x);
    2. with probability 1 - `swap_prob` that image is returned;
    3. otherwise a second random op gives the distracter S~(x) = op2(S(x)) ("nested", as released) or
       op2(x) ("independent"), and with equal probability the result takes the amplitude of one view
       and the phase of the other; it is quantised to uint8 levels with `overflow` ("wrap" as released).
    """

    def __init__(self, severity: int = 3, ops: tuple[str, ...] = OPS, mode: str = "channel3d",
                 swap_prob: float = 0.5, distracter: str = "nested", overflow: str = "wrap",
                 generator: torch.Generator | None = None):
        _check_choice("mode", mode, MODES)
        _check_choice("distracter", distracter, DISTRACTERS)
        _check_choice("overflow", overflow, OVERFLOWS)
        if not 0.0 <= swap_prob <= 1.0:
            raise ValueError(f"swap_prob={swap_prob!r} must lie in [0, 1]")
        self.severity, self.ops, self.mode = severity, tuple(ops), mode
        self.swap_prob, self.distracter, self.overflow, self.generator = swap_prob, distracter, overflow, generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x)
        single = random_op(x, self.severity, self.ops, self.generator)
        swapped = (_rand((len(x),), self.generator, x.device) < self.swap_prob).nonzero().flatten()
        if len(swapped) == 0:
            return single
        view = single.index_select(0, swapped)
        source = view if self.distracter == "nested" else x.index_select(0, swapped)
        distracter = random_op(source, self.severity, self.ops, self.generator)
        phase_from_view = (_rand((len(view),), self.generator, x.device) < 0.5)[:, None, None, None]
        phase_image = torch.where(phase_from_view, view, distracter)
        amplitude_image = torch.where(phase_from_view, distracter, view)
        recombined = to_uint8_levels(swap_amplitude(phase_image, amplitude_image, self.mode), self.overflow)
        return single.index_copy_(0, swapped, recombined.to(single.dtype))

    def __repr__(self) -> str:
        return (f"APRS(severity={self.severity}, ops={len(self.ops)} ops, mode={self.mode!r}, "
                f"swap_prob={self.swap_prob}, distracter={self.distracter!r}, overflow={self.overflow!r})")
