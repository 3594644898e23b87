"""Source notebooks: one per section, named and ordered like the paper, with a common structure, no stray outputs, and
nbval on the checked cells."""
import ast
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from apr_lib.paper.notebook_outputs import is_checked, strip_unchecked_outputs
from apr_lib.study.config import REPO_ROOT, load_profile
from apr_lib.study.sections import SECTIONS
from apr_lib.study.targets import section_weights
from conftest import HANG_SECONDS

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def test_every_section_has_its_notebook():
    assert {f"{s.notebook}.ipynb" for s in SECTIONS} <= {p.name for p in NOTEBOOKS}


def test_notebooks_sort_in_the_papers_order_and_share_the_section_key():
    assert [s.notebook for s in SECTIONS] == [f"{n:02d}_{s.key}" for n, s in enumerate(SECTIONS, start=1)]
    assert [p.stem for p in NOTEBOOKS] == ["00_explorer", *(s.notebook for s in SECTIONS)]


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.key)
def test_notebooks_call_their_section_module(section):
    cells = nbformat.read(REPO_ROOT / "notebooks" / f"{section.notebook}.ipynb", as_version=4).cells
    source = "".join(cell.source for cell in cells if cell.cell_type == "code")
    assert f"from apr_lib.paper import {section.key} as section" in source
    assert "section.measure(P" in source and "section.claims(P, " in source
    # By hand it writes to the scratch folder; the DAG passes write_reference (Snakefile)
    assert "write_reference = False" in cells[1].source and "P = notebook_profile(profile, write_reference)" in source


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.key)
def test_notebooks_that_load_weights_declare_them(section):
    """A section that loads trained models must name their published weights as Snakemake inputs, or `all` would run
    it before they exist."""
    source = (REPO_ROOT / "apr_lib" / "paper" / f"{section.key}.py").read_text(encoding="utf-8")
    assert bool(re.search(r"load_(seed_)?models\(", source)) == bool(section.weights_of)
    weights = section_weights(load_profile("tiny"), section)
    assert bool(weights) == bool(section.weights_of)
    assert all(path.name == "model.pt" and path.parts[:3] == ("outputs", "tiny", "weights") for path in weights)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_structure(path):
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    assert "section" in cells[0].source.splitlines()[0].lower()  # the title names the paper's section
    assert "Re-run" in cells[0].source
    parameters = cells[1]
    assert parameters.cell_type == "code" and parameters.metadata.get("tags") == ["parameters"]
    # The parameters cell holds plain assignments only (profile, paths, sizes), so papermill can override them.
    assert all(isinstance(node, ast.Assign) for node in ast.parse(parameters.source).body)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_only_checked_cells_keep_outputs(path, tmp_path):
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    assert not strip_unchecked_outputs(copy), f"{path} holds outputs of unchecked cells: run apr strip-notebooks"
    for cell in nbformat.read(path, as_version=4).cells:
        if is_checked(cell):
            assert cell.outputs, f"{path}: a # NBVAL_CHECK_OUTPUT cell has no committed output to compare"


CHECKED = [p for p in NOTEBOOKS if any(is_checked(c) for c in nbformat.read(p, as_version=4).cells)]


@pytest.mark.slow
@pytest.mark.parametrize("path", CHECKED, ids=lambda p: p.name)
def test_nbval_checked_outputs_are_reproduced(path, tmp_path, fmnist_root):
    """Run the notebook with its default parameters in a copy of the project; nbval compares the checked cells."""
    project = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "params", project / "params")
    shutil.copytree(REPO_ROOT / "notebooks", project / "notebooks")
    shutil.copy(REPO_ROOT / "Snakefile", project)
    (project / "data").symlink_to(fmnist_root, target_is_directory=True)
    result = subprocess.run(["pytest", "-p", "no:cacheprovider", "--nbval-lax", "-q", str(Path("notebooks", path.name))],
                            cwd=project, capture_output=True, text=True, timeout=HANG_SECONDS,
                            env={**os.environ, "PYTEST_ADDOPTS": ""})
    assert result.returncode == 0, result.stdout[-4000:]
    assert "passed" in result.stdout
