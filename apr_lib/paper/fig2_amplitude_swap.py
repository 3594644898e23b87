"""Figures 2 and 3 (section 1): predictions after swapping amplitude spectra, shown and counted.

`measure` loads the profile's trained Standard and APR-SP models (its first Table 1 architecture, every seed), the
test set and `n_pairs` images of the profile's natural OOD set, and follows over random pairs of each kind where the
models' predictions on the swapped images go (apr_lib.swap_analysis), the same pairs for every model and seed. The
figure shows the first seed's models.
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
from apr_lib.paper import evidence
from apr_lib.paper.explorer import MODELS
from apr_lib.paper.report import Condition, Table, claim, compare, describe_runs
from apr_lib.runs import load_run
from apr_lib.study.config import Profile, RunSpec, run_dir
from apr_lib.swap_analysis import (HIGH_CONFIDENCE, PAIR_LABELS, example_predictions, follow_per_pair, follow_stats,
                                   probabilities, random_pairs)
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


def model_runs_all_seeds(profile: Profile) -> dict[str, list[RunSpec]]:
    """The Standard and APR-SP runs of the profile's first Table 1 architecture, every seed, by model label."""
    arch = profile["tables"]["table1_corruption"]["archs"][0]
    rows = evidence.rows(profile, "table1_corruption")
    return {label: rows[method][arch] for method, label in MODELS.items()}


def measure(profile: Profile, n_examples: int = 4, n_pairs: int | None = None, seed: int = 0) -> Measured:
    """`n_pairs` random pairs per kind (None: the profile's ood.per_set, 1,000 if that is null)."""
    arch, mode = profile["tables"]["table1_corruption"]["archs"][0], profile["apr"]["fft_mode"]
    runs = model_runs_all_seeds(profile)
    test = load_split(profile["dataset"], profile["data_root"], train=False)
    n_pairs = n_pairs or profile["ood"]["per_set"] or 1000
    ood = load_ood_set(profile["ood"]["natural_set"], DATASETS[profile["dataset"]], Path(profile["data_root"]), n_pairs,
                       profile["ood"]["seed"])
    sets = pair_sets(test.images, test.labels, ood.images, n_pairs, seed)
    models, pairs = {}, {}
    for label, label_runs in runs.items():
        per_seed = []
        for run in label_runs:
            model = load_run(run_dir(profile, run))[0]
            models.setdefault(label, model)
            per_seed.append({kind: follow_per_pair(model, *sets[kind][:2], mode, sets[kind][2]) for kind in sets})
        pairs[label] = {kind: {key: np.stack([s[kind][key] for s in per_seed]) for key in per_seed[0][kind]}
                        for kind in sets}
    return Measured(arch, mode, runs, models, test, ood, n_pairs, n_examples, seed, pairs, swap_stats_table(pairs))


def tables(profile: Profile, m: Measured) -> dict[str, Table]:
    caption = (f"Figures 2/3, measured: where the predictions on amplitude-swapped images go (% of the pairs told "
               f"apart), for {m.n_pairs:,} random pairs of each kind ({m.mode} DFT, swapped images clipped to [0, 1]). "
               f"OOD images: {m.ood.source}. Models: {m.arch} Standard and APR-SP, means over `seeds` seeds. "
               f"{describe_runs(profile, [r for runs in m.runs.values() for r in runs])} The paper shows examples "
               "only (no numbers).")
    return {"fig2_swap_stats": Table(m.stats, caption)}


def figure(profile: Profile, m: Measured):
    """Test-image pairs (Figures 2, 3a-b) and test images with OOD images (Figure 3c-d), each given the other's
    amplitude, with Standard's and APR-SP's predictions; pairs of images Standard classifies correctly."""
    test, ood, n_examples = m.test, m.ood, m.n_examples
    generator = torch.Generator().manual_seed(m.seed)
    correct = probabilities(m.models["Standard"], test.images).argmax(1) == test.labels
    candidates = correct.nonzero().squeeze(1)
    i, j = random_pairs(len(candidates), len(candidates), n_examples, m.seed, test.labels[candidates],
                        test.labels[candidates])
    k = torch.randint(len(ood.images), (n_examples,), generator=generator)
    pick = candidates[torch.randint(len(candidates), (n_examples,), generator=generator)]
    panels = {"test image pairs (Figure 2, 3a-b)": (test.images[candidates[i]], test.images[candidates[j]]),
              f"test image with {ood.name} (Figure 3c-d)": (test.images[pick], ood.images[k])}
    fig, axes = plt.subplots(n_examples, 8, figsize=(13, 2.0 * n_examples), squeeze=False)
    for p, (panel, (first, second)) in enumerate(panels.items()):
        columns = [("image 1", first), ("image 2", second), ("phase 1 + amplitude 2", swapped(first, second, m.mode)),
                   ("phase 2 + amplitude 1", swapped(second, first, m.mode))]
        for c, (title, images) in enumerate(columns):
            std = example_predictions(m.models["Standard"], images, test.classes)
            apr = example_predictions(m.models["APR-SP"], images, test.classes)
            for r in range(n_examples):
                ax = axes[r, 4 * p + c]
                ax.imshow(images[r].permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=255)
                label = f"Std: {std[r]}" + (f"\nAPR-SP: {apr[r]}" if c >= 2 else "")
                ax.set_title((f"{title}\n" if r == 0 else "") + label, fontsize=7)
                ax.axis("off")
        fig.text(0.27 + 0.5 * p, 1.0, panel, ha="center", fontsize=10)
    fig.suptitle(f"Figures 2/3: amplitude swapped ({profile.name} profile, {profile['dataset']}, {m.arch})", y=1.04,
                 fontsize=10)
    fig.tight_layout()
    return fig


def claims(profile: Profile, m: Measured) -> list[dict]:
    seeds = len(next(iter(m.runs.values())))
    setting = (f"{m.arch}, {seeds} seed{'s' if seeds > 1 else ''} per model, the same {m.n_pairs:,} pairs of each kind "
               f"for every model; {m.ood.source}")
    return swap_claims(m.pairs, "Standard", "APR-SP", m.ood.name, setting)
