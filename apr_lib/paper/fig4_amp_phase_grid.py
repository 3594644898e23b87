"""Figure 4 (section 3.1): CNNs trained and tested on images recombined from one band of the amplitude and one of
the phase.

A run whose config sets `bands.amplitude` or `bands.phase` (a profile variant such as `amp-low_phase-high`)
sees every image, in training and in every evaluation suite, as

    iDFT(A-hat_band(x) * exp(i P-hat_band(x)))          (apr_lib.spectral.band_recombine)

through its model's first layer (apr_lib.models.BandRecombinedInput), with the paper's z-hat rule (zeros become 1)
and radial bands of the centred spectrum as in the frequency helper of the paper's reference [46]: low = radius <
r_low, mid = r_low <= radius < r_high, high >= r_high (radii in DFT bins, the profile's `bands.radii`; the paper
gives none). `measure` reads each run's `clean` metrics into the 4x4 grid, beside the paper's.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from apr_lib.models import config_bands
from apr_lib.paper.paper_results import paper_fig4
from apr_lib.paper.report import (Table, claim, dataset_name, describe_runs, figure_text, load_metrics, number,
                                  training_budget)
from apr_lib.spectral import BANDS, band_recombine
from apr_lib.study.config import Profile, run_config, table_runs

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
            "images (rows: amplitude band, columns: phase band; z-hat rule: zeros become 1). "
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
        (phase_range, amplitude_range), paper = (amplitude_reliance(_pivot(df, column))["whole"]
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


def _pivot(df: pd.DataFrame, column: str) -> pd.DataFrame:
    return df.pivot(index="amplitude", columns="phase", values=column).loc[list(BANDS), list(BANDS)]


def _range(values: pd.Series) -> float:
    return float(values.max() - values.min())


def amplitude_reliance(t: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """(accuracy range across phase bands with the amplitude fixed, range across amplitude bands with the phase
    fixed), in points: with the whole spectra fixed (row A, column P) and as means over all rows / columns."""
    return {"whole": (_range(t.loc["full"]), _range(t["full"])),
            "grid": (float(np.mean([_range(t.loc[a]) for a in BANDS])), float(np.mean([_range(t[p]) for p in BANDS])))}


def matched_bands(t: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Per band-limited amplitude row: (accuracy with the phase of the same band, best other band-limited phase)."""
    limited = BANDS[1:]
    return {a: (float(t.loc[a, a]), float(max(t.loc[a, p] for p in limited if p != a))) for a in limited}


def claims(profile: Profile, df: pd.DataFrame) -> list[dict]:
    """Section 3.1's two readings of Figure 4, measured on our grid and on the paper's."""
    source = "Figure 4 (section 3.1)"
    paper = _pivot(df, "paper")
    complete = bool(df["ours"].notna().all())
    ours = _pivot(df, "ours") if complete else None
    not_run = f"this profile's {KEY} runs cover {int(df['ours'].notna().sum())} of the 16 cells"
    result = []
    reliance_text = ("When fixing the amplitude spectrum and phase spectrum respectively, the range of change without "
                     "amplitude is larger than the case without phase (the CNN relies more on the amplitude spectrum)")
    for key, where, measure in [
            ("whole", "fixing the whole amplitude or the whole phase",
             "accuracy range (points) across the phase bands with the full amplitude (row A) vs across the "
             "amplitude bands with the full phase (column P)"),
            ("grid", "over the whole grid",
             "mean over the 4 rows of the accuracy range across phase bands vs mean over the 4 columns of the "
             "range across amplitude bands (points)")]:
        p = amplitude_reliance(paper)[key]
        if complete:
            o = amplitude_reliance(ours)[key]
            result.append(claim(f"{reliance_text}: {where}.", source, measure, f"{o[0]:.1f} vs {o[1]:.1f}",
                                f"{p[0]:.1f} vs {p[1]:.1f}", o[0] < o[1], "holds if the first range is the smaller"))
        else:
            result.append(claim(f"{reliance_text}: {where}.", source, measure, "", f"{p[0]:.1f} vs {p[1]:.1f}",
                                None, not_run))

    def cells(m: dict[str, tuple[float, float]]) -> str:
        return ", ".join(f"{ROW_LABELS[a]}: {same:.1f} vs {other:.1f}" for a, (same, other) in m.items())

    text = ("The combination of phase and amplitude in the corresponding frequency domain achieves better performance "
            "than their other combinations.")
    measure = ("in each band-limited amplitude row (Â^L, Â^I, Â^H): accuracy with the phase band of the same "
               "frequencies vs the best of the two other band-limited phases")
    if complete:
        m = matched_bands(ours)
        result.append(claim(text, source, measure, cells(m), cells(matched_bands(paper)),
                            all(same > other for same, other in m.values()),
                            "holds if the same band wins in all three rows"))
    else:
        result.append(claim(text, source, measure, "", cells(matched_bands(paper)), None, not_run))
    return result


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
