"""Augmentation throughput: apr_lib's batched augmentations against the released code's per-image pipeline.

    python benchmarks/augment_throughput.py                 # a few minutes on 2 CPU cores
    python benchmarks/augment_throughput.py --device cuda   # batched on the GPU, the reference on the CPU cores

For APR-P, APR-S, APR-SP and AugMix, on Fashion-MNIST-shaped (1x28x28) and CIFAR-shaped (3x32x32) synthetic
uint8 images with the settings of `common.method_config` (the cost of these ops does not depend on content), it
times a pass over the same images through
- batched: `TrainingMethod(method).augment` on batches of a uint8 tensor on `--device`, as `apr train` runs it;
- per image: `released_reference.released_style_loader`, a DataLoader with one single-threaded worker per core
  (`--workers`), as the released code's loaders;
both producing the model's inputs (crop and flip included, APR-P's clean half, AugMix's three views). The repeats
of the two alternate, so load from other users hits both alike; throughput is input images per second (median over
repeats) and the speed-up is the median of the paired per-repeat ratios.

On the CPU the batched path runs on one torch thread by default (`--threads`): on a shared, oversubscribed machine
two OpenMP threads spin at every barrier while the other is descheduled (on the 2-core development machine at load
10, APR-S took 280 ms per batch on two threads against 34 ms on one); one thread against a worker per core is also
the comparison least favourable to the batched path.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from apr_lib.data import DATASETS
from apr_lib.methods import TrainingMethod
from common import SHAPES, machine, median, method_config, print_table, write_result
from released_reference import released_style_loader

METHODS = ("apr_p", "apr_s", "apr_sp", "augmix")


def synthetic_images(count: int, channels: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (count, size, size) if channels == 1 else (count, size, size, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 10, count)


def time_batched(method: TrainingMethod, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
    started = time.perf_counter()
    order = torch.randperm(len(images), device=images.device)
    for step in range(len(images) // batch_size):
        batch = order[step * batch_size:(step + 1) * batch_size]
        method.augment(images[batch], labels[batch])
    if images.device.type == "cuda":
        torch.cuda.synchronize(images.device)
    return time.perf_counter() - started


def time_loader(loader) -> float:
    started = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - started


def measure(shape: str, method_name: str, args) -> dict:
    config = method_config(method_name, shape)
    channels, size = DATASETS[config["dataset"]].channels, DATASETS[config["dataset"]].size
    images, labels = synthetic_images(args.images, channels, size)
    train = config["train"]
    loader = released_style_loader(images, labels, method_name, args.batch_size, args.workers,
                                   train["crop_padding"], train["crop_fill"])
    device = torch.device(args.device)
    tensor_images = torch.from_numpy(images).view(len(images), size, size, channels).permute(0, 3, 1, 2).to(device)
    tensor_labels = torch.from_numpy(labels).to(device)
    method = TrainingMethod(method_name, config, torch.Generator(device).manual_seed(0))
    n = len(images) // args.batch_size * args.batch_size
    time_loader(loader), time_batched(method, tensor_images, tensor_labels, args.batch_size)  # warm-up
    reference, batched = [], []
    for _ in range(args.repeats):
        reference.append(n / time_loader(loader))
        batched.append(n / time_batched(method, tensor_images, tensor_labels, args.batch_size))
    del loader  # ends its workers
    return {"shape": shape, "method": method_name, "per_image_img_s": median(reference),
            "batched_img_s": median(batched),
            "speedup": median([b / r for b, r in zip(batched, reference)]),
            "per_image_runs": reference, "batched_runs": batched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2048, help="images per timed pass")
    parser.add_argument("--batch-size", type=int, default=128, help="the released code's batch size")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the batched path (see above)")
    parser.add_argument("--device", default="cpu", help="where the batched path runs: cpu or cuda")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="DataLoader workers of the reference")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/augment_throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = machine()
    rows = [measure(shape, name, args) for shape, name in
            tqdm([(s, m) for s in args.shapes for m in args.methods], desc="augment throughput", disable=None)]
    where = (f"batched on {info['gpu'] if args.device.startswith('cuda') else 'the CPU'}, "
             f"per image on {args.workers} CPU workers")
    print_table([{k: v for k, v in row.items() if not k.endswith("_runs")} for row in rows],
                f"Augmentation throughput, input images/s (median of {args.repeats}); {where}; "
                f"load {info['load_average_at_start']}")
    sp = [row for row in rows if row["method"] == "apr_sp"]
    summary = f"{where}: " + ("; ".join(f"APR-SP {row['shape']}: batched {row['speedup']:.1f}x the per-image "
                                        f"reference ({row['batched_img_s']:.0f} vs {row['per_image_img_s']:.0f} img/s)"
                                        for row in sp) or "no APR-SP row measured")
    write_result("augment_throughput", info, {**vars(args), "out": str(args.out)}, rows, summary, args.out)


if __name__ == "__main__":
    main()
