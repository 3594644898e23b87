"""Figure 4 (section 3.1): CNNs trained and tested on images recombined from one band of the amplitude and one of
the phase.

A run whose config sets `bands.amplitude` or `bands.phase` (a profile variant such as `amp-low_phase-high`)
sees every image, in training and in every evaluation suite, as

    iDFT(A-hat_band(x) * exp(i P-hat_band(x)))          (apr_lib.spectral.band_recombine)

through its model's first layer (apr_lib.models.BandRecombinedInput), with the paper's z-hat rule (the bins outside
a band become 1: apr_lib.spectral) and radial bands of the centred spectrum as in the frequency helper of the
paper's reference [46]: low = radius < r_low, mid = r_low <= radius < r_high, high >= r_high (radii in DFT bins, the
profile's `bands.radii`; the paper gives none). `measure` reads each run's `clean` metrics into the 4x4 grid, beside the paper's.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from apr_lib.models import config_bands
from apr_lib.paper import evidence
from apr_lib.paper.paper_results import paper_fig4
from apr_lib.paper.report import (Condition, Table, claim, dataset_name, describe_runs, figure_text, load_metrics,
                                  number, training_budget, unmeasured)
from apr_lib.spectral import BANDS, band_recombine
from apr_lib.study.config import Profile, RunSpec, run_config, table_runs
from apr_lib.uncertainty import Estimate, combine, interval

KEY = "fig4_amp_phase_grid"  # the section key, the profile's `tables:` key, the table's and figure's name
ROW_LABELS = {"full": "A", "low": "Â^L", "mid": "Â^I", "high": "Â^H"}  # the paper's rows (amplitude), in text
SUFFIX = {"full": "", "low": "^L", "mid": "^I", "high": "^H"}


def _tex(letter: str, band: str) -> str:
    """The paper's row / column label in matplotlib's mathtext: A, Â^L, ... and P, P̂^L, ..."""
    return f"$\\mathcal{{{letter}}}$" if band == "full" else f"$\\hat{{\\mathcal{{{letter}}}}}{SUFFIX[band]}$"


def measure(profile: Profile) -> pd.DataFrame:
    """One row per (amplitude band, phase band) of the profile's runs: test accuracy % (mean over seeds) beside
    the paper's Figure 4 cell, in the paper's order."""
    paper = paper_fig4()
    accuracy: dict[tuple[str, str], list[float]] = {}
    for run in table_runs(profile, KEY):
        clean = load_metrics(profile, run, "clean")
        accuracy.setdefault(config_bands(run_config(profile, run)), []).append(100.0 - clean["error"])
    rows = [{"amplitude": a, "phase": p, "ours": float(np.mean(accuracy[a, p])) if (a, p) in accuracy else np.nan,
             "paper": paper[a][p]} for a in BANDS for p in BANDS]
    return pd.DataFrame(rows)


def caption(profile: Profile) -> str:
    runs = table_runs(profile, KEY)
    configs = [run_config(profile, r) for r in runs]
    radii = sorted({tuple(c["bands"]["radii"]) for c in configs if config_bands(c) != ("full", "full")})
    bands = "; ".join(f"low radius < {lo}, mid {lo} to < {hi}, high >= {hi} DFT bins" for lo, hi in radii)
    missing = 16 - len({config_bands(c) for c in configs})
    return ("Figure 4: test accuracy (%) of a model trained and tested on iDFT(amplitude band x exp(i phase band)) "
            "images (rows: amplitude band, columns: phase band; z-hat rule: the bins outside a band become 1, the phase "
            "+-1 so that the image stays real), means over seeds. "
            f"Ours (`ours`): {describe_runs(profile, runs)} Bands: {bands} (our choice: the paper gives no radii); "
            "the recombined images are not clipped. "
            + (f"{missing} of the 16 cells are not among this profile's runs (blank). " if missing else "")
            + "Paper (`paper`): CIFAR-10, ResNet-18, from params/paper_results.yaml (fig4).")


def figure(profile: Profile, df: pd.DataFrame):
    """As the paper's Figure 4: the two 4x4 grids side by side as heat maps on one colour scale, (a) ours and (b) the
    paper's; a cell this profile does not run says so."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), constrained_layout=True)
    runs = table_runs(profile, KEY)
    budget = training_budget(profile, runs[-1])  # the band runs' (the first may be Table 1's full-spectrum run)
    for ax, column, title in ((axes[0], "ours", f"(a) ours: {dataset_name(profile)}, {runs[0].arch}, {budget}"),
                              (axes[1], "paper", "(b) paper: CIFAR-10, ResNet-18")):
        values = df.pivot(index="amplitude", columns="phase", values=column).loc[list(BANDS), list(BANDS)].to_numpy()
        image = ax.imshow(values, cmap="viridis", vmin=0, vmax=100)
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, number(v) if np.isfinite(v) else "not run", ha="center", va="center", fontsize=10,
                    color="black" if np.isfinite(v) and v >= 60 else ("white" if np.isfinite(v) else "grey"))
        ax.set_xticks(range(4), [_tex("P", b) for b in BANDS])
        ax.set_yticks(range(4), [_tex("A", b) for b in BANDS])
        ax.set_xlabel("phase band"); ax.set_ylabel("amplitude band"); ax.set_title(title)
    fig.colorbar(image, ax=axes, shrink=0.8, label="test accuracy %")
    fig.suptitle("Figure 4: accuracy of a CNN trained and tested on images rebuilt from one amplitude and one phase "
                 "band", fontsize=12)
    return fig


