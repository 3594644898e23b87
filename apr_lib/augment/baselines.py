"""The augmentation baselines of Table 1 as batched callables with per-sample randomness.

Like APRP and APRS, each takes a batch (B, C, H, W) on any device and draws its randomness from an optional
`torch.Generator` (on the generator's device, then moved), so a seed gives the same augmentation on CPU and GPU.

- Cutout: written here (one masked square per image, batched);
- MixUp, CutMix: torchvision.transforms.v2 (one draw per batch is the methods' own recipe);
- AutoAugment: torchvision.transforms.v2 with the CIFAR-10 policy, called once per image so that each image
  gets its own sub-policy (v2 draws one for a whole batch);
- AugMix: written here on the batched AugMix ops of `ops.py` (v2.AugMix also applies one draw to a whole batch).

torchvision and torch.distributions draw from torch's global CPU generator. `global_rng_seeded_from` runs them
from a seed drawn from the `generator`, and restores the global state afterwards, so those draws are
reproducible too and do not disturb anything else that uses the global RNG.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch.distributions import Beta, Dirichlet

from apr_lib.augment.ops import OPS, _draw_device, random_op

if TYPE_CHECKING:
    import torchvision


def _v2():
    """torchvision.transforms.v2, imported when a transform of it is built: importing torchvision costs about 2 s of
    CPU time, which every training job of the DAG would pay (apr_lib.data)."""
    from torchvision.transforms import v2  # slow to import: see above
    return v2


@contextmanager
def global_rng_seeded_from(generator: torch.Generator | None):
    """Inside the block, torch's global CPU RNG starts from a seed drawn from `generator` (unchanged if None)."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(2**63 - 1, (), generator=generator, device=generator.device))
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # CPU only: torch.manual_seed would also reseed CUDA for good
        yield


def _randint(high: int, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.randint(high, (n,), generator=generator, device=_draw_device(generator)).to(device)


class Cutout:
    """Cutout (DeVries & Taylor 2017): one square per image, its centre uniform over the image, clipped at the border.

    The side is `side_fraction` of the image side: 16 px on 32 px CIFAR images as in the paper, 14 px on 28 px.
    As in the reference code (rows clip(y - side // 2) .. clip(y + side // 2)), an odd side loses one pixel.
    The reference zeroes the normalised image, i.e. fills the square with the dataset mean: pass that mean
    (per channel, in [0, 1]) as `fill`.
    """

    def __init__(self, side_fraction: float = 0.5, fill: tuple[float, ...] = (0.0,),
                 generator: torch.Generator | None = None):
        if not 0.0 < side_fraction <= 1.0:
            raise ValueError(f"side_fraction={side_fraction!r} must lie in (0, 1]")
        self.side_fraction, self.fill, self.generator = side_fraction, tuple(fill), generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        half = round(self.side_fraction * min(h, w)) // 2
        centre_y = _randint(h, b, self.generator, x.device)[:, None]
        centre_x = _randint(w, b, self.generator, x.device)[:, None]
        rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        in_rows = (rows >= centre_y - half) & (rows < centre_y + half)  # (B, H)
        in_cols = (cols >= centre_x - half) & (cols < centre_x + half)  # (B, W)
        square = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
        fill = torch.tensor(self.fill, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return torch.where(square, fill, x)

    def __repr__(self) -> str:
        return f"Cutout(side_fraction={self.side_fraction}, fill={self.fill})"


class _LabelMixing:
    """A torchvision.transforms.v2 batch transform that mixes images and labels, seeded from `generator`.

    `x, targets = mixing(x, labels)` gives soft targets (B, num_classes) for a cross-entropy with probabilities.
    v2 pairs each image with its neighbour in the batch (roll by one), so batches must come in random order.
    """
    transform_name: str  # of torchvision.transforms.v2

    def __init__(self, num_classes: int, alpha: float = 1.0, generator: torch.Generator | None = None):
        self.transform = getattr(_v2(), self.transform_name)(alpha=alpha, num_classes=num_classes)
        self.alpha, self.num_classes, self.generator = alpha, num_classes, generator

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with global_rng_seeded_from(self.generator):
            return self.transform(x, labels)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes}, alpha={self.alpha})"


