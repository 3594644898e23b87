"""The tiny profile through SLURM (profiles/slurm-cpu) against a local run of it. .ci/slurm runs this on its one-node
cluster (SLURM_CONF set); `--workdir` is its temporary folder.

1. Two copies of the project (the files git tracks or would track, outputs/ aside): `local` and `slurm`. In both,
   the tiny profile's run VICTIM trains on more images (LONGER: seconds per epoch), so that its job can be cancelled
   after its first checkpoint and before its end. Everything else is the tiny profile.
2. `local`: `snakemake --cores 2 all`, the README's local command.
3. `slurm`: `snakemake all --profile profiles/slurm-cpu`, the README's command for a cluster without GPUs. Once
   VICTIM's checkpoint exists, its running SLURM job is cancelled (scancel); the profile's `retries` resubmit it.
4. Both runs completed, manifests included; tables, figures and claims are equal byte for byte and metrics but for
   timings; the cancelled job's retry logged "resuming after epoch k" (k: the checkpoint's epoch when it was
   cancelled) and its weights equal the local, uninterrupted run's.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROFILE = "tiny"
VICTIM = "fmnist/small_cnn/apr_sp@fgsm_apr_sp/seed0"  # Table 3's APR-SP run: the tiny profile's longest, 3 epochs
LONGER = {"train_subset": 1024}  # 16 steps per epoch, not 8: seconds on one thread (Table 3 shows each run's images)
COMPARED = ("tables", "figures", "claims")  # byte for byte; metrics/ but for timings
# squeue every 5 s (the plugin's default, 40 s, suits a busy cluster); keep every job's log for the retry's message
SLURM_TEST_OPTIONS = ["--slurm-init-seconds-before-status-checks", "5", "--slurm-keep-successful-logs"]


def copy_project(dest: Path) -> Path:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in listed:
        if name and not name.startswith("outputs/") and (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    path = dest / "params" / f"{PROFILE}.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["variants"][VICTIM.split("@")[1].split("/")[0]].setdefault("train", {}).update(LONGER)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


RUNNING: list[subprocess.Popen] = []  # stopped if this script ends early, so that no Snakemake outlives the cluster


def start(project: Path, *args: str) -> subprocess.Popen:
    log = open(project / "snakemake.log", "w")
    RUNNING.append(subprocess.Popen(["snakemake", "all", "--config", f"profile={PROFILE}", *args], cwd=project,
                                    # unbuffered: a job's log has each epoch's line when it ends, a cancelled job's too
                                    env={**os.environ, "PYTHONPATH": str(project), "PYTHONUNBUFFERED": "1"}, stdout=log,
                                    stderr=subprocess.STDOUT))
    return RUNNING[-1]


def finish(process: subprocess.Popen, project: Path, what: str) -> None:
    if process.wait() != 0:
        sys.exit(f"{what} failed; the end of {project / 'snakemake.log'}:\n"
                 + "".join((project / "snakemake.log").read_text().splitlines(keepends=True)[-60:]))


def squeue(*args: str) -> list[str]:
    return subprocess.run(["squeue", "--noheader", *args], capture_output=True, text=True, check=True).stdout.split()


def cancel_victim_once_checkpointed(process: subprocess.Popen, project: Path) -> dict:
    """Wait for VICTIM's first checkpoint, cancel its running SLURM job, and return what it had done."""
    run_dir = project / "runs" / PROFILE / VICTIM
    comment = f"rule_train_wildcards_{VICTIM.replace('/', '_')}"  # the plugin's --comment for this job
    while process.poll() is None:
        if (run_dir / "model.pt").exists():
            sys.exit(f"{VICTIM} finished before its job could be cancelled: lengthen it (LONGER)")
        if (run_dir / "checkpoint.pt").exists():
            running = dict(line.split("|", 1) for line in squeue("--states=RUNNING", "--format=%k|%i"))
            if comment in running:
                job = running[comment]
                subprocess.run(["scancel", job], check=True)
                while job in squeue("--jobs", job, "--states=PENDING,RUNNING,SUSPENDED,COMPLETING", "--format=%i"):
                    time.sleep(0.2)
                if (run_dir / "model.pt").exists():
                    sys.exit(f"{VICTIM}'s job {job} ended before scancel reached it: lengthen it (LONGER)")
                state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
                return {"job": job, "epoch": state["epoch"] + 1}
        time.sleep(0.2)
    sys.exit(f"the SLURM run ended before {VICTIM} wrote a checkpoint; see {project / 'snakemake.log'}")


def without_timings(value):
    if isinstance(value, dict):
        return {key: without_timings(item) for key, item in value.items() if "seconds" not in key}
    if isinstance(value, list):
        return [without_timings(item) for item in value]
    return value