def figure_caption(profile: Profile, df: pd.DataFrame) -> str:
    runs = table_runs(profile, KEY)
    ours = df.dropna(subset=["ours"])
    if len(ours) == 16:
        (phase_range, amplitude_range), paper = (amplitude_reliance(_cell(df, column))["whole"]
                                                 for column in ("ours", "paper"))
        finding = (f"With the full amplitude, accuracy moves {number(phase_range)} points across the phase bands; with "
                   f"the full phase, {number(amplitude_range)} points across the amplitude bands (the paper: "
                   f"{number(paper[0])} vs {number(paper[1])}, read as the CNN relying more on the amplitude).")
    else:
        finding = f"Only {len(ours)} of the grid's 16 cells are run on this profile, beside the paper's grid."
    details = (f"Figure 4 on {dataset_name(profile)}: test accuracy of one {runs[0].arch} per "
               "(amplitude band, phase "
               f"band), trained ({training_budget(profile, runs[-1])}) and tested on images rebuilt from those bands "
               f"(radii {profile['bands']['radii']} DFT bins, our choice; zeros of the spectrum become 1, the paper's "
               f"z-hat rule), beside the paper's grid (CIFAR-10, ResNet-18). {len(ours)} of the 16 cells "
               "are run here" + ("" if len(ours) == 16 else "; the others say \"not run\"") + ". The claims below "
               "compare how far accuracy moves along a row and along a column, as the paper reads its grid.")
    return figure_text(finding, details)


def _cell(df: pd.DataFrame, column: str):
    """One column of `measure`'s table as the cell function `cell(a, p)` that amplitude_reliance and matched_bands
    read."""
    table = df.pivot(index="amplitude", columns="phase", values=column).loc[list(BANDS), list(BANDS)]
    return lambda a, p: float(table.loc[a, p])


def _range(values) -> np.ndarray:
    """Max - min over the first axis (cells), elementwise over the rest (seeds, replicates)."""
    values = np.stack([np.asarray(v, float) for v in values])
    return values.max(0) - values.min(0)


def amplitude_reliance(cell) -> dict[str, object]:
    """Range across the phase bands with the amplitude fixed minus range across the amplitude bands with the phase
    fixed, in points of accuracy: with the whole spectra fixed (row A against column P) and as means over all rows /
    columns. `cell(a, p)` gives a cell's accuracy (a number, or an array of seeds and replicates)."""
    rows = [_range([cell(a, p) for p in BANDS]) for a in BANDS]
    columns = [_range([cell(a, p) for a in BANDS]) for p in BANDS]
    return {"whole": (rows[0], columns[0]), "grid": (sum(rows) / len(rows), sum(columns) / len(columns))}


def matched_bands(cell) -> dict[str, tuple[object, object]]:
    """Per band-limited amplitude row: (accuracy with the phase of the same band, best other band-limited phase)."""
    limited = BANDS[1:]
    return {a: (cell(a, a), np.max(np.stack([np.asarray(cell(a, p), float) for p in limited if p != a]), 0))
            for a in limited}


def cell_estimates(profile: Profile) -> dict[tuple[str, str], Estimate]:
    """Test accuracy (%) of each cell's runs (one per seed), by (amplitude band, phase band)."""
    runs: dict[tuple[str, str], list[RunSpec]] = {}
    for run in table_runs(profile, KEY):
        runs.setdefault(config_bands(run_config(profile, run)), []).append(run)
    return {bands: evidence.clean_accuracy(profile, cell_runs) for bands, cell_runs in runs.items()}


