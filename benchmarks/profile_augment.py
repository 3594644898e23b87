"""Where the time of APR-S and APR-SP goes on the CPU: torch.profiler over `TrainingMethod.augment` at batch 128.

    python benchmarks/profile_augment.py                    # writes benchmarks/results/augment_profile.json
    PYTHONPATH=/path/to/an/older/checkout python benchmarks/profile_augment.py --out before.json   # the same there

For each shape (common.SHAPES) and method, on synthetic uint8 batches with the released settings, on one torch
thread: the CPU milliseconds per batch (median of `--repeats` timed batches; the thread's CPU time, which other
processes on a shared machine do not lengthen as they do wall-clock time), the aten operations called per batch, and the operations with the largest share of the profiled CPU time (self time, so nested calls count once).
It uses only `TrainingMethod`, so an older checkout of apr_lib can be profiled the same way for a before/after.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

import apr_lib
from apr_lib.data import DATASETS
from apr_lib.methods import TrainingMethod
from common import SHAPES, load_average, machine, median, method_config, print_table, write_result

METHODS = ("apr_s", "apr_sp")


def measure(shape: str, method: str, args) -> dict:
    config = method_config(method, shape)
    info = DATASETS[config["dataset"]]
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.batch_size, info.channels, info.size, info.size), dtype=torch.uint8,
                           generator=generator)
    labels = torch.randint(0, info.num_classes, (args.batch_size,), generator=generator)
    training = TrainingMethod(method, config, torch.Generator().manual_seed(0))
    for _ in range(3):
        training.augment(images, labels)
    seconds = []
    for _ in range(args.repeats):
        started = time.thread_time()
        training.augment(images, labels)
        seconds.append(time.thread_time() - started)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(args.profiled):
            training.augment(images, labels)
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    top = sorted(events, key=lambda event: -event.self_cpu_time_total)[:args.top]
    return {"shape": shape, "method": method, "cpu_ms_per_batch": 1000 * median(seconds),
            "aten_calls_per_batch": sum(event.count for event in events) // args.profiled,
            "top_ops": [{"op": event.key, "share": event.self_cpu_time_total / total,
                         "calls_per_batch": event.count / args.profiled} for event in top]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30, help="timed batches (the median is reported)")
    parser.add_argument("--profiled", type=int, default=20, help="batches under the profiler")
    parser.add_argument("--top", type=int, default=8, help="operations listed per row")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--label", default="", help="what was profiled, recorded in the result (e.g. an older commit)")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/augment_profile.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = machine()
    rows = [measure(shape, method, args) for shape in args.shapes for method in args.methods]
    print_table([{"shape": r["shape"], "method": r["method"], "cpu_ms_per_batch": r["cpu_ms_per_batch"],
                  "aten_calls": r["aten_calls_per_batch"],
                  "top ops (share of CPU time)": ", ".join(f"{o['op'].removeprefix('aten::')} {o['share']:.0%}"
                                                           for o in r["top_ops"][:5])} for r in rows],
                f"augmentation at batch {args.batch_size}, one thread; load {load_average()}")
    summary = "; ".join(f"{r['method']} {r['shape']}: {r['cpu_ms_per_batch']:.1f} CPU ms per batch, top "
                        f"{r['top_ops'][0]['op']} {r['top_ops'][0]['share']:.0%}" for r in rows)
    settings = {**vars(args), "out": str(args.out), "apr_lib": str(Path(apr_lib.__file__).parent)}
    write_result("augment_profile", info, settings, rows, summary, args.out)


if __name__ == "__main__":
    main()
