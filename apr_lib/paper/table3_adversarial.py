"""Table 3 (section 5.1, "Adversarial Attack"): FGSM adversarial training, alone and with Cutout or APR, against
AutoAttack: the table, ours beside the paper's, and its claims.

`measure` reads the runs' `clean` and `autoattack` metrics files (the suite: apr_lib.adversarial). Each Table 3 row is a
`<method>@<variant>` run whose variant carries the per-row settings of the released `autoattacks/README.md` (peak
learning rate, epochs, APR probabilities; docs/released_code.md).
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd

from apr_lib.adversarial import attack_list
from apr_lib.errors import UserError
from apr_lib.paper.paper_results import paper_table3
from apr_lib.paper.report import (METHOD_LABELS, Table, claim, dataset_name, describe_runs, measured, plot_over_seeds,
                                  seeds_text)
from apr_lib.study.config import Profile, metrics_file, table_runs, with_variant

KEY = "table3_adversarial"
PAPER_IMAGES = 1000  # the paper's numbers are on the first 1,000 CIFAR-10 test images (docs/released_code.md)


def describe_attacks(attacks: str | list[str]) -> str:
    names = ", ".join(a.upper() for a in attack_list(attacks))
    if attacks == "standard":
        return f"standard AutoAttack ({names})"
    return (f"reduced AutoAttack: {names} only, of the standard ensemble (a weaker attack than the paper's standard "
            "AutoAttack, so our accuracy under it is an upper bound on standard AutoAttack's)")


def row_key(profile: Profile, method: str, variant: str) -> str:
    """The paper's row of a run: fgsm (FGSM alone = method standard), fgsm_<method>; a run trained without
    adversarial examples keeps its method's name (no paper row)."""
    if with_variant(profile.cfg, variant)["train"].get("adversarial") != "fgsm":
        return method
    return "fgsm" if method == "standard" else f"fgsm_{method}"


def row_label(key: str) -> str:
    if key == "fgsm":
        return "FGSM"
    if key.startswith("fgsm_"):
        method = key.removeprefix("fgsm_")
        return f"FGSM w/ {METHOD_LABELS.get(method, method)}"
    return METHOD_LABELS.get(key, key)


def measure(profile: Profile) -> pd.DataFrame:
    """One row per run of Table 3 and N of `autoattack.n_images`: clean and robust accuracy on the first N test
    images, the accuracy after each attack, and the clean suite's test accuracy (%); `attack_seconds` and
    `attack_cpu_seconds` are the wall and CPU time of the run's whole attack (on the largest N)."""
    settings, rows = profile["autoattack"], []
    for run in table_runs(profile, "table3_adversarial"):
        (error,) = measured(profile, run, "clean", "error")
        attacks, results, seconds, cpu_seconds = measured(profile, run, "autoattack", "attacks", "results", "seconds",
                                                          "cpu_seconds")
        if (attacks, [r["n"] for r in results]) != (attack_list(settings["attacks"]), settings["n_images"]):
            raise UserError(f"{metrics_file(profile, run, 'autoattack')} holds attacks {attacks} on "
                            f"{[r['n'] for r in results]} images, but {profile.path} now asks for autoattack.attacks "
                            f"{settings['attacks']} and n_images {settings['n_images']}. Delete it and re-run "
                            "`snakemake --cores 4 all`.")
        for r in results:
            rows.append({"arch": run.arch, "row": row_key(profile, run.method, run.variant), "method": run.method,
                         "variant": run.variant, "seed": run.seed, "attack_seconds": seconds,
                         "attack_cpu_seconds": cpu_seconds, "n": r["n"],
                         "test_acc": 100 - error,
                         "clean": r["clean_accuracy"], "robust": r["robust_accuracy"],
                         **{f"after_{a}": r["robust_accuracy_after"][a] for a in attacks}})
    return pd.DataFrame(rows)


def table3_settings(profile: Profile) -> pd.DataFrame:
    """What each row of Table 3 trains with: its run and the settings its variant sets (from the profile)."""
    rows = []
    for run in table_runs(profile, "table3_adversarial"):
        cfg = with_variant(profile.cfg, run.variant)
        train, apr = cfg["train"], cfg["apr"]
        uses_aprs, uses_aprp = run.method in ("apr_s", "apr_sp"), run.method in ("apr_p", "apr_sp")
        rows.append({"method": row_label(row_key(profile, run.method, run.variant)), "run": run.name,
                     "adversarial": train.get("adversarial"), "schedule": train.get("schedule", "step"),
                     "lr": train["lr"], "epochs": train["epochs"], "train_images": train.get("train_subset"),
                     "p_prob": apr["p_prob"] if uses_aprp else None,
                     "s_prob": apr.get("s_prob", 1.0) if uses_aprs else None,
                     "p_after_normalize": apr["p_after_normalize"] if uses_aprp else None,
                     "p_loss": apr.get("p_loss", "sum_of_halves") if uses_aprp else None})
    df = pd.DataFrame(rows)
    return df.astype(object).where(df.notna(), None)


