"""Figures 2 and 3 (section 1): predictions after swapping amplitude spectra, shown and counted.

`measure` loads the profile's trained Standard and APR-SP models (its first Table 1 architecture, every seed; from
runs/ or their published copies, apr_lib.paper.weights), the test set and `n_pairs` images of the profile's natural
OOD set, and follows over random pairs of each kind where the models' predictions on the swapped images go
(apr_lib.swap_analysis), the same pairs for every model and seed. The figure shows the first seed's models.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from apr_lib.data import DATASETS, ImageSet, load_split
from apr_lib.ood import OODSet, load_ood_set, swapped
from apr_lib.paper.report import (Condition, Table, claim, compare, dataset_name, describe_runs,
                                  figure_text, number, training_budget)
from apr_lib.paper.weights import load_seed_models
from apr_lib.study.config import Profile, RunSpec
from apr_lib.swap_analysis import (HIGH_CONFIDENCE, PAIR_LABELS, follow_per_pair, follow_stats, probabilities,
                                   random_pairs)
from apr_lib.uncertainty import Estimate, combine, difference, interval, mean_of

KEY = "fig2_amplitude_swap"


@dataclass
class Measured:
    arch: str
    mode: str                               # the profile's apr.fft_mode: the DFT of the swaps
    runs: dict[str, list[RunSpec]]          # label -> the runs of every seed
    models: dict[str, torch.nn.Module]      # label -> the first seed's trained model (the figure's)
    test: ImageSet
    ood: OODSet
    n_pairs: int
    n_examples: int                         # rows of the figure
    seed: int
    pairs: dict[str, dict[str, dict[str, np.ndarray]]]  # label -> pair kind -> follow_per_pair, stacked over seeds
    stats: pd.DataFrame                     # swap_stats_table


def pair_sets(test_images: torch.Tensor, test_labels: torch.Tensor, ood_images: torch.Tensor, n_pairs: int,
              seed: int) -> dict[str, tuple]:
    """(phase images, amplitude images, amplitude labels or None) of `n_pairs` random pairs of each kind of
    PAIR_LABELS: test pairs of two different labels; the OOD pairs are one set of (test, OOD) pairs, used both ways."""
    i, j = random_pairs(len(test_labels), len(test_labels), n_pairs, seed, test_labels, test_labels)
    k, m = random_pairs(len(ood_images), len(test_labels), n_pairs, seed + 1)
    return {"test": (test_images[i], test_images[j], test_labels[j]),
            "corollary2": (ood_images[k], test_images[m], test_labels[m]),
            "ood_amplitude": (test_images[m], ood_images[k], None)}


def swap_stats_table(pairs: dict[str, dict[str, dict[str, np.ndarray]]]) -> pd.DataFrame:
    """`follow_stats` of each model and kind of pairs, means over seeds (`seeds`)."""
    rows = []
    for name, kinds in pairs.items():
        for kind, per_pair in kinds.items():
            per_seed = [follow_stats({key: values[s] for key, values in per_pair.items()})
                        for s in range(len(per_pair["told_apart"]))]
            rows.append({"model": name, "pairs": PAIR_LABELS[kind], "seeds": len(per_seed),
                         **{key: float(np.mean([stats[key] for stats in per_seed])) for key in per_seed[0]}})
    df = pd.DataFrame(rows)
    return df.astype(object).where(df.notna(), None)  # None: blank cells, not "nan"


def share(pairs: dict[str, np.ndarray], key: str) -> Estimate:
    """% of all pairs (one row per seed) where `key` is true."""
    return mean_of(100.0 * pairs[key])


def swap_claims(pairs: dict[str, dict[str, dict[str, np.ndarray]]], standard: str, apr: str, ood_name: str,
                setting: str) -> list[dict]:
    """The claims Figures 2/3 illustrate, on the per-pair results of the models named `standard` and `apr` (every
    seed), in % of all pairs of a kind, with 95% intervals over seeds and pairs."""
    std, aprs = pairs[standard]["test"], pairs[apr]["test"]
    std_c2, apr_c2 = pairs[standard]["corollary2"], pairs[apr]["corollary2"]
    n = std["told_apart"].shape[1]
    amplitude_over_phase = combine(np.subtract, share(std, "follows_amplitude"), share(std, "follows_phase"))
    follows = Condition(f"{standard}: % of {n:,} swapped test pairs predicted as the amplitude image - as the phase "
                        "image", f"{share(std, 'follows_amplitude').value:.1f} vs {share(std, 'follows_phase').value:.1f}",
                        "examples only (not measured)", interval(amplitude_over_phase), +1, digits=1)
    less = compare(f"% of {n:,} swapped test pairs predicted as the amplitude image", (standard, apr),
                   share(std, "follows_amplitude"), share(aprs, "follows_amplitude"), +1, "not measured")
    high = f"given y with probability >= {HIGH_CONFIDENCE:.0%}"
    exists = Condition(f"{standard}: % of {n:,} such images ({ood_name} phase) {high}",
                       f"{share(std_c2, 'amplitude_label_high_confidence').value:.1f}", "examples only (not measured)",
                       difference(share(std_c2, "amplitude_label_high_confidence"), Estimate.fixed(0.0)), +1, digits=1)
    rarer = compare(f"% of {n:,} such images ({ood_name} phase) {high}", (standard, apr),
                    share(std_c2, "amplitude_label_high_confidence"), share(apr_c2, "amplitude_label_high_confidence"),
                    +1, "examples only (not measured)")
    return [
        claim("The CNN's prediction is almost entirely determined by the amplitude spectrum: after swapping "
              "amplitudes, the prediction follows the amplitude image (Figures 2 and 3a-b).",
              "Section 1, Figures 2 and 3", "paper", [follows],
              f"direction only (amplitude more often than phase), in % of all random pairs of test images with "
              f"different labels; {setting}"),
        claim("APR makes the CNN pay more attention to the phase: predictions follow the amplitude image less "
              "than for standard training.", "Sections 1 and 4", "paper", [less],
              f"follows the phase image: {share(std, 'follows_phase').value:.1f} vs "
              f"{share(aprs, 'follows_phase').value:.1f}% of the pairs; {setting}"),
        claim("Corollary 2: a model without effective training restrictions gives a high confidence of y to "
              "iDFT(A_x1 * exp(i P_x2)), x1 an in-distribution sample of label y and x2 an OOD sample.",
              "Section 3.1, Corollary 2", "paper", [exists, rarer],
              f"such images exist for {standard} and are rarer for {apr} (trained with APR's restriction); {setting}"),
    ]


def measure(profile: Profile, n_examples: int = 4, n_pairs: int | None = None, seed: int = 0) -> Measured:
    """`n_pairs` random pairs per kind (None: the profile's ood.per_set, 1,000 if that is null)."""
    arch, mode = profile["tables"]["table1_corruption"]["archs"][0], profile["apr"]["fft_mode"]
    runs, seed_models = load_seed_models(profile, KEY)
    test = load_split(profile["dataset"], profile["data_root"], train=False)
    n_pairs = n_pairs or profile["ood"]["per_set"] or 1000
    ood = load_ood_set(profile["ood"]["natural_set"], DATASETS[profile["dataset"]], Path(profile["data_root"]), n_pairs,
                       profile["ood"]["seed"])
    sets = pair_sets(test.images, test.labels, ood.images, n_pairs, seed)
    pairs = {}
    for label in runs:
        per_seed = [{kind: follow_per_pair(models[label], *sets[kind][:2], mode, sets[kind][2]) for kind in sets}
                    for models in seed_models]
        pairs[label] = {kind: {key: np.stack([s[kind][key] for s in per_seed]) for key in per_seed[0][kind]}
                        for kind in sets}
    return Measured(arch, mode, runs, seed_models[0], test, ood, n_pairs, n_examples, seed, pairs,
                    swap_stats_table(pairs))


def tables(profile: Profile, m: Measured) -> dict[str, Table]:
    caption = (f"Figures 2/3, measured: where the predictions on amplitude-swapped images go (% of the pairs told "
               f"apart), for {m.n_pairs:,} random pairs of each kind ({m.mode} DFT, swapped images clipped to [0, 1]). "
               f"OOD images: {m.ood.source}. Models: {m.arch} Standard and APR-SP, means over `seeds` seeds. "
               f"{describe_runs(profile, [r for runs in m.runs.values() for r in runs])} The paper shows examples "
               "only (no numbers).")
    return {"fig2_swap_stats": Table(m.stats, caption)}


# Colours of a prediction on a swapped image: the class the model gives the amplitude image, or the phase image's
FOLLOWS = {"amplitude": ("#d95f02", "follows the amplitude image"), "phase": ("#1b9e77", "follows the phase image"),
           "neither": ("#555555", "neither")}


def examples(m: Measured) -> dict[str, tuple[torch.Tensor, torch.Tensor, list[str], list[str]]]:
    """The figure's pairs, drawn at random (not picked for their outcome): test-image pairs of different classes that
    Standard classifies correctly (Figures 2, 3a-b), and such test images with OOD images (Figure 3c-d); per kind
    the two image batches and their true labels ("OOD" for OOD images)."""
    test, ood, n = m.test, m.ood, m.n_examples
    generator = torch.Generator().manual_seed(m.seed)
    correct = probabilities(m.models["Standard"], test.images).argmax(1) == test.labels
    candidates = correct.nonzero().squeeze(1)
    i, j = random_pairs(len(candidates), len(candidates), n, m.seed, test.labels[candidates], test.labels[candidates])
    k = torch.randint(len(ood.images), (n,), generator=generator)
    pick = candidates[torch.randint(len(candidates), (n,), generator=generator)]
    names = lambda indices: [test.classes[c] for c in test.labels[indices].tolist()]
    return {"(a, b) test image pairs (Figure 2, 3a-b)": (test.images[candidates[i]], test.images[candidates[j]],
                                                         names(candidates[i]), names(candidates[j])),
            f"(c, d) test image with an OOD image, {ood.name} (Figure 3c-d)": (test.images[pick], ood.images[k],
                                                                               names(pick), [f"OOD ({ood.name})"] * n)}


def figure(profile: Profile, m: Measured):
    """Per kind of pair, each row: image 1, image 2 (true labels), then each with the other's amplitude; under each
    image Standard's and APR-SP's prediction and confidence, coloured on a swapped image by the source image whose
    predicted class it takes (the amplitude image's, the phase image's, or neither)."""
    classes, n = m.test.classes, m.n_examples
    fig, axes = plt.subplots(n, 8, figsize=(17, 2.55 * n + 0.9), squeeze=False)
    for p, (panel, (first, second, first_true, second_true)) in enumerate(examples(m).items()):
        sources = {"image 1": (first, first_true), "image 2": (second, second_true)}
        predicted = {label: {name: probabilities(model, images).argmax(1) for name, (images, _) in sources.items()}
                     for label, model in m.models.items()}
        columns = [("image 1", first, None), ("image 2", second, None),
                   ("phase 1 + amplitude 2", swapped(first, second, m.mode), ("image 1", "image 2")),
                   ("phase 2 + amplitude 1", swapped(second, first, m.mode), ("image 2", "image 1"))]
        for c, (title, images, roles) in enumerate(columns):
            for r in range(n):
                ax = axes[r, 4 * p + c]
                ax.imshow(images[r].permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=255)
                ax.set_xticks([]); ax.set_yticks([])
                if r == 0:
                    ax.set_title(title, fontsize=10)
                lines = [(f"true: {sources[title][1][r]}", "black")] if roles is None else []
                for label, model in m.models.items():
                    probs = probabilities(model, images[r:r + 1])[0]
                    k = int(probs.argmax())
                    colour = "black"
                    if roles is not None:
                        phase_class, amplitude_class = (int(predicted[label][role][r]) for role in roles)
                        follows = ("amplitude" if k == amplitude_class else "phase" if k == phase_class
                                   else "neither")
                        colour = FOLLOWS[follows][0]
                    lines.append((f"{'Std' if label == 'Standard' else label}: {classes[k]} {100 * probs[k]:.0f}%",
                                  colour))
                for line, (text, colour) in enumerate(lines):
                    ax.text(0.5, -0.04 - 0.13 * line, text, transform=ax.transAxes, ha="center", va="top",
                            fontsize=9, color=colour)
        fig.text(0.265 + 0.49 * p, 1.0, panel, ha="center", fontsize=11, weight="bold")
    handles = [plt.Line2D([], [], color=colour, marker="s", linestyle="", label=f"prediction {text}")
               for colour, text in FOLLOWS.values()]
    fig.legend(handles=handles, loc="upper center", ncol=3, bbox_to_anchor=(0.5, -0.035), frameon=False, fontsize=10)
    fig.suptitle(f"Figures 2/3: amplitude spectra swapped. Predictions of {m.arch} Standard and APR-SP "
                 f"({training_budget(profile, m.runs['Standard'][0])}, {dataset_name(profile)})", y=1.05, fontsize=12)
    fig.tight_layout(h_pad=4.2)
    return fig


def figure_caption(profile: Profile, m: Measured) -> str:
    stats = m.stats.set_index(["model", "pairs"])
    test = stats.loc[("Standard", PAIR_LABELS["test"])]
    direction = ("as in the paper's Figures 2 and 3" if test["follows_amplitude"] > test["follows_phase"] else
                 "the opposite of the paper's Figures 2 and 3, where the CNN follows the amplitude image")
    finding = (f"After the swap, Standard's prediction follows the amplitude image in {number(test['follows_amplitude'])}% "
               f"of {round(test['compared']):,} random test pairs and the phase image in {number(test['follows_phase'])}% "
               f"(means over {test['seeds']} seeds): {direction}.")
    budget = training_budget(profile, m.runs["Standard"][0])
    details = (f"Figures 2 and 3 on {dataset_name(profile)}: each row gives image 1 the amplitude "
               f"spectrum of image 2 and the reverse (Eq. 5, {m.mode} DFT, clipped to [0, 1]); under each image the "
               f"true label and the predictions of {m.arch} Standard and APR-SP ({budget}), coloured on the "
               "swapped images by whether the prediction takes the class the model gives the amplitude image "
               "(orange) or the phase image (green). The rows are drawn at random, not picked. OOD images: "
               f"{m.ood.source}.")
    return figure_text(finding, details)


def claims(profile: Profile, m: Measured) -> list[dict]:
    seeds = len(next(iter(m.runs.values())))
    setting = (f"{m.arch}, {seeds} seed{'s' if seeds > 1 else ''} per model, the same {m.n_pairs:,} pairs of each kind "
               f"for every model; {m.ood.source}")
    return swap_claims(m.pairs, "Standard", "APR-SP", m.ood.name, setting)