def claims(profile: Profile, df: pd.DataFrame) -> list[dict]:
    """Section 3.1's two readings of Figure 4, measured on our grid (seed by seed, with 95% intervals over seeds and
    test images) beside the paper's grid."""
    source = "Figure 4 (section 3.1)"
    paper_cell = _cell(df, "paper")
    reliance_text = ("When fixing the amplitude spectrum and phase spectrum respectively, the range of change without "
                     "amplitude is larger than the case without phase (the CNN relies more on the amplitude spectrum).")
    matched_text = ("The combination of phase and amplitude in the corresponding frequency domain achieves better "
                    "performance than their other combinations.")
    reliance_measures = {
        "whole": "accuracy range across the phase bands with the full amplitude (row A) - across the amplitude bands "
                 "with the full phase (column P), points",
        "grid": "mean over the 4 rows of the accuracy range across phase bands - mean over the 4 columns of the range "
                "across amplitude bands, points"}
    cells = cell_estimates(profile)
    if len(cells) < 16:
        not_run = f"this profile's {KEY} runs cover {len(cells)} of the 16 cells"
        paper_reliance = amplitude_reliance(paper_cell)
        return [unmeasured(reliance_text, source, "paper", reliance_measures["whole"],
                           "{:.1f} vs {:.1f}".format(*paper_reliance["whole"]), "not run", not_run),
                unmeasured(matched_text, source, "paper", "accuracy with the same band's phase - best other band",
                           "", "not run", not_run)]
    # every cell's runs share the seeds, so each statistic is computed seed by seed
    names = list(cells)
    grid = lambda f: combine(lambda *values: f(lambda a, p: values[names.index((a, p))]), *cells.values())  # noqa: E731
    paper_reliance = amplitude_reliance(paper_cell)
    conditions = []
    for key in reliance_measures:
        first, second = (grid(lambda cell, k=key, i=i: amplitude_reliance(cell)[k][i]) for i in (0, 1))
        difference_estimate = combine(np.subtract, first, second)
        conditions.append(Condition(reliance_measures[key], f"{first.value:.1f} vs {second.value:.1f}",
                                    "{:.1f} vs {:.1f}".format(*paper_reliance[key]), interval(difference_estimate), -1,
                                    digits=1))
    paper_matched = matched_bands(paper_cell)
    matched = []
    for a in BANDS[1:]:
        same, other = (grid(lambda cell, a=a, i=i: matched_bands(cell)[a][i]) for i in (0, 1))
        matched.append(Condition(f"row {ROW_LABELS[a]}: accuracy % with the phase band of the same frequencies - the "
                                 "best of the two other band-limited phases", f"{same.value:.1f} vs {other.value:.1f}",
                                 "{:.1f} vs {:.1f}".format(*paper_matched[a]),
                                 interval(combine(np.subtract, same, other)), +1, digits=1))
    seeds = next(iter(cells.values())).seeds
    note = f"{seeds} seed{'s' if seeds > 1 else ''} per cell; both readings of the range must hold"
    return [claim(reliance_text, source, "paper", conditions, note),
            claim(matched_text, source, "paper", matched, f"{seeds} seed{'s' if seeds > 1 else ''} per cell; the same "
                  "band must win in all three rows")]


def example_figure(image: torch.Tensor, radii: tuple[float, float]):
    """One image (C, H, W) in [0, 1] as each cell's model sees it (rows: amplitude band, columns: phase band).

    Each panel is scaled to its own range: the recombined images are not clipped and centre on 0 without the
    low amplitude band."""
    fig, axes = plt.subplots(4, 4, figsize=(6, 6.4), squeeze=False)
    for i, amplitude in enumerate(BANDS):
        for j, phase in enumerate(BANDS):
            view = band_recombine(image[None], amplitude, phase, radii, mode="per_channel")[0]
            view = (view - view.min()) / (view.max() - view.min()).clamp_min(1e-8)
            axes[i, j].imshow(view.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray")
            axes[i, j].set_xticks([]); axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(_tex("P", phase), fontsize=9)
            if j == 0:
                axes[i, j].set_ylabel(_tex("A", amplitude), fontsize=9)
    fig.tight_layout()
    return fig


def tables(profile: Profile, df: pd.DataFrame) -> dict[str, Table]:
    return {KEY: Table(df, caption(profile))}
