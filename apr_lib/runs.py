"""A run's files: checkpoints and weights saved and loaded, devices and seeds; `load_run`.

A run's folder holds checkpoint.pt, model.pt and config.json (apr_lib.layout). Everything is saved as plain state
dicts and loaded with `weights_only=True`.
"""
from __future__ import annotations

import random
import zipfile
from pathlib import Path

import numpy as np
import torch

from apr_lib.errors import CheckpointError, UserError
from apr_lib.files import atomic_path, read_json
from apr_lib.layout import CONFIG, WEIGHTS, published_copy
from apr_lib.models import build_run_model


def pick_device() -> torch.device:
    """CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_state(obj: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_state(path: Path, restart_hint: str) -> dict:
    """torch.load with weights_only=True; a truncated or tampered file gives a CheckpointError naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} cannot be loaded ({first_line}). It is truncated or was modified. "
                              f"{restart_hint}") from None


def load_run(run_dir: str | Path, device: torch.device | str | None = None) -> tuple[torch.nn.Module, dict]:
    """The trained model of a finished run (eval mode, normalisation inside) and its resolved config.

    `run_dir` is a run's folder, runs/<profile>/<run>, or its published copy, outputs/<profile>/weights/<run>
    (apr_lib.layout). The model takes float images in [0, 1] shaped (B, C, H, W) and returns logits.
    """
    run_dir = Path(run_dir)
    if not (run_dir / WEIGHTS).exists() or not (run_dir / CONFIG).exists():
        copy = published_copy(run_dir)
        hint = (f"its published weights are in {copy}: load that folder" if copy else
                "train it first, e.g. with `snakemake --cores 4 all`")
        raise UserError(f"{run_dir} holds no finished run (expected {WEIGHTS} and {CONFIG}); {hint}")
    config = read_json(run_dir / CONFIG)
    model = build_run_model(config)
    model.load_state_dict(load_state(run_dir / WEIGHTS, f"Delete {run_dir} and train the run again."))
    return model.to(device or pick_device()).eval(), config
