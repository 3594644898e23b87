"""Figure 9 (section 5.3): a model that predicts the label of the phase image and the label of the amplitude image.

Every training image is an APR-P pair labelled by its phase and by its amplitude image; the model has two linear
heads on the same features, f_P and f_A, trained with Eq. 7 and predicting lambda * f_P + (1 - lambda) * f_A. A run
gets this from an `amp_phase_labels: {lambda: ...}` section (a profile variant of method `apr_p`): the model is
apr_lib.models.AmplitudePhaseHeads, its training apr_lib.methods (AmplitudePhasePairs, amplitude_phase_loss).
`measure` reads each run's `clean`, `corruption` and `ood` metrics into one row per lambda.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from apr_lib.errors import ProfileError
from apr_lib.ood_metrics import SCORES
from apr_lib.paper import evidence
from apr_lib.paper.report import (SCORE_NAMES, Condition, Table, claim, dataset_name, describe_runs, figure_text,
                                  load_metrics, number, plot_over_seeds, seeds_text, training_budget, unmeasured)
from apr_lib.study.config import Profile, RunSpec, table_runs, with_variant
from apr_lib.uncertainty import combine, interval

KEY = "fig9_amp_phase_labels"  # the section key, the profile's `tables:` key, the table's and figure's name


def phase_weight(profile: Profile, run: RunSpec) -> float:
    section = with_variant(profile.cfg, run.variant).get("amp_phase_labels") if run.variant else None
    if section is None:
        raise ProfileError(f"run {run.name} of tables.{KEY} has no `amp_phase_labels` section: list variants "
                           "that set amp_phase_labels.lambda (see params/default.yaml)")
    return float(section["lambda"])


def per_seed(profile: Profile) -> pd.DataFrame:
    """Per run (lambda and seed): clean accuracy, corruption accuracy (100 - mean corruption error) and the mean OOD
    AUROC over the profile's OOD sets with each score, in %."""
    rows = []
    for run in table_runs(profile, KEY):
        clean, corruption = load_metrics(profile, run, "clean"), load_metrics(profile, run, "corruption")
        ood = load_metrics(profile, run, "ood")
        rows.append({"lambda": phase_weight(profile, run), "seed": run.seed, "clean_accuracy": 100.0 - clean["error"],
                     "corruption_accuracy": 100.0 - corruption["mean_corruption_error"],
                     **{f"ood_auroc_{s}": ood[s]["mean"]["auroc"] for s in SCORES}})
    return pd.DataFrame(rows)


def measure(profile: Profile) -> pd.DataFrame:
    """Per lambda, the means over seeds of `per_seed`."""
    return per_seed(profile).groupby("lambda").mean().drop(columns="seed").reset_index()


def caption(profile: Profile) -> str:
    runs = table_runs(profile, KEY)
    ood = profile["ood"]
    return ("Figure 9: a model with a phase-label head f_P and an amplitude-label head f_A trained on APR-P pairs "
            "with lambda CE(f_P, y_phase) + (1 - lambda) CE(f_A, y_amplitude) (Eq. 7), predicting lambda f_P + "
            "(1 - lambda) f_A; accuracy in % on the clean test set and on the -C set (100 - mean corruption error "
            f"over {len(profile['eval']['corruptions'])} corruptions x severities {profile['eval']['severities']}), "
            f"and the mean AUROC (%) of separating test images from the OOD sets {', '.join(ood['sets'])} by the "
            f"maximum softmax (msp) and the maximum logit. Ours: {describe_runs(profile, runs)} Every training image "
            "is a pair (no clean copy). The paper plots these for ResNet-18 on CIFAR-10 without printing numbers: no "
            "`paper` column.")


def figure(profile: Profile, df: pd.DataFrame):
    """(a) Clean and corruption accuracy and (b) mean OOD AUROC (both scores) against lambda: means over seeds, with
    ±1 sd and each seed where there are several (the runs' metrics, apr_lib.paper.report.plot_over_seeds)."""
    runs = per_seed(profile)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [(axes[0], "(a) accuracy", "accuracy %", (("clean_accuracy", "clean test set", "o"),
                                                       ("corruption_accuracy", "-C test set", "s"))),
              (axes[1], "(b) OOD detection", "mean OOD AUROC %",
               tuple((f"ood_auroc_{s}", SCORE_NAMES[s] + (" (the paper's)" if s == "msp" else ""), marker)
                     for s, marker in zip(SCORES, "^v")))]
    for ax, title, ylabel, lines in panels:
        for column, label, marker in lines:
            values = runs.pivot(index="lambda", columns="seed", values=column)
            plot_over_seeds(ax, values.index, values, label, marker=marker)
        ax.set_xlabel("λ, the weight of the phase head"); ax.set_ylabel(ylabel); ax.set_title(title)
        ax.legend(); ax.grid(alpha=0.3)
    axes[1].axhline(50, color="grey", linewidth=0.8, linestyle="--")
    run = table_runs(profile, KEY)[0]
    fig.suptitle(f"Figure 9: labelled by amplitude or phase? {run.arch} on APR-P pairs "
                 f"({training_budget(profile, run)}, {dataset_name(profile)}, {seeds_text(table_runs(profile, KEY))})", fontsize=12)
    fig.tight_layout()
    return fig


