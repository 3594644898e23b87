"""Evaluation results made up for tests of the paper layer: metrics files and per-image files that agree, with
chosen errors, so tables and claims can be checked without training (each run's draws seeded by its name)."""
import zlib

import numpy as np

from apr_lib import per_image
from apr_lib.files import write_json
from apr_lib.ood_metrics import METRICS, detection_metrics
from apr_lib.study.config import metrics_file, per_image_file


def rng(run, suite: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{run.name}/{suite}".encode()))


def exact_correct(n: int, error: float, generator: np.random.Generator) -> np.ndarray:
    """n booleans, exactly round(n * error / 100) of them False, at random places."""
    correct = np.ones(n, bool)
    correct[generator.permutation(n)[:round(n * error / 100)]] = False
    return correct


def write(profile, run, suite: str, metrics: dict, arrays: dict) -> None:
    write_json(metrics_file(profile, run, suite), {"run": run.name, "suite": suite, **metrics})
    per_image.save(per_image_file(profile, run, suite), arrays)


def write_clean(profile, run, error: float, n: int = 2000) -> None:
    correct = exact_correct(n, error, rng(run, "clean"))
    write(profile, run, "clean", {"n": n, "error": 100 * float((~correct).mean()), "nll": 1.0,
                                  "calibration_error": error / 4, "calibration": "made up"}, {"correct": correct})


def write_corruption(profile, run, error: float | dict, n: int = 300) -> None:
    """`error`: one error % for every corruption and severity, or {corruption: error %}."""
    names, severities = profile["eval"]["corruptions"], profile["eval"]["severities"]
    per_corruption = error if isinstance(error, dict) else {c: error for c in names}
    generator = rng(run, "corruption")
    correct = np.array([[exact_correct(n, per_corruption[c], generator) for _ in severities] for c in names])
    errors = {c: {str(s): 100 * float((~correct[i, j]).mean()) for j, s in enumerate(severities)}
              for i, c in enumerate(names)}
    means = {c: float(np.mean(list(e.values()))) for c, e in errors.items()}
    write(profile, run, "corruption",
          {"source": "made up", "n_per_severity": n, "severities": list(severities), "errors": errors,
           "corruption_error": means, "mean_corruption_error": float(np.mean(list(means.values()))),
           "calibration_errors": errors, "corruption_calibration_error": means,
           "mean_corruption_calibration_error": float(np.mean(list(means.values()))), "calibration": "made up"},
          {"correct": correct, "corruptions": np.array(names), "severities": np.array(severities)})


def write_ood(profile, run, shift: float, n_in: int = 400, n_out: int = 200) -> None:
    """Scores: the test images N(shift, 1), every OOD set N(0, 1) (the same for both scores)."""
    generator = rng(run, "ood")
    sets = profile["ood"]["sets"]
    score_in = generator.normal(shift, 1, n_in)
    scores_out = {name: generator.normal(0, 1, n_out) for name in sets}
    per_set = {name: detection_metrics(score_in, s) for name, s in scores_out.items()}
    per_set["mean"] = {m: float(np.mean([per_set[name][m] for name in sets])) for m in METRICS}
    arrays = {f"{name}__{key}": values for name, values in {"in": score_in, **scores_out}.items()
              for key in ("msp_log_odds", "max_logit")}
    write(profile, run, "ood", {"msp": per_set, "max_logit": per_set, "in_distribution": {"dataset": "fmnist", "n": n_in},
                                "sets": {name: {"n": n_out, "source": f"{name}, made in a test"} for name in sets}},
          {**arrays, "sets": np.array(sets)})


def write_autoattack(profile, run, clean: float, robust: float) -> None:
    """Clean and robust accuracy (%) on the first N images of every N of autoattack.n_images (one attack)."""
    counts = profile["autoattack"]["n_images"]
    generator = rng(run, "autoattack")
    right = exact_correct(max(counts), 100 - clean, generator)
    still = right & exact_correct(max(counts), 100 * (1 - robust / clean), generator) if clean else right
    attack = profile["autoattack"]["attacks"][-1]
    results = [{"n": n, "clean_accuracy": 100 * float(right[:n].mean()), "robust_accuracy": 100 * float(still[:n].mean()),
                "robust_accuracy_after": {attack: 100 * float(still[:n].mean())}} for n in counts]
    write(profile, run, "autoattack", {"attacks": [attack], "results": results, "seconds": 1.0, "cpu_seconds": 1.0},
          {"clean": right, f"robust__{attack}": still, "attacks": np.array([attack])})