def attack_figure(profile: Profile, per_run: pd.DataFrame):
    """How far each attack of the set brings each row's accuracy down on the first N test images of the paper's
    protocol: clean, then after each attack; one line per row, labelled at its end; the mean over seeds with ±1 sd
    where there are several."""
    protocol = profile["autoattack"]["n_images"][0]
    rows = per_run[per_run["n"] == protocol]
    after = [c for c in rows.columns if c.startswith("after_")]
    steps = ["clean", *after]
    names = ["clean", *(f"after {c.removeprefix('after_').upper()}" for c in after)]
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    for (arch, row), runs in rows.groupby(["arch", "row"], sort=False):
        values = runs[steps].T  # steps x seeds
        values.columns = range(values.shape[1])
        label = row_label(row) + (f" ({arch})" if rows["arch"].nunique() > 1 else "")
        plot_over_seeds(ax, range(len(steps)), values, label, marker="o")
        ax.annotate(label, (len(steps) - 1, values.iloc[-1].mean()), xytext=(8, 0), textcoords="offset points",
                    va="center", fontsize=9)
    ax.set_xticks(range(len(steps)), names)
    ax.set_xlim(-0.3, len(steps) - 1 + 1.2)  # room for the labels at the lines' ends
    ax.set_ylabel(f"accuracy % on the first {protocol:,} test images")
    ax.grid(axis="y", alpha=0.3)
    run = table_runs(profile, KEY)[0]
    ax.set_title(f"Table 3: {describe_attacks(profile['autoattack']['attacks']).split(' (')[0]}, l_inf "
                 f"{profile['autoattack']['epsilon_levels']}/255\n{dataset_name(profile)}, {run.arch}, "
                 f"{seeds_text(table_runs(profile, KEY))}")
    fig.tight_layout()
    return fig


def table3(profile: Profile, per_run: pd.DataFrame) -> pd.DataFrame:
    """Table 3: per arch, row and N, clean accuracy and accuracy under AutoAttack (`ours`) on the first N test images
    (means over seeds), beside the paper's on the rows of the profile's first N (the paper's protocol); `test_acc` is
    the accuracy on the profile's whole clean test set."""
    paper, protocol = paper_table3(), profile["autoattack"]["n_images"][0]
    grouped = per_run.groupby(["arch", "row", "n"], sort=False)
    df = grouped.agg(test_acc=("test_acc", "mean"), clean=("clean", "mean"), ours=("robust", "mean")).reset_index()
    if len(profile["seeds"]) > 1:
        df.insert(df.columns.get_loc("ours") + 1, "ours_sd", grouped["robust"].std().to_numpy())
    on_protocol = df["n"] == protocol
    df.insert(df.columns.get_loc("clean") + 1, "clean_paper",
              [paper.get(r, {}).get("clean") if p else None for r, p in zip(df["row"], on_protocol)])
    df["paper"] = [paper.get(r, {}).get("autoattack") if p else None for r, p in zip(df["row"], on_protocol)]
    df["method"] = df.pop("row").map(row_label)
    df["images"] = [f"first {n:,}" for n in df.pop("n")]
    df = df[["arch", "method", "images", *[c for c in df.columns if c not in ("arch", "method", "images")]]]
    return df.astype(object).where(df.notna(), None)  # None: blank cells in the csv and markdown, not "nan"


