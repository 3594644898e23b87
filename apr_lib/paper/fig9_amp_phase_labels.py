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
from apr_lib.paper import evidence
from apr_lib.paper.report import DATASET_NAMES, Condition, Table, claim, describe_runs, load_metrics, unmeasured
from apr_lib.study.config import Profile, RunSpec, table_runs, with_variant
from apr_lib.uncertainty import combine, interval

KEY = "fig9_amp_phase_labels"  # the section key, the profile's `tables:` key, the table's and figure's name


def phase_weight(profile: Profile, run: RunSpec) -> float:
    section = with_variant(profile.cfg, run.variant).get("amp_phase_labels") if run.variant else None
    if section is None:
        raise ProfileError(f"run {run.name} of tables.{KEY} has no `amp_phase_labels` section: list variants "
                           "that set amp_phase_labels.lambda (see params/default.yaml)")
    return float(section["lambda"])


def measure(profile: Profile) -> pd.DataFrame:
    """Per lambda (mean over seeds): clean accuracy, corruption accuracy (100 - mean corruption error) and the mean
    OOD AUROC over the profile's OOD sets with each score, in %."""
    score = profile["ood"]["score"]
    rows = []
    for run in table_runs(profile, KEY):
        clean, corruption = load_metrics(profile, run, "clean"), load_metrics(profile, run, "corruption")
        ood = load_metrics(profile, run, "ood")
        rows.append({"lambda": phase_weight(profile, run), "seed": run.seed, "clean_accuracy": 100.0 - clean["error"],
                     "corruption_accuracy": 100.0 - corruption["mean_corruption_error"],
                     f"ood_auroc_{score}": ood[score]["mean"]["auroc"],
                     **{f"ood_auroc_{s}": ood[s]["mean"]["auroc"] for s in ("msp", "max_logit") if s != score}})
    return pd.DataFrame(rows).groupby("lambda").mean().drop(columns="seed").reset_index()


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
    score = profile["ood"]["score"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for column, label, marker in (("clean_accuracy", "clean accuracy", "o"),
                                  ("corruption_accuracy", "corruption accuracy", "s"),
                                  (f"ood_auroc_{score}", f"OOD AUROC ({score})", "^")):
        ax.plot(df["lambda"], df[column], marker=marker, label=label)
    ax.set_xlabel("lambda (weight of the phase head)"); ax.set_ylabel("%")
    ax.set_title(f"Figure 9 ({DATASET_NAMES.get(profile['dataset'], profile['dataset'])}, profile {profile.name})",
                 fontsize=10)
    ax.legend(fontsize=8); ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


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
