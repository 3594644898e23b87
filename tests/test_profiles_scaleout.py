"""Scale-out: one GPU per job on a multi-GPU machine (apr_lib.gpu_slots, profiles/gpu-local), and the paper-scale
profiles planned through Snakemake's SLURM executor (profiles/slurm, and the tiny profile through profiles/slurm-cpu)
with the number of jobs each table implies. .ci/slurm runs the tiny profile on a real one-node SLURM cluster."""
import os
import re
import signal
import subprocess
import sys

import pytest
import yaml

from apr_lib.study.config import REPO_ROOT, load_profile, table_runs
from apr_lib.errors import UserError
from apr_lib.gpu_slots import claim_gpu_from_env
from apr_lib.study.targets import profile_sections, published_runs
from test_pipeline import copy_project
from conftest import HANG_SECONDS

# A job that claims a slot as `apr train` does, says which device it got, and holds it until killed.
HOLD_A_SLOT = ("from apr_lib.gpu_slots import claim_gpu_from_env; import time; "
               "print(claim_gpu_from_env(), flush=True); time.sleep(120)")


def start_job(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLD_A_SLOT], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def test_concurrent_jobs_get_different_gpus_and_a_killed_job_frees_its_own(tmp_path):
    env = {**os.environ, "APR_GPU_SLOTS": "2", "APR_GPU_LOCK_DIR": str(tmp_path), "CUDA_VISIBLE_DEVICES": "4,6"}
    jobs = [start_job(env), start_job(env)]
    try:
        first, second = (job.stdout.readline().strip() for job in jobs)
        assert {first, second} == {"4", "6"}  # slot k is the k-th of the devices the user made visible
        jobs[0].send_signal(signal.SIGKILL)  # kill -9: the OS drops its lock with the process
        jobs[0].wait()
        jobs.append(start_job(env))
        assert jobs[2].stdout.readline().strip() == first  # the freed device, not the one still held
    finally:
        for job in jobs:
            job.kill()
            job.wait()


def test_without_apr_gpu_slots_nothing_changes_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.delenv("APR_GPU_SLOTS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert claim_gpu_from_env() is None and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    monkeypatch.setenv("APR_GPU_SLOTS", "two")
    with pytest.raises(UserError, match="APR_GPU_SLOTS='two'"):
        claim_gpu_from_env()
    monkeypatch.setenv("APR_GPU_SLOTS", "4")  # more slots than the devices the user made visible
    with pytest.raises(UserError, match="CUDA_VISIBLE_DEVICES lists only 1 devices"):
        claim_gpu_from_env()


def test_profiles_give_each_gpu_rule_one_gpu():
    slurm = yaml.safe_load((REPO_ROOT / "profiles/slurm/config.yaml").read_text())
    local = yaml.safe_load((REPO_ROOT / "profiles/gpu-local/config.yaml").read_text())
    assert slurm["executor"] == "slurm" and slurm["rerun-incomplete"] and slurm["retries"] >= 1
    for profile in (slurm, local):
        assert profile["set-resources"]["train"]["gpu"] == 1 and profile["set-resources"]["evaluate"]["gpu"] == 1
    assert local["resources"]["gpu"] >= 1  # the machine's limit; the Snakefile hands it to the jobs


def test_cpu_profile_is_the_slurm_profile_without_gpus():
    slurm, cpu = (yaml.safe_load((REPO_ROOT / f"profiles/{name}/config.yaml").read_text())
                  for name in ("slurm", "slurm-cpu"))
    cpu_only = {"slurm-status-command", "default-resources", "set-threads", "set-resources"}
    assert {k: v for k, v in cpu.items() if k not in cpu_only} == {k: v for k, v in slurm.items() if k not in cpu_only}
    assert "gpu" not in yaml.safe_dump(cpu)  # no job asks for one (the Snakefile's rules declare none)
    assert cpu["slurm-status-command"] == "squeue"  # works without SLURM accounting, where sacct fails
    assert cpu["set-threads"] == {"train": 1, "evaluate": 1}  # the Snakefile's own threads: a local run's results


def job_stats(output: str) -> dict[str, int]:
    """Snakemake's first `Job stats:` table as {rule: count}."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def expected_jobs(profile) -> dict[str, int]:
    """The jobs per rule that `all` implies, from the profile alone: one train job per distinct run of the tables its
    sections read, one evaluate job per (run, suite) that a section reads, one publish_weights job per run whose
    weights the notebooks load, one job per section notebook."""
    sections = profile_sections(profile)
    evaluations = {(run, suite) for s in sections if s.runs_table
                   for run in table_runs(profile, s.runs_table) for suite in s.suites}
    return {"train": len({run for run, _ in evaluations}), "evaluate": len(evaluations),
            "publish_weights": len(published_runs(profile)), **{f"notebook_{s.key}": 1 for s in sections}}


@pytest.mark.slow  # ~10 s per profile: Snakemake plans a few hundred jobs
@pytest.mark.parametrize("cluster, name", [("slurm", "cifar"), ("slurm", "imagenet"), ("slurm-cpu", "tiny")])
def test_profile_dry_runs_on_slurm_with_the_jobs_its_tables_imply(tmp_path, cluster, name):
    if not (REPO_ROOT / "params" / f"{name}.yaml").exists():
        pytest.skip(f"params/{name}.yaml does not exist yet (it comes with the ImageNet/torchrun work)")
    project = copy_project(tmp_path / "project")
    cfg = yaml.safe_load((project / "params" / f"{name}.yaml").read_text())
    cfg["data_root"] = str(tmp_path / "empty")  # planning needs no data: a cluster's login node may not see it
    (tmp_path / "empty").mkdir()
    path = project / "params" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    result = subprocess.run(["snakemake", "all", "-n", "--quiet", "rules", "--profile", f"profiles/{cluster}",
                             "--config", f"profile={name}"], cwd=project, capture_output=True, text=True,
                            timeout=HANG_SECONDS)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stats = job_stats(result.stdout + result.stderr)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        expected = expected_jobs(load_profile(name))
    print(f"{name} on SLURM ({cluster}): " + ", ".join(f"{rule} {n}" for rule, n in stats.items()))
    assert stats.pop("total") == sum(stats.values())
    assert {rule: stats.pop(rule, 0) for rule in expected} == expected
    assert set(stats.values()) == {1}  # data, -C set, claims, index, ...: one job each for the whole profile


@pytest.mark.slow
def test_gpu_local_profile_plans_the_tiny_profile(tmp_path):
    project = copy_project(tmp_path / "project")
    result = subprocess.run(["snakemake", "all", "-n", "--quiet", "rules", "--profile", "profiles/gpu-local",
                             "--config", "profile=tiny"], cwd=project, capture_output=True, text=True, timeout=HANG_SECONDS)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        assert job_stats(result.stdout)["train"] == expected_jobs(load_profile("tiny"))["train"]
