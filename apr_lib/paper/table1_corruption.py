"""Table 1 (section 5.1, common corruptions): clean and mean corruption error per training method, ours beside the
paper's; the RMS calibration errors in an appendix table; the claims on its effects.

`measure` reads every run's `clean` and `corruption` metrics files (one row per run).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from apr_lib.metrics import CALIBRATION_DEFINITION
from apr_lib.paper.paper_results import paper_table1
from apr_lib.paper.report import (METHOD_LABELS, Table, claim, corruption_label, dataset_name, describe_runs, load_metrics,
                                  measured, seeds_text, training_budget)
from apr_lib.study.config import Profile, table_runs

KEY = "table1_corruption"

# The paper's -C set nearest to each dataset of ours (Fashion-MNIST: 10 classes, like CIFAR-10).
PAPER_C_DATASET = {"fmnist": "cifar10_c", "cifar10": "cifar10_c", "cifar100": "cifar100_c"}
PAPER_C_LABEL = {"cifar10_c": "CIFAR-10-C", "cifar100_c": "CIFAR-100-C"}
# Our architecture names -> the paper's Table 1 rows; others are compared with the paper's mean row.
PAPER_ARCH = {"allconv": "allconv", "densenet40_12": "densenet", "densenet_bc100_12": "densenet",
              "wrn40_2": "wrn40_2", "resnext29_4x32": "resnext29"}


def measure(profile: Profile) -> pd.DataFrame:
    """One row per run of Table 1: clean error, mean corruption error and per-corruption errors (%), and the RMS
    calibration errors (%) on the clean test set and on the -C set (mean over corruptions x severities)."""
    rows = []
    for run in table_runs(profile, "table1_corruption"):
        clean_error, clean_calibration = measured(profile, run, "clean", "error", "calibration_error")
        mean_error, per_corruption, corruption_calibration = measured(
            profile, run, "corruption",
            "mean_corruption_error", "corruption_error", "mean_corruption_calibration_error")
        rows.append({"arch": run.arch, "method": run.method, "seed": run.seed, "clean_error": clean_error,
                     "corruption_error": mean_error, "clean_calibration_error": clean_calibration,
                     "corruption_calibration_error": corruption_calibration, **per_corruption})
    return pd.DataFrame(rows)


def table1(profile: Profile, per_run: pd.DataFrame) -> pd.DataFrame:
    """Table 1: per arch and method, clean error and mean corruption error (ours, mean over seeds) beside the paper's.

    With several architectures, rows with arch `mean` follow: each method averaged over them, beside the paper's
    mean row."""
    paper = paper_table1(PAPER_C_DATASET[profile["dataset"]])
    grouped = per_run.groupby(["arch", "method"], sort=False)
    df = grouped.agg(clean_error=("clean_error", "mean"), ours=("corruption_error", "mean")).reset_index()
    if len(profile["seeds"]) > 1:
        df.insert(df.columns.get_loc("ours") + 1, "ours_sd", grouped["corruption_error"].std().to_numpy())
    if df["arch"].nunique() > 1:
        means = df.groupby("method", sort=False)[["clean_error", "ours"]].mean().reset_index().assign(arch="mean")
        df = pd.concat([df, means[["arch", "method", "clean_error", "ours"]]], ignore_index=True)
    df["paper"] = [paper[PAPER_ARCH.get(arch, "mean")].get(method) for arch, method in zip(df["arch"], df["method"])]
    df["paper_arch"] = [PAPER_ARCH.get(arch, "mean of 4 archs") for arch in df["arch"]]
    df["method"] = df["method"].map(METHOD_LABELS)
    return df


def table1_caption(profile: Profile) -> str:
    first_run = table_runs(profile, "table1_corruption")[0]
    c_source = load_metrics(profile, first_run, "corruption")["source"]
    corruptions = profile["eval"]["corruptions"]
    return (f"Table 1: clean error and mean corruption error (%, lower is better) per training method. "
            f"Ours (`ours`): {describe_runs(profile, table_runs(profile, KEY))} Corruption error over {len(corruptions)} corruptions "
            f"({', '.join(corruptions)}) x severities {profile['eval']['severities']}; -C set {c_source}. "
            f"Paper (`paper`): {PAPER_C_LABEL[PAPER_C_DATASET[profile['dataset']]]} at paper scale, "
            "from params/paper_results.yaml."
            + (" Rows with arch `mean`: each method averaged over the architectures, beside the paper's mean row."
               if len(profile["tables"]["table1_corruption"]["archs"]) > 1 else ""))


def table1_calibration(per_run: pd.DataFrame) -> pd.DataFrame:
    """Table 1's appendix: per arch and method (mean over seeds), test error and RMS calibration error (%) on the
    clean test set and on the -C set (mean over corruptions x severities)."""
    columns = ["clean_error", "clean_calibration_error", "corruption_error", "corruption_calibration_error"]
    df = per_run.groupby(["arch", "method"], sort=False)[columns].mean().reset_index()
    df["method"] = df["method"].map(METHOD_LABELS)
    return df


def table1_calibration_caption(profile: Profile) -> str:
    return (f"Appendix to Table 1: test error and RMS calibration error (%, lower is better) on the clean test set "
            f"(`clean_*`) and on the -C set (`corruption_*`, mean over {len(profile['eval']['corruptions'])} "
            f"corruptions x severities {profile['eval']['severities']}). Ours: {describe_runs(profile, table_runs(profile, KEY))} "
            f"Calibration: {CALIBRATION_DEFINITION} (Hendrycks et al.). The paper prints no numbers for these "
            "(its appendix, which it cites for test accuracy, is not part of its text), so there is no `paper` column.")


def claims(profile: Profile, per_run: pd.DataFrame) -> list[dict]:
    """The direction of Table 1's effects (section 5.1), measured as means over archs and seeds."""
    ours = per_run.groupby("method")["corruption_error"].mean()
    dataset = PAPER_C_DATASET[profile["dataset"]]
    paper = paper_table1(dataset)["mean"]
    source = f"Table 1 ({PAPER_C_LABEL[dataset]}, mean row)"
    seeds = len(profile["seeds"])
    note = (f"{seeds} seed{'s' if seeds > 1 else ''} per method; mean corruption error over "
            f"{len(profile['eval']['corruptions'])} corruptions x {len(profile['eval']['severities'])} severities")

    def lower(claim_text: str, better: str, worse: list[str]) -> dict:
        measure = f"mean corruption error %, {METHOD_LABELS[better]} vs " + " / ".join(METHOD_LABELS[w] for w in worse)
        paper_text = " vs ".join(f"{paper[m]}" for m in [better] + worse)
        if not all(m in ours for m in [better] + worse):
            missing = [m for m in [better] + worse if m not in ours]
            return claim(claim_text, source, measure, "", paper_text, None,
                         f"not in this profile's table1_corruption.methods: {', '.join(missing)}")
        ours_text = " vs ".join(f"{ours[m]:.1f}" for m in [better] + worse)
        return claim(claim_text, source, measure, ours_text, paper_text,
                     bool(ours[better] < min(ours[w] for w in worse)), note)

    return [
        lower("APR-P lowers the corruption error of standard training.", "apr_p", ["standard"]),
        lower("APR-S lowers the corruption error of standard training.", "apr_s", ["standard"]),
        lower("APR-SP has a lower corruption error than APR-P and APR-S alone.", "apr_sp", ["apr_p", "apr_s"]),
        lower("APR-P has a lower corruption error than Mixup and CutMix (pair-based augmentations).",
              "apr_p", ["mixup", "cutmix"]),
        lower("APR-S with plain cross-entropy beats AugMix with its Jensen-Shannon loss.", "apr_s", ["augmix"]),
        lower("APR-SP (APR for single and pair images combined) improves on AugMix.", "apr_sp", ["augmix"]),
        lower("APR-SP surpasses the other data augmentation techniques of Table 1.", "apr_sp",
              [m for m in paper if m != "apr_sp"]),
    ]


