"""Augmentation throughput on the CPU: apr_lib's batched augmentations against the released code's per-image ones.

    python benchmarks/augment_throughput.py                    # both levels, both shapes (about 10 minutes, 2 cores)
    python benchmarks/augment_throughput.py --wait-quiet 1800  # first wait (up to 30 min) for a quiet machine

Two levels, each on Fashion-MNIST-shaped (1x28x28) and CIFAR-shaped (3x32x32) synthetic uint8 images with the
settings of `common.method_config` (the released code's; the cost of these ops does not depend on content):

- pipeline: the model's inputs per batch, crop and flip included. Per image: `released_reference.py`'s DataLoader
  (a worker per core: PIL ops, NumPy FFTs, PIL crop and flip, ToTensor, collation), then APR-P batched in torch in
  the training process as released. Batched: `TrainingMethod(method).augment` on whole batches, as `apr train` runs
  it, in a DataLoader with the same number of worker processes (each item a batch).
- transform: APR-S (and APR-SP: APR-S, then APR-P) alone. Per image: the released algorithm with PIL ops and NumPy
  FFTs in a pool of one process per core. Batched: `APRS` (and `APRP`) on batches, in an equal pool.

Both sides use every core through processes with one thread each, and return nothing but a count at the transform
level, so only the way the work is done differs. The repeats of the two sides alternate; throughput is input images
per second (median over repeats) and the speed-up is the median of the paired per-repeat ratios.

Other processes' CPU use is measured over each level (`common.Interference`); above `--max-others-cores` the result
is marked busy and, unless `--allow-busy`, not written (exit status 3). `benchmarks/performance_tables.py` writes the
table of docs/performance.md from the result.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from contextlib import ExitStack
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from apr_lib.augment import APRP, APRS
from apr_lib.data import DATASETS
from apr_lib.methods import TrainingMethod
from common import SHAPES, Interference, machine, median, method_config, print_table, wait_for_quiet, write_result
from released_reference import apr_p_per_image, apr_s, released_batches, released_style_loader

LEVELS = ("pipeline", "transform")
METHODS = {"pipeline": ("apr_p", "apr_s", "apr_sp", "augmix"), "transform": ("apr_s", "apr_sp")}


def synthetic_images(count: int, channels: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (count, size, size) if channels == 1 else (count, size, size, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 10, count)


def as_batch(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W[, C]) -> (N, C, H, W)."""
    tensor = torch.from_numpy(images)
    return tensor[:, None] if tensor.ndim == 3 else tensor.permute(0, 3, 1, 2).contiguous()


# --- pipeline level --------------------------------------------------------------------------------------------

