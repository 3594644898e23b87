"""GPU check: training throughput with Standard, our APR-SP and the released pipeline's APR-SP, and GPU packing.

    python benchmarks/gpu_check.py               # one GPU, under 8 minutes (--budget-s), CIFAR-10 or synthetic
    python benchmarks/gpu_check.py --dry-run     # every section on the CPU with tiny batches: checks the script

Full training steps (augmentation, forward, backward, SGD with the profile's settings) at batch 128, bf16 autocast,
channels_last (inside apr_lib's models), in this order, each section skipped once `--budget-s` is spent:

1. steps, eager: ResNet-18 and WRN-40-2 with
   - standard: crop and flip on the GPU (`TrainingMethod`);
   - apr_sp: our APR-SP on GPU-resident uint8 images (`TrainingMethod`: the sync-free path on a GPU);
   - apr_sp_released: the released pipeline: APR-S, crop, flip and ToTensor per image in DataLoader workers on every
     CPU core (benchmarks/released_reference.py), APR-P on the GPU per batch (`mix_data`), the clean batch kept.
   Each row: training images per second (APR-SP's model sees 2B inputs), step time, the augmentation's time alone on
   the same batches and its share of the step (for the released pipeline: the share of the step spent waiting for
   the workers), warm-up time;
2. sync check: our APR-SP augmentation under `torch.cuda.set_sync_debug_mode("error")`;
3. packing: 1, 2, 4 and 8 processes training APR-SP (ResNet-18, then WRN-40-2) on the one GPU at once, their
   aggregate images per second (the curve `profiles/gpu-local/config.yaml`'s `jobs_per_gpu` is set from);
4. steps with torch.compile (default mode) and with CUDA graphs (mode "reduce-overhead") for Standard and APR-SP;
5. epoch rates: Standard and APR-SP for every architecture of the `cifar` profile, from which the GPU-hours of the
   whole profile and of Table 1 are estimated (other methods timed as the one of the two with the same number of
   model inputs per image: AugMix as a third of Standard's rate, FGSM training as half), one process per GPU and at
   the best measured packing.

The loss is checked once per timed window (reading it every step would make the host wait for the GPU each step).
Data: CIFAR-10 from `--data-root` when its files are there, else synthetic CIFAR-shaped images (the timings do not
depend on content). Writes benchmarks/results/gpu_check.json (or `--out`); `benchmarks/performance_tables.py` makes the
table of docs/performance.md from it. `--dry-run` runs every section on the CPU, small: one architecture per section (the default
profile's small CNN standing in for it), batch 4, two steps, torch.compile with its "eager" backend, packing with 1
and 2 processes: it checks the script's logic in well under a minute, not the GPU's speed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from apr_lib.study.config import load_profile, run_config, table_runs
from apr_lib.data import DATASETS, load_split
from apr_lib.methods import TrainingMethod
from apr_lib.models import build_model
from common import machine, method_config, print_table, write_result
from released_reference import ReleasedStyleDataset, mix_data

ARCHS = ("resnet18", "wrn40_2")
METHODS = ("standard", "apr_sp", "apr_sp_released")
COMPILE_MODES = ("default", "reduce-overhead")
PROCESSES = (1, 2, 4, 8)
CIFAR_TRAIN_IMAGES = 50_000
INPUTS_PER_IMAGE = {"augmix": 3, "adv": 2}  # model passes per training image, relative to Standard's
APR_METHODS = ("apr_p", "apr_sp")  # timed as our APR-SP (2B inputs); apr_s as Standard (B inputs)


class Setup:
    """The measurement's settings, full size on a GPU or tiny for --dry-run."""

    def __init__(self, args):
        self.dry_run = args.dry_run
        self.device = torch.device("cpu" if args.dry_run else "cuda")
        self.batch_size = 4 if args.dry_run else args.batch_size
        self.steps = 2 if args.dry_run else args.steps
        self.warmup = 1 if args.dry_run else args.warmup
        self.window_s = 1.0 if args.dry_run else args.window_s
        self.workers = 1 if args.dry_run else args.workers
        self.processes = (1, 2) if args.dry_run else PROCESSES
        self.archs = ARCHS[:1] if args.dry_run else ARCHS
        self.compile_backend = "eager" if args.dry_run else "inductor"
        self.budget_s, self.started = args.budget_s, time.monotonic()

    def model_arch(self, arch: str) -> str:
        return "small_cnn" if self.dry_run else arch

    def time_left(self) -> bool:
        return time.monotonic() - self.started < self.budget_s


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_images(data_root: Path, count: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """uint8 CIFAR-10 training images (N, 3, 32, 32) and labels, or synthetic ones of that shape."""
    try:
        data = load_split("cifar10", data_root, train=True)
        return data.images[:count], data.labels[:count], "cifar10"
    except Exception:  # noqa: BLE001 - any missing or partial copy: synthetic data serves the timing as well
        generator = torch.Generator().manual_seed(0)
        return (torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator),
                torch.randint(0, 10, (count,), generator=generator), "synthetic")


