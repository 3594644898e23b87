"""GPU jobs on a multi-GPU machine (profiles/gpu-local): each job on one GPU, one or several jobs per GPU.

Snakemake's `--resources gpu=N` limits how many GPU jobs run at once, but it does not say which device each
one should use (it sets no CUDA_VISIBLE_DEVICES). So a job claims a slot itself: it takes an exclusive fcntl
lock on one of the slots' lock files and keeps it for its lifetime. There are N x `jobs_per_gpu` slots (a
small model leaves most of a large GPU idle, so several jobs sharing it train more images per second in all:
benchmarks/gpu_check.py measures that curve); slot k means the (k mod N)-th visible GPU, so jobs spread over
the GPUs before they share one. The operating system drops the lock when the process ends, however it ends
(kill -9 included), so a slot can never stay taken by a dead job.

The Snakefile exports APR_GPU_SLOTS=N and APR_JOBS_PER_GPU when it runs with `--resources gpu=N` (and
`jobs_per_gpu=J`, default 1), and lets Snakemake run `gpu_slot_count(N, J)` GPU jobs at once; `apr train` and
`apr eval` then call `claim_gpu_from_env()` before torch touches CUDA. Without APR_GPU_SLOTS nothing changes.
"""
from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
from pathlib import Path

from apr_lib.errors import UserError

SLOTS_VARIABLE = "APR_GPU_SLOTS"  # the number of GPUs the jobs spread over
JOBS_PER_GPU_VARIABLE = "APR_JOBS_PER_GPU"  # how many jobs share one GPU at once (default 1)
LOCK_DIR_VARIABLE = "APR_GPU_LOCK_DIR"  # where the lock files live; all jobs of one machine must agree

_held = None  # the open lock file of this process's slot: closing it (or exiting) frees the slot


def lock_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"apr-gpu-slots-{os.getuid()}"
    return Path(os.environ.get(LOCK_DIR_VARIABLE, default))


def claim_slot(n_slots: int, poll_seconds: float = 1.0) -> int:
    """Lock the first free one of `n_slots` slots, waiting while all are taken; return its number."""
    folder = lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    waiting_said = False
    while True:
        for slot in range(n_slots):
            handle = open(folder / f"slot{slot}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            global _held
            _held = handle
            return slot
        if not waiting_said:  # more GPU jobs than slots: another workflow shares the machine
            print(f"all {n_slots} GPU slots in {folder} are taken; waiting for one to free up", file=sys.stderr)
            waiting_said = True
        time.sleep(poll_seconds)


def _count(variable: str, value: object, meaning: str) -> int:
    if not str(value).isdigit() or int(value) < 1:
        raise UserError(f"{variable}={value!r}: expected {meaning} (an integer >= 1)")
    return int(value)


def gpu_slot_count(gpus: object, jobs_per_gpu: object = 1) -> int:
    """How many GPU jobs may run at once: GPUs x jobs per GPU (the gpu-local profile's `gpu` and `jobs_per_gpu`)."""
    return (_count("resources: gpu", gpus, "the number of GPUs jobs may spread over")
            * _count("resources: jobs_per_gpu", jobs_per_gpu, "how many jobs share one GPU; 1 until "
                     "benchmarks/gpu_check.py's packing curve shows more is faster"))


def claim_gpu_from_env() -> str | None:
    """If APR_GPU_SLOTS is set, claim a slot and make its GPU the only visible one; return that device id."""
    value = os.environ.get(SLOTS_VARIABLE)
    if not value or "LOCAL_RANK" in os.environ:  # under torchrun the job spans the GPUs it was given
        return None
    n_gpus = _count(SLOTS_VARIABLE, value, "the number of GPUs jobs may spread over, as set by `--resources "
                    "gpu=N`; unset it to use the default device")
    per_gpu = _count(JOBS_PER_GPU_VARIABLE, os.environ.get(JOBS_PER_GPU_VARIABLE, "1"),
                     "how many jobs share one GPU, as set by `--resources jobs_per_gpu=J`")
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
        raise RuntimeError("claim_gpu_from_env() must run before torch initialises CUDA")
    # Slot k is on the (k mod N)-th device the job may see: the user's own CUDA_VISIBLE_DEVICES list, else 0..N-1.
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if visible and len(visible) < n_gpus:
        raise UserError(f"{SLOTS_VARIABLE}={n_gpus} but CUDA_VISIBLE_DEVICES lists only {len(visible)} devices "
                        f"({','.join(visible)}); set `--resources gpu={len(visible)}`")
    slot = claim_slot(n_gpus * per_gpu)
    device = visible[slot % n_gpus] if visible else str(slot % n_gpus)
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    print(f"GPU slot {slot} of {n_gpus * per_gpu} ({per_gpu} per GPU): CUDA_VISIBLE_DEVICES={device}", file=sys.stderr)
    return device
