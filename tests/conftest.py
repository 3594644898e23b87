"""Shared fixtures: real Fashion-MNIST for the pipeline tests, edited copies of the tiny profile, one torch thread."""
from pathlib import Path

import pytest
import torch
import yaml

from apr_lib.study.config import REPO_ROOT

# How long a test waits for a subprocess, or for a file a subprocess writes, before calling it hung. A guard against
# hangs only, never a performance bound: on a loaded 2-core machine these jobs take many times their quiet time.
HANG_SECONDS = 3600
from apr_lib.data import ensure_dataset


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors run faster on one thread, and OpenMP threads crawl when other jobs share the cores.
    Modules use it with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fmnist_root(tmp_path_factory) -> Path:
    """A data root holding the real Fashion-MNIST (from Debian's dataset-fashion-mnist, which .ci/run installs)."""
    root = tmp_path_factory.mktemp("data")
    ensure_dataset("fmnist", root)
    return root


def tiny_profile(folder: Path, data_root: Path, **sections) -> Path:
    """params/tiny.yaml with `sections` merged in (e.g. train={"epochs": 3}), written into folder/params/."""
    cfg = yaml.safe_load((REPO_ROOT / "params" / "tiny.yaml").read_text())
    cfg["data_root"] = str(data_root)
    for key, value in sections.items():
        if isinstance(value, dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    path = folder / "params" / "tiny.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
