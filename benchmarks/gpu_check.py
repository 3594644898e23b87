"""GPU check: training throughput of ResNet-18 and WRN-40-2 with Standard and APR-SP, torch.compile off and on.

    python benchmarks/gpu_check.py                  # about 3 minutes on one H200, no network
    python benchmarks/gpu_check.py --smoke          # tiny batches, no compile: checks the script on any device

Each configuration runs full training steps as `apr train` does on CUDA: GPU-resident uint8 images, the method's
batched augmentation on the GPU (`TrainingMethod.loss`), bf16 autocast, channels_last (inside the model), SGD with
the profile's settings, the loss read back every step to check it is finite. Reported per configuration:
- images_per_s: training images consumed per second (APR-SP's model sees twice as many: clean and recombined);
- augment_share: the time of `TrainingMethod.augment` alone on the same batches over the time of the steps;
- warmup_s: the first steps, torch.compile's compilation included.
Then the parts of APR-SP's augmentation (and AugMix's), each timed alone on a batch: where the time goes.
Data: CIFAR-10 from `--data-root` when its files are there, else synthetic CIFAR-shaped images (the timings do not
depend on content). Prints the results as one JSON line and writes benchmarks/results/gpu_check.json (or `--out`).
Configurations left when `--budget-s` is spent are reported as skipped, so the script always ends in time.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from apr_lib.augment import APRP, APRS, AugMix, RandomCropFlip
from apr_lib.augment.ops import OPS, random_op
from apr_lib.data import DATASETS, load_split
from apr_lib.methods import TrainingMethod
from apr_lib.models import build_model
from apr_lib.runs import pick_device
from apr_lib.spectral import swap_amplitude
from common import machine, method_config, print_table, write_result

ARCHS = ("resnet18", "wrn40_2")
METHODS = ("standard", "apr_sp")


def training_images(data_root: Path, count: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, str]:
    if (data_root / "cifar-10-batches-py").is_dir():
        data = load_split("cifar10", data_root, train=True)
        return data.images.to(device), data.labels.to(device), "cifar10"
    info = DATASETS["cifar10"]
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, info.channels, info.size, info.size), dtype=torch.uint8, generator=generator)
    return images.to(device), torch.randint(0, info.num_classes, (count,), generator=generator).to(device), "synthetic"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(arch: str, method_name: str, compiled: bool, images: torch.Tensor, labels: torch.Tensor, args,
            device: torch.device) -> dict:
    config = method_config(method_name, "cifar", arch)
    info, train = DATASETS[config["dataset"]], config["train"]
    torch.manual_seed(0)
    model = build_model(arch, info.channels, info.num_classes, info.mean, info.std).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=train["lr"], momentum=train["momentum"],
                                nesterov=train["nesterov"], weight_decay=train["weight_decay"])
    method = TrainingMethod(method_name, config, torch.Generator(device).manual_seed(0))
    forward = torch.compile(model) if compiled else model
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    batches = torch.randint(len(labels), (args.warmup + args.steps, args.batch_size), device=device)

    def step(batch: torch.Tensor) -> None:
        with autocast:
            loss = method.loss(forward, images[batch], labels[batch])
        if not math.isfinite(loss.item()):  # `apr train` reads the loss back every step too
            raise RuntimeError(f"{arch} {method_name}: non-finite loss")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    started = time.perf_counter()
    for batch in batches[:args.warmup]:
        step(batch)
    synchronize(device)
    warmup = time.perf_counter() - started
    started = time.perf_counter()
    for batch in batches[args.warmup:]:
        step(batch)
    synchronize(device)
    steps_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for batch in batches[args.warmup:]:
        method.augment(images[batch], labels[batch])
    synchronize(device)
    augment_seconds = time.perf_counter() - started
    return {"arch": arch, "method": method_name, "compile": compiled, "status": "ok",
            "images_per_s": args.steps * args.batch_size / steps_seconds, "step_ms": 1000 * steps_seconds / args.steps,
            "augment_ms": 1000 * augment_seconds / args.steps, "augment_share": augment_seconds / steps_seconds,
            "warmup_s": warmup}


def augmentation_breakdown(images: torch.Tensor, labels: torch.Tensor, batch_size: int, calls: int,
                           device: torch.device) -> list[dict]:
    """Milliseconds per call of each part of APR-SP (released settings) and of AugMix, on one batch."""
    generator = torch.Generator(device).manual_seed(0)
    x, y = images[:batch_size].float() / 255, labels[:batch_size]
    half = batch_size // 2
    parts = {
        "crop and flip": lambda: RandomCropFlip(4, fill=128 / 255, generator=generator)(x),
        "one AugMix op per image (random_op)": lambda: random_op(x, 3, OPS, generator),
        f"swap_amplitude of {half} pairs": lambda: swap_amplitude(x[:half], x[half:], "channel3d"),
        "APR-S": lambda: APRS(generator=generator)(x),
        "APR-P (recombining, clean kept)": lambda: APRP(prob=1.0, generator=generator)(x, y),
        "AugMix, two views": lambda: AugMix(generator=generator)(torch.cat([x, x])),
    }
    rows = []
    for name, part in parts.items():
        for _ in range(3):
            part()
        synchronize(device)
        started = time.perf_counter()
        for _ in range(calls):
            part()
        synchronize(device)
        rows.append({"part": name, "batch": batch_size, "ms_per_call": 1000 * (time.perf_counter() - started) / calls})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128, help="the released code's batch size")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps (compilation happens here)")
    parser.add_argument("--compile", choices=("both", "off", "on"), default="both")
    parser.add_argument("--budget-s", type=float, default=420, help="skip configurations started after this")
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/gpu_check.json")
    parser.add_argument("--smoke", action="store_true", help="batch 4, 2 steps, no compile: checks the script")
    args = parser.parse_args()
    if args.smoke:
        args.batch_size, args.steps, args.warmup, args.compile = 4, 2, 1, "off"
    device = pick_device()
    info = machine()
    images, labels, data = training_images(args.data_root, 10_000 if not args.smoke else 64, device)
    compile_settings = {"both": (False, True), "off": (False,), "on": (True,)}[args.compile]
    configs = [(arch, method, compiled) for compiled in compile_settings for arch in ARCHS for method in METHODS]
    started, rows = time.perf_counter(), []
    for arch, method, compiled in configs:
        if time.perf_counter() - started > args.budget_s:
            rows.append({"arch": arch, "method": method, "compile": compiled, "status": "skipped: --budget-s spent"})
            continue
        try:
            rows.append(measure(arch, method, compiled, images, labels, args, device))
        except Exception as error:  # one failing configuration (e.g. a compiler problem) must not lose the others
            rows.append({"arch": arch, "method": method, "compile": compiled, "status": f"failed: {error!r}"[:300]})
        print(json.dumps(rows[-1]), flush=True)
    device_name = info["gpu"] or f"no GPU ({device.type})"
    print_table(rows, f"Training throughput on {device_name}, batch {args.batch_size}, data {data}")
    breakdown = augmentation_breakdown(images, labels, args.batch_size, args.steps, device)
    print_table(breakdown, f"Augmentation parts on {device_name}")
    ok = {(r["arch"], r["method"], r["compile"]): r for r in rows if r["status"] == "ok"}
    parts = [f"{arch} APR-SP {r['images_per_s']:.0f} img/s vs Standard "
             f"{ok[(arch, 'standard', compiled)]['images_per_s']:.0f}{' compiled' if compiled else ''} "
             f"(augmentation {r['augment_share']:.0%} of the step)"
             for (arch, method, compiled), r in ok.items() if method == "apr_sp" and (arch, "standard", compiled) in ok]
    summary = f"{device_name}: " + ("; ".join(parts) or "no configuration completed")
    settings = {**vars(args), "data_root": str(args.data_root), "out": str(args.out), "data": data,
                "device": device.type, "bf16_autocast": device.type == "cuda", "channels_last": True}
    result = write_result("gpu_check", info, settings, rows, summary, args.out, augmentation_parts=breakdown)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
