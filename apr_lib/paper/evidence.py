"""The per-image results of a method's runs (one per seed) as apr_lib.uncertainty Estimates: the statistics the claims
compare, each resampled over the same test images for every method (paired).

Every function takes the runs of one method (several seeds, the same test images) and reads their per-image files
(apr_lib.per_image) beside the metrics files; a missing file is an error that says how to make it.
"""
from __future__ import annotations

import zlib
from typing import Callable

import numpy as np

from apr_lib import per_image
from apr_lib.errors import UserError
from apr_lib.study.config import Profile, RunSpec, per_image_file, table_runs
from apr_lib.uncertainty import Estimate, auroc_of, mean_of, mean_over

IN_DISTRIBUTION = "in"  # the per-image key prefix of the test images' OOD scores (apr_lib.per_image)


def stacked(profile: Profile, runs: list[RunSpec], suite: str, key: str) -> np.ndarray:
    """The per-image array `key` of each run (one row per run, i.e. per seed)."""
    if not runs:
        raise ValueError("no runs to read")
    arrays = []
    for run in runs:
        path = per_image_file(profile, run, suite)
        if not path.exists():
            raise UserError(f"{path} is missing: an older `apr eval` wrote {path.with_suffix('.json').name} without "
                            f"the per-image results. Delete {path.with_suffix('.json')} and re-run `snakemake --cores 4 "
                            f"all --config profile={profile.name}` (or `apr eval --profile {profile.name} --run "
                            f"{run.name} --suite {suite}`).")
        values = per_image.load(path)
        if key not in values:
            raise UserError(f"{path} has no {key!r} (it has {', '.join(sorted(values))}); the profile changed since it "
                            "was written. Delete it and its .json and re-run the evaluation.")
        arrays.append(values[key])
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise UserError(f"the {suite} results of {', '.join(r.name for r in runs)} cover different images "
                        f"({sorted(shapes)}); re-run their evaluations with the same profile")
    return np.stack(arrays)


def clean_error(profile: Profile, runs: list[RunSpec]) -> Estimate:
    """Test error (%) on the clean test set."""
    return mean_of(100.0 * ~stacked(profile, runs, "clean", "correct"))


def clean_accuracy(profile: Profile, runs: list[RunSpec]) -> Estimate:
    return mean_of(100.0 * stacked(profile, runs, "clean", "correct"))


def corruption_errors(profile: Profile, runs: list[RunSpec]) -> tuple[np.ndarray, list[str]]:
    """Error (%) per run, corruption, severity and image (S, C, V, N), and the corruptions' names."""
    correct = stacked(profile, runs, "corruption", "correct")
    names = [str(n) for n in per_image.load(per_image_file(profile, runs[0], "corruption"))["corruptions"]]
    return 100.0 * ~correct, names


def mean_corruption_error(profile: Profile, runs: list[RunSpec]) -> Estimate:
    """Table 1's mean corruption error (%): the mean over corruptions and severities, per image, then over images
    (image i is the same test image in every cell)."""
    errors, _ = corruption_errors(profile, runs)
    return mean_of(errors.mean(axis=(1, 2)))


_AUROCS: dict[tuple, Estimate] = {}  # a section's table and claims ask for the same AUROCs: computed once


def ood_auroc(profile: Profile, runs: list[RunSpec], score: str, sets: list[str]) -> Estimate:
    """AUROC (%) of separating the test images from each OOD set of `sets` by `score` ("msp" or "max_logit"),
    averaged over the sets; each set's images resampled on their own, the test images alike for every set."""
    key = {"msp": "msp_log_odds", "max_logit": "max_logit"}[score]
    memo = (str(profile.outputs), tuple(r.name for r in runs), key, tuple(sets),
            tuple(per_image_file(profile, r, "ood").stat().st_mtime_ns for r in runs if
                  per_image_file(profile, r, "ood").exists()))
    if memo not in _AUROCS:
        score_in = stacked(profile, runs, "ood", f"{IN_DISTRIBUTION}__{key}")
        _AUROCS[memo] = mean_over([auroc_of(score_in, stacked(profile, runs, "ood", f"{name}__{key}"),
                                            salt_out=zlib.crc32(name.encode())) for name in sets])
    return _AUROCS[memo]


def autoattack_accuracy(profile: Profile, runs: list[RunSpec], n: int, robust: bool = True) -> Estimate:
    """Accuracy (%) on the first `n` test images under the last attack of the run's AutoAttack (`robust`), or clean."""
    if robust:
        attack = str(per_image.load(per_image_file(profile, runs[0], "autoattack"))["attacks"][-1])
        key = f"robust__{attack}"
    else:
        key = "clean"
    return mean_of(100.0 * stacked(profile, runs, "autoattack", key)[:, :n])


def row_key(run: RunSpec) -> str:
    """A table row: its method, with the variant it runs (<method>@<variant>) where it has one."""
    return f"{run.method}@{run.variant}" if run.variant else run.method


def rows(profile: Profile, table: str) -> dict[str, dict[str, list[RunSpec]]]:
    """{row: {arch: its runs, one per seed}} of a `tables:` entry, rows in the profile's order."""
    grouped: dict[str, dict[str, list[RunSpec]]] = {}
    for run in table_runs(profile, table):
        grouped.setdefault(row_key(run), {}).setdefault(run.arch, []).append(run)
    return grouped


def per_row(profile: Profile, table: str, statistic: Callable[[Profile, list[RunSpec]], Estimate],
            keep: Callable[[str], bool] = lambda row: True) -> dict[str, Estimate]:
    """`statistic` of each row's runs (of the rows `keep` selects), averaged over architectures seed by seed (the
    paper's mean rows average its architectures)."""
    return {row: mean_over([statistic(profile, runs) for runs in by_arch.values()])
            for row, by_arch in rows(profile, table).items() if keep(row)}