class MixUp(_LabelMixing):
    """MixUp (Zhang et al. 2018): one weight lambda ~ Beta(alpha, alpha) per batch, images and one-hot labels
    mixed with the same lambda."""
    transform_name = "MixUp"


class CutMix(_LabelMixing):
    """CutMix (Yun et al. 2019): one box per batch (area fraction 1 - lambda, lambda ~ Beta(alpha, alpha), clipped
    at the border) pasted from the neighbouring image; labels mixed by the pasted area."""
    transform_name = "CutMix"


class AutoAugment:
    """torchvision's v2.AutoAugment (default: the CIFAR-10 policy) with its own sub-policy for every image.

    Takes and returns uint8 batches (B, C, H, W). v2 draws one sub-policy (and its probabilities and signs) per
    call, so images are passed one at a time: of its ~25 x 4 x 4 possible settings a batch of 128 images has
    nearly as many distinct ones as images, so grouping images by setting would save little.
    """

    def __init__(self, policy: "torchvision.transforms.v2.AutoAugmentPolicy | None" = None,
                 generator: torch.Generator | None = None):
        v2 = _v2()
        policy = v2.AutoAugmentPolicy.CIFAR10 if policy is None else policy
        self.transform = v2.AutoAugment(policy)
        self.policy, self.generator = policy, generator

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"AutoAugment takes uint8 batches (B, C, H, W), got {images.dtype} {tuple(images.shape)}")
        with global_rng_seeded_from(self.generator):
            return torch.stack([self.transform(image) for image in images])

    def __repr__(self) -> str:
        return f"AutoAugment(policy={self.policy})"


class AugMix:
    """AugMix's augment-and-mix (Hendrycks et al. 2020, section 3), per image, on floats in [0, 1].

    Each image gets `width` chains of ops (depth uniform in `depth_range` per chain; each op drawn from `ops` with
    its own level at `severity`), chain weights w ~ Dirichlet(alpha, ..., alpha) and a mixing weight
    m ~ Beta(alpha, alpha): mixed = (1 - m) x + m sum_i w_i chain_i(x). The reference mixes normalised images;
    normalisation is affine, so mixing in [0, 1] is the same. Call it on a batch of two copies to get the two
    views of AugMix's Jensen-Shannon loss.
    """

    def __init__(self, severity: float = 3, width: int = 3, depth_range: tuple[int, int] = (1, 3),
                 alpha: float = 1.0, ops: tuple[str, ...] = OPS, generator: torch.Generator | None = None):
        low, high = depth_range
        if width < 1 or not 1 <= low <= high:
            raise ValueError(f"width={width!r} must be >= 1 and depth_range={depth_range!r} a range 1 <= min <= max")
        if alpha <= 0:
            raise ValueError(f"alpha={alpha!r} must be > 0")
        self.severity, self.width, self.depth_range = severity, width, (low, high)
        self.alpha, self.ops, self.generator = alpha, tuple(ops), generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b = len(x)
        low, high = self.depth_range
        chains = x.repeat(self.width, 1, 1, 1)  # chain k of image i at k * b + i
        depth = torch.randint(low, high + 1, (len(chains),), generator=self.generator,
                              device=_draw_device(self.generator)).cpu()
        for step in range(high):
            active = (depth > step).nonzero().flatten().to(x.device)
            chains.index_copy_(0, active, random_op(chains.index_select(0, active), self.severity, self.ops,
                                                    self.generator))
        with global_rng_seeded_from(self.generator):
            weights = Dirichlet(torch.full((self.width,), float(self.alpha))).sample((b,))
            mix = Beta(float(self.alpha), float(self.alpha)).sample((b,))
        weights = weights.T.to(x).view(self.width, b, 1, 1, 1)
        mix = mix.to(x).view(b, 1, 1, 1)
        return (1 - mix) * x + mix * (weights * chains.view(self.width, *x.shape)).sum(0)

    def __repr__(self) -> str:
        return (f"AugMix(severity={self.severity}, width={self.width}, depth_range={self.depth_range}, "
                f"alpha={self.alpha}, ops={len(self.ops)} ops)")
