"""Builders of the paper's tables from this run's metrics files, and their claim checks.

Each builder returns a DataFrame with our numbers in `ours` and the paper's (from
params/paper_results.yaml) in `paper`; the section notebooks display and write them.
"""
from __future__ import annotations

import pandas as pd

from apr_lib.config import Profile, table_runs
from apr_lib.paper import paper_table1
from apr_lib.report import claim, describe_setting, load_metrics

# The paper's -C set nearest to each dataset of ours (Fashion-MNIST: 10 classes, like CIFAR-10).
PAPER_C_DATASET = {"fmnist": "cifar10_c", "cifar10": "cifar10_c", "cifar100": "cifar100_c"}
PAPER_C_LABEL = {"cifar10_c": "CIFAR-10-C", "cifar100_c": "CIFAR-100-C"}
# Our architecture names -> the paper's Table 1 rows; others are compared with the paper's mean row.
PAPER_ARCH = {"allconv": "allconv", "densenet40_12": "densenet", "densenet_bc100_12": "densenet",
              "wrn40_2": "wrn40_2", "resnext29_4x32": "resnext29"}
METHOD_LABELS = {"standard": "Standard", "cutout": "Cutout", "mixup": "Mixup", "cutmix": "CutMix",
                 "adv": "Adv Training", "apr_p": "APR-P", "autoaugment": "AutoAugment", "augmix": "AugMix",
                 "apr_s": "APR-S", "apr_sp": "APR-SP"}


def table1_metrics(profile: Profile) -> pd.DataFrame:
    """One row per run of Table 1: clean error, mean corruption error and per-corruption errors (%)."""
    rows = []
    for run in table_runs(profile, "table1_corruption"):
        clean = load_metrics(profile, run, "clean")
        corruption = load_metrics(profile, run, "corruption")
        rows.append({"arch": run.arch, "method": run.method, "seed": run.seed, "clean_error": clean["error"],
                     "corruption_error": corruption["mean_corruption_error"], **corruption["corruption_error"]})
    return pd.DataFrame(rows)


def table1(profile: Profile, per_run: pd.DataFrame) -> pd.DataFrame:
    """Table 1: per arch and method, clean error and mean corruption error (ours, mean over seeds) beside the paper's."""
    paper = paper_table1(PAPER_C_DATASET[profile["dataset"]])
    grouped = per_run.groupby(["arch", "method"], sort=False)
    df = grouped.agg(clean_error=("clean_error", "mean"), ours=("corruption_error", "mean")).reset_index()
    if len(profile["seeds"]) > 1:
        df.insert(df.columns.get_loc("ours") + 1, "ours_sd", grouped["corruption_error"].std().to_numpy())
    df["paper"] = [paper[PAPER_ARCH.get(arch, "mean")].get(method) for arch, method in zip(df["arch"], df["method"])]
    df["paper_arch"] = [PAPER_ARCH.get(arch, "mean of 4 archs") for arch in df["arch"]]
    df["method"] = df["method"].map(METHOD_LABELS)
    return df


def table1_caption(profile: Profile) -> str:
    first_run = table_runs(profile, "table1_corruption")[0]
    c_source = load_metrics(profile, first_run, "corruption")["source"]
    corruptions = profile["eval"]["corruptions"]
    return (f"Table 1: clean error and mean corruption error (%, lower is better) per training method. "
            f"Ours (`ours`): {describe_setting(profile)} Corruption error over {len(corruptions)} corruptions "
            f"({', '.join(corruptions)}) x severities {profile['eval']['severities']}; -C set {c_source}. "
            f"Paper (`paper`): {PAPER_C_LABEL[PAPER_C_DATASET[profile['dataset']]]} at paper scale, "
            "from params/paper_results.yaml.")


def table1_claims(profile: Profile, per_run: pd.DataFrame) -> list[dict]:
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
    ]
