"""Figure 9 (section 5.3): a model that predicts the label of the phase image and the label of the amplitude image.

Every training image is an APR-P pair x = iDFT(A_{x_j} exp(i P_{x_i})) (Eq. 5; the partner j from one random
permutation of the batch, as in APR-P, with the profile's `apr.fft_mode`), labelled y_i by its phase and y_j by
its amplitude. The model has two linear heads on the same features, f_P and f_A, trained with Eq. 7

    loss = lambda * CE(f_P(x), y_i) + (1 - lambda) * CE(f_A(x), y_j)

and predicts lambda * f_P + (1 - lambda) * f_A. A run gets this from an `amp_phase_labels: {lambda: ...}`
section (a profile variant of method `apr_p`): `AmplitudePhaseHeads` wraps its architecture, built with twice
the classes (one linear layer of 2K outputs is the two heads side by side), and its forward returns the
combined prediction as logits, so every evaluation suite works unchanged. Unlike the released APR-P, every
batch is recombined and no clean copy is added (Eq. 7 is written for the pairs only), so `apr.p_prob`,
`apr.keep_clean` and `apr.p_after_normalize` do not apply to these runs.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from apr_lib.config import Profile, RunSpec, table_runs, with_variant
from apr_lib.errors import ProfileError
from apr_lib.report import DATASET_NAMES, claim, describe_runs, load_metrics
from apr_lib.spectral import swap_amplitude

TABLE = "fig9_amp_phase_labels"  # the profile's `tables:` key, table and figure name
METHOD = "apr_p"                 # the training method whose pairs Figure 9 labels twice


class AmplitudePhaseHeads(nn.Module):
    """A classifier of 2K outputs read as two heads, phase (first K) and amplitude (last K); forward returns
    `phase_weight` * f_P + (1 - `phase_weight`) * f_A (the paper's lambda)."""

    def __init__(self, model: nn.Module, num_classes: int, phase_weight: float):
        super().__init__()
        self.model, self.num_classes, self.phase_weight = model, num_classes, phase_weight

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        if logits.shape[-1] != 2 * self.num_classes:
            raise ValueError(f"expected {2 * self.num_classes} outputs (two heads of {self.num_classes}), "
                             f"got {logits.shape[-1]}")
        phase_logits, amplitude_logits = logits.split(self.num_classes, dim=-1)
        return phase_logits, amplitude_logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phase_logits, amplitude_logits = self.heads(x)
        return self.phase_weight * phase_logits + (1 - self.phase_weight) * amplitude_logits

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, phase_weight={self.phase_weight}"


class AmplitudePhasePairs:
    """Batch augmentation: each image keeps its phase and takes the amplitude of a partner from the batch.

    Returns the recombined batch and targets (B, 2): the label of the phase image, then of the amplitude image.
    """

    def __init__(self, mode: str, generator: torch.Generator | None = None):
        self.mode, self.generator = mode, generator

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gen_device = self.generator.device if self.generator is not None else "cpu"
        partner = torch.randperm(len(x), generator=self.generator, device=gen_device).to(x.device)
        return swap_amplitude(x, x[partner], self.mode), torch.stack([labels, labels[partner]], dim=1)


def amplitude_phase_loss(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 7 for a model wrapped by AmplitudePhaseHeads; targets (B, 2) = (phase label, amplitude label)."""
    if not isinstance(model, AmplitudePhaseHeads):
        raise TypeError(f"Eq. 7 needs the two heads of AmplitudePhaseHeads, got {type(model).__name__}")
    phase_logits, amplitude_logits = model.heads(x)
    weight = model.phase_weight
    return (weight * F.cross_entropy(phase_logits, targets[:, 0])
            + (1 - weight) * F.cross_entropy(amplitude_logits, targets[:, 1]))


def check_method(method: str) -> None:
    if method != METHOD:
        raise ProfileError(f"`amp_phase_labels` (Figure 9) labels APR-P pairs, so its runs use method {METHOD!r}, "
                           f"not {method!r}; fix the profile's tables.{TABLE}.methods")


# ---- the table, figure and claims of the notebook ----

def phase_weight(profile: Profile, run: RunSpec) -> float:
    section = with_variant(profile.cfg, run.variant).get("amp_phase_labels") if run.variant else None
    if section is None:
        raise ProfileError(f"run {run.name} of tables.{TABLE} has no `amp_phase_labels` section: list variants "
                           "that set amp_phase_labels.lambda (see params/default.yaml)")
    return float(section["lambda"])


def table(profile: Profile) -> pd.DataFrame:
    """Per lambda (mean over seeds): clean accuracy, corruption accuracy (100 - mean corruption error) and the mean
    OOD AUROC over the profile's OOD sets with each score, in %."""
    score = profile["ood"]["score"]
    rows = []
    for run in table_runs(profile, TABLE):
        clean, corruption = load_metrics(profile, run, "clean"), load_metrics(profile, run, "corruption")
        ood = load_metrics(profile, run, "ood")
        rows.append({"lambda": phase_weight(profile, run), "seed": run.seed, "clean_accuracy": 100.0 - clean["error"],
                     "corruption_accuracy": 100.0 - corruption["mean_corruption_error"],
                     f"ood_auroc_{score}": ood[score]["mean"]["auroc"],
                     **{f"ood_auroc_{s}": ood[s]["mean"]["auroc"] for s in ("msp", "max_logit") if s != score}})
    return pd.DataFrame(rows).groupby("lambda").mean().drop(columns="seed").reset_index()


def caption(profile: Profile) -> str:
    runs = table_runs(profile, TABLE)
    ood = profile["ood"]
    return ("Figure 9: a model with a phase-label head f_P and an amplitude-label head f_A trained on APR-P pairs "
            "with lambda CE(f_P, y_phase) + (1 - lambda) CE(f_A, y_amplitude) (Eq. 7), predicting lambda f_P + "
            "(1 - lambda) f_A; accuracy in % on the clean test set and on the -C set (100 - mean corruption error "
            f"over {len(profile['eval']['corruptions'])} corruptions x severities {profile['eval']['severities']}), "
            f"and the mean AUROC (%) of separating test images from the OOD sets {', '.join(ood['sets'])} by the "
            f"maximum softmax (msp) and the maximum logit. Ours: {describe_runs(profile, runs)} Every training image "
            "is a pair (no clean copy). The paper plots these for ResNet-18 on CIFAR-10 without printing numbers: no "
            "`paper` column.")


def figure(df: pd.DataFrame, profile: Profile):
    import matplotlib.pyplot as plt  # imported here: training jobs import this module too

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


def slope(df: pd.DataFrame, column: str) -> float:
    """Least-squares slope of `column` against lambda, in points per unit lambda."""
    return float(np.polyfit(df["lambda"], df[column], 1)[0])


def claims(df: pd.DataFrame, profile: Profile) -> list[dict]:
    """Section 5.3: accuracy, corruption robustness and OOD detection rise with the weight of the phase head."""
    source, paper = "Figure 9 (section 5.3)", "plotted, no numbers printed"
    auroc = f"ood_auroc_{profile['ood']['score']}"
    phase_text = "With the enhancement of the weight of phase prediction"
    checks = [  # claim, measure, ours, holds
        (f"{phase_text}, the accuracy of the model is improved.", "clean test accuracy % vs lambda", "clean_accuracy"),
        (f"{phase_text}, the accuracy on common corruptions is improved.", "-C accuracy % vs lambda",
         "corruption_accuracy"),
        ("The detection ability of the model for OOD samples becomes stronger with the increase of phase attention.",
         f"mean OOD AUROC % ({profile['ood']['score']}) vs lambda", auroc),
    ]
    larger = ("The improvement with the weight of phase prediction is larger for common corruptions than on clean "
              "images.", "slope of -C accuracy vs slope of clean accuracy against lambda (points per unit lambda)")
    if len(df) < 2:
        note = f"tables.{TABLE} has fewer than two values of lambda"
        return [claim(text, source, measure, "", paper, None, note) for text, measure, *_ in [*checks, larger]]

    def trend(column: str) -> str:
        first, last = df.iloc[0], df.iloc[-1]
        return (f"{first[column]:.1f} at lambda {first['lambda']:g} -> {last[column]:.1f} at {last['lambda']:g} "
                f"(slope {slope(df, column):+.1f})")

    note = f"least-squares slope over {len(df)} values of lambda; holds if positive"
    result = [claim(text, source, measure, trend(column), paper, slope(df, column) > 0, note)
              for text, measure, column in checks]
    corrupted, clean = slope(df, "corruption_accuracy"), slope(df, "clean_accuracy")
    result.append(claim(*larger[:1], source, larger[1], f"{corrupted:+.1f} vs {clean:+.1f}", paper, corrupted > clean,
                        "holds if the -C slope is the larger"))
    return result
