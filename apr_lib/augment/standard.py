"""The "Standard" augmentation of Table 1: random crop with padding and random horizontal flip, batched.

Every sample gets its own crop offset and flip, drawn from an optional `torch.Generator`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class RandomCropFlip:
    """Pad by `padding` pixels with `fill` (in [0, 1]), crop back to the original size at a random
    offset per sample, then flip left-right with probability 0.5 per sample (if `flip`)."""

    def __init__(self, padding: int = 4, flip: bool = True, fill: float = 0.0,
                 generator: torch.Generator | None = None):
        if padding < 0:
            raise ValueError(f"padding={padding!r} must be >= 0")
        self.padding, self.flip, self.fill, self.generator = padding, flip, fill, generator

    def _randint(self, high: int, n: int, device: torch.device) -> torch.Tensor:
        gen_device = self.generator.device if self.generator is not None else "cpu"
        return torch.randint(high, (n,), generator=self.generator, device=gen_device).to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.padding
        padded = F.pad(x, (p, p, p, p), value=self.fill) if p else x
        top = self._randint(2 * p + 1, b, x.device) if p else torch.zeros(b, dtype=torch.long, device=x.device)
        left = self._randint(2 * p + 1, b, x.device) if p else torch.zeros_like(top)
        cols = left[:, None] + torch.arange(w, device=x.device)  # (B, W)
        if self.flip:
            flipped = self._randint(2, b, x.device).bool()[:, None]
            cols = torch.where(flipped, cols.flip(-1), cols)
        rows = top[:, None] + torch.arange(h, device=x.device)  # (B, H)
        # Crop and flip as one gather of each sample's pixels from its flattened padded image.
        index = (rows[:, :, None] * (w + 2 * p) + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
        return padded.flatten(2).gather(2, index).view(b, c, h, w)

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding}, flip={self.flip}, fill={self.fill})"