def per_corruption_figure(profile: Profile, per_run: pd.DataFrame):
    """Where each method gains or loses: the error per corruption (mean over severities) of each method on the first
    architecture, a bar per method; the mean over seeds with ±1 sd where there are several."""
    arch = per_run["arch"].iloc[0]
    rows = per_run[per_run["arch"] == arch]
    corruptions = profile["eval"]["corruptions"]
    methods = list(dict.fromkeys(rows["method"]))
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(min(16.0, max(8.0, 0.95 * len(corruptions))), 4.8))
    for k, method in enumerate(methods):
        errors = rows[rows["method"] == method][corruptions]
        sd = errors.std() if len(errors) > 1 else None
        ax.bar(np.arange(len(corruptions)) + (k - (len(methods) - 1) / 2) * width, errors.mean(), width,
               yerr=sd, capsize=2, label=METHOD_LABELS[method])
    ax.set_xticks(range(len(corruptions)), [corruption_label(c) for c in corruptions], rotation=35, ha="right")
    ax.set_ylabel("error % (mean over severities)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    run = table_runs(profile, KEY)[0]
    ax.set_title(f"Table 1 per corruption: {dataset_name(profile)}-C, {arch} ({training_budget(profile, run)}, "
                 f"{seeds_text(table_runs(profile, KEY))})")
    fig.tight_layout()
    return fig


def tables(profile: Profile, per_run: pd.DataFrame) -> dict[str, Table]:
    return {KEY: Table(table1(profile, per_run), table1_caption(profile)),
            "table1_calibration": Table(table1_calibration(per_run), table1_calibration_caption(profile))}
