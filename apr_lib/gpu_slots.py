"""One GPU per job on a multi-GPU machine (profiles/gpu-local).

Snakemake's `--resources gpu=N` keeps at most N GPU jobs running at once, but it does not say which
device each one should use (it sets no CUDA_VISIBLE_DEVICES). So a job claims a slot itself: it takes an
exclusive fcntl lock on one of N lock files and keeps it for its lifetime; slot k means the k-th visible
GPU. The operating system drops the lock when the process ends, however it ends (kill -9 included), so a
slot can never stay taken by a dead job.

The Snakefile exports APR_GPU_SLOTS=N when it runs with `--resources gpu=N`; `apr train` and `apr eval`
then call `claim_gpu_from_env()` before torch touches CUDA. Without APR_GPU_SLOTS nothing changes.
"""
from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
from pathlib import Path

from apr_lib.errors import UserError

SLOTS_VARIABLE = "APR_GPU_SLOTS"
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


def claim_gpu_from_env() -> str | None:
    """If APR_GPU_SLOTS is set, claim a slot and make its GPU the only visible one; return that device id."""
    value = os.environ.get(SLOTS_VARIABLE)
    if not value or "LOCAL_RANK" in os.environ:  # under torchrun the job spans the GPUs it was given
        return None
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"{SLOTS_VARIABLE}={value!r}: expected the number of GPUs jobs may spread over (an "
                        f"integer >= 1), as set by `--resources gpu=N`; unset it to use the default device")
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
        raise RuntimeError("claim_gpu_from_env() must run before torch initialises CUDA")
    # Slot k is the k-th device the job may see: the user's own CUDA_VISIBLE_DEVICES list, else 0..N-1.
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    n_slots = int(value)
    if visible and len(visible) < n_slots:
        raise UserError(f"{SLOTS_VARIABLE}={n_slots} but CUDA_VISIBLE_DEVICES lists only {len(visible)} devices "
                        f"({','.join(visible)}); set `--resources gpu={len(visible)}`")
    slot = claim_slot(n_slots)
    device = visible[slot] if visible else str(slot)
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    print(f"GPU slot {slot} of {n_slots}: CUDA_VISIBLE_DEVICES={device}", file=sys.stderr)
    return device
