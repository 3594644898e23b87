"""Training one run: resume after a kill, broken checkpoints, divergence, and loading the result."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from apr_lib import load_run
from apr_lib.study.config import RunSpec, load_profile, metrics_file, run_config, run_dir
from apr_lib.errors import CheckpointError, TrainingDiverged
from apr_lib.train import train_run
from conftest import HANG_SECONDS, tiny_profile

RUN = "fmnist/small_cnn/apr_sp/seed0"


def apr(*args, cwd, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "apr_lib.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def finish(process) -> str:
    out, _ = process.communicate(timeout=HANG_SECONDS)
    assert process.returncode == 0, out
    return out


def test_killed_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_run(tmp_path, fmnist_root):
    epochs = 5
    for name in ("killed", "uninterrupted"):
        tiny_profile(tmp_path / name, fmnist_root, train={"epochs": epochs, "train_subset": 1024})
    train = ["train", "--profile", "params/tiny.yaml", "--run", RUN, "--threads", "1"]

    uninterrupted = finish(apr(*train, cwd=tmp_path / "uninterrupted"))
    assert "resuming" not in uninterrupted

    process = apr(*train, cwd=tmp_path / "killed")
    checkpoint = tmp_path / "killed" / "runs" / "tiny" / RUN / "checkpoint.pt"
    deadline = time.time() + HANG_SECONDS
    while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert checkpoint.exists(), "no checkpoint appeared"
    os.kill(process.pid, signal.SIGKILL)  # kill -9, part-way through the second epoch
    process.wait()
    assert not (checkpoint.parent / "model.pt").exists()
    saved_epoch = torch.load(checkpoint, weights_only=True)["epoch"] + 1
    assert saved_epoch < epochs

    resumed = finish(apr(*train, cwd=tmp_path / "killed"))
    assert f"resuming after epoch {saved_epoch} of {epochs}" in resumed
    assert f"epoch 1/{epochs} loss" not in resumed  # not from epoch 0
    assert not checkpoint.exists()  # removed once the run finished

    weights = {name: torch.load(tmp_path / name / "runs/tiny" / RUN / "model.pt", weights_only=True)
               for name in ("killed", "uninterrupted")}
    for key, value in weights["uninterrupted"].items():
        torch.testing.assert_close(weights["killed"][key], value, rtol=0, atol=0)
    history = [json.loads((tmp_path / name / "outputs/tiny/metrics" / RUN / "train.json").read_text())["history"]
               for name in ("killed", "uninterrupted")]
    assert [h["loss"] for h in history[0]] == [h["loss"] for h in history[1]]


@pytest.fixture
def tiny_run(tmp_path, fmnist_root, monkeypatch):
    monkeypatch.chdir(tmp_path)
    profile = load_profile(str(tiny_profile(tmp_path, fmnist_root, train={"epochs": 1, "train_subset": 256})))
    run = RunSpec.parse(RUN)
    return profile, run, run_config(profile, run)


def test_truncated_checkpoint_names_the_file_and_restart_trains_again(tiny_run):
    profile, run, config = tiny_run
    directory = run_dir(profile, run)
    checkpoint = directory / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    with pytest.raises(CheckpointError, match=f"{checkpoint}.*--restart"):
        train_run(config, directory, metrics_file(profile, run, "train"), progress=False)
    train_run(config, directory, metrics_file(profile, run, "train"), restart=True, progress=False)
    model, saved_config = load_run(directory)
    assert saved_config == json.loads(json.dumps(config))
    assert not model.training
    with torch.no_grad():
        assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_checkpoint_of_another_configuration_is_refused(tiny_run):
    profile, run, config = tiny_run
    directory = run_dir(profile, run)
    config_two_epochs = {**config, "train": {**config["train"], "epochs": 2}}
    directory.mkdir(parents=True)
    torch.save({"epoch": 0, "config_digest": "0123456789abcdef"}, directory / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="different configuration"):
        train_run(config_two_epochs, directory, metrics_file(profile, run, "train"), progress=False)


def test_diverging_run_stops_at_the_first_non_finite_loss(tiny_run):
    profile, run, config = tiny_run
    absurd = {**config, "train": {**config["train"], "lr": 1e12}}
    with pytest.raises(TrainingDiverged, match=rf"run {RUN}: the loss became (nan|inf) at epoch 1, step \d+"):
        train_run(absurd, run_dir(profile, run), metrics_file(profile, run, "train"), progress=False)
    assert not (run_dir(profile, run) / "model.pt").exists()


def test_load_run_without_a_finished_run_says_how_to_get_one(tmp_path):
    from apr_lib.errors import UserError
    with pytest.raises(UserError, match="no finished run.*snakemake"):
        load_run(tmp_path)
