"""Table 2 (section 5.1, out-of-distribution detection) from this run's `clean` and `ood` metrics files, and its claim
checks.

`measure` reads one row per run, OOD set and score: test accuracy and every metric of apr_lib.ood_metrics for both
scores, each named by its positive-class convention. `table2` is the paper's layout: test accuracy and the AUROC of
each OOD set and their mean per method, ours beside the paper's (SupCLR and CSI carry the paper's numbers only: not
reproduced here); `table2_detail` holds every metric.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from apr_lib.errors import UserError
from apr_lib.ood_metrics import CONVENTION, METRICS, SCORES
from apr_lib.paper.paper_results import load_paper_results, paper_table2
from apr_lib.paper import evidence
from apr_lib.paper.report import (METHOD_LABELS, SCORE_NAMES, Condition, Table, claim, compare, dataset_name,
                                  describe_runs, load_metrics, measured, seeds_text, training_budget, unmeasured)
from apr_lib.study.config import Profile, metrics_file, table_runs, table_seeds
from apr_lib.uncertainty import interval

KEY = "table2_ood"

# The paper's rows, in its order, and its row names; supclr and csi are not trained here.
PAPER_ROWS = ("standard", "cutout", "mixup", "apr_p", "supclr", "csi", "apr_s", "apr_sp")
NOT_REPRODUCED = ("supclr", "csi")
ROW_LABELS = {"standard": "CE", "cutout": "CE w/ Cutout", "mixup": "CE w/ Mixup", "apr_p": "CE w/ APR-P",
              "supclr": "SupCLR", "csi": "CSI", "apr_s": "CE w/ APR-S", "apr_sp": "CE w/ APR-SP"}
PAPER_SETS = ("svhn", "lsun", "imagenet", "lsun_fix", "imagenet_fix", "cifar100")


def measure(profile: Profile) -> pd.DataFrame:
    """One row per run, OOD set (and `mean`) and score: test accuracy and every detection metric (%)."""
    sets = profile["ood"]["sets"]
    rows = []
    for run in table_runs(profile, "table2_ood"):
        (error,) = measured(profile, run, "clean", "error")
        ood = dict(zip(SCORES, measured(profile, run, "ood", *SCORES)))
        if set(ood[SCORES[0]]) != {*sets, "mean"}:
            raise UserError(f"{metrics_file(profile, run, 'ood')} measured the OOD sets "
                            f"{', '.join(n for n in ood[SCORES[0]] if n != 'mean')}, but the profile's ood.sets are "
                            f"{', '.join(sets)}. Delete it and re-run `snakemake --cores 4 all`.")
        rows += [{"arch": run.arch, "method": run.method, "seed": run.seed, "test_acc": 100 - error, "ood_set": name,
                  "score": score, **ood[score][name]} for score in SCORES for name in [*sets, "mean"]]
    return pd.DataFrame(rows)


def ood_set_names(per_run: pd.DataFrame) -> list[str]:
    return [name for name in per_run["ood_set"].unique() if name != "mean"]


def table2(profile: Profile, per_run: pd.DataFrame) -> pd.DataFrame:
    """Table 2: per arch and method, test accuracy and AUROC per OOD set (profile's `ood.score`) and their mean
    (`ours`), means over seeds, beside the paper's; `mean_<other score>` is our mean AUROC of the other score."""
    score, other = profile["ood"]["score"], next(s for s in SCORES if s != profile["ood"]["score"])
    sets = ood_set_names(per_run)
    paper = paper_table2()
    auroc = per_run.pivot_table(index=["arch", "method"], columns=["score", "ood_set"], values="auroc", sort=False)
    accuracy = per_run.groupby(["arch", "method"], sort=False)["test_acc"].mean()
    runs = evidence.rows(profile, KEY)
    rows = []
    for block, arch in enumerate(per_run["arch"].unique()):
        ours = {m for a, m in auroc.index if a == arch}
        paper_only = NOT_REPRODUCED if block == 0 else ()
        for method in [m for m in PAPER_ROWS if m in ours or m in paper_only] + sorted(ours - set(PAPER_ROWS)):
            measured_here = method in ours
            row = {"arch": arch if measured_here else None,
                   "method": ROW_LABELS.get(method, METHOD_LABELS.get(method, method)),
                   "test_acc": accuracy[arch, method] if measured_here else None,
                   "test_acc_paper": paper.get(method, {}).get("test_acc")}
            for name in sets:
                row[name] = auroc.loc[(arch, method), (score, name)] if measured_here else None
                if name in PAPER_SETS:
                    row[f"{name}_paper"] = paper.get(method, {}).get(name)
            row["ours"] = auroc.loc[(arch, method), (score, "mean")] if measured_here else None
            found = interval(evidence.ood_auroc(profile, runs[method][arch], score, sets)) if measured_here else None
            row["ours_low"], row["ours_high"] = (found.low, found.high) if found else (None, None)
            row["seeds"] = len(runs[method][arch]) if measured_here else None
            row["paper"] = paper.get(method, {}).get("mean")
            row[f"mean_{other}"] = auroc.loc[(arch, method), (other, "mean")] if measured_here else None
            row["note"] = "" if measured_here else "not reproduced: the paper's numbers only"
            rows.append(row)
    df = pd.DataFrame(rows)
    return df.astype(object).where(df.notna(), None)  # None: blank cells in the csv and markdown, not "nan"


def per_set_figure(profile: Profile, per_run: pd.DataFrame):
    """AUROC of each method on each OOD set, (a) by the maximum softmax probability and (b) by the maximum logit: where
    a method's mean comes from and where the score changes the ranking; the mean over seeds with ±1 sd where there
    are several."""
    sets = ood_set_names(per_run)
    arch = per_run["arch"].iloc[0]
    rows = per_run[(per_run["arch"] == arch) & (per_run["ood_set"] != "mean")]
    methods = list(dict.fromkeys(rows["method"]))
    width = 0.8 / len(methods)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.4), sharey=True)
    for ax, (letter, score) in zip(axes, zip("ab", SCORES)):
        for k, method in enumerate(methods):
            auroc = rows[(rows["score"] == score) & (rows["method"] == method)].groupby("ood_set")["auroc"]
            sd = auroc.std().reindex(sets) if auroc.size().max() > 1 else None  # several seeds
            ax.bar([i + (k - (len(methods) - 1) / 2) * width for i in range(len(sets))], auroc.mean().reindex(sets),
                   width, yerr=sd, capsize=2, label=ROW_LABELS.get(method, METHOD_LABELS.get(method, method)))
        ax.axhline(50, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(sets)), sets)
        ax.set_title(f"({letter}) by the {SCORE_NAMES[score]}" + (" (the paper's)" if score == "msp" else ""))
        ax.set_ylabel("AUROC % (50: chance)")
        ax.grid(axis="y", alpha=0.3)
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    run = table_runs(profile, KEY)[0]
    fig.suptitle(f"Table 2 per OOD set: {dataset_name(profile)} test images vs each OOD set, {arch} "
                 f"({training_budget(profile, run)}, {seeds_text(table_runs(profile, KEY))})", fontsize=12)
    fig.tight_layout()
    return fig


