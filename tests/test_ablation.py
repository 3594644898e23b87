"""The paper vs its released code: which runs the ablation compares, what it reports, and why it skips the FFT mode
on one-channel data."""
import json

import numpy as np
import pytest
import torch

from apr_lib.paper.ablation_paper_vs_code import KEY, OPTIONS, claims, measure, option_runs
from apr_lib.augment import APRP, APRS
from apr_lib.study.config import load_profile, metrics_file, run_config, table_runs
from apr_lib.errors import ProfileError
from apr_lib.spectral import swap_amplitude
import fakes
from conftest import tiny_profile

torch.set_num_threads(1)


def test_both_fft_modes_give_the_same_images_on_one_channel():
    # On one channel the 3-D DFT over (1, H, W) is the 2-D DFT: the same numbers in exact arithmetic. The two take
    # different FFT routines, whose float32 round-off differs by CPU (up to about 1e-6 on images in [0, 1]), so they
    # are compared to 1e-5, well below one grey level (1/255).
    x = torch.rand(6, 1, 28, 28)
    torch.testing.assert_close(swap_amplitude(x, x.flip(0), "per_channel"), swap_amplitude(x, x.flip(0), "channel3d"),
                               rtol=0, atol=1e-5)

    def aprp(mode):
        return APRP(prob=1.0, mode=mode, generator=torch.Generator().manual_seed(1))(x, torch.zeros(6))[0]

    torch.testing.assert_close(aprp("per_channel"), aprp("channel3d"), rtol=0, atol=1e-5)
    # APR-S quantises its recombined images to uint8 levels by truncation: a round-off difference moves a value that
    # lies on a level boundary (every pixel of an image whose swap changes nothing) to the level below, so pixels may
    # differ by one level, never by more (on three channels they differ by far more; below).
    aprs = {mode: APRS(swap_prob=1.0, mode=mode, overflow="clip", generator=torch.Generator().manual_seed(1))(x)
            for mode in ("per_channel", "channel3d")}
    difference = (aprs["per_channel"] - aprs["channel3d"]).abs()
    assert difference.max() <= 1 / 255 + 1e-6
    rgb = torch.rand(2, 3, 8, 8)  # on 3 channels they differ, so the ablation trains both there
    assert not torch.allclose(*(swap_amplitude(rgb, rgb.flip(0), mode) for mode in ("per_channel", "channel3d")))


@pytest.fixture
def ablation_profile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def make(variants: dict, listed: list[str]):
        path = tiny_profile(tmp_path, tmp_path / "data", variants=variants,
                            tables={KEY: {"archs": ["small_cnn"], "methods": ["apr_sp"], "variants": listed}})
        return load_profile(str(path))
    return make


def write_metrics(profile, values: dict) -> None:
    """values: variant -> (clean error, mean corruption error, msp AUROC, max-logit AUROC); clean per image too."""
    for run in table_runs(profile, KEY):
        clean, corruption, msp, max_logit = values[run.variant]
        fakes.write_clean(profile, run, clean + run.seed / 10)
        for suite, content in (("corruption", {"mean_corruption_error": corruption}),
                               ("ood", {"msp": {"mean": {"auroc": msp}}, "max_logit": {"mean": {"auroc": max_logit}}})):
            path = metrics_file(profile, run, suite)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(content))


AS_RELEASED = {"train": {"epochs": 1}, "apr": {"s_overflow": "wrap"}}  # the tiny profile clips; the release wraps


