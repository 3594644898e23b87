"""Faults at the level of the DAG: a killed Snakemake resumes, bad profiles fail before any job, notebooks write
atomically. (Training-level faults, i.e. kill -9 of `apr train`, broken checkpoints and divergence, are in
test_train.py; atomic writes themselves in test_files.py; profile validation messages in test_config.py.)"""
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import nbformat
import pytest
import torch
import yaml

from apr_lib.study.config import REPO_ROOT, load_profile
from apr_lib.study.sections import section
from apr_lib.study.targets import executed_notebook, section_products
from conftest import HANG_SECONDS, tiny_profile
from test_pipeline import copy_project

RUN = "fmnist/small_cnn/apr_sp/seed0"
TRAIN_METRICS = f"outputs/tiny/metrics/{RUN}/train.json"


def start_snakemake(project: Path, *args: str) -> subprocess.Popen:
    # Its own process group, so that kill -9 takes Snakemake and the job's shell and `apr train` at once.
    return subprocess.Popen(["snakemake", "--cores", "1", *args], cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=HANG_SECONDS)
    assert process.returncode == 0, out[-4000:]
    return out


@pytest.mark.slow
def test_killed_snakemake_train_job_resumes_and_ends_as_an_uninterrupted_run(tmp_path, fmnist_root):
    epochs = 3
    projects = {name: copy_project(tmp_path / name) for name in ("killed", "uninterrupted")}
    for project in projects.values():
        tiny_profile(project, fmnist_root, train={"epochs": epochs, "train_subset": 1024})
    target = [TRAIN_METRICS, "--config", "profile=tiny"]

    # The reference: the train rule's own command (same thread count), run straight through.
    reference = subprocess.run(["apr", "train", "--profile", "params/tiny.yaml", "--run", RUN, "--threads", "1"],
                               cwd=projects["uninterrupted"], capture_output=True, text=True, timeout=HANG_SECONDS)
    assert reference.returncode == 0 and "resuming" not in reference.stdout, reference.stdout + reference.stderr

    killed = projects["killed"]
    process = start_snakemake(killed, *target)
    checkpoint = killed / "runs/tiny" / RUN / "checkpoint.pt"
    deadline = time.time() + HANG_SECONDS
    while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert checkpoint.exists(), "no checkpoint appeared"
    os.killpg(process.pid, signal.SIGKILL)  # kill -9 of Snakemake and its job, in epoch 2
    process.wait()
    assert not (killed / TRAIN_METRICS).exists() and not (checkpoint.parent / "model.pt").exists()
    saved_epoch = torch.load(checkpoint, weights_only=True)["epoch"] + 1
    assert saved_epoch < epochs

    # A killed Snakemake leaves its lock behind; `--unlock` is the documented way out (README, Resuming).
    subprocess.run(["snakemake", "--unlock", "--config", "profile=tiny"], cwd=killed, check=True, capture_output=True)
    resumed = finish(start_snakemake(killed, *target))
    assert f"resuming after epoch {saved_epoch} of {epochs}" in resumed
    assert not checkpoint.exists()

    metrics = {name: json.loads((project / TRAIN_METRICS).read_text()) for name, project in projects.items()}
    assert [h["loss"] for h in metrics["killed"]["history"]] == [h["loss"] for h in metrics["uninterrupted"]["history"]]
    weights = {name: torch.load(project / "runs/tiny" / RUN / "model.pt", weights_only=True)
               for name, project in projects.items()}
    for key, value in weights["uninterrupted"].items():
        torch.testing.assert_close(weights["killed"][key], value, rtol=0, atol=0)


@pytest.mark.slow
def test_the_readmes_command_run_again_after_a_crash_finishes_the_run(tmp_path, fmnist_root):
    """kill -9 of the whole Snakemake process group while a notebook job writes its executed copy, then the README's
    way back: `snakemake --unlock`, and the same command as before, with no other flag (README, Resuming)."""
    project = copy_project(tmp_path / "project")
    tiny_profile(project, fmnist_root)
    profile = load_profile(str(project / "params" / "tiny.yaml"))
    executed = executed_notebook(profile, section("fig6_templates"))
    target = [str(executed), "--config", "profile=tiny"]
    process = start_snakemake(project, *target)
    deadline = time.time() + HANG_SECONDS
    while not (project / executed).exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert (project / executed).exists(), "the notebook job never started writing"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    subprocess.run(["snakemake", "--unlock", "--config", "profile=tiny"], cwd=project, check=True, capture_output=True)
    # Without the workflow profile (profiles/default) the half-written notebook stops the run: what the profile is for.
    bare = subprocess.run(["snakemake", "--cores", "1", *target, "--workflow-profile", "none"], cwd=project,
                          capture_output=True, text=True, timeout=HANG_SECONDS)
    assert bare.returncode != 0 and "IncompleteFilesException" in bare.stdout + bare.stderr
    rerun = finish(start_snakemake(project, *target))
    assert "Using workflow specific profile profiles/default" in rerun
    assert not nbformat.read(project / executed, as_version=4).metadata["papermill"]["exception"]
    assert all((project / path).exists() for path in section_products(profile, section("fig6_templates")))


