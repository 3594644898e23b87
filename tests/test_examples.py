"""The README's usage snippet and the training examples run as written (on tiny data: the examples' own options)."""
import os
import re
import subprocess
import sys

import pytest
import torch

from apr_lib.study.config import REPO_ROOT


def readme_snippet(heading: str) -> str:
    """The first ```python block under `heading` in the README."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_usage_snippet_runs_and_trains_on_clean_and_recombined_images():
    namespace = {}
    exec(compile(readme_snippet("Use APR in your own training"), "README.md", "exec"), namespace)
    images, x, y, loss = (namespace[name] for name in ("images", "x", "y", "loss"))
    assert x.shape == (2 * len(images), 3, 32, 32) and x.dtype == torch.float32 and len(y) == len(x)
    assert torch.isfinite(loss) and all(p.grad is not None for p in namespace["model"].parameters())


@pytest.mark.parametrize("script, options", [("train_resnet18_apr.py", []), ("dataloader_v2.py", ["--workers", "1"])])
def test_each_example_trains_an_epoch_on_a_few_real_images(fmnist_root, script, options):
    result = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / script), "--data-root", str(fmnist_root),
                             "--epochs", "1", "--limit", "16", "--batch-size", "8", *options],
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"epoch 1/1: loss \d+\.\d+, test accuracy 0\.\d+", result.stdout), result.stdout