class Trainer:
    """One model, its optimizer and one method's way of making each step's inputs."""

    def __init__(self, arch: str, method: str, compile_mode: str, images: torch.Tensor, labels: torch.Tensor,
                 setup: Setup):
        config = method_config("apr_sp" if method == "apr_sp_released" else method, "cifar", arch)
        info, train = DATASETS["cifar10"], config["train"]
        torch.manual_seed(0)
        self.device, self.setup, self.method, self.arch = setup.device, setup, method, arch
        self.model = build_model(setup.model_arch(arch), info.channels, info.num_classes, info.mean, info.std)
        self.model = self.model.to(self.device).train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=train["lr"], momentum=train["momentum"],
                                         nesterov=train["nesterov"], weight_decay=train["weight_decay"])
        self.forward = self.model
        if compile_mode != "off":
            options = {"backend": setup.compile_backend} | ({"mode": compile_mode} if not setup.dry_run else {})
            self.forward = torch.compile(self.model, **options)
        self.loader_wait = 0.0
        if method == "apr_sp_released":
            dataset = ReleasedStyleDataset(images.permute(0, 2, 3, 1).numpy(), labels.numpy(), "apr_s",
                                           train["crop_padding"], train["crop_fill"])
            loader = DataLoader(dataset, batch_size=setup.batch_size, shuffle=True, drop_last=True,
                                num_workers=setup.workers, persistent_workers=True,
                                pin_memory=self.device.type == "cuda")
            self.batches = self._released_batches(loader)
        else:
            self.training = TrainingMethod(method, config, torch.Generator(self.device).manual_seed(0))
            self.images, self.labels = images.to(self.device), labels.to(self.device)
            self.batches = self._resident_batches()

    def _resident_batches(self):
        while True:
            index = torch.randint(len(self.labels), (self.setup.batch_size,), device=self.device)
            yield self.images[index], self.labels[index]

    def _released_batches(self, loader: DataLoader):
        while True:
            for images, labels in loader:
                yield images, labels

    def loss(self) -> torch.Tensor:
        started = time.perf_counter()
        images, labels = next(self.batches)
        self.loader_wait += time.perf_counter() - started
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            if self.method != "apr_sp_released":
                return self.training.loss(self.forward, images, labels)
            x = images.to(self.device, non_blocking=True)
            y = labels.to(self.device, non_blocking=True)
            inputs = torch.cat([x, mix_data(x)])  # APR-P on the GPU, the clean batch kept, as released
            return F.cross_entropy(self.forward(inputs), torch.cat([y, y]), reduction="sum") / len(x)

    def step(self) -> torch.Tensor:
        loss = self.loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def run(self, steps: int) -> float:
        """Seconds for `steps` steps; fails on a non-finite loss (checked once, after them)."""
        self.loader_wait = 0.0
        started = time.perf_counter()
        total = sum(self.step() for _ in range(steps))
        synchronize(self.device)
        seconds = time.perf_counter() - started
        if not math.isfinite(float(total)):
            raise RuntimeError(f"{self.arch} {self.method}: non-finite loss")
        return seconds

    def augment_seconds(self, steps: int) -> float | None:
        """Our augmentation alone on `steps` batches (None for the released pipeline: it runs in the workers)."""
        if self.method == "apr_sp_released":
            return None
        batches = [next(self.batches) for _ in range(steps)]
        synchronize(self.device)
        started = time.perf_counter()
        for images, labels in batches:
            self.training.augment(images, labels)
        synchronize(self.device)
        return time.perf_counter() - started


