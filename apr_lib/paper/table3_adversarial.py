"""Table 3 (section 5.1, "Adversarial Attack"): FGSM adversarial training, alone and with Cutout or APR, against
AutoAttack: the table, ours beside the paper's, and its claims.

`measure` reads the runs' `clean` and `autoattack` metrics files (the suite: apr_lib.adversarial). Each Table 3 row is a
`<method>@<variant>` run whose variant carries the per-row settings of the released `autoattacks/README.md` (peak
learning rate, epochs, APR probabilities; docs/released_code.md).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from apr_lib.adversarial import attack_list
from apr_lib.errors import UserError
from apr_lib.paper import evidence
from apr_lib.paper.paper_results import paper_table3
from apr_lib.paper.report import (METHOD_LABELS, Condition, Table, claim, compare, dataset_name, describe_runs,
                                  load_metrics, measured, plot_over_seeds, seeds_text, unmeasured)
from apr_lib.study.config import Profile, metrics_file, table_runs, table_seeds, with_variant
from apr_lib.uncertainty import interval, mean_over

KEY = "table3_adversarial"
PAPER_IMAGES = 1000  # the paper's numbers are on the first 1,000 CIFAR-10 test images (docs/released_code.md)


def describe_attacks(attacks: str | list[str]) -> str:
    names = ", ".join(a.upper() for a in attack_list(attacks))
    if attacks == "standard":
        return f"standard AutoAttack ({names})"
    return (f"reduced AutoAttack: {names} only, of the standard ensemble (a weaker attack than the paper's standard "
            "AutoAttack, so our accuracy under it is an upper bound on standard AutoAttack's)")


CONTROL = "fgsm_duplicated"  # FGSM on the duplicated batch [X, X] without APR: the released APR-S row's control


def row_key(profile: Profile, method: str, variant: str) -> str:
    """The paper's row of a run: fgsm (FGSM alone = method standard), fgsm_<method>; FGSM alone on the duplicated
    batch is our control row fgsm_duplicated; a run trained without adversarial examples keeps its method's name
    (no paper row)."""
    train = with_variant(profile.cfg, variant)["train"]
    if train.get("adversarial") != "fgsm":
        return method
    if method == "standard":
        return CONTROL if train.get("duplicate_batch") else "fgsm"
    return f"fgsm_{method}"


def row_label(key: str) -> str:
    if key == "fgsm":
        return "FGSM"
    if key == CONTROL:
        return "FGSM, batch duplicated (control)"
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
                     "duplicated_batch": bool(train.get("duplicate_batch")),
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
    df = grouped.agg(seeds=("seed", "size"), test_acc=("test_acc", "mean"), clean=("clean", "mean"),
                     ours=("robust", "mean")).reset_index()
    runs = {(arch, row_key(profile, *key.partition("@")[::2])): by_arch[arch]
            for key, by_arch in evidence.rows(profile, KEY).items() for arch in by_arch}
    found = [interval(evidence.autoattack_accuracy(profile, runs[arch, row], n))
             for arch, row, n in zip(df["arch"], df["row"], df["n"])]
    df.insert(df.columns.get_loc("ours") + 1, "ours_low", [f.low for f in found])
    df.insert(df.columns.get_loc("ours") + 2, "ours_high", [f.high for f in found])
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
    return (f"Table 3: clean accuracy (`clean`) and accuracy under AutoAttack (`ours`, [`ours_low`, `ours_high`] its "
            f"95% interval over seeds and images), %, higher is better, on the first N test images (`images`), means "
            f"over `seeds` seeds; `test_acc`: clean accuracy on the profile's test set. The released FGSM script trains "
            f"on cat([X, APR-P(X)]) with a mean loss, so its APR-S row (APR-P probability 0) trains on [X, X], each "
            f"copy attacked from its own random start; our FGSM w/ APR-S row does the same, and the control row "
            f"trains FGSM's row on [X, X] without APR. Ours: "
            f"{describe_runs(profile, runs, lambda run: row_label(row_key(profile, run.method, run.variant)))} FGSM "
            "adversarial training from a random start (epsilon "
            f"{adv['epsilon_levels']}/255, step {adv['step_levels']}/255) with a cyclic learning rate; each row "
            f"trains with its variant's settings (`variants:` in {profile.path}: peak learning rate, epochs scaled "
            f"from the released ones, APR probabilities). Attack: {describe_attacks(settings['attacks'])}, l_inf "
            f"epsilon {settings['epsilon_levels']}/255. Paper (`clean_paper`, `paper`): CIFAR-10, PreActResNet-18, "
            f"standard AutoAttack on the first {PAPER_IMAGES:,} test images, from params/paper_results.yaml, beside "
            f"our rows on the first {protocol:,}.")


def claims(profile: Profile, per_run: pd.DataFrame) -> list[dict]:
    """Section 5.1's statements on Table 3: accuracy under the profile's AutoAttack on the first N test images of the
    paper's protocol (the profile's first `autoattack.n_images`) and clean accuracy on the whole test set, means over
    seeds, each difference with its 95% interval over seeds and images."""
    protocol = profile["autoattack"]["n_images"][0]
    groups = {row_key(profile, *key.partition("@")[::2]): by_arch for key, by_arch in evidence.rows(profile, KEY).items()}
    robust = {row: mean_over([evidence.autoattack_accuracy(profile, runs, protocol) for runs in by_arch.values()])
              for row, by_arch in groups.items()}
    clean = {row: mean_over([evidence.clean_accuracy(profile, runs) for runs in by_arch.values()])
             for row, by_arch in groups.items()}
    paper = paper_table3()
    source = "Table 3 and section 5.1 (Adversarial Attack)"
    seeds = len(table_seeds(profile, KEY))
    attack = describe_attacks(profile["autoattack"]["attacks"]).split(" (")[0]
    note = (f"{seeds} seed{'s' if seeds > 1 else ''} per row; {attack} on the first {protocol:,} test images; clean "
            f"accuracy on the {load_metrics(profile, table_runs(profile, KEY)[0], 'clean')['n']:,} test images")

    def higher(metric: str, better: str, worse: str, not_worse: bool = False) -> Condition:
        values = robust if metric == "robust" else clean
        name = f"{attack} accuracy %" if metric == "robust" else "clean accuracy %"
        column = "autoattack" if metric == "robust" else "clean"
        return compare(name, (row_label(better), row_label(worse)), values[better], values[worse], +1,
                       (paper.get(better, {}).get(column), paper.get(worse, {}).get(column)), not_worse=not_worse)

    def check(text: str, needed: list[str], conditions, kind: str = "paper", extra: str = "") -> dict:
        missing = [r for r in needed if r not in robust]
        if missing:
            return unmeasured(text, source, kind, "", "", "not run",
                              f"not in this profile's {KEY} runs: {', '.join(map(row_label, missing))}")
        return claim(text, source, kind, conditions(), note + extra)

    apr_rows = ["fgsm_apr_p", "fgsm_apr_s", "fgsm_apr_sp"]
    return [
        check("Cutout is not able to defend against adversarial attacks as well as the FGSM baseline.",
              ["fgsm", "fgsm_cutout"], lambda: [higher("robust", "fgsm", "fgsm_cutout")]),
        check("APR (APR-P, APR-S and APR-SP) could effectively defend against AutoAttack, better than FGSM alone, while "
              "maintaining test accuracy.", ["fgsm", *apr_rows],
              lambda: [higher("robust", r, "fgsm") for r in apr_rows]
              + [higher("clean", r, "fgsm", not_worse=True) for r in apr_rows]),
        check("APR-S improves AutoAttack accuracy more than APR-P.", ["fgsm_apr_s", "fgsm_apr_p"],
              lambda: [higher("robust", "fgsm_apr_s", "fgsm_apr_p")]),
        check("The combination APR-SP defends against AutoAttack better than APR-P and APR-S alone.",
              ["fgsm_apr_sp", "fgsm_apr_p", "fgsm_apr_s"],
              lambda: [higher("robust", "fgsm_apr_sp", "fgsm_apr_p"), higher("robust", "fgsm_apr_sp", "fgsm_apr_s")]),
        check("APR-SP improves on FGSM both on clean images and against adversarial attacks.",
              ["fgsm_apr_sp", "fgsm"], lambda: [higher("clean", "fgsm_apr_sp", "fgsm"),
                                                higher("robust", "fgsm_apr_sp", "fgsm")]),
        check("APR-S's gain over FGSM is not the released script's duplicated batch: FGSM w/ APR-S (trained on [X, X] "
              "as released) defends better than FGSM on the same duplicated batch without APR.",
              ["fgsm_apr_s", CONTROL], lambda: [higher("robust", "fgsm_apr_s", CONTROL)], "beyond paper",
              "; the control trains FGSM's row (its epochs and learning rate) on [X, X]"),
    ]


def tables(profile: Profile, per_run: pd.DataFrame) -> dict[str, Table]:
    return {KEY: Table(table3(profile, per_run), table3_caption(profile))}