def figure_caption(profile: Profile, df: pd.DataFrame) -> str:
    run = table_runs(profile, KEY)[0]
    first, last = df.iloc[0], df.iloc[-1]
    finding = (f"From lambda {first['lambda']:g} to {last['lambda']:g}, clean accuracy goes {number(first['clean_accuracy'])} "
               f"-> {number(last['clean_accuracy'])}% and -C accuracy {number(first['corruption_accuracy'])} -> "
               f"{number(last['corruption_accuracy'])}% (means over seeds); the paper reads a rise with the weight of "
               "the phase head.")
    details = (f"Figure 9 on {dataset_name(profile)}: {run.arch} with a phase-label head and an "
               "amplitude-label head, "
               f"trained on APR-P pairs with Eq. 7 ({training_budget(profile, run)} per value of lambda, "
               f"{seeds_text(table_runs(profile, KEY))}) and predicting lambda f_P + (1 - lambda) f_A; (a) accuracy on the clean and the "
               f"-C test set, (b) mean AUROC of separating test images from the OOD sets {', '.join(profile['ood']['sets'])} "
               "(dashed: chance). The paper plots the same for ResNet-18 on CIFAR-10 and reads a rise with lambda; the "
               "slopes, with their 95% intervals over seeds and test images, are in the claims below.")
    return figure_text(finding, details)


def slope(lambdas: list[float], values: list) -> np.ndarray:
    """Least-squares slope of `values` (one per lambda: numbers, or arrays of seeds and replicates) against lambda,
    in points per unit lambda."""
    x = np.asarray(lambdas, float) - np.mean(lambdas)
    y = np.stack([np.asarray(v, float) for v in values])
    return np.tensordot(x, y - y.mean(0), axes=1) / (x ** 2).sum()


def claims(profile: Profile, df: pd.DataFrame) -> list[dict]:
    """Section 5.3: accuracy, corruption robustness and OOD detection rise with the weight of the phase head, as
    least-squares slopes against lambda computed seed by seed, with 95% intervals over seeds and images."""
    source, paper, kind = "Figure 9 (section 5.3)", "plotted, no numbers printed", "paper"
    score = profile["ood"]["score"]
    phase_text = "With the enhancement of the weight of phase prediction"
    checks = [  # claim, measure, statistic of a lambda's runs
        (f"{phase_text}, the accuracy of the model is improved.", "clean test accuracy %", evidence.clean_accuracy),
        (f"{phase_text}, the accuracy on common corruptions is improved.", "-C accuracy %",
         lambda p, runs: combine(lambda e: 100 - e, evidence.mean_corruption_error(p, runs))),
        ("The detection ability of the model for OOD samples becomes stronger with the increase of phase attention.",
         f"mean OOD AUROC % ({score})", lambda p, runs: evidence.ood_auroc(p, runs, score, p["ood"]["sets"])),
    ]
    larger = ("The improvement with the weight of phase prediction is larger for common corruptions than on clean "
              "images.", "slope of -C accuracy - slope of clean accuracy against lambda (points per unit lambda)")
    by_lambda: dict[float, list[RunSpec]] = {}
    for run in table_runs(profile, KEY):
        by_lambda.setdefault(phase_weight(profile, run), []).append(run)
    lambdas = sorted(by_lambda)
    if len(lambdas) < 2:
        note = f"tables.{KEY} has fewer than two values of lambda"
        return [unmeasured(text, source, kind, measure, paper, "not run", note)
                for text, measure, *_ in [*checks, larger]]
    slopes, ends = {}, {}
    for text, measure, statistic in checks:
        per_lambda = [statistic(profile, by_lambda[value]) for value in lambdas]
        slopes[measure] = combine(lambda *values: slope(lambdas, values), *per_lambda)
        ends[measure] = (per_lambda[0].value, per_lambda[-1].value)
    seeds = len(by_lambda[lambdas[0]])
    note = (f"least-squares slope over lambda {', '.join(f'{v:g}' for v in lambdas)}, {seeds} seed"
            f"{'s' if seeds > 1 else ''} each, computed seed by seed")

    def condition(measure: str) -> Condition:
        first, last = ends[measure]
        return Condition(f"slope of {measure} against lambda (points per unit lambda)",
                         f"{first:.1f} at lambda {lambdas[0]:g} -> {last:.1f} at {lambdas[-1]:g}", paper,
                         interval(slopes[measure]), +1, digits=1)

    result = [claim(text, source, kind, [condition(measure)], note) for text, measure, _ in checks]
    corrupted, clean = slopes["-C accuracy %"], slopes["clean test accuracy %"]
    result.append(claim(larger[0], source, kind, [Condition(larger[1], f"{corrupted.value:+.1f} vs {clean.value:+.1f}",
                                                            paper, interval(combine(np.subtract, corrupted, clean)),
                                                            +1, digits=1)], note))
    return result


def tables(profile: Profile, df: pd.DataFrame) -> dict[str, Table]:
    return {KEY: Table(df, caption(profile), floatfmt=".2f")}
