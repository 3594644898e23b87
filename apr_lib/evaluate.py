"""Evaluation suites of a trained run; each returns the dict written to metrics/<run>/<suite>.json.

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

`SUITES` maps each suite's name to its function (profile, model) -> (result, one-line summary), and
`suite_inputs` names the files a suite reads besides the run's weights: the `apr eval` command and the
Snakefile's `evaluate` rule both take them from here, so a new suite is one function and one entry.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from apr_lib import corrupted_sets
from apr_lib.config import Profile
from apr_lib.corrupted_sets import describe, load_c_set, load_image_folder_c
from apr_lib.data import load_split, subset_indices
from apr_lib.distributed import clean_test_set, streamed
from apr_lib.errors import DataMissingError
from apr_lib.metrics import CALIBRATION_DEFINITION, calibration_percent, corruption_error, mean_corruption_error


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Logits (N, K) on the CPU for uint8 images (N, C, H, W)."""
    device = next(model.parameters()).device
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    outputs = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device).float() / 255
        with autocast:
            outputs.append(model(x).float().cpu())
    return torch.cat(outputs)


def error_percent(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return 100.0 * (logits.argmax(1) != labels).double().mean().item()


def evaluate_clean(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> dict:
    return clean_metrics(predict(model, images, batch_size), labels)


def clean_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    return {"n": len(labels), "error": error_percent(logits, labels),
            "nll": F.cross_entropy(logits, labels).item(),
            "calibration_error": calibration_percent(logits, labels), "calibration": CALIBRATION_DEFINITION}


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
                         batch_size: int, image_folders: bool = False) -> dict:
    errors, calibration = {}, {}
    for name in tqdm(names, desc="corruptions", unit="corruption", disable=None):
        errors[name], calibration[name] = {}, {}
        for s, logits, labels in corrupted_predictions(model, c_dir, name, severities, batch_size, image_folders):
            errors[name][str(s)] = error_percent(logits, labels)
            calibration[name][str(s)] = calibration_percent(logits, labels)
    return {"source": describe(c_dir), "n_per_severity": len(labels), "severities": list(severities),
            "errors": errors, "corruption_error": corruption_error(errors),
            "mean_corruption_error": mean_corruption_error(errors),
            # the calibration of the same cells, averaged over severities and corruptions like the error
            "calibration": CALIBRATION_DEFINITION, "calibration_errors": calibration,
            "corruption_calibration_error": corruption_error(calibration),
            "mean_corruption_calibration_error": mean_corruption_error(calibration)}


def suite_clean(profile: Profile, model: torch.nn.Module) -> tuple[dict, str]:
    ev = profile["eval"]
    if streamed(profile["dataset"]):  # ImageNet's validation images, read image by image
        result = clean_metrics(*predict_image_folder(model, clean_test_set(profile), ev["batch_size"]))
        return result, f"clean error {result['error']:.2f}%"
    test = load_split(profile["dataset"], Path(profile["data_root"]), train=False)
    keep = subset_indices(len(test.labels), ev.get("test_subset"))
    result = evaluate_clean(model, test.images[keep], test.labels[keep], ev["batch_size"])
    return result, f"clean error {result['error']:.2f}%"


def corruption_set(profile: Profile) -> Path:
    return corrupted_sets.c_set_dir(profile["dataset"], Path(profile["data_root"]),
                                    profile["eval"].get("corruption_subset"))


def suite_corruption(profile: Profile, model: torch.nn.Module) -> tuple[dict, str]:
    ev = profile["eval"]
    result = evaluate_corruptions(model, corruption_set(profile), ev["corruptions"], ev["severities"], ev["batch_size"],
                                  image_folders=profile["dataset"] in corrupted_sets.IMAGE_FOLDER_DIRS)
    return result, f"mean corruption error {result['mean_corruption_error']:.2f}%"


def suite_ood(profile: Profile, model: torch.nn.Module) -> tuple[dict, str]:
    from apr_lib.ood_metrics import evaluate_ood  # imported here: it imports predict from this module

    result = evaluate_ood(profile, model)
    return result, (f"mean AUROC over {len(result['sets'])} OOD sets: {result['msp']['mean']['auroc']:.1f}% (max "
                    f"softmax), {result['max_logit']['mean']['auroc']:.1f}% (max logit)")


def suite_autoattack(profile: Profile, model: torch.nn.Module) -> tuple[dict, str]:
    from apr_lib import adversarial  # imported here: it loads pyautoattack and Table 3's pandas code

    return adversarial.suite_autoattack(profile, model)


SUITES: dict[str, Callable[[Profile, torch.nn.Module], tuple[dict, str]]] = {
    "clean": suite_clean,
    "corruption": suite_corruption,
    "ood": suite_ood,
    "autoattack": suite_autoattack,
}


def suite_inputs(profile: Profile, suite: str) -> list[Path]:
    """Files a suite reads besides the run's weights (Snakemake inputs)."""
    if suite == "corruption":
        c_dir = corruption_set(profile)
        if profile["dataset"] in corrupted_sets.IMAGE_FOLDER_DIRS:
            return []  # read straight from ImageNet-C's folders, which no rule makes: a dry run must not need them
        official = corrupted_sets.official_dir(profile["dataset"], Path(profile["data_root"])) is not None
        return [c_dir / ("labels.npy" if official else corrupted_sets.PROVENANCE)]
    return []
