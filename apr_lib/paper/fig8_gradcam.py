"""Figure 8 (section 5.2): Grad-CAM of Standard and APR-SP on fogged test images, and how much of each map stays on
the object and like the clean image's map (apr_lib.gradcam).

`measure` loads the profile's trained Standard and APR-SP models (its first Table 1 architecture, every seed; from
runs/ or their published copies, apr_lib.paper.weights), fogs `n_measure` test images at `severity`
(apr_lib.corruptions) and computes every model's maps on the clean and the fogged images. A map that is zero everywhere (Grad-CAM's ReLU removed all of it) points nowhere: it counts as a
uniform map (its share on the object is the object's share of the image) and as uncorrelated with the clean map
(correlation 0), so that no image drops out of a model's mean. The figure shows the first seed's maps.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D

from apr_lib.corruptions import corrupt_batch
from apr_lib.data import load_split
from apr_lib.gradcam import OBJECT_ON_BLACK, cams_clean_and_corrupted, object_masks
from apr_lib.paper.report import (METHOD_LABELS, Condition, claim, compare, dataset_name, figure_text, number,
                                  training_budget, unmeasured)
from apr_lib.paper.weights import load_seed_models
from apr_lib.study.config import Profile, RunSpec
from apr_lib.study.sections import section
from apr_lib.study.targets import model_runs
from apr_lib.uncertainty import Estimate, combine, difference, mean_of

KEY = "fig8_gradcam"
MODELS = tuple(METHOD_LABELS[method] for method in section(KEY).weights_of)  # Standard, APR-SP


@dataclass
class Measured:
    runs: dict[str, RunSpec]               # method -> its first seed's run (the figure's)
    seed_runs: dict[str, list[RunSpec]]    # model label -> the runs of every seed
    severity: int
    object_threshold: float
    n_examples: int                        # rows of the figure: the first images measured
    classes: list[str]
    labels: torch.Tensor                   # (N,) true classes of the measured images
    clean: torch.Tensor                    # (N, C, H, W) in [0, 1]
    fog: torch.Tensor
    masks: torch.Tensor                    # (N, H, W): the object of each clean image
    results: dict[str, list[dict]]         # model label -> per seed: apr_lib.gradcam.cams_clean_and_corrupted


def measure(profile: Profile, severity: int = 5, n_measure: int = 500, n_examples: int = 5,
            object_threshold: float = 0.1, seed: int = 0) -> Measured:
    seed_runs, seed_models = load_seed_models(profile, KEY)
    test = load_split(profile["dataset"], profile["data_root"], train=False)
    pick = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed))[:n_measure]
    clean, labels = test.images[pick], test.labels[pick]
    fog = torch.from_numpy(corrupt_batch(clean.permute(0, 2, 3, 1).numpy(), "fog", severity, rng=seed))
    clean, fog = clean.float() / 255, fog.permute(0, 3, 1, 2).float() / 255
    masks = object_masks(clean, object_threshold)
    results = {label: [cams_clean_and_corrupted(models[label], clean, fog, labels, masks, profile["eval"]["batch_size"])
                       for models in seed_models] for label in seed_runs}
    first = model_runs(profile, section(KEY))
    return Measured(first, seed_runs, severity, object_threshold, n_examples, test.classes, labels, clean, fog, masks,
                    results)


def per_image(m: Measured, label: str) -> dict[str, np.ndarray]:
    """A model's per-image measures, one row per seed: share of the map on the object (clean, fog), a zero map
    counting as a uniform one, and the correlation of the fog and clean maps, a zero map counting as 0."""
    uniform = m.masks.float().mean(dim=(1, 2))
    def stack(key: str, fill: torch.Tensor) -> np.ndarray:
        return torch.stack([torch.where(r[key].isnan(), fill, r[key]) for r in m.results[label]]).double().numpy()
    return {"on_object_clean": stack("inside_clean", uniform), "on_object_fog": stack("inside_corrupted", uniform),
            "correlation": stack("correlation", torch.zeros(len(uniform))),
            "uniform": uniform.double().numpy()[None].repeat(len(m.results[label]), 0)}


def summary(m: Measured) -> pd.DataFrame:
    """Per model, means over seeds: accuracy on the clean and fogged images, the mean share of the map on the object,
    the mean correlation of each image's clean and fogged map (zero maps counted as uniform / uncorrelated), and how
    many maps per seed are zero everywhere."""
    rows = []
    for label, per_seed in m.results.items():
        values = per_image(m, label)
        rows.append({"model": label, "seeds": len(per_seed),
                     "clean_accuracy": 100 * float(np.mean([r["correct_clean"].float().mean() for r in per_seed])),
                     "fog_accuracy": 100 * float(np.mean([r["correct_corrupted"].float().mean() for r in per_seed])),
                     "on_object_clean": float(values["on_object_clean"].mean()),
                     "on_object_fog": float(values["on_object_fog"].mean()),
                     "clean_fog_correlation": float(values["correlation"].mean()),
                     "zero_maps_clean": float(np.mean([r["inside_clean"].isnan().sum() for r in per_seed])),
                     "zero_maps_fog": float(np.mean([r["inside_corrupted"].isnan().sum() for r in per_seed]))})
    return pd.DataFrame(rows).set_index("model")


def figure(profile: Profile, m: Measured):
    """As the paper's Figure 8: rows, the first measured images; columns (a) the image, (b) in fog, (c, d) each model's
    Grad-CAM on the fogged image, then (e, f) on the clean image for reference. Each map over the image, scaled to its
    own maximum (magma, colour bar), the object outlined; under each map whether the model classifies that image
    correctly; a map that is zero everywhere says so."""
    n = m.n_examples
    first = {label: m.results[label][0] for label in MODELS}  # the first seed's maps
    columns = [("(a) original", m.clean, None, None), ("(b) fog", m.fog, None, None)]
    columns += [(f"({letter}) {label}, fog", m.fog, first[label]["cam_corrupted"], first[label]["correct_corrupted"])
                for letter, label in zip("cd", MODELS)]
    columns += [(f"({letter}) {label}, clean", m.clean, first[label]["cam_clean"], first[label]["correct_clean"])
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
               f"Means over {int(standard['seeds'])} seeds; per seed, {standard['zero_maps_fog']:.0f} of Standard's and "
               f"{apr_sp['zero_maps_fog']:.0f} of APR-SP's fog maps are zero everywhere (no evidence for the true "
               "class) and count as spread evenly. The paper shows ImageNet images with a ResNet-50.")
    return figure_text(finding, details)


def claims(profile: Profile, m: Measured) -> list[dict]:
    """Section 5.2's reading of Figure 8, one claim with three conditions: under fog APR-SP's maps put more of their
    mass on the object than Standard's, more than a uniform map would (it still focuses on the object), and stay more
    like the clean image's maps."""
    text = ("APR-SP still is able to focus on the parts of the target object even in a heavy fog (more than the "
            "baseline).")
    source, paper = "Figure 8 (section 5.2)", "qualitative (shown, not measured)"
    standard, apr_sp = MODELS
    if profile["dataset"] not in OBJECT_ON_BLACK:
        return [unmeasured(text, source, "paper", "share of the Grad-CAM mass on the object", paper, "not comparable",
                           f"{profile['dataset']} images have no black background to find the object by")]
    values = {label: per_image(m, label) for label in (standard, apr_sp)}
    estimate = {label: {key: mean_of(v) for key, v in values[label].items()} for label in values}
    on_object = "share of the Grad-CAM mass on the object under fog"
    above_uniform = combine(np.subtract, estimate[apr_sp]["on_object_fog"], estimate[apr_sp]["uniform"])
    conditions = [
        compare(on_object, (apr_sp, standard), estimate[apr_sp]["on_object_fog"], estimate[standard]["on_object_fog"],
                +1, paper, digits=3),
        Condition(f"{on_object}, {apr_sp} - a uniform map",
                  f"{estimate[apr_sp]['on_object_fog'].value:.3f} vs {estimate[apr_sp]['uniform'].value:.3f}", paper,
                  difference(above_uniform, Estimate.fixed(0.0)), +1, digits=3),
        compare("correlation of each image's Grad-CAM under fog with its clean one", (apr_sp, standard),
                estimate[apr_sp]["correlation"], estimate[standard]["correlation"], +1, paper, digits=3),
    ]
    table = summary(m)
    seeds = int(table.loc[apr_sp, "seeds"])
    note = (f"{profile['dataset']}, {len(m.labels)} test images, fog severity {m.severity}, Grad-CAM of the true class, "
            f"{seeds} seed{'s' if seeds > 1 else ''} per model; the object: clean pixels > {m.object_threshold:g} and "
            f"the holes they enclose; maps zero everywhere count as uniform (on the object) and uncorrelated (per "
            f"seed under fog: {standard} {table.loc[standard, 'zero_maps_fog']:.0f}, {apr_sp} "
            f"{table.loc[apr_sp, 'zero_maps_fog']:.0f}); fog accuracy {table.loc[apr_sp, 'fog_accuracy']:.1f}% vs "
            f"{table.loc[standard, 'fog_accuracy']:.1f}%")
    return [claim(text, source, "paper", conditions, note)]
