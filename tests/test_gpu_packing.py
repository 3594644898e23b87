"""Several jobs per GPU on one machine (apr_lib.gpu_slots' jobs_per_gpu, profiles/gpu-local): slots = GPUs x jobs per
GPU, spread over the GPUs before they share one, and Snakemake runs that many GPU jobs at once."""
import os
import signal
import subprocess
from collections import Counter

import pytest
import yaml

from apr_lib.study.config import REPO_ROOT
from apr_lib.errors import UserError
from apr_lib.gpu_slots import claim_gpu_from_env, gpu_slot_count
from test_pipeline import copy_project
from test_profiles_scaleout import start_job


def test_jobs_share_each_gpu_after_spreading_over_all_and_a_killed_job_frees_its_own_slot(tmp_path):
    env = {**os.environ, "APR_GPU_SLOTS": "2", "APR_JOBS_PER_GPU": "2", "APR_GPU_LOCK_DIR": str(tmp_path),
           "CUDA_VISIBLE_DEVICES": "4,6"}
    jobs = []
    try:
        devices = []
        for _ in range(4):  # one after the other, so that each takes the first free slot
            jobs.append(start_job(env))
            devices.append(jobs[-1].stdout.readline().strip())
        assert devices[:2] in (["4", "6"], ["6", "4"])  # the first two jobs on different GPUs
        assert Counter(devices) == {"4": 2, "6": 2}  # then two jobs on each
        jobs[1].send_signal(signal.SIGKILL)
        jobs[1].wait()
        jobs.append(start_job(env))
        assert jobs[-1].stdout.readline().strip() == devices[1]
    finally:
        for job in jobs:
            job.kill()
            job.wait()


def test_slot_count_and_bad_values_are_named(monkeypatch):
    assert gpu_slot_count(2) == 2 and gpu_slot_count(2, 3) == 6 and gpu_slot_count("4", "2") == 8
    with pytest.raises(UserError, match="resources: jobs_per_gpu=0.*packing curve"):
        gpu_slot_count(2, 0)
    with pytest.raises(UserError, match="resources: gpu='two'"):
        gpu_slot_count("two", 1)
    monkeypatch.setenv("APR_GPU_SLOTS", "1")
    monkeypatch.setenv("APR_JOBS_PER_GPU", "many")
    with pytest.raises(UserError, match="APR_JOBS_PER_GPU='many'"):
        claim_gpu_from_env()


def test_the_gpu_local_profile_runs_one_job_per_gpu_until_the_packing_curve_is_measured():
    local = yaml.safe_load((REPO_ROOT / "profiles/gpu-local/config.yaml").read_text())
    assert local["resources"]["jobs_per_gpu"] == 1 and local["resources"]["gpu"] >= 1
    assert "gpu_check.py" in (REPO_ROOT / "profiles/gpu-local/config.yaml").read_text()


GPU_JOBS = '''
if "gpu" in workflow.global_resources and workflow.is_main_process:
    GPUS, JOBS_PER_GPU = (workflow.global_resources.get(name).value for name in ("gpu", "jobs_per_gpu"))
    JOBS_PER_GPU = 1 if JOBS_PER_GPU is None else JOBS_PER_GPU
    workflow.register_resource("gpu", GPUS * JOBS_PER_GPU)
rule all:
    input: expand("out/{i}.txt", i=range(8))
rule job:
    output: "out/{i}.txt"
    resources: gpu=1
    shell: "python -c 'import time; print(time.time())' > {output}; sleep 2; python -c 'import time; print(time.time())' >> {output}"
'''


@pytest.mark.slow  # a few seconds: Snakemake runs eight 2-second jobs
def test_registering_the_slot_count_lets_snakemake_run_that_many_gpu_jobs_at_once(tmp_path):
    # What the Snakefile relies on: `workflow.register_resource("gpu", N x J)` while it is parsed raises the limit
    # that `--resources gpu=N` set.
    snakefile = REPO_ROOT.joinpath("Snakefile").read_text()
    assert all(line in snakefile for line in GPU_JOBS.split("rule all")[0].strip().splitlines()[1:3])  # same reading
    (tmp_path / "Snakefile").write_text(GPU_JOBS)
    result = subprocess.run(["snakemake", "--cores", "8", "--resources", "gpu=2", "jobs_per_gpu=3", "--quiet"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    spans = [[float(t) for t in path.read_text().split()] for path in (tmp_path / "out").glob("*.txt")]
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = [sum(step for _, step in events[:k + 1]) for k in range(len(events))]
    assert max(running) == 6  # gpu x jobs_per_gpu, not gpu


@pytest.mark.slow  # ~10 s: Snakemake reads the project's Snakefile
def test_the_snakefile_names_a_bad_jobs_per_gpu_before_any_job(tmp_path):
    project = copy_project(tmp_path / "project")
    result = subprocess.run(["snakemake", "all", "-n", "--profile", "profiles/gpu-local", "--config", "profile=tiny",
                             "--resources", "gpu=2", "jobs_per_gpu=0"], cwd=project, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode != 0 and "resources: jobs_per_gpu=0" in result.stdout + result.stderr
