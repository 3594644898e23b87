"""Figures 2/3: images whose amplitude spectra are swapped, and which source image a model's prediction follows.

For a pair (x_p, x_a), the swapped image iDFT(A_{x_a} * exp(i P_{x_p})) keeps the phase of x_p and takes the
amplitude of x_a (Eq. 5): `apr_lib.ood.swapped`, clipped to [0, 1] and stored as uint8 like any image (the
corollary2 OOD set is made by the same function).

Beyond the paper's hand-picked examples, `follow_stats` counts over many random pairs how often a model's
prediction on the swapped image equals its prediction on the amplitude image or on the phase image. Only pairs
whose two source images the model assigns different classes count (otherwise "follows" is undefined).
"""
from __future__ import annotations

import pandas as pd
import torch

from apr_lib.evaluate import predict
from apr_lib.ood import swapped
from apr_lib.report import claim

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


def follow_stats(model: torch.nn.Module, phase_images: torch.Tensor, amplitude_images: torch.Tensor, mode: str,
                 amplitude_labels: torch.Tensor | None = None, batch_size: int = 500) -> dict:
    """Where the model's predictions on the swapped pairs go, in % of the pairs whose sources it tells apart.

    With `amplitude_labels` (the true labels of in-distribution amplitude images), also the share of all swapped
    images given the amplitude image's label with probability >= HIGH_CONFIDENCE (Corollary 2).
    """
    on_phase = probabilities(model, phase_images, batch_size).argmax(1)
    on_amplitude = probabilities(model, amplitude_images, batch_size).argmax(1)
    probs = probabilities(model, swapped(phase_images, amplitude_images, mode), batch_size)
    on_swap = probs.argmax(1)
    told_apart = on_phase != on_amplitude
    n = int(told_apart.sum())
    share = lambda mask: 100.0 * float((mask & told_apart).sum()) / max(n, 1)
    stats = {"n_pairs": len(phase_images), "compared": n,
             "follows_amplitude": share(on_swap == on_amplitude), "follows_phase": share(on_swap == on_phase),
             "neither": share((on_swap != on_amplitude) & (on_swap != on_phase)),
             "mean_confidence": 100.0 * float(probs.max(1).values.mean())}
    if amplitude_labels is not None:
        p_label = probs.gather(1, amplitude_labels[:, None]).squeeze(1)
        stats["amplitude_label_high_confidence"] = 100.0 * float((p_label >= HIGH_CONFIDENCE).float().mean())
    return stats


def example_predictions(model: torch.nn.Module, images: torch.Tensor, classes: list[str]) -> list[str]:
    """'<class> <confidence>%' of each uint8 image, for figure titles."""
    probs = probabilities(model, images)
    confidence, label = probs.max(1)
    return [f"{classes[k]} {100 * c:.0f}%" for k, c in zip(label.tolist(), confidence.tolist())]


def swap_stats_table(models: dict[str, torch.nn.Module], test_images: torch.Tensor, test_labels: torch.Tensor,
                     ood_images: torch.Tensor, n_pairs: int, seed: int, mode: str) -> pd.DataFrame:
    """`follow_stats` of each model on `n_pairs` random pairs of each kind of PAIR_LABELS: the same pairs for every
    model; test pairs of two different labels; the OOD pairs are one set of (test, OOD) pairs, used both ways."""
    i, j = random_pairs(len(test_labels), len(test_labels), n_pairs, seed, test_labels, test_labels)
    k, m = random_pairs(len(ood_images), len(test_labels), n_pairs, seed + 1)
    pairs = {"test": (test_images[i], test_images[j], test_labels[j]),
             "corollary2": (ood_images[k], test_images[m], test_labels[m]),
             "ood_amplitude": (test_images[m], ood_images[k], None)}
    rows = [{"model": name, "pairs": PAIR_LABELS[kind], **follow_stats(model, *pairs[kind][:2], mode, pairs[kind][2])}
            for name, model in models.items() for kind in PAIR_LABELS]
    df = pd.DataFrame(rows)
    return df.astype(object).where(df.notna(), None)  # None: blank cells, not "nan"


def swap_claims(stats: pd.DataFrame, standard: str, apr: str, ood_name: str) -> list[dict]:
    """The claims Figures 2/3 illustrate, measured on the statistics table (models named `standard` and `apr`)."""
    row = lambda model, kind: stats[(stats["model"] == model) & (stats["pairs"] == PAIR_LABELS[kind])].iloc[0]
    std, aprs = row(standard, "test"), row(apr, "test")
    std_c2, apr_c2 = row(standard, "corollary2"), row(apr, "corollary2")
    test_note = (f"{std['compared']} of {std['n_pairs']} random pairs of test images with different labels "
                 f"({aprs['compared']} for {apr}): those whose two sources the model assigns different classes")
    return [
        claim("The CNN's prediction is almost entirely determined by the amplitude spectrum: after swapping "
              "amplitudes, the prediction follows the amplitude image (Figures 2 and 3a-b).",
              "Section 1, Figures 2 and 3", f"{standard}: % of swapped test pairs predicted as the amplitude image "
              "vs as the phase image", f"{std['follows_amplitude']:.1f} vs {std['follows_phase']:.1f}",
              "examples only (not measured)", bool(std["follows_amplitude"] > std["follows_phase"]),
              f"direction only (amplitude more often than phase); {test_note}; neither: {std['neither']:.1f}%"),
        claim("APR makes the CNN pay more attention to the phase: predictions follow the amplitude image less "
              "than for standard training.", "Sections 1 and 4",
              f"% of swapped test pairs predicted as the amplitude image, {standard} vs {apr}",
              f"{std['follows_amplitude']:.1f} vs {aprs['follows_amplitude']:.1f}", "not measured",
              bool(std["follows_amplitude"] > aprs["follows_amplitude"]),
              f"follows the phase image: {std['follows_phase']:.1f} vs {aprs['follows_phase']:.1f}; {test_note}"),
        claim("Corollary 2: a model without effective training restrictions gives a high confidence of y to "
              "iDFT(A_x1 * exp(i P_x2)), x1 an in-distribution sample of label y and x2 an OOD sample.",
              "Section 3.1, Corollary 2",
              f"% of {std_c2['n_pairs']} such images ({ood_name} phase) given y with probability >= "
              f"{HIGH_CONFIDENCE:.0%}, {standard} vs {apr}",
              f"{std_c2['amplitude_label_high_confidence']:.1f} vs {apr_c2['amplitude_label_high_confidence']:.1f}",
              "examples only (not measured)",
              bool(0 < std_c2["amplitude_label_high_confidence"] > apr_c2["amplitude_label_high_confidence"]),
              f"holds if such images exist for {standard} and are rarer for {apr} (trained with APR's restriction); "
              f"predicted as the amplitude image's class: {std_c2['follows_amplitude']:.1f}% vs "
              f"{apr_c2['follows_amplitude']:.1f}% of the pairs told apart"),
    ]