def measure_steps(arch: str, method: str, compile_mode: str, images, labels, setup: Setup, section: str) -> dict:
    row = {"section": section, "arch": arch, "method": method, "compile": compile_mode}
    try:
        trainer = Trainer(arch, method, compile_mode, images, labels, setup)
        warmup = trainer.run(setup.warmup)
        seconds = trainer.run(setup.steps)
        wait_share = trainer.loader_wait / seconds
        augment = trainer.augment_seconds(setup.steps)
        row.update(status="ok", images_per_s=setup.steps * setup.batch_size / seconds,
                   step_ms=1000 * seconds / setup.steps, warmup_s=warmup,
                   augment_ms=None if augment is None else 1000 * augment / setup.steps,
                   augment_share=wait_share if augment is None else augment / seconds)
    except Exception as error:  # noqa: BLE001 - one failing configuration must not lose the others
        row.update(status=f"failed: {error!r}"[:300])
    print(json.dumps(row), flush=True)
    return row


def sync_check(images, labels, setup: Setup) -> dict:
    """Whether our APR-SP augmentation runs without a host synchronisation (CUDA's sync debug mode)."""
    if setup.device.type != "cuda":
        return {"verified": False, "detail": "not checked: no GPU (tests/test_augment_apr.py checks the path on the CPU)"}
    training = TrainingMethod("apr_sp", method_config("apr_sp", "cifar"), torch.Generator(setup.device).manual_seed(0))
    x, y = images[:setup.batch_size].to(setup.device), labels[:setup.batch_size].to(setup.device)
    training.augment(x, y)  # the first call makes the cached constants
    synchronize(setup.device)
    torch.cuda.set_sync_debug_mode("error")
    try:
        training.augment(x, y)
        return {"verified": True, "detail": "none (the check raised no error)"}
    except RuntimeError as error:
        return {"verified": False, "detail": f"found: {error}"[:300]}
    finally:
        torch.cuda.set_sync_debug_mode("default")


def packing_worker(args) -> None:
    """One of several processes sharing the GPU: warm up, say ready, wait for 'go', train for the window."""
    setup = Setup(args)
    images, labels, _ = training_images(args.data_root, 64 if args.dry_run else 10_000)
    trainer = Trainer(args.packing_worker, "apr_sp", "off", images, labels, setup)
    trainer.run(setup.warmup)
    print("ready", flush=True)
    sys.stdin.readline()
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < setup.window_s:
        trainer.step()
        steps += 1
    synchronize(setup.device)
    print(json.dumps({"images": steps * setup.batch_size, "seconds": time.perf_counter() - started}), flush=True)


def measure_packing(arch: str, processes: int, args, setup: Setup) -> dict:
    row = {"arch": arch, "method": "apr_sp", "processes": processes}
    command = [sys.executable, __file__, "--packing-worker", arch, "--data-root", str(args.data_root),
               "--window-s", str(setup.window_s), "--batch-size", str(args.batch_size)] + (
        ["--dry-run"] if args.dry_run else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
               for _ in range(processes)]
    try:
        for worker in workers:
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a packing worker failed to start (exit status {worker.wait()})")
        for worker in workers:  # all start the timed window together
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = [json.loads(worker.stdout.readline()) for worker in workers]
        rates = [r["images"] / r["seconds"] for r in results]
        row.update(status="ok", aggregate_images_per_s=sum(rates), per_process_images_per_s=rates)
    except Exception as error:  # noqa: BLE001
        row.update(status=f"failed: {error!r}"[:300])
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    print(json.dumps(row), flush=True)
    return row


