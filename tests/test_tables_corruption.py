"""Tables 1 and 4 from metrics: the mean row, the calibration appendix, relative and AlexNet-normalised CE, claims."""
import copy
from pathlib import Path

import pytest
import yaml

import fakes
from apr_lib.study.config import REPO_ROOT, Profile, RunSpec, metrics_file, table_runs
from apr_lib.corruptions import COMMON
from apr_lib.errors import UserError
from apr_lib.files import write_json
from apr_lib.metrics import ALEXNET_ERROR
from apr_lib.paper.table1_corruption import claims as table1_claims, measure as table1_metrics, table1, table1_calibration
from apr_lib.paper.table4_imagenet_c import claims as table4_claims, measure as table4_errors, ours_label, table4, table4_caption

TINY = yaml.safe_load((REPO_ROOT / "params" / "tiny.yaml").read_text())


def profile(**changes) -> Profile:
    cfg = copy.deepcopy(TINY)
    cfg.update(changes)
    return Profile(Path("params/tiny.yaml"), cfg)


def write_runs(p: Profile, errors: dict[str, float], archs=("small_cnn",), seeds=(0, 1), clean=None) -> Profile:
    """Clean and corruption results of each row's runs: corruption error errors[row] + arch index + seed."""
    p.cfg["seeds"] = list(seeds)
    p.cfg["tables"]["table1_corruption"] = {"archs": list(archs), "methods": list(errors)}
    for run in table_runs(p, "table1_corruption"):
        row = f"{run.method}@{run.variant}" if run.variant else run.method
        error = errors[row] + archs.index(run.arch) + run.seed
        fakes.write_clean(p, run, (clean or {}).get(row, error / 2))
        fakes.write_corruption(p, run, error)
    return p


def test_table1_adds_a_mean_row_per_method_with_several_archs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = write_runs(profile(), {"standard": 10.0, "apr_sp": 20.0}, archs=("wrn40_2", "allconv"))
    df = table1(p, table1_metrics(p))
    means = df[df["arch"] == "mean"].set_index("method")
    assert means.loc["Standard", "ours"] == pytest.approx((10 + 11) / 2 + 0.5)
    assert means.loc["APR-SP", "ours"] == pytest.approx((20 + 21) / 2 + 0.5)
    assert list(means["paper"]) == [29.0, 10.0]  # the paper's CIFAR-10-C mean row
    assert list(df[df["arch"] == "wrn40_2"]["paper"]) == [26.9, 9.1]
    assert (df["ours_low"] < df["ours"]).all() and (df["ours"] < df["ours_high"]).all() and set(df["seeds"]) == {2}
    one_arch = table1(write_runs(profile(), {"standard": 10.0, "apr_sp": 20.0}),
                      table1_metrics(write_runs(profile(), {"standard": 10.0, "apr_sp": 20.0})))
    assert "mean" not in set(one_arch["arch"])


def test_calibration_appendix_averages_seeds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = write_runs(profile(), {"standard": 10.0, "apr_sp": 20.0})
    df = table1_calibration(table1_metrics(p))
    assert list(df.columns) == ["arch", "method", "clean_error", "clean_calibration_error", "corruption_error",
                                "corruption_calibration_error"]
    standard = df.set_index("method").loc["Standard"]
    assert standard["corruption_error"] == pytest.approx(10.5)
    assert standard["clean_calibration_error"] == pytest.approx(10.5 / 2 / 4)


TEN = ["apr_sp", "apr_s", "augmix", "apr_p", "mixup", "cutmix", "autoaugment", "adv", "standard", "cutout"]


