"""Figures 2/3: images whose amplitude spectra are swapped, and which source image a model's prediction follows.

For a pair (x_p, x_a), the swapped image iDFT(A_{x_a} * exp(i P_{x_p})) keeps the phase of x_p and takes the
amplitude of x_a (Eq. 5): `apr_lib.ood.swapped`, clipped to [0, 1] and stored as uint8 like any image (the
corollary2 OOD set is made by the same function).

Beyond the paper's hand-picked examples, `follow_per_pair` tells for many random pairs whether a model's prediction
on the swapped image equals its prediction on the amplitude image or on the phase image, and `follow_stats` counts
them. Only pairs whose two source images the model assigns different classes count (otherwise "follows" is
undefined).
"""
from __future__ import annotations

import numpy as np
import torch

from apr_lib.evaluate import predict
from apr_lib.ood import swapped

HIGH_CONFIDENCE = 0.9  # "high confidence" for Corollary 2: softmax probability of the amplitude image's label
# The three kinds of pairs of the statistics table, as (phase image + amplitude image).
PAIR_LABELS = {"test": "test phase + test amplitude (Fig. 2, 3a-b)",
               "corollary2": "OOD phase + test amplitude (Fig. 3c-d, Corollary 2)",
               "ood_amplitude": "test phase + OOD amplitude"}


def probabilities(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Softmax probabilities (N, K) of uint8 images."""
    return predict(model, images, batch_size).softmax(1)


def random_pairs(n_first: int, n_second: int, n: int, seed: int,
                 first_labels: torch.Tensor | None = None, second_labels: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` random index pairs (i into the first set, j into the second); with labels, only pairs whose labels differ."""
    if first_labels is not None and len(set(first_labels.tolist()) | set(second_labels.tolist())) < 2:
        raise ValueError("every image has the same label: no pair of different labels exists")
    generator = torch.Generator().manual_seed(seed)
    first, second = [], []
    while sum(len(f) for f in first) < n:
        i = torch.randint(n_first, (2 * n,), generator=generator)
        j = torch.randint(n_second, (2 * n,), generator=generator)
        keep = torch.ones(2 * n, dtype=torch.bool) if first_labels is None else first_labels[i] != second_labels[j]
        first.append(i[keep]); second.append(j[keep])
    return torch.cat(first)[:n], torch.cat(second)[:n]


def follow_per_pair(model: torch.nn.Module, phase_images: torch.Tensor, amplitude_images: torch.Tensor, mode: str,
                    amplitude_labels: torch.Tensor | None = None, batch_size: int = 500) -> dict[str, np.ndarray]:
    """Per pair (booleans): whether the model tells its two sources apart (`told_apart`) and, among those, whether its
    prediction on the swapped image follows the amplitude image or the phase image; with `amplitude_labels` (the true
    labels of in-distribution amplitude images), whether the swapped image gets that label with probability >=
    HIGH_CONFIDENCE (Corollary 2)."""
    on_phase = probabilities(model, phase_images, batch_size).argmax(1)
    on_amplitude = probabilities(model, amplitude_images, batch_size).argmax(1)
    probs = probabilities(model, swapped(phase_images, amplitude_images, mode), batch_size)
    on_swap = probs.argmax(1)
    told_apart = on_phase != on_amplitude
    pairs = {"told_apart": told_apart, "follows_amplitude": told_apart & (on_swap == on_amplitude),
             "follows_phase": told_apart & (on_swap == on_phase),
             "neither": told_apart & (on_swap != on_amplitude) & (on_swap != on_phase),
             "confidence": probs.max(1).values}
    if amplitude_labels is not None:
        pairs["amplitude_label_high_confidence"] = probs.gather(1, amplitude_labels[:, None]).squeeze(1) >= HIGH_CONFIDENCE
    return {key: value.numpy() for key, value in pairs.items()}


def follow_stats(pairs: dict[str, np.ndarray]) -> dict:
    """`follow_per_pair`'s results in %: where the predictions go, of the pairs whose sources the model tells apart."""
    n = int(pairs["told_apart"].sum())
    share = lambda key: 100.0 * float(pairs[key].sum()) / max(n, 1)
    stats = {"n_pairs": len(pairs["told_apart"]), "compared": n, "follows_amplitude": share("follows_amplitude"),
             "follows_phase": share("follows_phase"), "neither": share("neither"),
             "mean_confidence": 100.0 * float(pairs["confidence"].mean())}
    if "amplitude_label_high_confidence" in pairs:
        stats["amplitude_label_high_confidence"] = 100.0 * float(pairs["amplitude_label_high_confidence"].mean())
    return stats

