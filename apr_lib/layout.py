"""Where files live, without torch: a run's folder and the -C test sets under the data root.

    <run dir>/checkpoint.pt   state after the last finished epoch (removed when the run ends)
    <run dir>/model.pt        final weights (state dict of the normalised model)
    <run dir>/config.json     the resolved config that produced them

A run's folder is runs/<profile>/<run>/, never committed. The weights that the notebooks and the explorer load are
also published, model.pt and config.json copied by the DAG, to outputs/<profile>/weights/<run>/, which is committed
for the default profile, so that a fresh clone can use them before it trains anything.

-C sets, in the layout of the official CIFAR-10-C / CIFAR-100-C files (apr_lib.corrupted_sets reads and writes them):
the official files where they are under the data root (`CIFAR-10-C/`, `CIFAR-100-C/`), else a set generated on a
fixed subset of the test set under `<data_root>/generated/`, with a provenance.json that says so; ImageNet-C's
image folders for ImageNet.
"""
from __future__ import annotations

from pathlib import Path

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.pt"
CONFIG = "config.json"
PUBLISHED_WEIGHTS = "weights"  # outputs/<profile>/weights/<run>/: the published copies of a run's WEIGHTS and CONFIG

OFFICIAL_DIRS = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}
IMAGE_FOLDER_DIRS = {"imagenet": "ImageNet-C"}  # -C sets of image folders; never generated
PROVENANCE = "provenance.json"


def published_dir(outputs: Path, run_name: str) -> Path:
    """Where the published copy of run `run_name` lives under a profile's outputs folder (outputs/<profile>)."""
    return Path(outputs) / PUBLISHED_WEIGHTS / run_name


def published_copy(run_dir: Path) -> Path | None:
    """The published copy of a run folder [<project>/]runs/<profile>/<run>, if there is one."""
    parts = Path(run_dir).parts
    if "runs" not in parts[:-2]:
        return None
    i = len(parts) - 1 - parts[::-1].index("runs")
    copy = published_dir(Path(*parts[:i], "outputs", parts[i + 1]), "/".join(parts[i + 2:]))
    return copy if (copy / WEIGHTS).is_file() else None


def official_dir(dataset: str, data_root: Path) -> Path | None:
    """The official -C folder of `dataset` under `data_root`, if it is there."""
    name = OFFICIAL_DIRS.get(dataset)
    if name and (Path(data_root) / name / "labels.npy").exists():
        return Path(data_root) / name
    return None


def generated_dir(dataset: str, data_root: Path, subset: int | None, seed: int = 0) -> Path:
    size = "all" if subset is None else f"n{subset}"
    return Path(data_root) / "generated" / f"{dataset}-C-{size}-seed{seed}"


def c_set_dir(dataset: str, data_root: Path, subset: int | None) -> Path:
    """Where the -C set of this dataset is read from: ImageNet-C's folders for ImageNet; else the official files
    if present, else the generated set."""
    if dataset in IMAGE_FOLDER_DIRS:
        return Path(data_root) / IMAGE_FOLDER_DIRS[dataset]
    return official_dir(dataset, data_root) or generated_dir(dataset, data_root, subset)


def corruption_set(cfg: dict) -> Path:
    """The -C set a profile's settings (`dataset`, `data_root`, `eval.corruption_subset`) evaluate on."""
    return c_set_dir(cfg["dataset"], Path(cfg["data_root"]), cfg["eval"].get("corruption_subset"))