class BatchedAugment(Dataset):
    """Item = the model's inputs for one batch (a list of indices), by `TrainingMethod.augment`, made in a worker."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, method: str, config: dict):
        self.images, self.labels, self.method, self.config = images, labels, method, config
        self.training = None  # built in each worker, with its own seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, batch: list[int]):
        if self.training is None:
            self.training = TrainingMethod(self.method, self.config, torch.Generator().manual_seed(torch.initial_seed()))
        index = torch.tensor(batch)
        return self.training.augment(self.images[index], self.labels[index])


def batched_loader(images: np.ndarray, labels: np.ndarray, method: str, config: dict, batch_size: int,
                   workers: int) -> DataLoader:
    dataset = BatchedAugment(as_batch(images), torch.from_numpy(labels), method, config)
    sampler = BatchSampler(RandomSampler(dataset), batch_size, drop_last=True)
    return DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=workers,
                      persistent_workers=workers > 0)


def seconds_per_pass(batches) -> float:
    started = time.perf_counter()
    for _ in batches:
        pass
    return time.perf_counter() - started


def pipeline_pair(shape: str, method: str, args):
    """(per-image pass, batched pass): callables that each run one pass over the images and return its seconds."""
    config = method_config(method, shape)
    info, train = DATASETS[config["dataset"]], config["train"]
    images, labels = synthetic_images(args.images, info.channels, info.size)
    reference = released_style_loader(images, labels, method, args.batch_size, args.workers, train["crop_padding"],
                                      train["crop_fill"])
    batched = batched_loader(images, labels, method, config, args.batch_size, args.workers)
    prob = config.get("apr", {}).get("p_prob")  # AugMix has no APR-P
    return lambda: seconds_per_pass(released_batches(reference, method, prob)), lambda: seconds_per_pass(batched)


# --- transform level -------------------------------------------------------------------------------------------

def _one_thread() -> None:
    torch.set_num_threads(1)


def per_image_chunk(task) -> int:
    """The released APR-S (then APR-P, for APR-SP) image by image: PIL ops and NumPy FFTs."""
    images, method, prob, seed = task
    np.random.seed(seed)
    random.seed(seed)
    out = np.stack([np.asarray(apr_s(Image.fromarray(image))) for image in images])
    if method == "apr_sp":
        floats = out.astype(np.float32) / 255
        apr_p_per_image(floats if floats.ndim == 4 else floats[:, None], prob)
    return len(out)


def batched_chunk(task) -> int:
    """APRS (then APRP, for APR-SP) on the whole chunk, with the released settings."""
    images, method, apr, seed = task
    generator = torch.Generator().manual_seed(seed)
    aprs = APRS(severity=apr["s_severity"], mode=apr["fft_mode"], swap_prob=apr["s_swap_prob"],
                distracter=apr["s_distracter"], overflow=apr["s_overflow"], generator=generator)
    x = aprs(as_batch(images).float() / 255)
    if method == "apr_sp":
        APRP(prob=apr["p_prob"], mode=apr["fft_mode"], generator=generator)(x, torch.zeros(len(x), dtype=torch.long))
    return len(x)


def transform_pair(shape: str, method: str, args, pools):
    config = method_config(method, shape)
    info, apr = DATASETS[config["dataset"]], config["apr"]
    images, _ = synthetic_images(args.images, info.channels, info.size)
    chunks = [images[i:i + args.batch_size] for i in range(0, len(images) - args.batch_size + 1, args.batch_size)]
    seeds = iter(range(10 ** 9))  # fresh draws in every pass

    def timed(pool, function, setting):
        started = time.perf_counter()
        pool.map(function, [(chunk, method, setting, next(seeds)) for chunk in chunks], chunksize=1)
        return time.perf_counter() - started

    per_image_pool, batched_pool = pools
    return lambda: timed(per_image_pool, per_image_chunk, apr["p_prob"]), lambda: timed(batched_pool, batched_chunk, apr)


# --- both ------------------------------------------------------------------------------------------------------

def measure(level: str, shape: str, method: str, args, pools) -> dict:
    per_image, batched = (pipeline_pair(shape, method, args) if level == "pipeline"
                          else transform_pair(shape, method, args, pools))
    n = args.images // args.batch_size * args.batch_size
    per_image(), batched()  # warm-up: workers started, caches filled
    reference, ours = [], []
    for _ in range(args.repeats):
        reference.append(n / per_image())
        ours.append(n / batched())
    return {"level": level, "shape": shape, "method": method, "per_image_img_s": median(reference),
            "batched_img_s": median(ours), "speedup": median([b / r for b, r in zip(ours, reference)]),
            "per_image_runs": reference, "batched_runs": ours}


def run_level(level: str, args) -> tuple[list[dict], dict]:
    jobs = [(shape, method) for shape in args.shapes for method in METHODS[level] if method in args.methods]
    with ExitStack() as stack:
        pools = [stack.enter_context(Pool(args.workers, initializer=_one_thread)) for _ in range(2)
                 if level == "transform"]
        interference = stack.enter_context(Interference(args.max_others_cores))
        rows = [measure(level, shape, method, args, pools) for shape, method in jobs]
    print(f"{level} level: " + ", ".join(f"{r['shape']} {r['method']} {r['speedup']:.2f}x" for r in rows), flush=True)
    return rows, interference.record()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2048, help="images per timed pass")
    parser.add_argument("--batch-size", type=int, default=128, help="the released code's batch size")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes per side (one per core)")
    parser.add_argument("--levels", nargs="+", default=list(LEVELS), choices=LEVELS)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS["pipeline"]), choices=list(METHODS["pipeline"]))
    parser.add_argument("--max-load", type=float, default=0.5, help="the quiet machine's 1-minute load average")
    parser.add_argument("--wait-quiet", type=float, default=0, help="seconds to wait for a load below --max-load")
    parser.add_argument("--max-others-cores", type=float, default=0.25,
                        help="CPU (in cores) other processes may use while a level runs before it counts as busy")
    parser.add_argument("--allow-busy", action="store_true", help="write a busy machine's result, marked busy")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/augment_throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the main process only iterates; the work happens in the worker processes
    if not wait_for_quiet(args.max_load, args.wait_quiet):
        print(f"the 1-minute load stayed at or above {args.max_load} for {args.wait_quiet:.0f} s; measuring anyway "
              f"(the result records how busy it was)", flush=True)
    info = machine()
    rows, interference = [], {}
    for level in args.levels:
        level_rows, interference[level] = run_level(level, args)
        rows += level_rows
    busy = any(record["busy"] for record in interference.values())
    print_table([{k: v for k, v in row.items() if not k.endswith("_runs")} for row in rows],
                f"Augmentation throughput, input images/s (median of {args.repeats}), {args.workers} processes a side; "
                f"other processes' CPU use: " + ", ".join(f"{level} {r['others_cores']} cores"
                                                         for level, r in interference.items()))
    sp = [row for row in rows if row["method"] == "apr_sp"]
    summary = "; ".join(f"APR-SP {row['level']} level, {row['shape']}: batched {row['speedup']:.1f}x the per-image "
                        f"reference ({row['batched_img_s']:.0f} vs {row['per_image_img_s']:.0f} img/s)" for row in sp)
    if busy:
        summary = "BUSY MACHINE, not a clean measurement: " + summary
        if not args.allow_busy:
            print(f"\n{summary}\nnot written: other processes used more than {args.max_others_cores} cores "
                  f"(--allow-busy writes it marked busy)")
            sys.exit(3)
    write_result("augment_throughput", info, {**vars(args), "out": str(args.out)}, rows, summary or "no APR-SP row",
                 args.out, busy=busy, interference=interference)


if __name__ == "__main__":
    main()
