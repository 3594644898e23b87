"""Figure 4: the band-recombined input of a run, its grid beside the paper's, and the section's claims."""
import json

import numpy as np
import pytest
import torch

from apr_lib import load_run
from apr_lib.paper.fig4_amp_phase_grid import KEY, claims, figure_caption, measure
from apr_lib.study.config import RunSpec, load_profile, run_config, table_runs
from apr_lib.models import BandRecombinedInput, build_run_model, config_bands
from apr_lib.paper.paper_results import paper_fig4
from apr_lib.spectral import BANDS, band_recombine
import fakes
from conftest import tiny_profile

torch.set_num_threads(1)
CELLS = [(a, p) for a in BANDS for p in BANDS]


def test_band_runs_see_band_recombined_images_unclipped():
    torch.manual_seed(0)
    config = {"dataset": "fmnist", "arch": "small_cnn",
              "bands": {"amplitude": "high", "phase": "low", "radii": [4, 10]}}
    model = build_run_model(config).eval()
    assert isinstance(model, BandRecombinedInput)
    x = torch.rand(4, 1, 28, 28)
    seen = band_recombine(x, "high", "low", (4, 10), mode="per_channel")
    assert seen.min() < 0  # without the low amplitude band (the mean) the image leaves [0, 1]: not clipped
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.model(seen))
    # full/full is the image itself: no recombination layer at all (bands default to full)
    for bands in ({"amplitude": "full", "phase": "full", "radii": [4, 10]}, {"radii": [4, 10]}):
        assert not isinstance(build_run_model({**config, "bands": bands}), BandRecombinedInput)


def test_load_run_rebuilds_the_band_input(tmp_path):
    config = {"dataset": "fmnist", "arch": "small_cnn", "bands": {"amplitude": "mid", "phase": "mid", "radii": [4, 10]}}
    model = build_run_model(config).eval()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded, _ = load_run(tmp_path, device="cpu")
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def band_profile(folder, cells):
    """A profile whose fig4 table lists the band variants of `cells`; metrics are written by each test."""
    variants = {f"amp-{a}_phase-{p}": {"bands": {"amplitude": a, "phase": p}} for a, p in cells}
    path = tiny_profile(folder, folder / "data", variants=variants,
                        tables={KEY: {"archs": ["small_cnn"], "methods": ["standard"], "variants": list(variants)}})
    return load_profile(str(path))


@pytest.fixture
def fig4_profile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return band_profile(tmp_path, CELLS)


def write_accuracies(profile, accuracy: dict, seeds=(0, 1, 2)) -> None:
    """Clean results of each cell's runs: accuracy[cell] % + seed / 4."""
    profile.cfg["seeds"] = list(seeds)
    for run in table_runs(profile, KEY):
        cell = config_bands(run_config(profile, run))
        if cell in accuracy:
            fakes.write_clean(profile, run, 100.0 - accuracy[cell] - run.seed / 4, n=4000)


def test_grid_reads_each_cell_from_its_runs_metrics_beside_the_paper(fig4_profile):
    accuracy = {cell: 50.0 + i for i, cell in enumerate(CELLS)}
    write_accuracies(fig4_profile, accuracy)
    df = measure(fig4_profile)
    assert list(zip(df["amplitude"], df["phase"])) == CELLS
    assert df["ours"].tolist() == pytest.approx([accuracy[c] + 0.25 for c in CELLS], abs=0.02)
    assert df["paper"].tolist() == [paper_fig4()[a][p] for a, p in CELLS]


def test_claims_on_the_papers_grid_hold_and_on_its_transpose_fail(fig4_profile):
    paper = paper_fig4()
    write_accuracies(fig4_profile, {(a, p): paper[a][p] for a, p in CELLS})
    verdicts = [c["verdict"] for c in claims(fig4_profile, measure(fig4_profile))]
    assert verdicts == ["holds", "holds"]  # the paper's own reading of its grid: both readings of the first claim
    # Transposed, the phase matters more than the amplitude, and the high amplitude band's best phase is the low band.
    write_accuracies(fig4_profile, {(a, p): paper[p][a] for a, p in CELLS})
    verdicts = [c["verdict"] for c in claims(fig4_profile, measure(fig4_profile))]
    assert verdicts == ["fails", "fails"]


def test_the_caption_of_a_full_grid_reads_the_ranges_of_its_first_row_and_column(fig4_profile):
    """The sentence only a run of all 16 cells writes (the reference run's first, caught there)."""
    write_accuracies(fig4_profile, {(a, p): 60.0 + 2 * BANDS.index(p) - BANDS.index(a) for a, p in CELLS})
    caption = figure_caption(fig4_profile, measure(fig4_profile))
    # full amplitude: 60.25 .. 66.25 over the phase bands; full phase: 60.25 .. 57.25 over the amplitude bands
    assert "accuracy moves 6.0 points across the phase bands; with the full phase, 3.0 points" in caption


def test_cells_without_runs_stay_blank_and_claims_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    profile = band_profile(tmp_path, [("full", "full"), ("low", "high")])
    write_accuracies(profile, {("full", "full"): 90.0, ("low", "high"): 40.0})
    df = measure(profile)
    assert df["ours"].notna().sum() == 2 and np.isnan(df.set_index(["amplitude", "phase"]).loc[("mid", "mid"), "ours"])
    result = claims(profile, df)
    assert {c["verdict"] for c in result} == {"not run"}
    assert "2 of the 16 cells" in result[0]["note"]


def test_shipped_profiles_cover_the_grid():
    default = load_profile("default")
    runs = table_runs(default, KEY)
    assert {config_bands(run_config(default, r)) for r in runs} == set(CELLS)
    tiny = load_profile("tiny")
    assert len(table_runs(tiny, KEY)) == 2  # tiny stays minimal
    assert RunSpec.parse("fmnist/small_cnn/standard@amp-low_phase-high/seed0") in table_runs(tiny, KEY)