def table2_detail(per_run: pd.DataFrame) -> pd.DataFrame:
    """Every metric (%) per arch, method, OOD set and score, means over seeds."""
    df = per_run.groupby(["score", "arch", "method", "ood_set"], sort=False)[["test_acc", *METRICS]].mean()
    df = df.reset_index()
    df["method"] = [ROW_LABELS.get(m, METHOD_LABELS.get(m, m)) for m in df["method"]]
    return df


def _sources(profile: Profile) -> tuple[dict, dict]:
    first = load_metrics(profile, table_runs(profile, "table2_ood")[0], "ood")
    return first["sets"], first["in_distribution"]


def table2_caption(profile: Profile) -> str:
    score = profile["ood"]["score"]
    other = next(s for s in SCORES if s != score)
    sets, in_dist = _sources(profile)
    set_text = "; ".join(f"{name}: {sets[name]['source']}" for name in profile["ood"]["sets"])
    return (f"Table 2: test accuracy (%) and AUROC (%) of separating {in_dist['n']:,} test images from each OOD set "
            f"by the {SCORE_NAMES[score]} ({score}; the same AUROC whichever class is called positive); `ours` is the "
            f"mean over the OOD sets, means over `seeds` seeds, [`ours_low`, `ours_high`] its 95% interval (seeds, test "
            f"and OOD images), `mean_{other}` the same mean with the {SCORE_NAMES[other]}. "
            f"Ours: {describe_runs(profile, table_runs(profile, KEY))} OOD sets: {set_text}. "
            f"Paper (`paper`, `*_paper`): {load_paper_results()['table2']['setting']}; from params/paper_results.yaml. "
            "SupCLR and CSI are not reproduced: their rows hold the paper's numbers only.")


