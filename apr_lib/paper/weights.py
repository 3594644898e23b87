"""The trained models that the section notebooks and the explorer load, on a machine that trained them or not.

A run trained here lives in runs/<profile>/<run>/. The DAG also publishes the weights those notebooks load to
outputs/<profile>/weights/<run>/ (apr_lib.study.targets.published_runs), and the default profile's copies are
committed, with their checksums in outputs/<profile>/manifest.json, so a fresh clone's notebooks and explorer work
before anything is trained. `load_models` takes runs/ first (what this machine trained), else the published copy,
whose files must match the manifest's checksums.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from apr_lib.errors import CheckpointError, UserError
from apr_lib.files import read_json, sha256
from apr_lib.layout import CONFIG, WEIGHTS
from apr_lib.paper.manifest import manifest_file
from apr_lib.paper.report import METHOD_LABELS
from apr_lib.runs import load_run
from apr_lib.study.config import Profile, RunSpec, published_dir, run_dir
from apr_lib.study.sections import section
from apr_lib.study.targets import published_runs, seed_runs


def _finished(folder: Path) -> bool:
    return (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file()


def train_command(profile: Profile, runs: Sequence[RunSpec]) -> str:
    """The command that trains just `runs`, and publishes those the DAG publishes."""
    select = "" if profile.name == "default" else f" --config profile={profile.name}"
    published = set(published_runs(profile))
    targets = " ".join(((published_dir if run in published else run_dir)(profile, run) / WEIGHTS).as_posix()
                       for run in runs)
    return f"snakemake --cores 4{select} {targets}"


def trained_dir(profile: Profile, run: RunSpec) -> Path | None:
    """The folder to load `run` from: runs/<profile>/<run> if trained here, else its published copy once its files
    match the checksums of the manifest; None if neither exists."""
    if _finished(run_dir(profile, run)):
        return run_dir(profile, run)
    copy = published_dir(profile, run)
    if not _finished(copy):
        return None
    manifest = manifest_file(profile)
    recorded = (read_json(manifest).get("weights", {}) if manifest.is_file() else {}).get(run.name)
    if recorded is None:
        raise UserError(f"{copy} has no checksums in {manifest} (the DAG's last rule writes them), so it cannot be "
                        f"checked; train the run here with `{train_command(profile, [run])}`")
    for name in (WEIGHTS, CONFIG):
        if sha256(copy / name) != recorded[name]["sha256"]:
            raise CheckpointError(f"{copy / name} does not match the checksum that {manifest} records: it was changed "
                                  f"or truncated since that run. Restore it (`git checkout -- {copy / name}`) or "
                                  f"train the run here with `{train_command(profile, [run])}`.")
    return copy


def load_models(profile: Profile, runs: dict[str, RunSpec],
                device: torch.device | str | None = None) -> dict[str, torch.nn.Module]:
    """The trained model of each run of `runs` (method -> run), keyed by the method's label (Standard, APR-SP)."""
    folders = {method: trained_dir(profile, run) for method, run in runs.items()}
    missing = [runs[method] for method, folder in folders.items() if folder is None]
    if missing:
        raise UserError(f"no trained {' or '.join(METHOD_LABELS[run.method] for run in missing)} model of profile "
                        f"{profile.name!r} ({', '.join(run.name for run in missing)}): neither runs/ nor "
                        f"{profile.outputs}/weights/ holds it. Train it with `{train_command(profile, missing)}`.")
    return {METHOD_LABELS[method]: load_run(folder, device)[0] for method, folder in folders.items()}


def load_seed_models(profile: Profile, key: str) -> tuple[dict[str, list[RunSpec]], list[dict[str, torch.nn.Module]]]:
    """The runs a section loads by model label (Standard, APR-SP; one per seed of its runs table) and, per seed, the
    trained models by label: from runs/ or their published copies."""
    by_method = seed_runs(profile, section(key))
    seeds = len(next(iter(by_method.values())))
    runs = {METHOD_LABELS[method]: method_runs for method, method_runs in by_method.items()}
    return runs, [load_models(profile, {method: method_runs[i] for method, method_runs in by_method.items()})
                  for i in range(seeds)]
