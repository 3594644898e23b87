"""Evaluation suites of a trained run; each returns the dict written to metrics/<run>/<suite>.json.

- clean:      test error (%) and negative log-likelihood on the clean test set;
- corruption: error (%) per corruption and severity on the -C set, the per-corruption mean over
              severities, and the mean corruption error over the profile's corruptions (Table 1's metric:
              100 - mean accuracy over corruptions x severities).

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
from apr_lib.corrupted_sets import describe, load_c_set
from apr_lib.data import load_split, subset_indices


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
    logits = predict(model, images, batch_size)
    return {"n": len(labels), "error": error_percent(logits, labels),
            "nll": F.cross_entropy(logits, labels).item()}


def evaluate_corruptions(model: torch.nn.Module, c_dir: Path, names: list[str], severities: list[int],
                         batch_size: int) -> dict:
    errors = {}
    for name in tqdm(names, desc="corruptions", unit="corruption", disable=None):
        images, labels = load_c_set(c_dir, name)
        errors[name] = {str(s): error_percent(predict(model, images[s - 1], batch_size), labels) for s in severities}
    per_corruption = {name: sum(e.values()) / len(e) for name, e in errors.items()}
    return {"source": describe(c_dir), "n_per_severity": len(labels), "severities": list(severities),
            "errors": errors, "corruption_error": per_corruption,
            "mean_corruption_error": sum(per_corruption.values()) / len(per_corruption)}


def suite_clean(profile: Profile, model: torch.nn.Module) -> tuple[dict, str]:
    ev = profile["eval"]
    test = load_split(profile["dataset"], Path(profile["data_root"]), train=False)
    keep = subset_indices(len(test.labels), ev.get("test_subset"))
    result = evaluate_clean(model, test.images[keep], test.labels[keep], ev["batch_size"])
    return result, f"clean error {result['error']:.2f}%"


def corruption_set(profile: Profile) -> Path:
    return corrupted_sets.c_set_dir(profile["dataset"], Path(profile["data_root"]),
                                    profile["eval"].get("corruption_subset"))


def suite_corruption(profile: Profile, model: torch.nn.Module) -> tuple[dict, str]:
    ev = profile["eval"]
    result = evaluate_corruptions(model, corruption_set(profile), ev["corruptions"], ev["severities"], ev["batch_size"])
    return result, f"mean corruption error {result['mean_corruption_error']:.2f}%"


SUITES: dict[str, Callable[[Profile, torch.nn.Module], tuple[dict, str]]] = {
    "clean": suite_clean,
    "corruption": suite_corruption,
}


def suite_inputs(profile: Profile, suite: str) -> list[Path]:
    """Files a suite reads besides the run's weights (Snakemake inputs)."""
    if suite == "corruption":
        c_dir = corruption_set(profile)
        official = corrupted_sets.official_dir(profile["dataset"], Path(profile["data_root"])) is not None
        return [c_dir / ("labels.npy" if official else corrupted_sets.PROVENANCE)]
    return []
