"""Table 1 (section 5.1, common corruptions): clean and mean corruption error per training method, ours beside the
paper's; the RMS calibration errors in an appendix table; the claims on its effects.

`measure` reads every run's `clean` and `corruption` metrics files (one row per run). A row is a method, or a
method with a variant (`<method>@<variant>` in `tables.table1_corruption.methods`): the default profile trains APR-S
and APR-SP with clipping and also as released (uint8 wrap-around), each with its own row and claims. The claims
compare means over seeds (and architectures) with 95% intervals from the per-image results (apr_lib.paper.evidence).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from apr_lib.metrics import CALIBRATION_DEFINITION
from apr_lib.paper import evidence
from apr_lib.paper.fig7_apr_examples import wrap_share
from apr_lib.paper.paper_results import paper_table1
from apr_lib.paper.report import (METHOD_LABELS, Table, claim, compare, corruption_label, dataset_name, describe_runs,
                                  load_metrics, measured, seeds_text, training_budget, unmeasured)
from apr_lib.study.config import Profile, table_runs, table_seeds, with_variant
from apr_lib.study.targets import profile_sections
from apr_lib.uncertainty import interval

KEY = "table1_corruption"

# The paper's -C set nearest to each dataset of ours (Fashion-MNIST: 10 classes, like CIFAR-10).
PAPER_C_DATASET = {"fmnist": "cifar10_c", "cifar10": "cifar10_c", "cifar100": "cifar100_c"}
PAPER_C_LABEL = {"cifar10_c": "CIFAR-10-C", "cifar100_c": "CIFAR-100-C"}
# Our architecture names -> the paper's Table 1 rows; others are compared with the paper's mean row.
PAPER_ARCH = {"allconv": "allconv", "densenet40_12": "densenet", "densenet_bc100_12": "densenet",
              "wrn40_2": "wrn40_2", "resnext29_4x32": "resnext29"}
OVERFLOW_LABELS = {"wrap": "released wrap", "clip": "clipped"}
APR_S_METHODS = ("apr_s", "apr_sp")


def overflow_variant(profile: Profile, row: str) -> str | None:
    """The APR-S overflow of a row whose variant changes the profile's (e.g. `apr_s@wrap`), else None."""
    method, _, variant = row.partition("@")
    if not variant or method not in APR_S_METHODS:
        return None
    overflow = with_variant(profile.cfg, variant)["apr"]["s_overflow"]
    return overflow if overflow != profile["apr"]["s_overflow"] else None


def row_label(profile: Profile, row: str) -> str:
    method, _, variant = row.partition("@")
    overflow = overflow_variant(profile, row)
    suffix = f", {OVERFLOW_LABELS[overflow]}" if overflow else (f" ({variant})" if variant else "")
    return METHOD_LABELS[method] + suffix


def measure(profile: Profile) -> pd.DataFrame:
    """One row per run of Table 1: clean error, mean corruption error and per-corruption errors (%), and the RMS
    calibration errors (%) on the clean test set and on the -C set (mean over corruptions x severities)."""
    rows = []
    for run in table_runs(profile, KEY):
        clean_error, clean_calibration = measured(profile, run, "clean", "error", "calibration_error")
        mean_error, per_corruption, corruption_calibration = measured(
            profile, run, "corruption",
            "mean_corruption_error", "corruption_error", "mean_corruption_calibration_error")
        row = evidence.row_key(run)
        rows.append({"arch": run.arch, "row": row, "method": row_label(profile, row), "seed": run.seed,
                     "clean_error": clean_error, "corruption_error": mean_error,
                     "clean_calibration_error": clean_calibration,
                     "corruption_calibration_error": corruption_calibration, **per_corruption})
    return pd.DataFrame(rows)


