"""Figure 8 (section 5.2): Grad-CAM of Standard and APR-SP on fogged test images, and how much of each map stays on
the object and like the clean image's map (apr_lib.gradcam).

`measure` loads the profile's trained Standard and APR-SP models (its first Table 1 architecture and seed), fogs
`n_measure` test images at `severity` (apr_lib.corruptions) and computes both models' maps on the clean and the
fogged images.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D

from apr_lib.corruptions import corrupt_batch
from apr_lib.data import load_split
from apr_lib.gradcam import OBJECT_ON_BLACK, cams_clean_and_corrupted, object_masks
from apr_lib.paper.report import METHOD_LABELS, claim, dataset_name, figure_text, number, training_budget
from apr_lib.paper.weights import load_models
from apr_lib.study.config import Profile, RunSpec
from apr_lib.study.sections import section
from apr_lib.study.targets import model_runs

KEY = "fig8_gradcam"
MODELS = tuple(METHOD_LABELS[method] for method in section(KEY).weights_of)  # Standard, APR-SP


@dataclass
class Measured:
    runs: dict[str, RunSpec]               # method -> run
    severity: int
    object_threshold: float
    n_examples: int                        # rows of the figure: the first images measured
    classes: list[str]
    labels: torch.Tensor                   # (N,) true classes of the measured images
    clean: torch.Tensor                    # (N, C, H, W) in [0, 1]
    fog: torch.Tensor
    masks: torch.Tensor                    # (N, H, W): the object of each clean image
    results: dict[str, dict]               # model label -> apr_lib.gradcam.cams_clean_and_corrupted


def measure(profile: Profile, severity: int = 5, n_measure: int = 500, n_examples: int = 5,
            object_threshold: float = 0.1, seed: int = 0) -> Measured:
    runs = model_runs(profile, section(KEY))
    models = load_models(profile, runs)
    test = load_split(profile["dataset"], profile["data_root"], train=False)
    pick = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed))[:n_measure]
    clean, labels = test.images[pick], test.labels[pick]
    fog = torch.from_numpy(corrupt_batch(clean.permute(0, 2, 3, 1).numpy(), "fog", severity, rng=seed))
    clean, fog = clean.float() / 255, fog.permute(0, 3, 1, 2).float() / 255
    masks = object_masks(clean, object_threshold)
    results = {label: cams_clean_and_corrupted(model, clean, fog, labels, masks, profile["eval"]["batch_size"])
               for label, model in models.items()}
    return Measured(runs, severity, object_threshold, n_examples, test.classes, labels, clean, fog, masks, results)


def summary(m: Measured) -> pd.DataFrame:
    """Per model: accuracy on the clean and fogged images, the mean share of the map on the object, the mean
    correlation of each image's clean and fogged map, and how many maps are zero everywhere (left out)."""
    def mean(values: torch.Tensor) -> float:
        return float(values.nanmean())

    return pd.DataFrame([{
        "model": label,
        "clean_accuracy": 100 * float(r["correct_clean"].float().mean()),
        "fog_accuracy": 100 * float(r["correct_corrupted"].float().mean()),
        "on_object_clean": mean(r["inside_clean"]),
        "on_object_fog": mean(r["inside_corrupted"]),
        "clean_fog_correlation": mean(r["correlation"]),
        "zero_maps_clean": int(r["inside_clean"].isnan().sum()),
        "zero_maps_fog": int(r["inside_corrupted"].isnan().sum()),
    } for label, r in m.results.items()]).set_index("model")


