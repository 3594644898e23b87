"""Evaluation suites of a trained run; each returns the dict written to metrics/<run>/<suite>.json and the per-image
results written beside it to <suite>.npz (apr_lib.per_image says what each keeps).

- clean:      test error (%), negative log-likelihood and RMS calibration error (%) on the clean test set;
- corruption: error (%) per corruption and severity on the -C set, the per-corruption mean over
              severities, and the mean corruption error over the profile's corruptions (Table 1's metric:
              100 - mean accuracy over corruptions x severities); the RMS calibration error (%) of the same
              cells, averaged the same way. An ImageNet-C folder tree is read image by image.
- ood:        OOD-detection metrics (AUROC, AUPR-in/out, FPR at 95% TPR under both positive-class
              conventions) of the max softmax and the max logit, test images vs each of the profile's
              OOD sets (apr_lib.ood, apr_lib.ood_metrics).
- autoattack: clean accuracy and accuracy (%) under AutoAttack (l_inf, pyautoattack) on the first N test images,
              for each N of the profile's `autoattack.n_images`, after each attack (apr_lib.adversarial; Table 3).

Models run in float32 on every device (no bf16 autocast: it coarsens softmax scores into ties, in AUROC and in the
calibration bins).

`SUITES` maps each suite's name (apr_lib.names.SUITES) to its function (cfg, model) -> (result, per-image arrays,
one-line summary),
where `cfg` is a profile's settings (the content of params/<name>.yaml); the files a suite reads besides the run's
weights are apr_lib.study.jobs.suite_inputs. A new suite is one function, one entry here and one name there.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from apr_lib.adversarial import suite_autoattack
from apr_lib.corrupted_sets import describe, load_c_set, load_image_folder_c
from apr_lib.data import load_split, subset_indices
from apr_lib.distributed import clean_test_set, streamed
from apr_lib.errors import DataMissingError
from apr_lib.layout import IMAGE_FOLDER_DIRS, corruption_set
from apr_lib.metrics import CALIBRATION_DEFINITION, calibration_percent, corruption_error, mean_corruption_error
from apr_lib.ood import ood_sets
from apr_lib.ood_metrics import CONVENTION, ood_evaluation, per_image_scores
from apr_lib.progress import tqdm


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Logits (N, K) on the CPU for uint8 images (N, C, H, W), computed in float32."""
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device).float() / 255
        outputs.append(model(x).float().cpu())
    return torch.cat(outputs)