def test_table1_claims_with_two_seeds_hold_on_clear_differences(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = write_runs(profile(), {m: 10.0 * (k + 1) for k, m in enumerate(TEN)})
    claims = {c["claim"]: c for c in table1_claims(p, table1_metrics(p))}
    lowest = claims["APR-SP surpasses the other data augmentation techniques of Table 1."]
    assert lowest["verdict"] == "holds" and lowest["kind"] == "paper" and lowest["seeds"] == "2 vs 2"
    assert lowest["high"] < 0 and "conditions (all must hold)" in lowest["note"]
    assert lowest["measure"] == "mean corruption error %, APR-SP - APR-S"  # the closest: it decides the verdict
    assert claims["APR-SP (APR for single and pair images combined) improves on AugMix."]["verdict"] == "holds"
    pair = "APR-P has a lower corruption error than Mixup and CutMix (pair-based augmentations)."
    assert claims[pair]["verdict"] == "holds"  # 40 below 50 and 60
    backwards = write_runs(profile(), {m: 10.0 * (10 - k) for k, m in enumerate(TEN)})
    assert {c["claim"]: c for c in table1_claims(backwards, table1_metrics(backwards))}[pair]["verdict"] == "fails"
    few = write_runs(profile(), {"standard": 10.0, "apr_sp": 20.0})
    verdicts = {c["claim"]: c["verdict"] for c in table1_claims(few, table1_metrics(few))}
    assert verdicts["APR-SP surpasses the other data augmentation techniques of Table 1."] == "not run"


def test_one_seed_gives_no_verdict_beyond_inconclusive(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = write_runs(profile(), {"standard": 40.0, "apr_p": 10.0}, seeds=(0,))
    claim = next(c for c in table1_claims(p, table1_metrics(p)) if c["claim"].startswith("APR-P lowers"))
    assert claim["verdict"] == "inconclusive" and claim["high"] < 0 and "one seed" in claim["note"]


def test_rows_trained_as_released_get_their_own_claims(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = profile()
    p.cfg["apr"] = {**p.cfg["apr"], "s_overflow": "clip"}
    p.cfg["variants"] = {**p.cfg["variants"], "wrap": {"apr": {"s_overflow": "wrap"}}}
    p = write_runs(p, {"standard": 30.0, "apr_s": 20.0, "apr_s@wrap": 40.0})
    df = table1(p, table1_metrics(p))
    assert list(df["method"]) == ["Standard", "APR-S", "APR-S, released wrap"]
    assert list(df["paper"]) == [29.0, 12.2, 12.2]
    claims = {c["claim"]: c for c in table1_claims(p, table1_metrics(p))}
    assert claims["APR-S lowers the corruption error of standard training."]["verdict"] == "holds"
    released = claims["APR-S lowers the corruption error of standard training (APR-S released wrap)."]
    assert released["kind"] == "released code" and released["verdict"] == "fails"


def test_table1_metrics_refuses_metrics_files_without_calibration(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = profile()
    run = RunSpec("fmnist", "small_cnn", "standard", 0)
    write_json(metrics_file(p, run, "clean"), {"error": 10.0})
    write_json(metrics_file(p, run, "corruption"), {"mean_corruption_error": 20.0, "corruption_error": {}})
    with pytest.raises(UserError, match=r"clean.json has no calibration_error.*Delete it and re-run"):
        table1_metrics(p)


def measured_errors(methods: dict[str, float], corruptions=COMMON, severities=(1, 2, 3, 4, 5)) -> dict:
    """Each method's error at every cell = factor x AlexNet's error there (so its CE is 100 x factor)."""
    return {m: {"test_error": 20.0 + i, "errors": {c: {str(s): 100 * factor * ALEXNET_ERROR.get(c, 0.5)
                                                       for s in severities} for c in corruptions}}
            for i, (m, factor) in enumerate(methods.items())}


def test_table4_relative_ce_is_normalised_by_our_standard():
    p = profile()
    errors = {"standard": {"test_error": 30.0, "errors": {"gaussian_noise": {"1": 20.0, "3": 40.0},
                                                           "contrast": {"1": 10.0, "3": 10.0}}},
              "apr_sp": {"test_error": 31.0, "errors": {"gaussian_noise": {"1": 10.0, "3": 20.0},
                                                         "contrast": {"1": 5.0, "3": 25.0}}}}
    df = table4(p, errors).set_index(["method", "numbers"])  # the paper's layout: a row of ours, a row of the paper's
    assert df.loc[("APR-SP", "ours"), "gaussian_noise"] == pytest.approx(50.0)
    assert df.loc[("APR-SP", "ours"), "contrast"] == pytest.approx(150.0)
    assert df.loc[("APR-SP", "ours"), "mce"] == pytest.approx(100.0)
    assert df.loc[("Standard", "ours"), "mce"] == pytest.approx(100.0)
    assert df.loc[("APR-SP", "ours"), "test_error"] == 31.0
    assert df.loc[("APR-SP", "paper"), "gaussian_noise"] == 55 and df.loc[("APR-SP", "paper"), "mce"] == 65.0
    assert ours_label(p) == ("relative CE: normalised by our Standard model on Fashion-MNIST-C, "
                             "not AlexNet on ImageNet-C")
    with pytest.raises(UserError, match="add `standard` to tables.table1_corruption.methods"):
        table4(p, {"apr_sp": errors["apr_sp"]})


def test_table4_on_imagenet_normalises_by_alexnet():
    p = profile(dataset="imagenet")
    errors = measured_errors({"standard": 0.8, "apr_sp": 0.65, "cutout": 0.9})
    df = table4(p, errors).set_index(["method", "numbers"])
    assert df.loc[("Standard", "ours"), "fog"] == pytest.approx(80.0)
    assert df.loc[("APR-SP", "ours"), "mce"] == pytest.approx(65.0)
    assert df.loc[("Cutout", "paper"), "mce"] is None  # not in the paper's Table 4: a blank cell, not "nan"
    assert list(df.columns) == ["test_error", *COMMON, "mce"]  # wide, as the paper's: 15 corruptions x methods
    assert "AlexNet on ImageNet-C, as in the paper" in table4_caption(p)
    with pytest.raises(ValueError, match="severities 1-5"):
        table4(p, measured_errors({"standard": 0.8}, severities=(1, 3)))


def write_table4_runs(p: Profile, factors: dict[str, float], test_error: dict[str, float]) -> dict:
    """Runs of two seeds whose error on corruption c is factor x AlexNet's (rounded to the images)."""
    p.cfg["seeds"] = [0, 1]
    p.cfg["eval"] = {**p.cfg["eval"], "corruptions": list(COMMON), "severities": [1, 2, 3, 4, 5]}
    p.cfg["tables"]["table1_corruption"] = {"archs": ["small_cnn"], "methods": list(factors)}
    for run in table_runs(p, "table1_corruption"):
        fakes.write_clean(p, run, test_error[run.method])
        fakes.write_corruption(p, run, {c: 100 * factors[run.method] * ALEXNET_ERROR[c] for c in COMMON}, n=200)
    return table4_errors(p)


def test_table4_claims_on_imagenet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = profile(dataset="imagenet")
    errors = write_table4_runs(p, {"standard": 0.8, "apr_sp": 0.6}, {"standard": 24.0, "apr_sp": 24.0})
    claims = table4_claims(p, errors)
    assert [c["verdict"] for c in claims] == ["holds", "not run", "holds"]  # no AutoAugment / AugMix runs
    assert claims[0]["ours"] == "60.0 vs 80.0" and claims[0]["paper"] == "65 vs 80.6"
    assert "maintaining" not in claims[0]["measure"] and "test error %" in claims[0]["note"]
    assert "at least 13 of 15" in claims[2]["note"] and claims[2]["counted"] == "yes"


def test_table4_proxy_fails_on_test_accuracy_and_is_counted_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = profile()
    errors = write_table4_runs(p, {"standard": 0.6, "apr_sp": 0.45, "autoaugment": 0.5, "augmix": 0.55},
                               {"standard": 15.0, "apr_sp": 20.0, "autoaugment": 16.0, "augmix": 16.0})
    claims = table4_claims(p, errors)
    # a lower mCE, but 5 points of test error lost: "while maintaining test accuracy" fails the claim
    assert claims[0]["verdict"] == "fails" and claims[0]["measure"] == "test error %, APR-SP - Standard"
    assert claims[1]["verdict"] == "holds" and claims[1]["counted"].startswith("no: counted in table1_corruption")


def test_table4_errors_average_seeds_in_the_paper_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = profile(seeds=[0, 1])
    for run in [RunSpec("fmnist", "small_cnn", m, seed) for m in ("standard", "apr_sp") for seed in (0, 1)]:
        offset = 10.0 * run.seed
        write_json(metrics_file(p, run, "clean"), {"error": 5.0 + offset})
        write_json(metrics_file(p, run, "corruption"), {"errors": {"contrast": {"1": 30.0 + offset},
                                                                   "gaussian_noise": {"1": 20.0 + offset}}})
    with monkeypatch.context() as m:
        m.setitem(p.cfg["tables"]["table1_corruption"], "methods", ["standard", "apr_sp"])
        errors = table4_errors(p)
    assert errors["standard"]["test_error"] == 10.0
    assert list(errors["apr_sp"]["errors"]) == ["gaussian_noise", "contrast"]  # Table 4's order, not the JSON's
    assert errors["apr_sp"]["errors"]["contrast"] == {"1": 35.0}