def figure(profile: Profile, m: Measured):
    """As the paper's Figure 8: rows, the first measured images; columns (a) the image, (b) in fog, (c, d) each model's
    Grad-CAM on the fogged image, then (e, f) on the clean image for reference. Each map over the image, scaled to its
    own maximum (magma, colour bar), the object outlined; under each map whether the model classifies that image
    correctly; a map that is zero everywhere says so."""
    n = m.n_examples
    columns = [("(a) original", m.clean, None, None), ("(b) fog", m.fog, None, None)]
    columns += [(f"({letter}) {label}, fog", m.fog, m.results[label]["cam_corrupted"], m.results[label]["correct_corrupted"])
                for letter, label in zip("cd", MODELS)]
    columns += [(f"({letter}) {label}, clean", m.clean, m.results[label]["cam_clean"], m.results[label]["correct_clean"])
                for letter, label in zip("ef", MODELS)]
    fig, axes = plt.subplots(n, len(columns), figsize=(2.1 * len(columns) + 0.8, 2.25 * n + 0.8), squeeze=False)
    for col, (title, images, cams, correct) in enumerate(columns):
        axes[0, col].set_title(title, fontsize=10)
        for row in range(n):
            ax = axes[row, col]
            ax.imshow(images[row].permute(1, 2, 0).squeeze(-1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]); ax.set_yticks([])
            if cams is None:
                continue
            peak = float(cams[row].max())
            if peak > 0:
                ax.imshow(cams[row] / peak, cmap="magma", alpha=0.6, vmin=0, vmax=1)
            else:
                ax.text(0.5, 0.5, "map zero\neverywhere", transform=ax.transAxes, ha="center", va="center",
                        fontsize=9, color="white", bbox={"facecolor": "black", "alpha": 0.6, "linewidth": 0})
            ax.contour(m.masks[row], levels=[0.5], colors="cyan", linewidths=1.0)
            ax.set_xlabel("correct" if bool(correct[row]) else "misclassified", fontsize=9, labelpad=2)
    for row in range(n):
        axes[row, 0].set_ylabel(m.classes[m.labels[row]], fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 0.93, 0.95))
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), "magma"), ax=axes, fraction=0.02, pad=0.01)
    bar.set_label("Grad-CAM of the true class / the map's maximum")
    fig.legend(handles=[Line2D([], [], color="cyan", label="object outline (clean pixels > "
                                                           f"{m.object_threshold:g} and the holes they enclose)")],
               loc="lower center", frameon=False)
    run = m.runs["standard"]
    fig.suptitle(f"Figure 8: Grad-CAM under fog of severity {m.severity}, {run.arch} Standard and APR-SP "
                 f"({training_budget(profile, run)}, {dataset_name(profile)})", fontsize=12)
    return fig


def figure_caption(profile: Profile, m: Measured) -> str:
    table = summary(m)
    standard, apr_sp = (table.loc[label] for label in MODELS)
    finding = (f"Under fog, {number(standard['on_object_fog'], 3)} of Standard's Grad-CAM map lies on the object and "
               f"{number(apr_sp['on_object_fog'], 3)} of APR-SP's ({float(m.masks.float().mean()):.3f} for a map spread "
               "evenly); the paper shows APR-SP keeping its focus on the object.")
    details = (f"Figure 8 on {dataset_name(profile)}: Grad-CAM of the true class at the last "
               "convolutional block of "
               f"{m.runs['standard'].arch} Standard and APR-SP ({training_budget(profile, m.runs['standard'])}), on "
               f"test images in fog of severity {m.severity} (c, d) and clean (e, f); the rows are the first of "
               f"{len(m.labels)} measured images, not picked. "
               f"{int(standard['zero_maps_fog'])} of Standard's and {int(apr_sp['zero_maps_fog'])} of APR-SP's fog maps are "
               "zero everywhere (no evidence for the true class) and left out of those means. The paper shows "
               "ImageNet images with a ResNet-50.")
    return figure_text(finding, details)


def claims(profile: Profile, m: Measured) -> list[dict]:
    table = summary(m)
    standard, apr_sp = (table.loc[label] for label in MODELS)
    object_share = float(m.masks.float().mean())
    claim_text = ("APR-SP still is able to focus on the parts of the target object even in a heavy fog (more than the "
                  "baseline).")
    source = "Figure 8 (section 5.2)"
    setting = (f"{profile['dataset']}, {len(m.labels)} test images, fog severity {m.severity}, Grad-CAM of the true "
               f"class; zero maps left out (fog: Standard {standard.zero_maps_fog:.0f}, APR-SP "
               f"{apr_sp.zero_maps_fog:.0f})")
    paper = "qualitative (shown, not measured)"
    on_black = profile["dataset"] in OBJECT_ON_BLACK
    on_object = claim(
        claim_text, source, f"mean share of the Grad-CAM mass on the object (clean pixels > {m.object_threshold:g} "
        "and the holes they enclose) under fog, APR-SP vs Standard",
        f"{apr_sp.on_object_fog:.3f} vs {standard.on_object_fog:.3f}", paper,
        bool(apr_sp.on_object_fog > standard.on_object_fog) if on_black else None,
        f"{setting}; clean: {apr_sp.on_object_clean:.3f} vs {standard.on_object_clean:.3f}; a uniform map scores "
        f"{object_share:.3f}" if on_black else f"{profile['dataset']} images have no black background to find the "
        "object by")
    stable = claim(
        claim_text, source, "mean correlation between each image's Grad-CAM in fog and on the clean image, APR-SP vs "
        "Standard",
        f"{apr_sp.clean_fog_correlation:.3f} vs {standard.clean_fog_correlation:.3f}", paper,
        bool(apr_sp.clean_fog_correlation > standard.clean_fog_correlation),
        f"{setting}; fog accuracy {apr_sp.fog_accuracy:.1f}% vs {standard.fog_accuracy:.1f}%")
    return [on_object, stable]
