"""Training-step overhead of each augmentation: the time of a step with it over the time of a Standard step.

    python benchmarks/train_overhead.py            # a few minutes on 2 CPU cores

One step is what `apr train` runs: `TrainingMethod(method).loss` (augmentation, forward) then backward and an SGD
step, with the profile's optimizer settings, on a fixed batch of synthetic uint8 images. Two models: the default
profile's (small_cnn on 1x28x28, batch 128) and ResNet-18 at CIFAR size (3x32x32; batch 32 by default, to keep the
script within minutes on a CPU: a smaller batch only raises the augmentation's share, since the model's cost falls
in proportion and the augmentation's fixed per-call cost does not). Each row gives
- step_ratio: the step's time over Standard's (APR-P trains on the clean and the recombined batch, 2B images, and
  AugMix on three views, 3B: most of their ratio is that larger batch, which is the method, not overhead);
- augment_share: the time spent in `TrainingMethod.augment` (crop and flip included) over the whole step.
Methods alternate within each repeat; times are medians. torch uses `--threads` threads (default 1, as the
Snakefile's train rule runs `apr train --threads 1`).
"""
from __future__ import annotations

import argparse
import time

import torch
from tqdm.auto import tqdm

from apr_lib.data import DATASETS
from apr_lib.methods import TrainingMethod
from apr_lib.models import build_model
from common import machine, median, method_config, print_table, write_result

METHODS = ("standard", "apr_p", "apr_s", "apr_sp", "augmix")
MODELS = {"small_cnn": "fmnist", "resnet18": "cifar"}  # arch: image shape (common.SHAPES)


class TimedStep:
    """One training step of `method` on `arch`, recording the seconds spent augmenting and in the whole step."""

    def __init__(self, method: str, arch: str, batch_size: int):
        config = method_config(method, MODELS[arch], arch)
        info, train = DATASETS[config["dataset"]], config["train"]
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (batch_size, info.channels, info.size, info.size), dtype=torch.uint8,
                                    generator=generator)
        self.labels = torch.randint(0, info.num_classes, (batch_size,), generator=generator)
        torch.manual_seed(0)
        self.model = build_model(arch, info.channels, info.num_classes, info.mean, info.std).train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=train["lr"], momentum=train["momentum"],
                                         nesterov=train["nesterov"], weight_decay=train["weight_decay"])
        self.method = TrainingMethod(method, config, generator)
        augment = self.method.augment

        def timed_augment(images, labels):
            started = time.perf_counter()
            out = augment(images, labels)
            self.augment_seconds = time.perf_counter() - started
            return out

        self.method.augment = timed_augment  # the step itself runs unchanged

    def __call__(self) -> tuple[float, float]:
        started = time.perf_counter()
        loss = self.method.loss(self.model, self.images, self.labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return time.perf_counter() - started, self.augment_seconds


def measure(arch: str, batch_size: int, repeats: int, steps: int) -> list[dict]:
    runs = {method: TimedStep(method, arch, batch_size) for method in METHODS}
    for step in runs.values():
        step()  # warm-up
    times = {method: ([], []) for method in METHODS}
    for _ in tqdm(range(repeats), desc=f"train steps, {arch}", disable=None, leave=False):
        for method, step in runs.items():
            for _ in range(steps):
                step_seconds, augment_seconds = step()
                times[method][0].append(step_seconds)
                times[method][1].append(augment_seconds)
    standard = median(times["standard"][0])
    return [{"model": arch, "method": method, "batch": batch_size, "step_ms": 1000 * median(step_times),
             "augment_ms": 1000 * median(augment_times), "step_ratio": median(step_times) / standard,
             "augment_share": median([a / s for a, s in zip(augment_times, step_times)])}
            for method, (step_times, augment_times) in times.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128, help="small_cnn's batch (the default profile's)")
    parser.add_argument("--resnet-batch-size", type=int, default=32, help="ResNet-18's batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="small_cnn steps per method and repeat (ResNet-18: 1)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = machine()
    rows = []
    for arch in args.models:
        small = arch == "small_cnn"
        rows += measure(arch, args.batch_size if small else args.resnet_batch_size, args.repeats,
                        args.steps if small else 1)
    print_table(rows, f"Training step per method, medians; {args.threads} thread(s); "
                      f"load {info['load_average_at_start']}")
    summary = "; ".join(f"APR-SP on {row['model']} (batch {row['batch']}): augmentation {row['augment_share']:.1%} of "
                        f"the step, step {row['step_ratio']:.2f}x Standard's"
                        for row in rows if row["method"] == "apr_sp")
    write_result("train_overhead", info, vars(args), rows, summary)


if __name__ == "__main__":
    main()
