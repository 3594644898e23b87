"""Published weights: which runs the DAG publishes under outputs/<profile>/weights/, their checksums in the manifest, and
how the notebooks and the explorer find a trained model in runs/ or, on a fresh clone, in the published copy."""
import shutil
import subprocess

import pytest
import torch

from apr_lib import load_run
from apr_lib.errors import CheckpointError, UserError
from apr_lib.files import write_json
from apr_lib.layout import CONFIG, WEIGHTS, published_copy
from apr_lib.models import build_run_model
from apr_lib.paper import explorer, manifest
from apr_lib.paper.weights import load_models, trained_dir
from apr_lib.runs import save_state
from apr_lib.study.config import REPO_ROOT, load_profile, published_dir, run_config, run_dir, table_seeds
from apr_lib.study.sections import SECTIONS, section
from apr_lib.study.targets import model_runs, published_runs, published_weights, section_weights, seed_runs


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/ and outputs/ are relative to the project root
    return load_profile(str(REPO_ROOT / "params" / "tiny.yaml"))


def save_run(profile, run, folder):
    """A run's files as training leaves them (untrained weights: only the files matter here)."""
    config = run_config(profile, run)
    save_state(build_run_model(config).state_dict(), folder / WEIGHTS)
    write_json(folder / CONFIG, config)


def publish(profile, runs):
    """Published copies of `runs` and a manifest recording their checksums, as the DAG leaves them."""
    for run in runs:
        save_run(profile, run, published_dir(profile, run))
    write_json(manifest.manifest_file(profile), {"weights": manifest.published_weights_record(profile)})


def test_the_published_runs_are_the_models_the_notebooks_load(tiny):
    runs = model_runs(tiny, section("fig2_amplitude_swap"))
    assert {method: run.name for method, run in runs.items()} == {
        "standard": "fmnist/small_cnn/standard/seed0", "apr_sp": "fmnist/small_cnn/apr_sp/seed0"}
    assert published_runs(tiny) == sorted(runs.values())
    assert [p.as_posix() for p in published_weights(tiny)] == [
        "outputs/tiny/weights/fmnist/small_cnn/apr_sp/seed0/model.pt",
        "outputs/tiny/weights/fmnist/small_cnn/apr_sp/seed0/config.json",
        "outputs/tiny/weights/fmnist/small_cnn/standard/seed0/model.pt",
        "outputs/tiny/weights/fmnist/small_cnn/standard/seed0/config.json"]
    for s in SECTIONS:  # a section that loads models reads their published copies (Snakemake inputs)
        assert [p.parent for p in section_weights(tiny, s)] == [published_dir(tiny, r) for runs in
                                                                seed_runs(tiny, s).values() for r in runs]
        assert bool(section_weights(tiny, s)) == bool(s.weights_of)


def test_the_default_profile_publishes_a_few_small_files():
    profile = load_profile("default")
    runs = published_runs(profile)
    seeds = table_seeds(profile, "table1_corruption")  # every seed: the claims of Figures 2 and 8 take their spread
    assert {run.method for run in runs} == {"standard", "apr_sp"} and len(runs) == 2 * len(seeds) > 2
    bytes_per_run = sum(p.numel() * p.element_size()
                        for p in build_run_model(run_config(profile, runs[0])).state_dict().values())
    assert len(runs) * bytes_per_run < 3e6  # "a few MB at most" in git


def test_runs_are_preferred_and_a_fresh_clone_loads_the_checked_published_copy(tiny):
    runs = model_runs(tiny, section("fourier_heatmap"))
    assert trained_dir(tiny, runs["standard"]) is None
    publish(tiny, runs.values())
    assert trained_dir(tiny, runs["standard"]) == published_dir(tiny, runs["standard"])
    models = load_models(tiny, runs, "cpu")
    assert list(models) == ["Standard", "APR-SP"] and models["APR-SP"](torch.rand(2, 1, 28, 28)).shape == (2, 10)
    shelf = explorer.ModelShelf(tiny)  # the explorer loads the same published copies
    assert shelf.hint == "" and list(shelf.full) == ["Standard", "APR-SP"]

    save_run(tiny, runs["standard"], run_dir(tiny, runs["standard"]))
    assert trained_dir(tiny, runs["standard"]) == run_dir(tiny, runs["standard"])  # trained here: runs/ first


