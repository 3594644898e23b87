"""ImageNet-style training: the streaming image-folder loader, and DDP under torchrun keeping its replicas in sync.

The image folders are tiny real ones (JPEG files in ImageNet's <split>/<wnid>/ layout, written here): each class is
one solid colour, so a label can be checked against its image.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
import yaml
from PIL import Image

from apr_lib.study.config import REPO_ROOT, RunSpec, load_profile, run_config, run_dir
from apr_lib.data import ensure_dataset, load_split
from apr_lib.distributed import Cluster, TrainStream, clean_test_set, state_digest
from apr_lib.errors import DataMissingError, UserError
from apr_lib.evaluate import SUITES
from apr_lib.models import build_run_model
from apr_lib.runs import load_run, seed_everything
from apr_lib.study.jobs import launcher
from conftest import HANG_SECONDS

COLOURS = ((200, 30, 30), (30, 200, 30), (30, 30, 200))  # class k: one solid colour
RUN = "imagenet/small_cnn/apr_sp/seed0"


def write_image_folders(root: Path, per_class: int = 8, side: int = 40) -> None:
    for split in ("train", "val"):
        for k, colour in enumerate(COLOURS):
            folder = root / "imagenet" / split / f"n0000000{k}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (side + i, side), colour).save(folder / f"n0000000{k}_{i}.JPEG", quality=95)


def imagenet_profile(folder: Path, data_root: Path, **train) -> Path:
    """params/imagenet.yaml at toy size: small images, a small global batch, no loader workers."""
    cfg = yaml.safe_load((REPO_ROOT / "params" / "imagenet.yaml").read_text())
    cfg["data_root"] = str(data_root)
    cfg["train"].update({"epochs": 1, "batch_size": 8, "image_size": 32, "workers": 0, **train})
    path = folder / "params" / "imagenet.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
def image_root(tmp_path) -> Path:
    write_image_folders(tmp_path / "data")
    return tmp_path / "data"


def colour_class(images: torch.Tensor) -> torch.Tensor:
    """The class whose colour each uint8 image (B, 3, H, W) is closest to."""
    means = images.float().mean((2, 3))
    return torch.cdist(means, torch.tensor(COLOURS, dtype=torch.float)).argmin(1)


def test_the_stream_gives_uint8_crops_of_each_process_shard_with_their_labels(tmp_path, image_root):
    profile = load_profile(str(imagenet_profile(tmp_path, image_root)))
    config = run_config(profile, RunSpec.parse(RUN))
    shards = []
    for rank in (0, 1):
        stream = TrainStream(config, Cluster(rank, 2, torch.device("cpu")))
        batches = list(stream.epoch(0, seed=rank))
        assert len(batches) == stream.steps_per_epoch == 3  # 24 images, 12 per process, 4 per batch
        for images, labels in batches:
            assert images.dtype == torch.uint8 and images.shape == (4, 3, 32, 32)
            assert labels.dtype == torch.int64 and torch.equal(colour_class(images), labels)
        shards.append([stream.images.indices[i] for i in stream.sampler])
    assert not set(shards[0]) & set(shards[1])  # the two processes read disjoint halves


def test_test_images_are_centre_crops_and_missing_folders_say_where_imagenet_comes_from(tmp_path, image_root):
    profile = load_profile(str(imagenet_profile(tmp_path, image_root)))
    test = clean_test_set(profile.cfg)
    image, label = test[len(test) - 1]
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32) and label == 2
    with pytest.raises(UserError, match="too big to load whole"):
        load_split("imagenet", image_root, train=False)
    assert ensure_dataset("imagenet", image_root)["source"].count("(3 classes)") == 2  # train and val
    shutil.rmtree(image_root / "imagenet" / "val")
    with pytest.raises(DataMissingError, match=r"imagenet/val is missing.*image-net\.org"):
        ensure_dataset("imagenet", image_root)


class ColourClassifier(torch.nn.Module):
    """Logits: minus the distance of an image's mean colour (floats in [0, 1]) to each class's colour."""

    def __init__(self):
        super().__init__()
        self.colours = torch.nn.Parameter(torch.tensor(COLOURS, dtype=torch.float) / 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.cdist(x.mean((2, 3)), self.colours)


def test_the_clean_suite_of_an_imagenet_profile_reads_the_validation_folders(tmp_path, image_root):
    profile = load_profile(str(imagenet_profile(tmp_path, image_root)))
    result, per_image, summary = SUITES["clean"](profile.cfg, ColourClassifier())
    assert per_image["correct"].shape == (24,) and per_image["correct"].all()
    assert result["n"] == 24 and result["error"] == 0.0 and summary == "clean error 0.00%"


def test_the_train_rule_launches_torchrun_when_the_profile_asks_for_several_processes():
    assert launcher(load_profile("tiny")) == "apr"
    assert launcher(load_profile("imagenet")) == "torchrun --standalone --nproc_per_node 8 -m apr_lib.cli --"


def start_torchrun(project: Path, processes: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
               "-m", "apr_lib.cli", "--", "train", "--profile", "params/imagenet.yaml", "--run", RUN, "--threads", "1"]
    return subprocess.Popen(command, cwd=project, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def torchrun(project: Path, processes: int) -> str:
    process = start_torchrun(project, processes)
    out, _ = process.communicate(timeout=HANG_SECONDS)
    assert process.returncode == 0, out
    return out


EPOCHS = 3


def ddp_project(folder: Path) -> Path:
    """A project folder whose profile trains on 3 x 24 images for 3 epochs in 2 processes (3 steps per epoch)."""
    write_image_folders(folder / "data", per_class=24)
    imagenet_profile(folder, folder / "data", epochs=EPOCHS, nproc_per_node=2)
    return folder


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    """The project of an uninterrupted run under torchrun with two gloo processes."""
    project = ddp_project(tmp_path_factory.mktemp("uninterrupted"))
    assert "resuming" not in torchrun(project, 2)
    return project


@pytest.mark.slow
def test_two_gloo_processes_keep_their_replicas_in_sync(ddp_run):
    profile = load_profile(str(ddp_run / "params/imagenet.yaml"))
    folder = ddp_run / run_dir(profile, RunSpec.parse(RUN))
    metrics = json.loads((ddp_run / "outputs/imagenet/metrics" / RUN / "train.json").read_text())
    assert metrics["processes"] == 2 and metrics["train_images"] == 72 and len(metrics["history"]) == EPOCHS
    trained, config = load_run(folder, device="cpu")
    trained_digest = state_digest(dict(trained.named_parameters()))
    # each process's parameters, digested at the end of training, are the saved weights
    assert metrics["replica_digests"] == [trained_digest, trained_digest]
    seed_everything(config["seed"])
    initial = build_run_model(config)  # the weights training started from (train_run seeds the same way)
    assert state_digest(dict(initial.named_parameters())) != trained_digest
    assert np.isfinite(metrics["final_loss"]) and not (folder / "checkpoint.pt").exists()


@pytest.mark.slow
def test_a_killed_ddp_run_resumes_on_both_processes_and_ends_as_the_uninterrupted_run(ddp_run, tmp_path):
    project = ddp_project(tmp_path)
    process = start_torchrun(project, 2)
    checkpoint = project / "runs/imagenet" / RUN / "checkpoint.pt"
    deadline = time.time() + HANG_SECONDS
    while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert checkpoint.exists(), "no checkpoint appeared"
    torchrun_process = psutil.Process(process.pid)  # its workers run in sessions of their own: kill each
    for part in [*torchrun_process.children(recursive=True), torchrun_process]:
        part.kill()  # kill -9, after process 0's first checkpoint
    process.wait()
    assert not (checkpoint.parent / "model.pt").exists()
    saved_epoch = torch.load(checkpoint, weights_only=True)["epoch"] + 1
    assert saved_epoch < EPOCHS

    assert f"resuming after epoch {saved_epoch} of {EPOCHS}" in torchrun(project, 2)
    weights = [torch.load(folder / "runs/imagenet" / RUN / "model.pt", weights_only=True) for folder in (project, ddp_run)]
    for key, value in weights[1].items():
        torch.testing.assert_close(weights[0][key], value, rtol=0, atol=0)
