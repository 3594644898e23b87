"""apr_lib.metrics against hand-computed cases: corruption error, ImageNet-C CE/mCE, relative CE, RMS calibration."""
import math

import numpy as np
import pytest
import torch

from apr_lib.corruptions import COMMON
from apr_lib.metrics import (ALEXNET_ERROR, calibration_percent, corruption_error, imagenet_ce, mce,
                             mean_corruption_error, relative_ce, rms_calibration_error)


def test_corruption_error_is_the_mean_over_severities_then_over_corruptions():
    errors = {"fog": {"1": 10.0, "2": 20.0}, "snow": {"1": 30.0, "2": 50.0}}
    assert corruption_error(errors) == {"fog": 15.0, "snow": 40.0}
    assert mean_corruption_error(errors) == 27.5


def test_alexnet_errors_are_augmix_s_table_in_the_order_of_the_15_corruptions():
    assert tuple(ALEXNET_ERROR) == COMMON
    assert ALEXNET_ERROR["gaussian_noise"] == 0.886428 and ALEXNET_ERROR["brightness"] == 0.564592
    assert ALEXNET_ERROR["jpeg_compression"] == 0.606500


def test_imagenet_ce_divides_summed_errors_by_alexnet_s():
    # AlexNet's own errors give CE 100 everywhere.
    alexnet = {c: {s: 100 * ALEXNET_ERROR[c] for s in range(1, 6)} for c in COMMON}
    assert imagenet_ce(alexnet) == pytest.approx({c: 100.0 for c in COMMON})
    # Gaussian noise at 40..80 %: sum 300 % over AlexNet's 5 x 88.6428 % = 67.687 %.
    errors = {**alexnet, "gaussian_noise": {"1": 40, "2": 50, "3": 60, "4": 70, "5": 80}}
    ce = imagenet_ce(errors)
    assert ce["gaussian_noise"] == pytest.approx(300 / (5 * 88.6428) * 100)
    assert ce["gaussian_noise"] == pytest.approx(67.687, abs=1e-3)
    assert mce(ce) == pytest.approx((14 * 100 + 67.6874) / 15, abs=1e-3)


def test_imagenet_ce_refuses_fewer_severities_or_corruptions():
    alexnet = {c: {s: 50.0 for s in range(1, 6)} for c in COMMON}
    with pytest.raises(ValueError, match="severities 1-5"):
        imagenet_ce({c: {1: 50.0, 3: 50.0} for c in COMMON})
    with pytest.raises(ValueError, match="all 15"):
        imagenet_ce({c: alexnet[c] for c in COMMON[:14]})


def test_relative_ce_is_the_ratio_of_summed_errors():
    reference = {"fog": {"1": 20.0, "3": 40.0}, "snow": {"1": 10.0, "3": 10.0}}
    ours = {"fog": {"1": 10.0, "3": 20.0}, "snow": {"1": 5.0, "3": 25.0}}
    assert relative_ce(ours, reference) == pytest.approx({"fog": 50.0, "snow": 150.0})
    assert relative_ce(reference, reference) == pytest.approx({"fog": 100.0, "snow": 100.0})
    with pytest.raises(ValueError, match="severities"):
        relative_ce({"fog": {"1": 10.0}}, reference)
    with pytest.raises(ValueError, match="no error on it"):
        relative_ce({"fog": {"1": 10.0}}, {"fog": {"1": 0.0}})


def _two_bins():
    """250 samples: 100 at confidence 0.6 with accuracy 0.5, then 150 at 0.9 with accuracy 0.7 (the last bin)."""
    confidence = np.r_[np.full(100, 0.6), np.full(150, 0.9)]
    correct = np.r_[np.ones(50), np.zeros(50), np.ones(105), np.zeros(45)]
    return confidence, correct


def test_rms_calibration_error_includes_the_last_bin():
    confidence, correct = _two_bins()
    # sqrt(100/250 * 0.1^2 + 150/250 * 0.2^2) = sqrt(0.028)
    assert rms_calibration_error(confidence, correct) == pytest.approx(math.sqrt(0.028))
    order = np.random.default_rng(0).permutation(len(confidence))  # the input order does not matter
    assert rms_calibration_error(confidence[order], correct[order]) == pytest.approx(math.sqrt(0.028))


def test_skip_last_bin_reproduces_hendrycks_calib_err():
    confidence, correct = _two_bins()
    # Hendrycks's loop stops before the last bin but still divides by all 250: sqrt(100/250 * 0.1^2).
    assert rms_calibration_error(confidence, correct, skip_last_bin=True) == pytest.approx(math.sqrt(0.004))
    # and agrees with a literal reading of calib_err(confidence, correct, p='2', beta=100) on random data
    rng = np.random.default_rng(1)
    confidence, correct = rng.uniform(0.1, 1, 1234), rng.uniform(size=1234) < 0.7
    order = np.argsort(confidence, kind="stable")
    c, k = confidence[order], correct[order]
    bins = [[i * 100, (i + 1) * 100] for i in range(len(c) // 100)]
    bins[-1] = [bins[-1][0], len(c)]
    total = sum((b - a) / len(c) * (c[a:b].mean() - k[a:b].mean()) ** 2 for a, b in bins[:-1])
    assert rms_calibration_error(confidence, correct, skip_last_bin=True) == pytest.approx(math.sqrt(total))
    with_last = total + (len(c) - bins[-1][0]) / len(c) * (c[bins[-1][0]:].mean() - k[bins[-1][0]:].mean()) ** 2
    assert rms_calibration_error(confidence, correct) == pytest.approx(math.sqrt(with_last))


def test_rms_calibration_error_edge_cases():
    # fewer than 100 samples: one bin; mean confidence 0.7, accuracy 0.75
    assert rms_calibration_error([0.9, 0.8, 0.6, 0.5], [1, 1, 0, 1]) == pytest.approx(0.05)
    # perfectly calibrated bins
    confidence = np.full(300, 0.7)
    correct = np.tile(np.r_[np.ones(7), np.zeros(3)], 30)
    assert rms_calibration_error(confidence, correct) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="1-D"):
        rms_calibration_error([0.5, 0.6], [1])


def test_calibration_percent_uses_the_maximum_softmax_probability():
    logits = torch.tensor([[0.0, math.log(3.0)]] * 4)  # softmax (0.25, 0.75): class 1 at confidence 0.75
    assert calibration_percent(logits, torch.tensor([1, 1, 1, 0])) == pytest.approx(0.0, abs=1e-5)  # accuracy 0.75
    assert calibration_percent(logits, torch.tensor([1, 1, 0, 0])) == pytest.approx(25.0, abs=1e-4)  # accuracy 0.5