def table1(profile: Profile, per_run: pd.DataFrame) -> pd.DataFrame:
    """Table 1: per arch and row, clean error and mean corruption error (ours, means over seeds) with the 95% interval
    of the latter (seeds and test images), beside the paper's.

    With several architectures, rows with arch `mean` follow: each method averaged over them, beside the paper's
    mean row."""
    paper = paper_table1(PAPER_C_DATASET[profile["dataset"]])
    grouped = per_run.groupby(["arch", "row"], sort=False)
    df = grouped.agg(method=("method", "first"), seeds=("seed", "size"), clean_error=("clean_error", "mean"),
                     ours=("corruption_error", "mean")).reset_index()
    groups = evidence.rows(profile, KEY)
    intervals = {(arch, row): interval(evidence.mean_corruption_error(profile, runs))
                 for row, by_arch in groups.items() for arch, runs in by_arch.items()}
    if df["arch"].nunique() > 1:
        means = df.groupby("row", sort=False).agg(method=("method", "first"), seeds=("seeds", "first"),
                                                   clean_error=("clean_error", "mean"), ours=("ours", "mean"))
        df = pd.concat([df, means.reset_index().assign(arch="mean")], ignore_index=True)
        intervals |= {("mean", row): interval(estimate) for row, estimate in
                      evidence.per_row(profile, KEY, evidence.mean_corruption_error).items()}
    df.insert(df.columns.get_loc("ours") + 1, "ours_low", [intervals[a, r].low for a, r in zip(df["arch"], df["row"])])
    df.insert(df.columns.get_loc("ours") + 2, "ours_high", [intervals[a, r].high for a, r in zip(df["arch"], df["row"])])
    df["paper"] = [paper[PAPER_ARCH.get(arch, "mean")].get(row.partition("@")[0])
                   for arch, row in zip(df["arch"], df["row"])]
    df["paper_arch"] = [PAPER_ARCH.get(arch, "mean of 4 archs") for arch in df["arch"]]
    return df.drop(columns="row")


def overflow_sentence(profile: Profile) -> str:
    """What the profile's APR-S does with values outside [0, 1], and the rows trained the other way."""
    own = profile["apr"]["s_overflow"]
    others = sorted({row_label(profile, r) for r in evidence.rows(profile, KEY) if overflow_variant(profile, r)})
    share = wrap_share(profile)
    text = (f"APR-S quantises its recombined images to uint8 levels with {'clipping' if own == 'clip' else 'wrap-around'}"
            f" (`apr.s_overflow: {own}`)")
    if own == "clip":
        text += (f", not the released code's wrap-around, which on {profile['dataset']} turns {share:.1%} of the pixels "
                 "of recombined images to the far end of the range (values just below 0 on a black background "
                 "become near white): an artefact of quantising, not the paper's method")
    else:
        text += f" as released ({share:.1%} of the pixels of recombined {profile['dataset']} images wrap around)"
    return text + (f"; {', '.join(others)}: trained the other way, with their own claims." if others else ".")


def table1_caption(profile: Profile) -> str:
    runs = table_runs(profile, KEY)
    c_source = load_metrics(profile, runs[0], "corruption")["source"]
    corruptions = profile["eval"]["corruptions"]
    return (f"Table 1: clean error and mean corruption error (%, lower is better) per training method; `ours` is the "
            f"mean over `seeds` seeds, [`ours_low`, `ours_high`] its 95% interval (seeds and test images). "
            f"Ours: {describe_runs(profile, runs)} Corruption error over {len(corruptions)} corruptions "
            f"({', '.join(corruptions)}) x severities {profile['eval']['severities']}; -C set {c_source}. "
            f"{overflow_sentence(profile)} "
            f"Paper (`paper`): {PAPER_C_LABEL[PAPER_C_DATASET[profile['dataset']]]} at paper scale, "
            "from params/paper_results.yaml."
            + (" Rows with arch `mean`: each method averaged over the architectures, beside the paper's mean row."
               if len(profile["tables"][KEY]["archs"]) > 1 else ""))


def table1_calibration(per_run: pd.DataFrame) -> pd.DataFrame:
    """Table 1's appendix: per arch and row (mean over seeds), test error and RMS calibration error (%) on the
    clean test set and on the -C set (mean over corruptions x severities)."""
    columns = ["clean_error", "clean_calibration_error", "corruption_error", "corruption_calibration_error"]
    return per_run.groupby(["arch", "method"], sort=False)[columns].mean().reset_index()


def table1_calibration_caption(profile: Profile) -> str:
    return (f"Appendix to Table 1: test error and RMS calibration error (%, lower is better) on the clean test set "
            f"(`clean_*`) and on the -C set (`corruption_*`, mean over {len(profile['eval']['corruptions'])} "
            f"corruptions x severities {profile['eval']['severities']}), means over seeds. Ours: "
            f"{describe_runs(profile, table_runs(profile, KEY))} Calibration: {CALIBRATION_DEFINITION} (Hendrycks "
            "et al.). The paper prints no numbers for these (its appendix, which it cites for test accuracy, is not "
            "part of its text), so there is no `paper` column.")


