"""What every benchmark records beside its numbers: the machine, the versions, the commit, how loaded the CPU was.

Benchmarks are scripts, not tests (`python benchmarks/<name>.py`): each prints a table and writes
`benchmarks/results/<name>.json` through `write_result`. Timings on a shared machine are noisy, so the scripts
interleave the repeats of the variants they compare, report medians, and record the load average before and after;
the CPU benchmarks also measure how much CPU other processes took while they ran (`Interference`) and refuse to
write a result taken on a busy machine.
"""
from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd
import torch

from apr_lib.study.config import RunSpec, load_profile, run_config
from apr_lib.files import write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PACKAGES = ("torch", "torchvision", "numpy", "pillow", "snakemake")
# The image shapes benchmarked: the default profile's Fashion-MNIST (1x28x28), and CIFAR-10 (3x32x32) with the
# released code's crop (padding 4, fill 128), as params/cifar.yaml has it.
SHAPES = {"fmnist": ("fmnist", {}), "cifar": ("cifar10", {"crop_padding": 4, "crop_fill": 128})}


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None  # not a git checkout (e.g. a copied tree): the JSON says so with null


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def load_average() -> list[float] | None:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def wait_for_quiet(max_load: float, max_wait_s: float, poll_s: float = 30) -> bool:
    """Poll the 1-minute load average until it is below `max_load` or `max_wait_s` have passed; True if quiet."""
    deadline = time.monotonic() + max_wait_s
    while (load := load_average()) is not None and load[0] >= max_load:
        if time.monotonic() + poll_s > deadline:
            return False
        print(f"1-minute load {load[0]} >= {max_load}: waiting {poll_s:.0f} s for a quieter machine", flush=True)
        time.sleep(poll_s)
    return True


def _busy_cpu_seconds() -> float:
    """CPU seconds every process of the machine has spent outside idle and iowait (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and its descendants: the living ones (/proc/<pid>/stat utime + stime) and the
    children that have ended and been waited for (getrusage), which no longer appear in /proc."""
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    return _tree_cpu_seconds(os.getpid()) + ended.ru_utime + ended.ru_stime


def _tree_cpu_seconds(root: int) -> float:
    """CPU seconds of process `root` and every living descendant."""
    children, seconds = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = text.rsplit(")", 1)[1].split()
        pid = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(pid)
        seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += seconds.get(pid, 0.0)
        stack += children.get(pid, [])
    return total


class Interference:
    """How much CPU other processes used while the block ran, in cores (Linux /proc), and the load averages.

    `others_cores` = (CPU time of all processes - that of this process and its children) / wall time: 0 on a quiet
    machine whatever the benchmark itself uses, unlike the load average, which counts the benchmark too. Children
    that end within the block count as this process's once they have been waited for (DataLoader and Pool workers
    are).
    """

    def __init__(self, max_others_cores: float):
        self.max_others_cores = max_others_cores

    def __enter__(self) -> Interference:
        self.load_before = load_average()
        self.started, self.busy_before, self.ours_before = time.monotonic(), _busy_cpu_seconds(), _own_cpu_seconds()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.monotonic() - self.started
        self.ours_seconds = _own_cpu_seconds() - self.ours_before
        self.others_cores = max(0.0, (_busy_cpu_seconds() - self.busy_before - self.ours_seconds) / wall)
        self.load_after = load_average()

    def record(self) -> dict:
        busy = self.others_cores > self.max_others_cores
        return {"load_average_before": self.load_before, "load_average_after": self.load_after,
                "others_cores": round(self.others_cores, 3), "max_others_cores": self.max_others_cores, "busy": busy,
                "note": (f"other processes used {self.others_cores:.2f} cores on average while this ran (limit "
                         f"{self.max_others_cores}): the ratios are not a clean measurement") if busy else
                        "quiet: other processes used at most the limit of CPU while this ran"}


def machine() -> dict:
    """The machine, versions and commit a result was measured with."""
    # A copy without its own git history (a GPU machine's) names the commit it was copied from in APR_COMMIT;
    # whether that copy held uncommitted changes is then unknown (null).
    copied_from = os.environ.get("APR_COMMIT")
    status = None if copied_from else _git("status", "--porcelain", "--untracked-files=no")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "python": sys.version.split()[0],
        "versions": {name: _version(name) for name in PACKAGES},
        "commit": copied_from or _git("rev-parse", "HEAD"),
        "uncommitted_changes": None if status is None else bool(status),
        "load_average_at_start": load_average(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def method_config(method: str, shape: str, arch: str = "small_cnn") -> dict:
    """A run config (config.run_config) for `method` on images of `shape`: the default profile's, with the dataset
    and crop of `shape`. The APR and AugMix settings of the default and cifar profiles are the same (the released
    code's); reading only the default profile keeps the benchmarks independent of the GPU profiles' other keys."""
    config = run_config(load_profile("default"), RunSpec("fmnist", arch, method, 0))
    dataset, crop = SHAPES[shape]
    return {**config, "dataset": dataset, "train": {**config["train"], **crop}}


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_table(rows: list[dict], title: str) -> None:
    print(f"\n{title}\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3g"))


def write_result(name: str, info: dict, settings: dict, rows: list[dict], summary: str,
                 path: Path | None = None, **extra) -> dict:
    """Write benchmarks/results/<name>.json (or `path`): machine and versions, the settings, the table's rows, a
    one-line summary and any `extra` tables; return what was written."""
    path = Path(path) if path else RESULTS / f"{name}.json"
    result = {"benchmark": name, "machine": {**info, "load_average_at_end": load_average()}, "settings": settings,
              "rows": rows, **extra, "summary": summary}
    write_json(path, result)
    print(f"\n{summary}\nwrote {path}")
    return result