def table3_caption(profile: Profile) -> str:
    settings, adv = profile["autoattack"], profile["adv"]
    runs = table_runs(profile, "table3_adversarial")
    protocol = settings["n_images"][0]
    return (f"Table 3: clean accuracy (`clean`) and accuracy under AutoAttack (`ours`), %, higher is better, on the "
            f"first N test images (`images`); `test_acc`: clean accuracy on the profile's test set. Ours: "
            f"{describe_runs(profile, runs, lambda run: row_label(row_key(profile, run.method, run.variant)))} FGSM "
            "adversarial training from a random start (epsilon "
            f"{adv['epsilon_levels']}/255, step {adv['step_levels']}/255) with a cyclic learning rate; each row "
            f"trains with its variant's settings (`variants:` in {profile.path}: peak learning rate, epochs scaled "
            f"from the released ones, APR probabilities). Attack: {describe_attacks(settings['attacks'])}, l_inf "
            f"epsilon {settings['epsilon_levels']}/255. Paper (`clean_paper`, `paper`): CIFAR-10, PreActResNet-18, "
            f"standard AutoAttack on the first {PAPER_IMAGES:,} test images, from params/paper_results.yaml, beside "
            f"our rows on the first {protocol:,}.")


def claims(profile: Profile, per_run: pd.DataFrame) -> list[dict]:
    """The direction of section 5.1's statements on Table 3, on the first N test images of the paper's protocol
    (the profile's first `autoattack.n_images`), means over seeds."""
    protocol = profile["autoattack"]["n_images"][0]
    ours = per_run[per_run["n"] == protocol].groupby("row")[["clean", "robust"]].mean()
    paper = paper_table3()
    source = "Table 3 and section 5.1 (Adversarial Attack)"
    seeds = len(profile["seeds"])
    worst_se = max((math.sqrt(p * (100 - p) / protocol) for p in ours.to_numpy().flatten()), default=0.0)
    note = (f"{seeds} seed{'s' if seeds > 1 else ''}; first {protocol:,} test images; "
            f"{describe_attacks(profile['autoattack']['attacks']).split(' (')[0]}; one accuracy's binomial standard "
            f"error is up to {worst_se:.1f} points here, so smaller differences are within sampling noise")
    metric_names = {"clean": "clean accuracy %", "robust": "AutoAttack accuracy %"}
    paper_metric = {"clean": "clean", "robust": "autoattack"}

    def higher(claim_text: str, comparisons: list[tuple[str, str, str]], at_least: bool = False) -> dict:
        """Holds if, for every (metric, better, worse), ours[better] > ours[worse] (>= with `at_least`)."""
        measure = "; ".join(f"{metric_names[m]}, {row_label(b)} vs {row_label(w)}" for m, b, w in comparisons)
        paper_text = "; ".join(f"{paper[b][paper_metric[m]]} vs {paper[w][paper_metric[m]]}" for m, b, w in comparisons)
        missing = sorted({r for _, b, w in comparisons for r in (b, w) if r not in ours.index})
        if missing:
            return claim(claim_text, source, measure, "", paper_text, None,
                         f"not in this profile's table3_adversarial runs: {', '.join(map(row_label, missing))}")
        ours_text = "; ".join(f"{ours.loc[b, m]:.1f} vs {ours.loc[w, m]:.1f}" for m, b, w in comparisons)
        holds = all(ours.loc[b, m] >= ours.loc[w, m] if at_least else ours.loc[b, m] > ours.loc[w, m]
                    for m, b, w in comparisons)
        return claim(claim_text, source, measure, ours_text, paper_text, bool(holds), note)

    apr_rows = ["fgsm_apr_p", "fgsm_apr_s", "fgsm_apr_sp"]
    return [
        higher("Cutout is not able to defend against adversarial attacks as well as the FGSM baseline.",
               [("robust", "fgsm", "fgsm_cutout")]),
        higher("APR (APR-P, APR-S and APR-SP) defends against AutoAttack better than FGSM alone.",
               [("robust", r, "fgsm") for r in apr_rows]),
        higher("APR defends against AutoAttack while maintaining the clean test accuracy of FGSM (APR-P, APR-S "
               "and APR-SP are each at least as accurate on clean images).",
               [("clean", r, "fgsm") for r in apr_rows], at_least=True),
        higher("APR-S improves AutoAttack accuracy more than APR-P.", [("robust", "fgsm_apr_s", "fgsm_apr_p")]),
        higher("The combination APR-SP defends against AutoAttack better than APR-P and APR-S alone.",
               [("robust", "fgsm_apr_sp", "fgsm_apr_p"), ("robust", "fgsm_apr_sp", "fgsm_apr_s")]),
        higher("APR-SP improves on FGSM both on clean images and against adversarial attacks.",
               [("clean", "fgsm_apr_sp", "fgsm"), ("robust", "fgsm_apr_sp", "fgsm")]),
    ]


def tables(profile: Profile, per_run: pd.DataFrame) -> dict[str, Table]:
    return {KEY: Table(table3(profile, per_run), table3_caption(profile))}
