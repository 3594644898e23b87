"""What the DAG's jobs need besides the target lists: the command that starts a training job, and the files an
evaluation suite reads besides the run's weights (both Snakemake inputs and apr_lib.paper.manifest read them)."""
from __future__ import annotations

from pathlib import Path

from apr_lib.layout import IMAGE_FOLDER_DIRS, PROVENANCE, corruption_set, official_dir
from apr_lib.study.config import Profile


def launcher(profile: Profile) -> str:
    """The command that starts `apr` for a training job of this profile: `apr` itself, or torchrun with
    `train.nproc_per_node` processes (one per GPU) on this machine (`--`: apr's options are not torchrun's)."""
    processes = profile["train"].get("nproc_per_node", 1)
    return "apr" if processes == 1 else f"torchrun --standalone --nproc_per_node {processes} -m apr_lib.cli --"


def suite_inputs(profile: Profile, suite: str) -> list[Path]:
    """Files a suite reads besides the run's weights (Snakemake inputs)."""
    if suite == "corruption":
        c_dir = corruption_set(profile.cfg)
        if profile["dataset"] in IMAGE_FOLDER_DIRS:
            return []  # read straight from ImageNet-C's folders, which no rule makes: a dry run must not need them
        official = official_dir(profile["dataset"], Path(profile["data_root"])) is not None
        return [c_dir / ("labels.npy" if official else PROVENANCE)]
    return []