def gpu_hours(rates: dict[tuple[str, str], float], packing_gain: float) -> dict:
    """Estimated GPU-hours of the cifar profile's trainings and of Table 1's, from measured images/s per (arch,
    method) with method "standard" or "apr_sp"; None where an architecture was not measured."""
    profile = load_profile("cifar")
    totals = {}
    for name, tables in (("cifar profile", list(profile["tables"])), ("Table 1", ["table1_corruption"])):
        runs = {run for table in tables for run in table_runs(profile, table)}
        seconds, missing = 0.0, set()
        for run in runs:
            kind = "apr_sp" if run.method in APR_METHODS else "standard"
            rate = rates.get((run.arch, kind))
            if rate is None:
                missing.add(run.arch)
                continue
            rate /= 1 if kind == "apr_sp" else INPUTS_PER_IMAGE.get(run.method, 1)
            seconds += run_config(profile, run)["train"]["epochs"] * CIFAR_TRAIN_IMAGES / rate
        totals[name] = {"trainings": len(runs), "gpu_hours_one_job_per_gpu": None if missing else seconds / 3600,
                        "gpu_hours_packed": None if missing else seconds / 3600 / packing_gain,
                        "unmeasured_archs": sorted(missing)}
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128, help="the released code's batch size")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps (compilation happens here)")
    parser.add_argument("--window-s", type=float, default=8.0, help="timed seconds of each packing process")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="the released pipeline's workers")
    parser.add_argument("--budget-s", type=float, default=420, help="sections left after this are skipped")
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/gpu_check.json")
    parser.add_argument("--dry-run", action="store_true", help="everything on the CPU, tiny: checks the script")
    parser.add_argument("--packing-worker", choices=ARCHS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.packing_worker:
        return packing_worker(args)
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("gpu_check.py needs a CUDA GPU; --dry-run checks the script on the CPU")
    setup = Setup(args)
    info = machine()
    images, labels, data = training_images(args.data_root, 64 if args.dry_run else 10_000)
    skipped = []

    def steps(configs, section):
        out = []
        for arch, method, compile_mode in configs:
            if setup.time_left():
                out.append(measure_steps(arch, method, compile_mode, images, labels, setup, section))
            else:
                skipped.append(f"{section} {arch} {method} compile={compile_mode}")
        return out

    rows = steps([(a, m, "off") for a in setup.archs for m in METHODS], "steps")
    sync = sync_check(images, labels, setup)
    packing = []
    for arch in setup.archs:
        for processes in setup.processes:
            if setup.time_left():
                packing.append(measure_packing(arch, processes, args, setup))
            else:
                skipped.append(f"packing {arch} x{processes}")
    rows += steps([(a, m, c) for c in COMPILE_MODES for a in setup.archs for m in ("standard", "apr_sp")], "compile")
    profile = load_profile("cifar")
    profile_archs = sorted({run.arch for table in profile["tables"] for run in table_runs(profile, table)} - set(ARCHS))
    rows += steps([(a, m, "off") for a in profile_archs[:1 if args.dry_run else None] for m in ("standard", "apr_sp")],
                  "epochs")

    rates = {(r["arch"], r["method"]): r["images_per_s"] for r in rows if r["status"] == "ok" and r["compile"] == "off"}
    curve = {r["processes"]: r["aggregate_images_per_s"] for r in packing if r["status"] == "ok" and r["arch"] == "resnet18"}
    best = max(curve, key=curve.get) if curve else 1
    packing_gain = curve[best] / curve[1] if curve and 1 in curve else 1.0
    hours = gpu_hours(rates, packing_gain)
    device_name = info["gpu"] or "no GPU (--dry-run on the CPU)"
    print_table([{k: v for k, v in r.items() if k != "section"} for r in rows], f"Training steps on {device_name}")
    parts = [f"{r['arch']} APR-SP {r['images_per_s']:.0f} img/s vs Standard {rates.get((r['arch'], 'standard'), 0):.0f}"
             f" (augmentation {r['augment_share']:.0%} of the step)" for r in rows
             if r["status"] == "ok" and r["method"] == "apr_sp" and r["section"] == "steps"]
    summary = f"{device_name}: " + ("; ".join(parts) or "no configuration completed") + (
        f"; best packing {best} processes per GPU ({packing_gain:.2f}x one)" if curve else "")
    settings = {**vars(args), "data_root": str(args.data_root), "out": str(args.out), "data": data,
                "device": setup.device.type, "batch_size": setup.batch_size, "steps": setup.steps,
                "bf16_autocast": setup.device.type == "cuda", "channels_last": True, "skipped": skipped}
    write_result("gpu_check", info, settings, rows, summary, args.out, packing=packing, sync_free=sync,
                 best_jobs_per_gpu=best, gpu_hours=hours)


if __name__ == "__main__":
    main()
