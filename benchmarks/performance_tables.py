"""The tables of docs/performance.md, generated from the benchmark results (never typed in).

    python benchmarks/performance_tables.py            # rewrite the generated blocks of docs/performance.md
    python benchmarks/performance_tables.py --check    # exit 1 if docs/performance.md differs from what the results give

Each block sits between `<!-- begin generated: NAME -->` and `<!-- end generated: NAME -->` in docs/performance.md and is made
from benchmarks/results/NAME.json; tests/test_benchmarks.py checks that the page holds what the results give.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "performance.md"
SHAPE_COLUMNS = {"fmnist": "Fashion-MNIST 1x28x28", "cifar": "CIFAR 3x32x32"}
METHOD_NAMES = {"apr_p": "APR-P", "apr_s": "APR-S", "apr_sp": "APR-SP", "augmix": "AugMix", "standard": "Standard"}
GOALS = {("pipeline", "apr_sp"): 10, ("transform", "apr_sp"): 4}  # the project's goals, batched / per image
ARCH_NAMES = {"resnet18": "ResNet-18", "wrn40_2": "WRN-40-2"}
CIFAR_TRAIN_IMAGES = 50_000


def _load(name: str, results: Path) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def _where(result: dict) -> str:
    info = result["machine"]
    return (f"{info['cpu_count']} CPU cores ({info['processor']}), torch {info['versions']['torch']}, commit "
            f"{(info['commit'] or 'unknown')[:8]}, {info['date'][:10]}")


def augment_throughput(result: dict | None) -> str:
    if result is None:
        return "No measurement yet: run `python benchmarks/augment_throughput.py`.\n"
    rows = {(r["level"], r["method"], r["shape"]): r for r in result["rows"]}
    shapes = [shape for shape in SHAPE_COLUMNS if any(key[2] == shape for key in rows)]
    lines = ["| batch of 128: batched / per image (input images/s) | " + " | ".join(SHAPE_COLUMNS[s] for s in shapes)
             + " |", "| --- |" + " --- |" * len(shapes)]
    for level in ("pipeline", "transform"):
        for method in METHOD_NAMES:
            cells = [rows.get((level, method, shape)) for shape in shapes]
            if not any(cells):
                continue
            goal = GOALS.get((level, method))
            label = f"{level}: {METHOD_NAMES[method]}" + (f" (goal {goal}x)" if goal else "")
            lines.append(f"| {label} | " + " | ".join(
                f"**{r['speedup']:.1f}x** ({_rate(r['batched_img_s'])} vs {_rate(r['per_image_img_s'])})" if r else "-"
                for r in cells) + " |")
    quiet = "; ".join(f"{level}: other processes used {r['others_cores']} cores (load average before "
                      f"{r['load_average_before'][0]}, after {r['load_average_after'][0]})"
                      for level, r in result.get("interference", {}).items())
    state = ("**Measured on a busy machine: not a clean measurement.** " if result.get("busy") else "")
    settings = result["settings"]
    return ("\n".join(lines) + f"\n\n{state}{_where(result)}; {settings['workers']} processes a side, medians of "
            f"{settings['repeats']} alternating passes over {settings['images']} images; {quiet}.\n")


def train_overhead(result: dict | None) -> str:
    if result is None:
        return "No measurement yet: run `python benchmarks/train_overhead.py`.\n"
    parts = [f"{row['model']} (batch {row['batch']}) {row['augment_share']:.1%}" for row in result["rows"]
             if row["method"] == "apr_sp"]
    return f"APR-SP's augmentation as a share of a CPU training step ({_where(result)}): {', '.join(parts)}.\n"


def gpu_check(result: dict | None) -> str:
    if result is None:
        return ("No measurement with this script yet (it needs a GPU): run `python benchmarks/gpu_check.py` on a GPU "
                "machine, then `python benchmarks/performance_tables.py`.\n")
    ok = [r for r in result["rows"] if r["status"] == "ok"]
    archs = [arch for arch in ARCH_NAMES if any(r["arch"] == arch for r in ok)]
    lines = ["| training images/s, batch 128 | " + " | ".join(ARCH_NAMES[a] for a in archs) + " |",
             "| --- |" + " --- |" * len(archs)]
    labels = {"standard": "Standard", "apr_sp": "APR-SP, ours (sync-free GPU path)",
              "apr_sp_released": "APR-SP as released (APR-S in CPU workers, APR-P on the GPU)"}
    for method, label in labels.items():
        for compiled in ("off", "default", "reduce-overhead"):
            cells = [next((r for r in ok if (r["arch"], r["method"], r["compile"]) == (a, method, compiled)), None)
                     for a in archs]
            if any(cells):
                mode = {"off": "", "default": ", torch.compile", "reduce-overhead": ", torch.compile + CUDA graphs"}
                share = "waiting for the workers" if method == "apr_sp_released" else "augmentation"
                lines.append(f"| {label}{mode[compiled]} | " + " | ".join(
                    f"{_rate(r['images_per_s'])} ({share} {r['augment_share']:.0%} of the step)" if r else "-"
                    for r in cells) + " |")
    packing = [r for r in result.get("packing", []) if r["status"] == "ok"]
    for arch in archs:
        curve = [r for r in packing if r["arch"] == arch]
        if curve:
            lines.append(f"| {ARCH_NAMES[arch]} APR-SP, processes sharing the GPU: aggregate images/s | "
                         + ", ".join(f"{r['processes']}: {_rate(r['aggregate_images_per_s'])}" for r in curve)
                         + " |" + " |" * (len(archs) - 1))
    sync = result.get("sync_free", {})
    epochs = ", ".join(f"{r['arch']} {METHOD_NAMES[r['method']]} {CIFAR_TRAIN_IMAGES / r['images_per_s']:.0f} s"
                       for r in ok if r["compile"] == "off" and r["method"] in ("standard", "apr_sp"))
    hours = "; ".join(
        f"{name} ({h['trainings']} trainings): " + (
            f"{h['gpu_hours_one_job_per_gpu']:.1f} GPU-hours one job per GPU, {h['gpu_hours_packed']:.1f} with "
            f"{result['best_jobs_per_gpu']} jobs per GPU" if h["gpu_hours_one_job_per_gpu"] is not None
            else f"not estimated ({', '.join(h['unmeasured_archs'])} not measured)")
        for name, h in result.get("gpu_hours", {}).items())
    return ("\n".join(lines) + f"\n\n{result['machine']['gpu']}, bf16 autocast, channels_last; commit "
            f"{(result['machine']['commit'] or 'unknown')[:8]}, {result['machine']['date'][:10]}. Host "
            f"synchronisations in our APR-SP augmentation (torch.cuda.set_sync_debug_mode): "
            f"{sync.get('detail', 'not checked')}. One CIFAR-10 epoch, one process: {epochs}. Estimated (other "
            f"methods timed by their number of model inputs per image, see benchmarks/gpu_check.py): {hours}.\n")


BLOCKS = {"augment_throughput": augment_throughput, "train_overhead": train_overhead, "gpu_check": gpu_check}


def update(readme: str, results: Path = RESULTS) -> str:
    """`readme` with every generated block rewritten from the results; a missing marker pair is an error."""
    for name, make in BLOCKS.items():
        begin, end = f"<!-- begin generated: {name} -->\n", f"<!-- end generated: {name} -->"
        pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
        if not pattern.search(readme):
            raise SystemExit(f"docs/performance.md has no block `{begin.strip()}` ... `{end}`: put the pair where the table "
                             f"from benchmarks/results/{name}.json belongs")
        readme = pattern.sub(lambda _: begin + make(_load(name, results)) + end, readme)
    return readme


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if docs/performance.md is out of date")
    args = parser.parse_args()
    current = PAGE.read_text(encoding="utf-8")
    generated = update(current)
    if args.check:
        sys.exit(0 if generated == current else 1)
    PAGE.write_text(generated, encoding="utf-8")
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
