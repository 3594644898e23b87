"""The tiny profile end to end through Snakemake, in a temporary copy of the project."""
import json
import shutil
import subprocess
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from apr_lib.config import REPO_ROOT, load_profile, table_runs
from apr_lib.sections import SECTIONS, claims_table, index_page, section_outputs

pytestmark = pytest.mark.slow


def copy_project(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "Snakefile", dest)
    for folder in ("params", "notebooks"):
        shutil.copytree(REPO_ROOT / folder, dest / folder)
    return dest


def snakemake(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["snakemake", "--cores", "2", *args], cwd=project, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("project"))
    result = snakemake(project, "all", "--config", "profile=tiny")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return project


def test_all_produces_every_declared_output(tiny_project):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny_project)
        profile = load_profile("tiny")
        expected = [p for s in SECTIONS for p in section_outputs(profile, s)] + claims_table(profile) + [index_page(profile)]
    missing = [str(p) for p in expected if not (tiny_project / p).is_file()]
    assert not missing
    assert (tiny_project / "outputs/tiny/figures/fig7_apr_examples.png").stat().st_size > 10_000


def test_table1_numbers_come_from_the_metrics_files(tiny_project):
    table = pd.read_csv(tiny_project / "outputs/tiny/tables/table1_corruption.csv")
    assert list(table["method"]) == ["Standard", "APR-P", "APR-S", "APR-SP"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny_project)
        runs = table_runs(load_profile("tiny"), "table1_corruption")
    for run, row in zip(runs, table.itertuples()):
        metrics = tiny_project / "outputs/tiny/metrics" / run.name
        assert row.ours == pytest.approx(json.loads((metrics / "corruption.json").read_text())["mean_corruption_error"])
        assert row.clean_error == pytest.approx(json.loads((metrics / "clean.json").read_text())["error"])
    assert list(table["paper"]) == [29.0, 19.7, 12.2, 10.0]  # CIFAR-10-C mean row of params/paper_results.yaml
    markdown = (tiny_project / "outputs/tiny/tables/table1_corruption.md").read_text()
    assert "Fashion-MNIST" in markdown and "CIFAR-10-C" in markdown  # says what was run and what it is compared to


def test_executed_notebooks_ran_without_errors(tiny_project):
    for s in SECTIONS:
        nb = nbformat.read(tiny_project / f"outputs/tiny/notebooks/{s.notebook}.ipynb", as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors
        parameters = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert parameters and "params/tiny.yaml" in parameters[0].source  # papermill passed the profile


def test_claims_and_index_cover_every_section(tiny_project):
    claims = pd.read_csv(tiny_project / "outputs/tiny/tables/claims.csv", keep_default_na=False)
    assert set(claims["section"]) == {s.key for s in SECTIONS}
    assert set(claims["verdict"]) <= {"holds", "fails", "not run"}
    index = (tiny_project / "outputs/tiny/index.md").read_text()
    for s in SECTIONS:
        assert s.paper in index
        for figure in s.figures:
            assert f"figures/{figure}.png" in index


def test_second_run_has_nothing_to_do(tiny_project):
    result = snakemake(tiny_project, "all", "--config", "profile=tiny", "--dry-run")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_misspelt_profile_key_fails_before_any_job(tmp_path):
    project = copy_project(tmp_path / "project")
    profile = project / "params" / "tiny.yaml"
    profile.write_text(profile.read_text().replace("  epochs: 2", "  epoch: 2"))
    result = snakemake(project, "all", "--config", "profile=tiny")
    assert result.returncode != 0
    assert "unknown key 'epoch' (did you mean 'epochs'?)" in result.stdout + result.stderr
    assert not (project / "outputs").exists() and not (project / "runs").exists()