def differences(local: Path, slurm: Path) -> list[str]:
    found = []
    for folder in (*COMPARED, "metrics"):
        names = {p.relative_to(local).as_posix() for p in (local / folder).rglob("*") if p.is_file()}
        other = {p.relative_to(slurm).as_posix() for p in (slurm / folder).rglob("*") if p.is_file()}
        found += [f"{name}: only in one run" for name in sorted(names ^ other)]
        for name in sorted(names & other):
            a, b = local / name, slurm / name
            if name.endswith(".json") and folder == "metrics":
                same = without_timings(json.loads(a.read_text())) == without_timings(json.loads(b.read_text()))
            elif name.endswith(".npz"):  # per-image results: a zip's member dates differ, the arrays must not
                with np.load(a) as x, np.load(b) as y:
                    same = x.files == y.files and all(np.array_equal(x[k], y[k]) for k in x.files)
            else:
                same = a.read_bytes() == b.read_bytes()
            if not same:
                found.append(f"{name}: differs")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    workdir = parser.parse_args().workdir
    local, slurm = (copy_project(workdir / name) for name in ("local", "slurm"))

    started = time.monotonic()
    finish(start(local, "--cores", "2"), local, "the local run")
    local_seconds = time.monotonic() - started

    started = time.monotonic()
    process = start(slurm, "--profile", "profiles/slurm-cpu", *SLURM_TEST_OPTIONS)
    cancelled = cancel_victim_once_checkpointed(process, slurm)
    finish(process, slurm, "the SLURM run")
    slurm_seconds = time.monotonic() - started

    manifests = {name: json.loads((project / "outputs" / PROFILE / "manifest.json").read_text())
                 for name, project in (("local", local), ("slurm", slurm))}
    # Every job but `manifest` (a localrule, Snakefile) and `all` (runs nothing) leaves a benchmark file
    jobs = manifests["slurm"]["wall_time"]["per_rule"]
    batch_jobs = sum(rule["jobs"] for rule in jobs.values())
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)", (slurm / "snakemake.log").read_text())
    victim_logs = [Path(path) for _, path in submitted if f"/rule_train/{VICTIM.replace('/', '_')}/" in path]
    retry = next((path for path in victim_logs if path.stem != cancelled["job"]), None)
    first = next(path for path in victim_logs if path.stem == cancelled["job"])  # kept: its job failed
    last_epoch = re.findall(rf"^{re.escape(VICTIM)}: epoch \d+/\d+ .*$", first.read_text(), re.MULTILINE)[-1:]
    retry_text = retry.read_text() if retry and retry.exists() else ""
    resumed = re.search(rf"{re.escape(VICTIM)}: resuming after epoch (\d+) of (\d+)", retry_text)
    # Same code path, same thread count (one), same machine: the resumed run must be bitwise the uninterrupted one
    # (apr_lib.train seeds each epoch from (seed, epoch) alone), so torch.equal, not a tolerance.
    weights = [torch.load(project / "runs" / PROFILE / VICTIM / "model.pt", weights_only=True)
               for project in (local, slurm)]
    weights_equal = weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k])
                                                                   for k in weights[0])
    differing = differences(local / "outputs" / PROFILE, slurm / "outputs" / PROFILE)

    print(f"""
SLURM: `snakemake all --profile profiles/slurm-cpu --config profile={PROFILE}` ({' '.join(SLURM_TEST_OPTIONS)})
  jobs: {batch_jobs} with a benchmark file ({', '.join(f'{rule} {n["jobs"]}' for rule, n in jobs.items())}),
        then `manifest` in Snakemake's own process; {len(submitted)} sbatch submissions, so \
{len(submitted) - batch_jobs} resubmitted
  wall time: {slurm_seconds / 60:.1f} min through SLURM, {local_seconds / 60:.1f} min locally (--cores 2); the
             manifests' job spans {manifests['slurm']['wall_time']['total_seconds'] / 60:.1f} and \
{manifests['local']['wall_time']['total_seconds'] / 60:.1f} min
  cancelled: {VICTIM}, SLURM job {cancelled['job']}, while running, after the checkpoint of epoch \
{cancelled['epoch']} (its last line: {last_epoch[0] if last_epoch else 'none'})
  its retry: SLURM job {retry.stem if retry else '(none)'}: \
{resumed.group(0) if resumed else 'no "resuming after epoch" in its log'}
  final weights equal to the local uninterrupted run's (torch.equal): {weights_equal}
  manifest: executor {manifests['slurm']['execution']['executor']} (local run: \
{manifests['local']['execution']['executor']}, --cores {manifests['local']['cores']})
  tables, figures, claims, metrics (timings aside) vs the local run: \
{'equal' if not differing else f'{len(differing)} differ'}""")
    failures = [*differing]
    if not resumed or int(resumed.group(1)) != cancelled["epoch"]:
        failures.append(f"the retry of {VICTIM} did not resume after epoch {cancelled['epoch']} ({retry})")
    if not weights_equal:
        failures.append(f"{VICTIM}'s final weights differ from the uninterrupted local run's")
    if manifests["slurm"]["execution"]["executor"] != "slurm" or manifests["slurm"]["cores"] is not None:
        failures.append(f"the SLURM run's manifest records {manifests['slurm']['execution']}")
    if len(submitted) < batch_jobs + 1 or manifests["slurm"]["wall_time"]["jobs_without_benchmark"]:
        failures.append(f"{len(submitted)} sbatch submissions for {batch_jobs} jobs and a retry; without a benchmark "
                        f"file: {manifests['slurm']['wall_time']['jobs_without_benchmark']}")
    if failures:
        sys.exit("FAILED:\n  " + "\n  ".join(failures))
    print("passed")


if __name__ == "__main__":
    try:
        main()
    finally:
        for process in RUNNING:
            if process.poll() is None:
                process.terminate()  # Snakemake cancels its SLURM jobs and stops
                process.wait(timeout=120)
