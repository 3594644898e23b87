"""Figure 5: how distinct the high-frequency amplitude spectra of two image sets are, by t-SNE and by a linear probe.

Features of an image: log(1 + |DFT|) (2-D DFT of each channel) at every frequency at least `radius` bins from the
zero frequency (apr_lib.spectral's "high" band), flattened. Both the t-SNE (scikit-learn) and the probe see them
standardised per feature. The probe is a logistic regression scored by stratified k-fold cross-validation: its
accuracy (50% = the two sets cannot be told apart linearly) is the number a t-SNE picture cannot give.

Both run on one CPU thread: t-SNE's OpenMP threads spin-wait, and on a shared CPU (the DAG runs jobs side by side)
two threads took 16 s where one took 1.8 s (200 points, 2 cores).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from apr_lib.corruptions import corrupt_batch
from apr_lib.report import claim
from apr_lib.spectral import amplitude_phase, band_mask

FOLDS = 5  # cross-validation folds of the probe
# Thresholds that turn Figure 5's two statements into verdicts on the probe's accuracy (chance: 50%).
SEPARABLE = 90.0          # (a) "so different": the probe tells the sets apart at least this often
INDISTINGUISHABLE = 60.0  # (b) "not able to distinguish": the probe does no better than this


def high_frequency_amplitude(images: torch.Tensor, radius: float) -> np.ndarray:
    """(N, F) log-amplitudes of the frequencies at radius >= `radius` of uint8 images (N, C, H, W)."""
    amplitude, _ = amplitude_phase(images.double() / 255, mode="per_channel")
    mask = band_mask(images.shape[-2], images.shape[-1], "high", (radius, radius))
    return torch.log1p(amplitude[..., mask]).flatten(1).numpy()


def with_gaussian_noise(images: torch.Tensor, severity: int, seed: int) -> torch.Tensor:
    """uint8 images (N, C, H, W) with apr_lib.corruptions' Gaussian noise (the -C constants) at `severity`."""
    hwc = images.permute(0, 2, 3, 1).numpy()
    return torch.from_numpy(corrupt_batch(hwc, "gaussian_noise", severity, rng=seed)).permute(0, 3, 1, 2)


def two_sets(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features stacked (first set, then second) and labels (1 for the first set, 0 for the second)."""
    return np.concatenate([first, second]), np.concatenate([np.ones(len(first)), np.zeros(len(second))])


def tsne_embedding(first: np.ndarray, second: np.ndarray, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of both sets' standardised features, rows in the order of `two_sets`."""
    features, _ = two_sets(first, second)
    tsne = TSNE(n_components=2, perplexity=min(perplexity, (len(features) - 1) / 3), init="pca",
                learning_rate="auto", random_state=seed)
    with threadpool_limits(limits=1):
        return tsne.fit_transform(StandardScaler().fit_transform(features))


def probe_accuracy(first: np.ndarray, second: np.ndarray, seed: int) -> tuple[float, float]:
    """Mean and standard deviation over FOLDS cross-validation folds of a linear probe's accuracy (%)."""
    features, labels = two_sets(first, second)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    with threadpool_limits(limits=1):
        scores = cross_val_score(probe, features, labels, cv=StratifiedKFold(FOLDS, shuffle=True, random_state=seed))
    return 100 * float(scores.mean()), 100 * float(scores.std())


def separability_table(comparisons: dict[str, tuple[np.ndarray, np.ndarray]], seed: int) -> pd.DataFrame:
    """One row per comparison (name -> features of the two sets): the sets' sizes and the probe's accuracy (%)."""
    rows = []
    for name, (first, second) in comparisons.items():
        mean, sd = probe_accuracy(first, second, seed)
        rows.append({"comparison": name, "n_first": len(first), "n_second": len(second), "features": first.shape[1],
                     "probe_accuracy": mean, "probe_sd": sd, "chance": 50.0})
    return pd.DataFrame(rows)


def fig5_claims(table: pd.DataFrame, corrupted: str, ood: str, control: str, ood_source: str) -> list[dict]:
    """Figure 5's two statements (section 3.1), as probe accuracies of the rows named `corrupted` and `ood`
    (`ood_source`: where the OOD images come from, for the note)."""
    accuracy = table.set_index("comparison")["probe_accuracy"]
    note = (f"logistic regression on standardised log-amplitudes, {table['n_first'].iloc[0]:,} + "
            f"{table['n_second'].iloc[0]:,} images, {FOLDS}-fold cross-validated; chance 50%; control ({control}): "
            f"{accuracy[control]:.1f}%")
    return [
        claim("The high-frequency amplitude spectra of clean samples and their Gaussian-noise versions are very "
              "different, although the noise is nearly invisible (Figure 5a).", "Section 3.1, Figure 5(a)",
              f"probe accuracy %, {corrupted}; holds at >= {SEPARABLE:.0f}", f"{accuracy[corrupted]:.1f}",
              "t-SNE picture (no number)", bool(accuracy[corrupted] >= SEPARABLE), note),
        claim("The high-frequency amplitude spectra of in-distribution and OOD samples cannot be distinguished, "
              "even though they come from different categories (Figure 5b).", "Section 3.1, Figure 5(b)",
              f"probe accuracy %, {ood}; holds at <= {INDISTINGUISHABLE:.0f}", f"{accuracy[ood]:.1f}",
              "t-SNE picture (no number)", bool(accuracy[ood] <= INDISTINGUISHABLE), f"{note}; OOD: {ood_source}"),
    ]