def _set(path: str, value):
    def edit(cfg):
        *parents, last = path.split(".")
        for key in parents:
            cfg = cfg[key]
        cfg[last] = value
    return edit


BAD_PROFILES = {
    "unknown key": (_set("train.epoch", 2), "unknown key 'epoch' (did you mean 'epochs'?)"),
    "wrong type": (_set("train.batch_size", "sixty-four"), "key train.batch_size: 'sixty-four' is not of type 'integer'"),
    "unknown method": (_set("tables.table1_corruption.methods", ["standard", "apr_x"]),
                       "key tables.table1_corruption.methods: unknown value 'apr_x'"),
    "unknown architecture": (_set("tables.table1_corruption.archs", ["resnet9"]),
                             "key tables.table1_corruption.archs: unknown value 'resnet9'"),
    "negative epochs": (_set("train.epochs", -3), "key train.epochs: -3 is less than the minimum of 1"),
    # A data root whose parent does not exist is a typo: nothing could be fetched into it.
    "missing data root": (_set("data_root", "/nonexistent-apr-volume/data"),
                          "key data_root: '/nonexistent-apr-volume/data' does not exist, nor does its parent folder"),
}


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def project_with_outputs(tmp_path_factory):
    """A project copy with an outputs/ tree from an earlier run (files that must survive a bad profile)."""
    project = copy_project(tmp_path_factory.mktemp("project"))
    for name, text in (("metrics/data/fmnist.json", '{"dataset": "fmnist"}\n'), ("tables/table1_corruption.csv",
                       "method,ours,paper\nStandard,20.0,29.0\n"), ("index.md", "# results\n")):
        (project / "outputs/tiny" / name).parent.mkdir(parents=True, exist_ok=True)
        (project / "outputs/tiny" / name).write_text(text)
    return project


def write_bad_profile(project: Path, fault: str) -> Path:
    cfg = yaml.safe_load((REPO_ROOT / "params" / "tiny.yaml").read_text())
    BAD_PROFILES[fault][0](cfg)
    path = project / "params" / f"bad_{fault.replace(' ', '_')}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.mark.parametrize("fault", list(BAD_PROFILES))
def test_apr_check_names_what_is_wrong_with_a_bad_profile(tmp_path, fault, capsys):
    from apr_lib.cli import main

    assert main(["check", "--profile", str(write_bad_profile(tmp_path, fault))]) == 2
    assert BAD_PROFILES[fault][1] in capsys.readouterr().err


@pytest.mark.slow  # a few seconds per profile: Snakemake parses the Snakefile, which imports torch
@pytest.mark.parametrize("fault", list(BAD_PROFILES))
def test_bad_profile_stops_snakemake_before_any_job_and_leaves_outputs_untouched(project_with_outputs, fault):
    project = project_with_outputs
    profile = write_bad_profile(project, fault)
    before = tree_bytes(project / "outputs")
    # Not a dry run: a real run that must stop while Snakemake parses the Snakefile, before its first job.
    run = subprocess.run(["snakemake", "--cores", "1", "all", "--config", f"profile={profile}"], cwd=project,
                         capture_output=True, text=True, timeout=HANG_SECONDS)
    assert run.returncode != 0 and BAD_PROFILES[fault][1] in run.stdout + run.stderr
    assert "Building DAG of jobs" not in run.stdout + run.stderr
    assert tree_bytes(project / "outputs") == before and not (project / "runs").exists()


def test_a_data_root_that_is_a_file_is_refused_and_a_new_folder_is_allowed(tmp_path):
    from apr_lib.study.config import check_data_root, load_profile
    from apr_lib.errors import ProfileError

    (tmp_path / "data.tar").write_text("")
    for root, ok in ((tmp_path / "data.tar", False), (tmp_path / "not-yet-data", True)):
        path = tiny_profile(tmp_path / f"profile-{root.name}", root)
        if ok:
            check_data_root(load_profile(str(path)))  # the data job creates it and fetches Fashion-MNIST into it
        else:
            with pytest.raises(ProfileError, match=f"key data_root: '{root}' is a file, not a folder. Fix data_root in {path}"):
                check_data_root(load_profile(str(path)))


# Writers that would put a file in place bit by bit; notebooks must write through apr_lib.paper.report / apr_lib.files.
DIRECT_WRITES = re.compile(r"\.to_(csv|markdown|latex|json)\([^)]*['\"/]|\.savefig\(|json\.dump\(|\.write_(text|bytes)\("
                           r"|open\([^)]*['\"][wa]b?['\"]|np\.save|torch\.save")


def test_notebooks_write_outputs_only_through_the_atomic_helpers():
    offending = []
    for path in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                offending += [f"{path.name}: {line.strip()}" for line in cell.source.splitlines()
                              if DIRECT_WRITES.search(line)]
    assert not offending, "write via apr_lib.paper.report (write_tables, save_figure, write_claims) or apr_lib.files"