CLAIMS = (  # (claim, better, worse): lower mean corruption error for `better` than for each of `worse`
    ("APR-P lowers the corruption error of standard training.", "apr_p", ["standard"]),
    ("APR-S lowers the corruption error of standard training.", "apr_s", ["standard"]),
    ("APR-SP has a lower corruption error than APR-P and APR-S alone.", "apr_sp", ["apr_p", "apr_s"]),
    ("APR-P has a lower corruption error than Mixup and CutMix (pair-based augmentations).", "apr_p",
     ["mixup", "cutmix"]),
    ("APR-S with plain cross-entropy beats AugMix with its Jensen-Shannon loss.", "apr_s", ["augmix"]),
    ("APR-SP (APR for single and pair images combined) improves on AugMix.", "apr_sp", ["augmix"]),
    ("APR-SP surpasses the other data augmentation techniques of Table 1.", "apr_sp",
     ["standard", "cutout", "mixup", "cutmix", "adv", "apr_p", "autoaugment", "augmix", "apr_s"]),
)


SURPASSES = CLAIMS[-1][0]  # Table 4's proxy re-measures this claim's AutoAugment and AugMix conditions on its runs


def lower_error_claims(profile: Profile, errors: dict, source: str, paper: dict, setting: str,
                       measure: str = "mean corruption error %") -> list:
    """The claims of CLAIMS on the estimates `errors` ({row: Estimate}, lower is better), as the paper's claims on the
    profile's own rows and, where rows train APR-S the other way (`<method>@<variant>` changing apr.s_overflow),
    again on those rows: the released code's claims (wrap) or a check beyond the paper (clip)."""
    alternatives = {}
    for row in errors:
        if (overflow := overflow_variant(profile, row)) is not None:
            alternatives.setdefault(overflow, {})[row.partition("@")[0]] = row
    result = []
    for overflow in [None, *alternatives]:
        swap = alternatives.get(overflow, {})
        kind = "paper" if overflow is None else ("released code" if overflow == "wrap" else "beyond paper")
        for text, better, worse in CLAIMS:
            if overflow is not None and not ({better, *worse} & set(APR_S_METHODS)):
                continue  # the claim does not involve APR-S: the same as the profile's own
            if overflow is not None:
                text = f"{text[:-1]} (APR-S {OVERFLOW_LABELS[overflow]})."
            # the other way's rows for APR-S and APR-SP, the profile's own for the rest
            rows = [swap.get(m, f"{m} ({OVERFLOW_LABELS[overflow]})") if overflow and m in APR_S_METHODS else m
                    for m in [better, *worse]]
            missing = [r for r in rows if r not in errors]
            if missing:
                result.append(unmeasured(text, source, kind, f"{measure}, {METHOD_LABELS[better]} - others",
                                         " vs ".join(f"{paper.get(m)}" for m in [better, *worse]), "not run",
                                         f"not in this profile's tables.{KEY}.methods: {', '.join(missing)}"))
                continue
            conditions = [compare(measure, (row_label(profile, rows[0]), row_label(profile, r)), errors[rows[0]],
                                  errors[r], -1, (paper.get(better), paper.get(m)))
                          for r, m in zip(rows[1:], worse)]
            note = setting
            if text == SURPASSES and "table4_imagenet_c" in [s.key for s in profile_sections(profile)]:
                note += ("; Table 4's relative mCE re-measures the AutoAugment and AugMix conditions on these runs "
                         "(table4_imagenet_c, counted here)")
            result.append(claim(text, source, kind, conditions, note))
    return result


def claims(profile: Profile, per_run: pd.DataFrame) -> list[dict]:
    """The direction of Table 1's effects (section 5.1): mean corruption error, means over archs and seeds, each
    difference with its 95% interval."""
    dataset = PAPER_C_DATASET[profile["dataset"]]
    errors = evidence.per_row(profile, KEY, evidence.mean_corruption_error)
    seeds = len(table_seeds(profile, KEY))
    images = load_metrics(profile, table_runs(profile, KEY)[0], "corruption")["n_per_severity"]
    setting = (f"{seeds} seed{'s' if seeds > 1 else ''} per method; mean corruption error over "
               f"{len(profile['eval']['corruptions'])} corruptions x {len(profile['eval']['severities'])} severities "
               f"of {images:,} test images")
    return lower_error_claims(profile, errors, f"Table 1 ({PAPER_C_LABEL[dataset]}, mean row)",
                              paper_table1(dataset)["mean"], setting)


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
               yerr=sd, capsize=2, label=method)  # per_run["method"] is the row's label
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