def error_percent(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return 100.0 * (logits.argmax(1) != labels).double().mean().item()


def correct(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    return (logits.argmax(1) == labels).numpy()


def evaluate_clean(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   batch_size: int) -> tuple[dict, dict]:
    return clean_metrics(predict(model, images, batch_size), labels)


def clean_metrics(logits: torch.Tensor, labels: torch.Tensor) -> tuple[dict, dict]:
    """The clean suite's metrics and per-image results."""
    return ({"n": len(labels), "error": error_percent(logits, labels),
             "nll": F.cross_entropy(logits, labels).item(),
             "calibration_error": calibration_percent(logits, labels), "calibration": CALIBRATION_DEFINITION},
            {"correct": correct(logits, labels)})


@torch.no_grad()
def predict_image_folder(model: torch.nn.Module, dataset: torch.utils.data.Dataset,
                         batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, K) and labels (N,) of a dataset of (uint8 image (C, H, W), label), read batch by batch."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    logits, labels = zip(*[(predict(model, x, batch_size), y) for x, y in loader])
    return torch.cat(logits), torch.cat(labels)


def corrupted_predictions(model: torch.nn.Module, c_dir: Path, name: str, severities: list[int], batch_size: int,
                          image_folders: bool):
    """(severity, logits, labels) of one corruption at each severity, from .npy files or an image folder tree."""
    if not image_folders:
        images, labels = load_c_set(c_dir, name)
        for s in severities:
            yield s, predict(model, images[s - 1], batch_size), labels
        return
    for s in severities:
        dataset = load_image_folder_c(c_dir, name, s)
        logits, labels = predict_image_folder(model, dataset, batch_size)
        if len(dataset.classes) != logits.shape[1]:  # a missing class folder would shift every label after it
            raise DataMissingError(f"{c_dir / name / str(s)} has {len(dataset.classes)} class folders but the model "
                                   f"predicts {logits.shape[1]} classes; the folder tree is incomplete")
        yield s, logits, labels


def evaluate_corruptions(model: torch.nn.Module, c_dir: Path, names: list[str], severities: list[int],
                         batch_size: int, image_folders: bool = False) -> tuple[dict, dict]:
    errors, calibration, right = {}, {}, []
    for name in tqdm(names, desc="corruptions", unit="corruption", disable=None):
        errors[name], calibration[name] = {}, {}
        right.append([])
        for s, logits, labels in corrupted_predictions(model, c_dir, name, severities, batch_size, image_folders):
            errors[name][str(s)] = error_percent(logits, labels)
            calibration[name][str(s)] = calibration_percent(logits, labels)
            right[-1].append(correct(logits, labels))
    per_image = {"correct": np.array(right), "corruptions": np.array(names), "severities": np.array(severities)}
    return {"source": describe(c_dir), "n_per_severity": len(labels), "severities": list(severities),
            "errors": errors, "corruption_error": corruption_error(errors),
            "mean_corruption_error": mean_corruption_error(errors),
            # the calibration of the same cells, averaged over severities and corruptions like the error
            "calibration": CALIBRATION_DEFINITION, "calibration_errors": calibration,
            "corruption_calibration_error": corruption_error(calibration),
            "mean_corruption_calibration_error": mean_corruption_error(calibration)}, per_image


def suite_clean(cfg: dict, model: torch.nn.Module) -> tuple[dict, dict, str]:
    ev = cfg["eval"]
    if streamed(cfg["dataset"]):  # ImageNet's validation images, read image by image
        result, per_image = clean_metrics(*predict_image_folder(model, clean_test_set(cfg), ev["batch_size"]))
    else:
        test = load_split(cfg["dataset"], Path(cfg["data_root"]), train=False)
        keep = subset_indices(len(test.labels), ev.get("test_subset"))
        result, per_image = evaluate_clean(model, test.images[keep], test.labels[keep], ev["batch_size"])
    return result, per_image, f"clean error {result['error']:.2f}%"


def suite_corruption(cfg: dict, model: torch.nn.Module) -> tuple[dict, dict, str]:
    ev = cfg["eval"]
    result, per_image = evaluate_corruptions(model, corruption_set(cfg), ev["corruptions"], ev["severities"],
                                             ev["batch_size"], image_folders=cfg["dataset"] in IMAGE_FOLDER_DIRS)
    return result, per_image, f"mean corruption error {result['mean_corruption_error']:.2f}%"


def evaluate_ood(cfg: dict, model: torch.nn.Module) -> tuple[dict, dict]:
    """The profile's test images (eval.test_subset) against each of its `ood.sets`: every metric of
    apr_lib.ood_metrics for both scores, and both scores per image (apr_lib.per_image)."""
    batch_size = cfg["eval"]["batch_size"]
    test = load_split(cfg["dataset"], Path(cfg["data_root"]), train=False)
    keep = subset_indices(len(test.labels), cfg["eval"].get("test_subset"))
    sets = ood_sets(cfg, test.images)
    logits_in = predict(model, test.images[keep], batch_size)
    logits_out = {name: predict(model, s.images, batch_size)
                  for name, s in tqdm(sets.items(), desc="OOD sets", unit="set", disable=None)}
    per_image = {f"{name}__{score}": values for name, logits in {"in": logits_in, **logits_out}.items()
                 for score, values in per_image_scores(logits).items()}
    return ({"convention": CONVENTION,
             "in_distribution": {"dataset": cfg["dataset"], "n": len(keep)},
             "sets": {name: {"n": len(s.images), "source": s.source} for name, s in sets.items()},
             **ood_evaluation(logits_in, logits_out)}, {**per_image, "sets": np.array(list(sets))})


def suite_ood(cfg: dict, model: torch.nn.Module) -> tuple[dict, dict, str]:
    result, per_image = evaluate_ood(cfg, model)
    return result, per_image, (f"mean AUROC over {len(result['sets'])} OOD sets: {result['msp']['mean']['auroc']:.1f}% (max "
                    f"softmax), {result['max_logit']['mean']['auroc']:.1f}% (max logit)")


SUITES: dict[str, Callable[[dict, torch.nn.Module], tuple[dict, dict, str]]] = {
    "clean": suite_clean,
    "corruption": suite_corruption,
    "ood": suite_ood,
    "autoattack": suite_autoattack,
}