def table2_detail_caption(profile: Profile) -> str:
    conventions = " ".join(f"{metric}: {text}." for metric, text in CONVENTION.items())
    return (f"Table 2, every metric (%) for both scores (msp: the paper's; max_logit: the released code's), per OOD "
            f"set and their mean; means over seeds. {conventions} {describe_runs(profile, table_runs(profile, KEY))}")


def claims(profile: Profile, per_run: pd.DataFrame) -> list[dict]:
    """Table 2's claims (section 5.1, 'Out-of-Distribution Detection'): mean AUROC over the OOD sets by the profile's
    score and test accuracy, means over archs and seeds (the paper: one ResNet-18), each difference with its 95%
    interval over seeds, test images and OOD images."""
    score, sets = profile["ood"]["score"], ood_set_names(per_run)
    auroc = evidence.per_row(profile, KEY, lambda p, runs: evidence.ood_auroc(p, runs, score, sets))
    accuracy = evidence.per_row(profile, KEY, evidence.clean_accuracy)
    paper = paper_table2()
    source, kind = "Table 2 (section 5.1)", "paper"
    seeds = len(table_seeds(profile, KEY))
    note = (f"mean AUROC over {len(sets)} OOD sets ({', '.join(sets)}) by the {SCORE_NAMES[score]}; {seeds} "
            f"seed{'s' if seeds > 1 else ''} per method; the direction of the effect only")
    measure = "mean OOD AUROC %"

    def higher(better: str, worse: str) -> Condition:
        return compare(measure, (ROW_LABELS[better], ROW_LABELS[worse]), auroc[better], auroc[worse], +1,
                       (paper[better]["mean"], paper[worse]["mean"]))

    def check(text: str, methods: list[str], conditions, extra: str = "") -> dict:
        missing = [m for m in methods if m not in auroc]
        if missing:
            why = ("not reproduced here: the paper's numbers only" if set(missing) <= set(NOT_REPRODUCED)
                   else f"not in this profile's tables.{KEY}.methods")
            return unmeasured(text, source, kind, f"{measure}, {' / '.join(ROW_LABELS[m] for m in methods)}",
                              " vs ".join(str(paper[m]["mean"]) for m in methods), "not run",
                              f"{', '.join(ROW_LABELS[m] for m in missing)}: {why}")
        return claim(text, source, kind, conditions(), note + extra)

    reproduced = [m for m in PAPER_ROWS if m not in NOT_REPRODUCED and m in auroc and m != "apr_sp"]
    return [
        check("APR-P consistently improves 2% AUROC than Cutout on CIFAR-10 while maintaining test accuracy.",
              ["apr_p", "cutout"],
              lambda: [higher("apr_p", "cutout"),
                       compare("test accuracy %", (ROW_LABELS["apr_p"], ROW_LABELS["cutout"]), accuracy["apr_p"],
                               accuracy["cutout"], +1, (paper["apr_p"]["test_acc"], paper["cutout"]["test_acc"]),
                               not_worse=True)],
              "; the paper's 2 points are CIFAR-10's: here the AUROC must be higher, the accuracy not lower"),
        check("After combining APR based on single and pair images, APR-SP exceeds CSI and gains in almost all "
              "OOD tasks.", ["apr_sp", "csi"], lambda: []),
        check("APR-P, APR-S and APR-SP each detect OOD samples better than cross-entropy training (CE).",
              ["apr_p", "apr_s", "apr_sp", "standard"],
              lambda: [higher(m, "standard") for m in ("apr_p", "apr_s", "apr_sp")]),
        check("APR-SP has the best mean AUROC of the methods in Table 2.", ["apr_sp", *reproduced],
              lambda: [higher("apr_sp", m) for m in reproduced],
              f"; SupCLR and CSI (paper {paper['supclr']['mean']} and {paper['csi']['mean']}) are not reproduced, "
              "so not compared"),
    ]


def tables(profile: Profile, per_run: pd.DataFrame) -> dict[str, Table]:
    return {KEY: Table(table2(profile, per_run), table2_caption(profile)),
            "table2_ood_metrics": Table(table2_detail(per_run), table2_detail_caption(profile))}
