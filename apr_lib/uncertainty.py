"""How sure a comparison is: 95% intervals that hold both the training runs' variation (seeds) and the test images'.

A statistic of trained models (an error rate, an AUROC, a share of maps on the object) varies for two reasons: the
run's randomness (its seed: initialisation, data order, augmentations) and which test images happened to be drawn.
An `Estimate` holds a statistic per seed, on all test images (`point`, shape (S,)) and on each of `REPLICATES`
bootstrap resamples of those images (`replicates`, (S, B)). The resamples depend only on the number of images and a
salt (`image_weights`), so two estimates on the same test images are resampled alike: a difference between two
methods is paired over the test images.

Two levels make an interval:
- images: the bootstrap replicates of the mean over seeds (each image drawn with replacement; an AUROC resamples
  its in-distribution and its OOD images and is recomputed);
- seeds: with S seeds a resampled mean of seeds has too little spread (S = 3: a 95% percentile interval covered the
  truth 79% of the time in a simulation), so this level is the sampling distribution of a mean of S normal values,
  Student's t with S - 1 degrees of freedom (two independent sets of runs: Welch's, with the Welch-Satterthwaite
  degrees of freedom), drawn once per replicate and added to it.
The 95% interval is the 2.5th and 97.5th percentile of the replicates; the estimate is the mean over seeds on all
images. A set of runs with one seed has no estimate of its training variation: the interval then holds the images'
variation only, and says so (`Interval.seed_variation`). A statistic of no training run (a fixed transform, a
probe on image features) has no seed level.

NumPy only; tests/test_uncertainty.py checks the coverage on synthetic data with known answers.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

REPLICATES = 1000
LEVEL = 0.95
SEED_VARIATION = ("included", "unknown", "none")  # Interval.seed_variation: see `Interval`


@functools.lru_cache(maxsize=16)
def image_weights(n: int, salt: int = 0, replicates: int = REPLICATES) -> np.ndarray:
    """(replicates, n) bootstrap counts, each row a resample of n images with replacement (rows sum to n).

    The same (n, salt) always gives the same rows, so statistics of the same images are resampled alike (paired).
    Use a different salt for a second set of images of the same size (the OOD side of an AUROC).
    """
    if n < 1:
        raise ValueError(f"need at least one image to resample, got n={n}")
    rng = np.random.default_rng([n, salt, replicates])
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(np.float32)
    weights.flags.writeable = False
    return weights


@dataclass(frozen=True)
class Estimate:
    """A statistic per seed: `point` (S,) on all images, `replicates` (S, B) on the bootstrap resamples of the images."""
    point: np.ndarray
    replicates: np.ndarray

    def __post_init__(self):
        point, replicates = np.atleast_1d(np.asarray(self.point, float)), np.atleast_2d(np.asarray(self.replicates, float))
        if replicates.shape[0] != point.shape[0] or point.ndim != 1:
            raise ValueError(f"point {point.shape} and replicates {replicates.shape}: expected (S,) and (S, B)")
        object.__setattr__(self, "point", point)
        object.__setattr__(self, "replicates", replicates)

    @property
    def seeds(self) -> int:
        return len(self.point)

    @property
    def value(self) -> float:
        """The estimate: the mean over seeds on all images."""
        return float(self.point.mean())

    @classmethod
    def fixed(cls, value: float, replicates: int = REPLICATES) -> "Estimate":
        """A known constant (a chance level, a uniform map's share): no seed and no image variation."""
        return cls(np.array([value]), np.full((1, replicates), value))


def mean_of(values: np.ndarray, salt: int = 0) -> Estimate:
    """The mean over images of per-image values (S, N), one row per seed (e.g. 100 * correct)."""
    values = np.atleast_2d(np.asarray(values, np.float64))
    n = values.shape[1]
    weights = image_weights(n, salt)
    return Estimate(values.mean(1), values.astype(np.float32) @ weights.T / n)


def auroc_of(score_in: np.ndarray, score_out: np.ndarray, salt_in: int = 0, salt_out: int = 1) -> Estimate:
    """AUROC (%) of separating in-distribution from OOD images by a score (higher = more in-distribution), per seed:
    rows of `score_in` (S, N_in) and `score_out` (S, N_out). Ties count one half. Each replicate resamples both
    sets of images (with `image_weights` of their salts) and recomputes the AUROC."""
    score_in, score_out = np.atleast_2d(score_in), np.atleast_2d(score_out)
    w_in, w_out = image_weights(score_in.shape[1], salt_in), image_weights(score_out.shape[1], salt_out)
    n_in, n_out = score_in.shape[1], score_out.shape[1]
    points, replicates = [], []
    for s_in, s_out in zip(score_in, score_out):
        order = np.argsort(s_out, kind="stable")
        sorted_out = s_out[order]
        below, not_above = np.searchsorted(sorted_out, s_in, "left"), np.searchsorted(sorted_out, s_in, "right")
        # OOD weight below each ID score, and tied with it, from cumulative sums of the sorted OOD weights
        cumulative = np.zeros((w_out.shape[0], n_out + 1), np.float32)  # counts: exact in float32
        np.cumsum(w_out[:, order], axis=1, out=cumulative[:, 1:])
        credit = cumulative[:, below] + 0.5 * (cumulative[:, not_above] - cumulative[:, below])  # (B, N_in)
        replicates.append(100 * np.einsum("bi,bi->b", w_in, credit) / (n_in * n_out))
        points.append(100 * (below.sum() + 0.5 * (not_above - below).sum()) / (n_in * n_out))
    return Estimate(np.array(points), np.array(replicates))


def combine(function: Callable[..., np.ndarray], *estimates: Estimate) -> Estimate:
    """A statistic computed seed by seed from other statistics of the same seeds (e.g. a difference of two measures of
    the same models, a slope over a sweep run with each seed): `function` gets arrays of equal shape, elementwise."""
    seeds = {e.seeds for e in estimates}
    if len(seeds) != 1:
        raise ValueError(f"combine needs estimates of the same seeds, got {sorted(seeds)} seeds")
    return Estimate(function(*(e.point for e in estimates)), function(*(e.replicates for e in estimates)))


def mean_over(estimates: list[Estimate]) -> Estimate:
    """The mean of several statistics of the same seeds (e.g. an AUROC averaged over OOD sets)."""
    return combine(lambda *values: sum(values) / len(values), *estimates)


@dataclass(frozen=True)
class Interval:
    """A statistic or a difference of two, with its 95% interval.

    `seeds`: the seeds behind each side. `seed_variation`: "included" (the interval holds the runs' variation),
    "unknown" (a side has one seed: the interval holds the images' variation only), "none" (no trained run is
    involved, or the same runs on both sides of a within-run comparison with one seed)."""
    estimate: float
    low: float
    high: float
    seeds: tuple[int, ...]
    seed_variation: str

    def rounded(self, digits: int) -> "Interval":
        """Rounded to `digits` decimals, the bounds outwards, so the printed interval contains the exact one."""
        scale = 10.0 ** digits
        return Interval(round(self.estimate, digits), np.floor(self.low * scale) / scale,
                        np.ceil(self.high * scale) / scale, self.seeds, self.seed_variation)


def _rng(salt: int) -> np.random.Generator:
    return np.random.default_rng([0x5EED, salt])


def _percentiles(replicates: np.ndarray) -> tuple[float, float]:
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def interval(estimate: Estimate, trained: bool = True, salt: int = 0) -> Interval:
    """The 95% interval of one statistic's mean over seeds (`trained`: whether it is a statistic of trained runs,
    whose seeds vary; False for a fixed transform or probe)."""
    replicates = estimate.replicates.mean(0)
    variation = "none" if not trained else ("included" if estimate.seeds > 1 else "unknown")
    if variation == "included":
        standard_error = estimate.point.std(ddof=1) / np.sqrt(estimate.seeds)
        replicates = replicates + standard_error * _rng(salt).standard_t(estimate.seeds - 1, len(replicates))
    return Interval(estimate.value, *_percentiles(replicates), (estimate.seeds,), variation)


def difference(first: Estimate, second: Estimate, trained: bool = True, salt: int = 0) -> Interval:
    """The 95% interval of first - second, two statistics of independent sets of runs on the same test images
    (paired over the images, Welch over the seeds). A `fixed` second side compares with a constant."""
    replicates = first.replicates.mean(0) - second.replicates.mean(0)
    sides = [e for e in (first, second) if not _is_fixed(e)]
    if not trained:
        variation = "none"
    elif any(e.seeds < 2 for e in sides):
        variation = "unknown"
    else:
        variation = "included"
        variances = [e.point.var(ddof=1) / e.seeds for e in sides]
        total = sum(variances)
        if total > 0:
            freedom = total ** 2 / sum(v ** 2 / (e.seeds - 1) for v, e in zip(variances, sides))
            replicates = replicates + np.sqrt(total) * _rng(salt).standard_t(freedom, len(replicates))
    return Interval(first.value - second.value, *_percentiles(replicates), tuple(e.seeds for e in sides), variation)


def _is_fixed(estimate: Estimate) -> bool:
    return estimate.seeds == 1 and bool(np.all(estimate.replicates == estimate.point[0]))
