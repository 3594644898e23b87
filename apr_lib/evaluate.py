"""Evaluation suites of a trained run; each returns the dict written to metrics/<run>/<suite>.json.

- clean:      test error (%) and negative log-likelihood on the clean test set;
- corruption: error (%) per corruption and severity on the -C set, the per-corruption mean over
              severities, and the mean corruption error over the profile's corruptions (Table 1's metric:
              100 - mean accuracy over corruptions x severities).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from apr_lib.corrupted_sets import describe, load_c_set


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
