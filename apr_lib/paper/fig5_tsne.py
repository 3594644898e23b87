"""Figure 5 (section 3.1): how distinct the high-frequency amplitude spectra of two image sets are, by t-SNE and by a
linear probe.

Features of an image: log(1 + |DFT|) (2-D DFT of each channel) at every frequency at least `radius` bins from the
zero frequency (apr_lib.spectral's "high" band), flattened. Both the t-SNE (scikit-learn) and the probe see them
standardised per feature. The probe is a logistic regression scored by stratified k-fold cross-validation: its
accuracy (50% = the two sets cannot be told apart linearly) is the number a t-SNE picture cannot give.

Both run on one CPU thread: t-SNE's OpenMP threads spin-wait, and on a shared CPU (the DAG runs jobs side by side)
two threads took 16 s where one took 1.8 s (200 points, 2 cores).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from apr_lib.corruptions import corrupt_batch
from apr_lib.data import DATASETS, load_split
from apr_lib.ood import OODSet, load_ood_set, ood_sets
from apr_lib.paper.report import Condition, Table, claim, dataset_name, describe_untrained, figure_text, number
from apr_lib.spectral import amplitude_phase, band_mask
from apr_lib.study.config import Profile
from apr_lib.uncertainty import interval, mean_of

KEY = "fig5_tsne"
FOLDS = 5  # cross-validation folds of the probe


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


def probe_correct(first: np.ndarray, second: np.ndarray, seed: int) -> tuple[np.ndarray, list[float]]:
    """Whether a linear probe, cross-validated over FOLDS folds, tells each image's set right: (2, N) booleans
    (the first set, then the second; each image judged by the probe of the fold that left it out), and each fold's
    accuracy (%)."""
    features, labels = two_sets(first, second)
    correct, folds = np.zeros(len(labels), bool), []
    with threadpool_limits(limits=1):
        for train, test in StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(features, labels):
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(features[train], labels[train])
            correct[test] = probe.predict(features[test]) == labels[test]
            folds.append(100 * float(correct[test].mean()))
    return np.stack([correct[:len(first)], correct[len(first):]]), folds


def per_pair_accuracy(correct: np.ndarray) -> np.ndarray:
    """(1, N) accuracy (%) over each pair i of images (the first set's i-th and the second set's i-th)."""
    return 50.0 * correct.sum(0, dtype=float)[None]


def separability_table(comparisons: dict[str, tuple[np.ndarray, np.ndarray]],
                       seed: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """One row per comparison (name -> features of the two sets, as many images each): the sets' sizes and the
    probe's accuracy (%) with its spread over folds and its 95% interval over the images; and the per-image
    correctness of each comparison (probe_correct)."""
    rows, correct = [], {}
    for name, (first, second) in comparisons.items():
        correct[name], folds = probe_correct(first, second, seed)
        found = interval(mean_of(per_pair_accuracy(correct[name])), trained=False)
        rows.append({"comparison": name, "n_first": len(first), "n_second": len(second), "features": first.shape[1],
                     "probe_accuracy": found.estimate, "probe_sd": float(np.std(folds)), "probe_low": found.low,
                     "probe_high": found.high, "chance": 50.0})
    return pd.DataFrame(rows), correct


def probe_claims(correct: dict[str, np.ndarray], corrupted: str, ood: str, control: str, ood_source: str,
                 n_images: int) -> list[dict]:
    """Figure 5's two statements (section 3.1), each as the probe's accuracy on its comparison minus its accuracy on
    the control (two sets of in-distribution test images: chance), with a 95% interval over the images (pairs of
    images, the same first set in every comparison): an effect size, since the paper gives no threshold."""
    accuracy = {name: per_pair_accuracy(values) for name, values in correct.items()}
    note = (f"logistic regression on standardised log-amplitudes, {n_images:,} + {n_images:,} images, {FOLDS}-fold "
            f"cross-validated; chance 50%; interval over the images (no training run)")

    def against_control(name: str, side: int) -> Condition:
        effect = interval(mean_of(accuracy[name] - accuracy[control]), trained=False)
        return Condition(f"probe accuracy %, {name} - {control}",
                         f"{accuracy[name].mean():.1f} vs {accuracy[control].mean():.1f}", "t-SNE picture (no number)",
                         effect, side, digits=1)

    return [
        claim("The high-frequency amplitude spectra of clean samples and their Gaussian-noise versions are very "
              "different, although the noise is nearly invisible (Figure 5a).", "Section 3.1, Figure 5(a)", "paper",
              [against_control(corrupted, +1)], note),
        claim("The high-frequency amplitude spectra of in-distribution and OOD samples cannot be distinguished, "
              "even though they come from different categories (Figure 5b).", "Section 3.1, Figure 5(b)", "paper",
              [against_control(ood, 0)],
              f"{note}; a claim of no difference fails if the probe beats the control and is otherwise inconclusive; "
              f"OOD: {ood_source}"),
    ]


# ---- the section: measure, tables, figure, claims ----

@dataclass
class Measured:
    n_images: int
    radius: float                                     # high frequencies: radius >= this, in DFT bins
    seed: int
    noise_severity: int
    ood: OODSet
    panels: dict[str, tuple[np.ndarray, np.ndarray]]  # the figure's two comparisons: name -> features of both sets
    corrupted: str                                    # the names of the comparisons in `table`
    ood_name: str
    control: str
    table: pd.DataFrame                               # the probe's accuracy for every comparison
    correct: dict[str, np.ndarray]                    # comparison -> (2, N) per image: the probe tells its set right


def measure(profile: Profile, n_images: int | None = None, noise_severity: int = 3, high_radius_fraction: float = 0.5,
            ood_set: str | None = None, seed: int = 0) -> Measured:
    """The probe's accuracy on the figure's two comparisons, a control (two sets of test images), the other noise
    severities and the profile's other OOD sets; `n_images` per set (None: the profile's ood.per_set, at most 1,000,
    the paper's)."""
    info, root = DATASETS[profile["dataset"]], Path(profile["data_root"])
    n_images = n_images or min(profile["ood"]["per_set"] or 1000, 1000)
    radius = high_radius_fraction * info.size / 2
    test = load_split(profile["dataset"], root, train=False)
    order = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed))
    clean, control = test.images[order[:n_images]], test.images[order[n_images:2 * n_images]]  # two disjoint sets
    ood = load_ood_set(ood_set or profile["ood"]["natural_set"], info, root, n_images, profile["ood"]["seed"])

    def features(images: torch.Tensor) -> np.ndarray:
        return high_frequency_amplitude(images, radius)

    corrupted = f"(a) clean vs Gaussian noise, severity {noise_severity}"
    ood_name = f"(b) {profile['dataset']} vs {ood.name}"
    control_name = f"control: two sets of {profile['dataset']} test images"
    panels = {corrupted: (features(clean), features(with_gaussian_noise(clean, noise_severity, seed))),
              ood_name: (features(clean), features(ood.images))}
    table, correct = separability_table({**panels, control_name: (features(clean), features(control))}, seed)
    more = {f"clean vs Gaussian noise, severity {s}": (features(clean), features(with_gaussian_noise(clean, s, seed)))
            for s in range(1, 6) if s != noise_severity}
    more |= {f"{profile['dataset']} vs {s.name}": (features(clean), features(s.images))
             for name, s in ood_sets(profile.cfg, test.images, n_images).items() if name != ood.name}
    more_table, more_correct = separability_table(more, seed)
    return Measured(n_images, radius, seed, noise_severity, ood, panels, corrupted, ood_name, control_name,
                    pd.concat([table, more_table], ignore_index=True), correct | more_correct)


