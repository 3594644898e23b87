"""Figure 8 (section 5.2): Grad-CAM of Standard and APR-SP on fogged test images, and how much of each map stays on
the object and like the clean image's map (apr_lib.gradcam).

`measure` loads the profile's trained Standard and APR-SP models (its first Table 1 architecture, every seed), fogs
`n_measure` test images at `severity` (apr_lib.corruptions) and computes every model's maps on the clean and the
fogged images. A map that is zero everywhere (Grad-CAM's ReLU removed all of it) points nowhere: it counts as a
uniform map (its share on the object is the object's share of the image) and as uncorrelated with the clean map
(correlation 0), so that no image drops out of a model's mean. The figure shows the first seed's maps.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from apr_lib.corruptions import corrupt_batch
from apr_lib.data import load_split
from apr_lib.gradcam import OBJECT_ON_BLACK, cams_clean_and_corrupted, object_masks
from apr_lib.paper.explorer import MODELS
from apr_lib.paper.fig2_amplitude_swap import model_runs_all_seeds
from apr_lib.paper.report import Condition, claim, compare, unmeasured
from apr_lib.runs import load_run
from apr_lib.study.config import Profile, RunSpec, run_dir
from apr_lib.uncertainty import Estimate, combine, difference, mean_of

KEY = "fig8_gradcam"


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
    seed_runs = model_runs_all_seeds(profile)
    test = load_split(profile["dataset"], profile["data_root"], train=False)
    pick = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed))[:n_measure]
    clean, labels = test.images[pick], test.labels[pick]
    fog = torch.from_numpy(corrupt_batch(clean.permute(0, 2, 3, 1).numpy(), "fog", severity, rng=seed))
    clean, fog = clean.float() / 255, fog.permute(0, 3, 1, 2).float() / 255
    masks = object_masks(clean, object_threshold)
    results = {label: [cams_clean_and_corrupted(load_run(run_dir(profile, run))[0], clean, fog, labels, masks,
                                                profile["eval"]["batch_size"]) for run in runs]
               for label, runs in seed_runs.items()}
    first = {method: seed_runs[label][0] for method, label in MODELS.items()}
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
    """Rows: the first measured images; columns: clean, fog, each model's map under fog, each model's clean map."""
    n = m.n_examples
    labels_text = [m.classes[i] for i in m.labels[:n]]
    columns = [("(a) original", m.clean, None), ("(b) fog", m.fog, None)]
    columns += [(f"({letter}) {label}, fog", m.fog, m.results[label][0]["cam_corrupted"])
                for letter, label in zip("cd", m.results)]
    columns += [(f"{label}, clean", m.clean, m.results[label][0]["cam_clean"]) for label in m.results]
    fig, axes = plt.subplots(n, len(columns), figsize=(1.7 * len(columns), 1.7 * n), squeeze=False)
    for col, (title, images, cams) in enumerate(columns):
        axes[0, col].set_title(title, fontsize=8)
        for row in range(n):
            ax = axes[row, col]
            ax.imshow(images[row].permute(1, 2, 0).squeeze(-1), cmap="gray", vmin=0, vmax=1)
            if cams is not None:
                ax.imshow(cams[row] / cams[row].max().clamp(min=1e-12), cmap="jet", alpha=0.45, vmin=0, vmax=1)
                ax.contour(m.masks[row], levels=[0.5], colors="lime", linewidths=0.6)
            ax.set_xticks([]); ax.set_yticks([])
        for row in range(n):
            axes[row, 0].set_ylabel(labels_text[row], fontsize=8)
    fig.suptitle(f"Figure 8: Grad-CAM of the true class, fog severity {m.severity} ({profile.name} profile, "
                 f"{profile['dataset']})", fontsize=10)
    fig.tight_layout()
    return fig


def claims(profile: Profile, m: Measured) -> list[dict]:
    """Section 5.2's reading of Figure 8, one claim with three conditions: under fog APR-SP's maps put more of their
    mass on the object than Standard's, more than a uniform map would (it still focuses on the object), and stay more
    like the clean image's maps."""
    text = ("APR-SP still is able to focus on the parts of the target object even in a heavy fog (more than the "
            "baseline).")
    source, paper = "Figure 8 (section 5.2)", "qualitative (shown, not measured)"
    standard, apr_sp = MODELS.values()
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
