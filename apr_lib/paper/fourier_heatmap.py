"""Beyond the paper: the Fourier heat map (Yin et al., NeurIPS 2019) of Standard and APR-SP, testing the argument of
section 3 that a CNN trained without APR leans on high-frequency components (apr_lib.fourier_sensitivity).

`measure` loads the profile's trained Standard and APR-SP models (its first Table 1 architecture, every seed) and
computes every model's errors on the same `fourier_heatmap.n_images` test images and signs, at the profile's
`fourier_heatmap.eps`; the heat maps are means over seeds.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from apr_lib.data import load_split
from apr_lib.fourier_sensitivity import (band_error, centred_radius, fourier_basis, fourier_errors, fourier_heatmap,
                                         random_signs)
from apr_lib.paper.report import METHOD_LABELS, claim, compare, dataset_name, figure_text, number, training_budget
from apr_lib.paper.weights import load_seed_models
from apr_lib.study.config import Profile, RunSpec
from apr_lib.study.sections import section
from apr_lib.study.targets import model_runs
from apr_lib.uncertainty import mean_of

KEY = "fourier_heatmap"
MODELS = tuple(METHOD_LABELS[method] for method in section(KEY).weights_of)  # Standard, APR-SP


@dataclass
class Measured:
    runs: dict[str, RunSpec]                 # method -> its first seed's run
    seed_runs: dict[str, list[RunSpec]]      # model label -> the runs of every seed
    images: torch.Tensor                     # the test images, float (N, C, H, W) in [0, 1]
    eps: float
    split_radius: float                      # high frequencies: radius >= this, in DFT bins
    heatmaps: dict[str, torch.Tensor]        # model label -> test error % at each frequency, centred (H, W), seed mean
    clean_error: dict[str, float]            # model label -> test error % on the clean images, seed mean
    bands: dict[str, dict[str, float]]       # model label -> mean error % over the low and the high frequencies
    high_error: dict[str, np.ndarray]        # model label -> (seeds, N) each image's error % over the high frequencies


def measure(profile: Profile, split: float = 0.5, seed: int = 0) -> Measured:
    """`split`: high frequencies are those at radius >= split x the Nyquist frequency (half the image side)."""
    settings = profile["fourier_heatmap"]
    seed_runs, seed_models = load_seed_models(profile, KEY)
    test = load_split(profile["dataset"], profile["data_root"], train=False)
    pick = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed))[:settings["n_images"]]
    images, labels = test.images[pick].float() / 255, test.labels[pick]
    n, channels, height, width = images.shape
    signs = random_signs(n, channels, seed)
    split_radius = split * min(height, width) / 2
    high = centred_radius(height, width) >= split_radius
    heatmaps, clean_error, high_error = {}, {}, {}
    for label, runs in seed_runs.items():
        maps, clean, per_image = [], [], []
        for run, models in zip(runs, seed_models):
            model = models[label]
            wrong = fourier_errors(model, images, labels, settings["eps"], signs, profile["eval"]["batch_size"],
                                   desc=f"{label}, seed {run.seed}")
            maps.append(fourier_heatmap(wrong))
            per_image.append(100.0 * wrong[high].float().mean(0).numpy())
            with torch.inference_mode():
                predicted = model(images.to(next(model.parameters()).device)).argmax(1).cpu()
            clean.append(100 * float((predicted != labels).float().mean()))
        heatmaps[label], clean_error[label] = torch.stack(maps).mean(0), float(np.mean(clean))
        high_error[label] = np.stack(per_image)
    bands = {label: band_error(heatmap, split_radius) for label, heatmap in heatmaps.items()}
    first = model_runs(profile, section(KEY))
    return Measured(first, seed_runs, images, settings["eps"], split_radius, heatmaps, clean_error, bands, high_error)


def figure(profile: Profile, m: Measured):
    """(a, b) Each model's heat map on one colour scale (viridis) and (c) their difference (APR-SP minus Standard, a
    diverging map centred on 0); the dashed circle separates low from high frequencies."""
    n, _, height, width = m.images.shape
    extent = (-width // 2 - 0.5, width - width // 2 - 0.5, height - height // 2 - 0.5, -height // 2 - 0.5)
    top = max(float(h.max()) for h in m.heatmaps.values())
    difference = difference_map(m)
    span = float(difference.abs().max()) or 1.0
    panels = [(f"({letter}) {label}", m.heatmaps[label], "viridis", 0, top, "test error %")
              for letter, label in zip("ab", MODELS)]
    panels.append(("(c) APR-SP minus Standard", difference, "RdBu_r", -span, span,
                   "difference, points of %\n(blue: APR-SP errs less)"))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
    for ax, (title, values, cmap, low, high, label) in zip(axes, panels):
        shown = ax.imshow(values, cmap=cmap, vmin=low, vmax=high, extent=extent)
        ax.add_patch(plt.Circle((0, 0), m.split_radius, fill=False, linestyle="--",
                                color="white" if cmap == "viridis" else "black"))
        ax.set_title(title); ax.set_xlabel("v, horizontal frequency"); ax.set_ylabel("u, vertical frequency")
        fig.colorbar(shown, ax=ax, fraction=0.046, label=label)
    run = m.runs["standard"]
    fig.suptitle(f"Fourier heat map: test error under x + {m.eps:g} r U(u, v), {run.arch} Standard and APR-SP "
                 f"({training_budget(profile, run)}, {dataset_name(profile)}, {n} test images)", fontsize=12)
    fig.tight_layout()
    return fig


def figure_caption(profile: Profile, m: Measured) -> str:
    table = summary(m)
    run = m.runs["standard"]
    high = {label: number(table.loc[label, "high_frequency_error"]) for label in MODELS}
    finding = (f"Under a single high-frequency Fourier perturbation Standard errs on {high['Standard']}% of the test "
               f"images and APR-SP on {high['APR-SP']}% (beyond the paper, which argues APR moves a CNN off the "
               "high-frequency amplitude).")
    details = (f"Fourier heat map (beyond the paper; Yin et al. 2019) on {dataset_name(profile)}: "
               "the test error of "
               f"{run.arch} Standard (a) and APR-SP (b) ({training_budget(profile, run)}) when one Fourier basis image "
               f"of L2 norm {m.eps:g} and random sign is added to each of {len(m.images)} test images, at each frequency "
               "(u, v) of the centred spectrum (zero frequency in the middle), and (c) APR-SP minus Standard. The high "
               f"frequencies lie outside the dashed circle (radius >= {m.split_radius:g} bins). Means over "
               f"{len(m.seed_runs[MODELS[0]])} seeds per model; clean error: "
               + " and ".join(f"{number(table.loc[label, 'clean_error'])}% for {label}" for label in MODELS) + ".")
    return figure_text(finding, details)


def perturbation_examples(m: Measured):
    """A test image with a low-, a mid- and a high-frequency basis image added (the sign r = +1)."""
    _, _, height, width = m.images.shape
    examples = [(1, 1), (height // 4, width // 4), (height // 2 - 1, width // 2 - 1)]
    fig, axes = plt.subplots(1, 1 + len(examples), figsize=(2 * (1 + len(examples)), 2.2))
    axes[0].imshow(m.images[0].permute(1, 2, 0).squeeze(-1), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("clean", fontsize=9)
    for ax, (u, v) in zip(axes[1:], examples):
        perturbed = (m.images[0] + m.eps * fourier_basis(height, width, u, v)).clamp(0, 1)
        ax.imshow(perturbed.permute(1, 2, 0).squeeze(-1), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"(u, v) = ({u}, {v})", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def difference_map(m: Measured) -> torch.Tensor:
    """APR-SP's heat map minus Standard's (negative where APR-SP errs less)."""
    standard, apr_sp = (m.heatmaps[label] for label in MODELS)
    return apr_sp - standard


def summary(m: Measured) -> pd.DataFrame:
    """Per model: clean error and the mean error over the low, the high and all frequencies (%)."""
    return pd.DataFrame([{"model": label, "clean_error": m.clean_error[label],
                          "low_frequency_error": m.bands[label]["low"], "high_frequency_error": m.bands[label]["high"],
                          "mean_error": float(m.heatmaps[label].mean())}
                         for label in MODELS]).set_index("model")


def claims(profile: Profile, m: Measured) -> list[dict]:
    standard, apr_sp = MODELS
    seeds = len(m.seed_runs[apr_sp])
    fewer_errors = float((difference_map(m) < 0).float().mean())
    condition = compare(f"mean test error % under single Fourier-basis perturbations at radius >= {m.split_radius:g} "
                        f"bins (L2 norm {m.eps:g})", (apr_sp, standard), mean_of(m.high_error[apr_sp]),
                        mean_of(m.high_error[standard]), -1, "not measured in the paper")
    return [claim(
        "CNNs trained without APR depend on high-frequency (amplitude) components, which APR reduces: APR-SP errs less "
        "than Standard under high-frequency perturbations.",
        "Sections 1 and 3.1 (argument); measured beyond the paper with the Fourier heat map of Yin et al. (2019)",
        "beyond paper", [condition],
        f"{profile['dataset']}, {len(m.images)} test images, {seeds} seed{'s' if seeds > 1 else ''} per model; low "
        f"frequencies (radius < {m.split_radius:g}): {m.bands[apr_sp]['low']:.1f} vs {m.bands[standard]['low']:.1f}; "
        f"clean error on the same images {m.clean_error[apr_sp]:.1f} vs {m.clean_error[standard]:.1f}; APR-SP errs "
        f"less at {fewer_errors:.0%} of all frequencies")]