def tables(profile: Profile, m: Measured) -> dict[str, Table]:
    size = DATASETS[profile["dataset"]].size
    caption = (f"Figure 5, measured: accuracy (%) of a logistic regression telling two sets of {m.n_images:,} images "
               f"apart from their high-frequency log-amplitude spectra (radius >= {m.radius:g} of {size}x{size}), "
               f"{FOLDS}-fold cross-validated (mean, sd over folds and [`probe_low`, `probe_high`] its 95% interval over "
               f"the images); 50% = indistinguishable. OOD images: "
               f"{m.ood.source}. {describe_untrained(profile, 'test images and OOD images only')} The paper shows "
               "t-SNE pictures only (no numbers).")
    return {"fig5_separability": Table(m.table, caption)}


def figure(profile: Profile, m: Measured):
    """As the paper's Figure 5: t-SNE of the high-frequency amplitude spectra, (a) clean test images (red) beside
    their Gaussian-noise versions (grey), (b) test images (red) beside OOD images (grey); each titled with the linear
    probe's accuracy at telling the two sets apart."""
    accuracy = m.table.set_index("comparison")["probe_accuracy"]
    dataset = dataset_name(profile)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2))
    for ax, (name, (first, second)) in zip(axes, m.panels.items()):
        embedded = tsne_embedding(first, second, m.seed)
        other = name.split(" vs ")[1]
        ax.scatter(*embedded[len(first):].T, s=5, c="grey", alpha=0.6,
                   label=other if name == m.corrupted else f"OOD: {other}")
        ax.scatter(*embedded[:len(first)].T, s=5, c="red", alpha=0.6,
                   label=f"{dataset} test images" + (", clean" if name == m.corrupted else ""))
        title = name.replace(profile["dataset"], dataset)
        ax.set_title(f"{title}\nlinear probe accuracy {number(accuracy[name])}% (chance 50%)")
        ax.set_xticks([]); ax.set_yticks([])
        ax.legend(markerscale=3, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=2, frameon=False)
    fig.suptitle(f"Figure 5: t-SNE of high-frequency amplitude spectra ({dataset}, {m.n_images:,} images per set; "
                 "nothing trained)", fontsize=12)
    fig.tight_layout()
    return fig


def figure_caption(profile: Profile, m: Measured) -> str:
    accuracy = m.table.set_index("comparison")["probe_accuracy"]
    finding = (f"A linear probe tells clean from noisy high-frequency spectra apart {number(accuracy[m.corrupted])}% of "
               f"the time and test from OOD images {number(accuracy[m.ood_name])}% (chance: "
               f"{number(accuracy[m.control])}%); the paper reads (a) as separable and (b) as not.")
    details = (f"Figure 5 on {dataset_name(profile)} (nothing is trained): t-SNE of log(1 + |DFT|) "
               "at radius >= "
               f"{m.radius:g} DFT bins of {m.n_images:,} test images, red, beside (a) their Gaussian-noise versions "
               f"(severity {m.noise_severity}) and (b) {m.n_images:,} OOD images ({m.ood.source}), grey, as the "
               "paper's colours. A t-SNE picture shows clusters, not separability, so each panel gives a linear "
               "probe's cross-validated accuracy at telling the two sets apart; two sets of test images give its "
               "chance level.")
    return figure_text(finding, details)


def claims(profile: Profile, m: Measured) -> list[dict]:
    return probe_claims(m.correct, m.corrupted, m.ood_name, m.control, m.ood.source, m.n_images)
