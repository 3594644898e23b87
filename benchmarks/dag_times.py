"""Wall time of a profile's DAG, per rule and in total, from Snakemake's benchmark files.

    python benchmarks/dag_times.py                      # runs/default/benchmarks/ of this checkout
    python benchmarks/dag_times.py --profile tiny --root /path/to/another/copy

Every rule of the Snakefile writes a `benchmark:` file, runs/<profile>/benchmarks/<rule>[/<job>].tsv, with the
job's wall seconds (`s`), CPU seconds and memory. This script reads whatever a finished (or partial) run left
there: per rule the number of jobs, their summed and longest wall time, and in total the summed job time (what
one core would take) and the DAG's wall-clock span. Snakemake writes a benchmark file when its job ends, so the
span is estimated from the files' modification times as the last end minus the earliest start (end - s); it
holds for files left where Snakemake wrote them (a copy that does not keep times makes it meaningless).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from apr_lib.paper.manifest import dag_span, read_jobs  # shared with outputs/<profile>/manifest.json
from common import ROOT, machine, print_table, write_result

BUDGET_MINUTES = {"default": 45, "tiny": 5}  # the profiles' time budgets on 2 CPU cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--root", type=Path, default=ROOT, help="the project folder whose runs/ to read")
    args = parser.parse_args()
    folder = args.root / "runs" / args.profile / "benchmarks"
    jobs = read_jobs(folder) if folder.is_dir() else pd.DataFrame()
    if jobs.empty:
        sys.exit(f"no Snakemake benchmark files under {folder}: nothing has run for profile {args.profile!r} there. "
                 f"Run `snakemake --cores 4 all --config profile={args.profile}` in {args.root} first.")
    per_rule = (jobs.groupby("rule", sort=False)
                .agg(jobs=("job", "size"), seconds=("seconds", "sum"), longest_job_s=("seconds", "max"),
                     cpu_seconds=("cpu_seconds", "sum"), max_rss_mb=("max_rss_mb", "max"))
                .reset_index().sort_values("seconds", ascending=False))
    span = dag_span(jobs)
    job_total = jobs["seconds"].sum()
    rows = per_rule.to_dict("records")
    print_table(rows, f"Snakemake benchmark files of {folder}: wall seconds per rule")
    slowest = jobs.nlargest(10, "seconds")[["rule", "job", "seconds", "cpu_seconds"]]
    print_table(slowest.to_dict("records"), "Slowest jobs")
    budget = BUDGET_MINUTES.get(args.profile)
    summary = (f"profile {args.profile}: {len(jobs)} jobs, {job_total / 60:.1f} min of job wall time in total, "
               f"DAG wall-clock span about {span / 60:.1f} min"
               + (f" (budget {budget} min: {'within' if span <= budget * 60 else 'OVER'})" if budget else ""))
    settings = {"profile": args.profile, "folder": str(folder), "job_seconds_total": job_total,
                "dag_span_seconds": span, "budget_minutes": budget,
                "jobs": jobs.drop(columns="ended").to_dict("records")}
    write_result(f"dag_times_{args.profile}", machine(), settings, rows, summary)


if __name__ == "__main__":
    main()
