"""Tables 1 and 4 from metrics: the mean row, the calibration appendix, relative and AlexNet-normalised CE, claims."""
import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from apr_lib.study.config import REPO_ROOT, Profile, RunSpec, metrics_file
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


def per_run_rows(archs, methods, seeds=(0,)) -> pd.DataFrame:
    rows = []
    for a, arch in enumerate(archs):
        for m, method in enumerate(methods):
            for seed in seeds:
                error = 10.0 * (m + 1) + a + seed
                rows.append({"arch": arch, "method": method, "seed": seed, "clean_error": error / 2,
                             "corruption_error": error, "clean_calibration_error": error / 4,
                             "corruption_calibration_error": error / 3})
    return pd.DataFrame(rows)


def test_table1_adds_a_mean_row_per_method_with_several_archs():
    per_run = per_run_rows(["wrn40_2", "allconv"], ["standard", "apr_sp"])
    df = table1(profile(), per_run)
    means = df[df["arch"] == "mean"].set_index("method")
    assert means.loc["Standard", "ours"] == pytest.approx((10 + 11) / 2)
    assert means.loc["APR-SP", "ours"] == pytest.approx((20 + 21) / 2)
    assert list(means["paper"]) == [29.0, 10.0]  # the paper's CIFAR-10-C mean row
    assert list(df[df["arch"] == "wrn40_2"]["paper"]) == [26.9, 9.1]
    one_arch = table1(profile(), per_run_rows(["small_cnn"], ["standard", "apr_sp"]))
    assert "mean" not in set(one_arch["arch"])


def test_calibration_appendix_averages_seeds():
    per_run = per_run_rows(["small_cnn"], ["standard", "apr_sp"], seeds=(0, 1))
    df = table1_calibration(per_run)
    assert list(df.columns) == ["arch", "method", "clean_error", "clean_calibration_error", "corruption_error",
                                "corruption_calibration_error"]
    standard = df.set_index("method").loc["Standard"]
    assert standard["corruption_error"] == pytest.approx(10.5)
    assert standard["clean_calibration_error"] == pytest.approx(10.5 / 4)
    assert standard["corruption_calibration_error"] == pytest.approx(10.5 / 3)


def test_table1_claims_apr_sp_lowest_of_all_ten():
    methods = ["apr_sp", "apr_s", "augmix", "apr_p", "mixup", "cutmix", "autoaugment", "adv", "standard", "cutout"]
    claims = {c["claim"]: c for c in table1_claims(profile(), per_run_rows(["small_cnn"], methods))}
    lowest = claims["APR-SP surpasses the other data augmentation techniques of Table 1."]
    assert lowest["verdict"] == "holds"
    assert lowest["ours"].startswith("10.0 vs 90.0 vs 100.0 vs")  # APR-SP, then the others in the paper's order
    assert claims["APR-SP (APR for single and pair images combined) improves on AugMix."]["verdict"] == "holds"
    pair = "APR-P has a lower corruption error than Mixup and CutMix (pair-based augmentations)."
    assert claims[pair]["verdict"] == "holds"
    two_methods = per_run_rows(["small_cnn"], ["standard", "apr_sp"])
    few = {c["claim"]: c["verdict"] for c in table1_claims(profile(), two_methods)}
    assert few["APR-SP surpasses the other data augmentation techniques of Table 1."] == "not run"


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


def test_table4_on_imagenet_normalises_by_alexnet_and_checks_the_claims():
    p = profile(dataset="imagenet")
    errors = measured_errors({"standard": 0.8, "apr_sp": 0.65, "cutout": 0.9})
    df = table4(p, errors).set_index(["method", "numbers"])
    assert df.loc[("Standard", "ours"), "fog"] == pytest.approx(80.0)
    assert df.loc[("APR-SP", "ours"), "mce"] == pytest.approx(65.0)
    assert df.loc[("Cutout", "paper"), "mce"] is None  # not in the paper's Table 4: a blank cell, not "nan"
    assert list(df.columns) == ["test_error", *COMMON, "mce"]  # wide, as the paper's: 15 corruptions x methods
    claims = table4_claims(p, errors)
    assert [c["verdict"] for c in claims] == ["holds", "not run", "holds"]  # no AutoAugment / AugMix runs
    assert claims[0]["ours"] == "65.0 vs 80.0" and claims[0]["paper"] == "65.0 vs 80.6"
    assert claims[2]["ours"] == "15 of 15" and claims[2]["paper"] == "14 of 15"
    assert "AlexNet on ImageNet-C, as in the paper" in table4_caption(p)
    with pytest.raises(ValueError, match="severities 1-5"):
        table4(p, measured_errors({"standard": 0.8}, severities=(1, 3)))


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
