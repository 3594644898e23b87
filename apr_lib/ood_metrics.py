"""OOD-detection scores and metrics (Table 2); the `ood` evaluation suite (apr_lib.evaluate) reports them.

Scores, computed from a classifier's logits; a higher score means "more in-distribution":
- msp        the maximum softmax probability (Hendrycks & Gimpel 2017): what the paper's text uses;
- max_logit  the maximum logit: what the released code computes (its `core/test.py`).
Both are always measured; the profile's `ood.score` picks the one Table 2 shows.

Metrics, in %, from scikit-learn. Which class is "positive" matters for all but AUROC, so each is named by it:
- auroc              area under the ROC curve; the same for either convention (the score flips sign with it);
- aupr_in            average precision with in-distribution as positive (the released code's AUIN, CSI's convention);
- aupr_out           average precision with OOD as positive and the score negated (AUOUT; OpenOOD, pytorch-ood);
- fpr95_in_positive  share of OOD images accepted at the threshold that accepts 95% of in-distribution images
                     (ODIN's "FPR at 95% TPR"; 100 minus the released code's TNR at TPR 95);
- fpr95_ood_positive share of in-distribution images rejected at the threshold that rejects 95% of OOD images
                     (OpenOOD's and pytorch-ood's FPR@95TPR, OOD positive).
Average precision is the step-wise sum of precision x recall increments (no interpolation). Tied scores form one
threshold (no random tie-breaking), so tied ID/OOD pairs count one half in AUROC.
"""
from __future__ import annotations

import numpy as np
import torch

from apr_lib.extras import require

SCORES = ("msp", "max_logit")
METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95_in_positive", "fpr95_ood_positive")
CONVENTION = {
    "score": "higher = more in-distribution; msp = maximum softmax probability (paper), "
             "max_logit = maximum logit (released code)",
    "auroc": "area under the ROC curve, %; identical with in-distribution or OOD as the positive class",
    "aupr_in": "average precision, %, in-distribution positive (released code's AUIN, CSI)",
    "aupr_out": "average precision, %, OOD positive, score negated (released code's AUOUT; OpenOOD, pytorch-ood)",
    "fpr95_in_positive": "% of OOD images scored above the threshold that keeps 95% of in-distribution images "
                         "(in-distribution positive: ODIN, released code = 100 - TNR@TPR95)",
    "fpr95_ood_positive": "% of in-distribution images scored below the threshold that flags 95% of OOD images "
                          "(OOD positive: OpenOOD, pytorch-ood)",
}


def ood_scores(logits: torch.Tensor) -> dict[str, np.ndarray]:
    """Both scores of each row of `logits` (N, K), as float64 arrays."""
    logits = logits.double()
    return {"msp": logits.softmax(1).max(1).values.numpy(), "max_logit": logits.max(1).values.numpy()}


def per_image_scores(logits: torch.Tensor) -> dict[str, np.ndarray]:
    """Both scores of each row of `logits` as kept per image (apr_lib.per_image): the maximum softmax probability as
    its log-odds log(msp / (1 - msp)) = max logit - logsumexp(the other logits), which orders images as msp does but
    does not saturate at 1 in float32, and the maximum logit."""
    logits = logits.double()
    top = logits.max(1)
    others = logits.scatter(1, top.indices[:, None], float("-inf")).logsumexp(1)
    return {"msp_log_odds": (top.values - others).numpy(), "max_logit": top.values.numpy()}


def fpr_at_tpr(labels: np.ndarray, scores: np.ndarray, tpr: float = 0.95) -> float:
    """False-positive rate at the first threshold whose true-positive rate reaches `tpr` (positives: labels 1)."""
    # drop_intermediate=False keeps every threshold, so the first one reaching `tpr` is never skipped.
    fprs, tprs, _ = require("sklearn.metrics").roc_curve(labels, scores, drop_intermediate=False)
    return float(fprs[np.searchsorted(tprs, tpr, side="left")])


def detection_metrics(score_in: np.ndarray, score_out: np.ndarray) -> dict[str, float]:
    """Every metric of the module docstring, in %, for in-distribution and OOD scores (higher = more ID)."""
    score_in, score_out = np.asarray(score_in, np.float64), np.asarray(score_out, np.float64)
    if not len(score_in) or not len(score_out):
        raise ValueError(f"need in-distribution and OOD scores, got {len(score_in)} and {len(score_out)}")
    is_in = np.concatenate([np.ones(len(score_in)), np.zeros(len(score_out))])
    scores = np.concatenate([score_in, score_out])
    sklearn_metrics = require("sklearn.metrics")
    average_precision_score, roc_auc_score = sklearn_metrics.average_precision_score, sklearn_metrics.roc_auc_score
    return {
        "auroc": 100 * roc_auc_score(is_in, scores),
        "aupr_in": 100 * average_precision_score(is_in, scores),
        "aupr_out": 100 * average_precision_score(1 - is_in, -scores),
        "fpr95_in_positive": 100 * fpr_at_tpr(is_in, scores),
        "fpr95_ood_positive": 100 * fpr_at_tpr(1 - is_in, -scores),
    }


def ood_evaluation(logits_in: torch.Tensor, logits_out: dict[str, torch.Tensor]) -> dict:
    """{score: {set: metrics, "mean": metrics averaged over the sets}} and the mean MSP of every set."""
    scores_in = ood_scores(logits_in)
    scores_out = {name: ood_scores(logits) for name, logits in logits_out.items()}
    result = {}
    for score in SCORES:
        per_set = {name: detection_metrics(scores_in[score], s[score]) for name, s in scores_out.items()}
        per_set["mean"] = {m: float(np.mean([per_set[name][m] for name in logits_out])) for m in METRICS}
        result[score] = per_set
    result["mean_msp"] = {"in_distribution": 100 * float(scores_in["msp"].mean()),
                          **{name: 100 * float(s["msp"].mean()) for name, s in scores_out.items()}}
    return result