def test_each_row_compares_the_released_runs_with_the_runs_that_flip_its_option(ablation_profile):
    variants = {"released": AS_RELEASED,
                "paper-p_prob": {"train": {"epochs": 1}, "apr": {"s_overflow": "wrap", "p_prob": 1.0}},
                "paper-s_overflow": {"train": {"epochs": 1}}}
    profile = ablation_profile(variants, list(variants))
    released, flipped = option_runs(profile)
    assert [r.variant for r in released] == ["released"] and set(flipped) == {"p_prob", "s_overflow"}
    write_metrics(profile, {"released": (10.0, 30.0, 80.0, 82.0), "paper-p_prob": (11.0, 28.0, 81.0, 83.0),
                            "paper-s_overflow": (9.5, 31.0, 79.0, 80.0)})
    df = measure(profile).set_index("option")
    assert list(df.index) == [o.label for o in OPTIONS]
    assert df.loc["APR-P probability", ["clean_error_released", "clean_error_paper_text"]].tolist() == [10.0, 11.0]
    overflow = df.loc["APR-S overflow"]
    assert (overflow["corruption_error_released"], overflow["corruption_error_paper_text"]) == (30.0, 31.0)
    assert df.loc["APR-S overflow", "ood_auroc_paper_text"] == 79.0  # the profile's score (msp)
    fft = df.loc["FFT"]
    assert np.isnan(fft["clean_error_paper_text"]) and "identical on 1-channel data" in fft["note"]
    distracter = df.loc["APR-S distracter"]
    assert "not run" in distracter["note"] and np.isnan(distracter["ood_auroc_paper_text"])
    score = df.loc["OOD score"]  # no run: the released model scored by max logit (released) and msp (paper)
    assert (score["ood_auroc_released"], score["ood_auroc_paper_text"]) == (82.0, 80.0)
    assert score["clean_error_released"] == score["clean_error_paper_text"] == 10.0
    (claim,) = claims(profile, measure(profile))
    assert claim["verdict"] == "not run" and "apr.keep_clean" in claim["note"] and claim["kind"] == "released code"


def test_the_authors_claim_needs_both_ways_of_augmenting_more_with_seeds(ablation_profile):
    variants = {"released": AS_RELEASED,
                "p1": {"train": {"epochs": 1}, "apr": {"s_overflow": "wrap", "p_prob": 1.0}},
                "pairs": {"train": {"epochs": 1}, "apr": {"s_overflow": "wrap", "keep_clean": False}}}
    profile = ablation_profile(variants, list(variants))
    profile.cfg["seeds"] = [0, 1, 2]
    write_metrics(profile, {"released": (10.0, 30.0, 80.0, 82.0), "p1": (14.0, 28.0, 81.0, 83.0),
                            "pairs": (13.0, 31.0, 79.0, 80.0)})
    (claim,) = claims(profile, measure(profile))
    assert claim["verdict"] == "holds" and claim["low"] > 0 and claim["seeds"] == "3 vs 3"
    profile.cfg["seeds"] = [0]
    (claim,) = claims(profile, measure(profile))
    assert claim["verdict"] == "inconclusive" and "one seed" in claim["note"]


def test_runs_that_change_more_than_one_option_or_lack_a_released_run_are_refused(ablation_profile):
    two = {"apr": {"s_overflow": "wrap", "p_prob": 1.0, "keep_clean": False}}
    profile = ablation_profile({"released": AS_RELEASED, "two": two}, ["released", "two"])
    with pytest.raises(ProfileError, match="variant 'two' changes keep_clean, p_prob"):
        option_runs(profile)
    longer = {"train": {"epochs": 5}, "apr": {"s_overflow": "wrap", "p_prob": 1.0}}
    profile = ablation_profile({"released": AS_RELEASED, "longer": longer}, ["released", "longer"])
    with pytest.raises(ProfileError, match="variant 'longer' changes p_prob, train"):
        option_runs(profile)
    profile = ablation_profile({"one": {"apr": {"s_overflow": "wrap", "p_prob": 1.0}}}, ["one"])
    with pytest.raises(ProfileError, match="no run trains as released"):
        option_runs(profile)


@pytest.mark.parametrize("name", ["tiny", "default", "cifar"])
def test_shipped_ablation_runs_flip_to_the_papers_values(name):
    profile = load_profile(name)
    paper = {o.key: o.paper for o in OPTIONS}
    released, flipped = option_runs(profile)
    assert all(run_config(profile, run)["apr"][o.key] == o.released for run in released for o in OPTIONS if o.key)
    for key, runs in flipped.items():
        assert all(run_config(profile, run)["apr"][key] == paper[key] for run in runs)
    # the FFT mode is trained only where it can matter (3-channel CIFAR), not on Fashion-MNIST
    assert ("fft_mode" in flipped) == (profile["dataset"] != "fmnist")