def test_a_changed_published_file_or_a_missing_checksum_is_refused(tiny):
    runs = model_runs(tiny, section("fig8_gradcam"))
    publish(tiny, runs.values())
    weights = published_dir(tiny, runs["apr_sp"]) / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-10])  # truncated
    with pytest.raises(CheckpointError, match=f"{weights} does not match the checksum that outputs/tiny/manifest.json"):
        load_models(tiny, runs, "cpu")
    write_json(manifest.manifest_file(tiny), {"weights": {}})
    with pytest.raises(UserError, match="has no checksums in outputs/tiny/manifest.json"):
        trained_dir(tiny, runs["standard"])


def test_a_missing_model_names_the_command_that_trains_and_publishes_it(tiny):
    runs = model_runs(tiny, section("fig2_amplitude_swap"))
    publish(tiny, runs.values())
    shutil.rmtree(published_dir(tiny, runs["apr_sp"]))
    with pytest.raises(UserError) as error:
        load_models(tiny, runs, "cpu")
    assert "no trained APR-SP model of profile 'tiny' (fmnist/small_cnn/apr_sp/seed0)" in str(error.value)
    assert ("snakemake --cores 4 --config profile=tiny outputs/tiny/weights/fmnist/small_cnn/apr_sp/seed0/model.pt"
            in str(error.value))


def test_load_run_points_from_a_missing_run_to_its_published_copy(tiny):
    run = model_runs(tiny, section("fig2_amplitude_swap"))["standard"]
    with pytest.raises(UserError, match="train it first"):
        load_run(run_dir(tiny, run))
    save_run(tiny, run, published_dir(tiny, run))
    assert published_copy(run_dir(tiny, run)) == published_dir(tiny, run)
    with pytest.raises(UserError, match=f"its published weights are in {published_dir(tiny, run)}: load that folder"):
        load_run(run_dir(tiny, run))
    model, config = load_run(published_dir(tiny, run), "cpu")
    assert config["method"] == "standard"


def test_the_manifest_records_each_published_file_and_needs_them_all(tiny):
    runs = model_runs(tiny, section("fig2_amplitude_swap"))
    publish(tiny, runs.values())
    record = manifest.published_weights_record(tiny)
    assert set(record) == {run.name for run in runs.values()}
    entry = record["fmnist/small_cnn/standard/seed0"][WEIGHTS]
    assert len(entry["sha256"]) == 64 and entry["bytes"] == (published_dir(tiny, runs["standard"]) / WEIGHTS).stat().st_size
    (published_dir(tiny, runs["apr_sp"]) / CONFIG).unlink()
    with pytest.raises(UserError, match="lacks config.json: run `snakemake --cores 4 all --config profile=tiny`"):
        manifest.published_weights_record(tiny)


@pytest.mark.skipif(shutil.which("git") is None or not (REPO_ROOT / ".git").exists(), reason="not a git checkout")
def test_git_keeps_the_default_weights_and_ignores_runs_tiny_outputs_and_scratch():
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO_ROOT).returncode == 0

    assert not ignored("outputs/default/weights/fmnist/small_cnn/apr_sp/seed0/model.pt")
    assert not ignored("outputs/default/weights/fmnist/small_cnn/apr_sp/seed0/config.json")
    assert ignored("runs/default/fmnist/small_cnn/apr_sp/seed0/model.pt")
    assert ignored("outputs/tiny/weights/fmnist/small_cnn/apr_sp/seed0/model.pt")
    assert ignored("outputs/default/scratch/figures/fig2_amplitude_swap.png")
    assert ignored("outputs/cifar/weights/cifar10/allconv/apr_sp/seed0/model.pt")  # only the default's are small
