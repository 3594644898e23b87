"""The metrics of Tables 1 and 4: corruption error, ImageNet-C's CE and mCE, and RMS calibration error.

Errors are in % throughout. `errors` arguments map corruption -> {severity: error %}, the layout of the
`errors` entry of a `corruption` metrics file (severities as ints or as the JSON's strings).

- Corruption error of a corruption: its mean error over the severities; the mean corruption error is the mean
  of those over corruptions (Table 1; AugMix's `test_c` reports 100 - mean accuracy over the same cells).
- ImageNet-C (Table 4; Hendrycks & Dietterich 2019): CE_c = sum_s E_{c,s} / sum_s E^AlexNet_{c,s}, in %;
  mCE = mean of the 15 CE_c.
- Relative CE (Table 4 on a profile without ImageNet-C): the same ratio with our own Standard model in place of
  AlexNet.
- RMS calibration error (Hendrycks et al.): the test samples sorted by confidence (maximum softmax probability)
  fill equal-count bins of 100; RMS = sqrt(sum_b n_b / N * (mean confidence_b - accuracy_b)^2). The last bin
  takes the remainder (100 to 199 samples), and a set of fewer than 100 samples is one bin.
  hendrycks/outlier-exposure's `calib_err` loops over `range(len(bins) - 1)` and so leaves the last bin out
  (of the sum, not of N); that is `skip_last_bin=True`, kept only to compare with numbers computed that way.
  The default includes every sample.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from apr_lib.corruptions import COMMON

SEVERITIES = (1, 2, 3, 4, 5)
CALIBRATION_BIN_SIZE = 100
CALIBRATION_DEFINITION = ("RMS calibration error (%) of the maximum softmax probability: equal-count bins of 100 "
                          "samples sorted by confidence, the last bin holding the remainder and included")

# AlexNet's ImageNet-C error (fraction) per corruption, the mean over severities 1-5, in the order of
# corruptions.COMMON. Source: google-research/augmix imagenet.py, ALEXNET_ERR (Hendrycks & Dietterich 2019).
ALEXNET_ERROR = dict(zip(COMMON, (
    0.886428, 0.894468, 0.922640,            # gaussian, shot, impulse noise
    0.819880, 0.826268, 0.785948, 0.798360,  # defocus, glass, motion, zoom blur
    0.866816, 0.826572, 0.819324,            # snow, frost, fog
    0.564592, 0.853204, 0.646056, 0.717840, 0.606500,  # brightness, contrast, elastic, pixelate, jpeg
)))

Errors = Mapping[str, Mapping[int | str, float]]


def corruption_error(errors: Errors) -> dict[str, float]:
    """Per corruption: the mean error over its severities."""
    return {name: float(np.mean(list(by_severity.values()))) for name, by_severity in errors.items()}


def mean_corruption_error(errors: Errors) -> float:
    """The mean over corruptions of each corruption's mean error over severities."""
    return float(np.mean(list(corruption_error(errors).values())))


def _by_int_severity(errors: Errors) -> dict[str, dict[int, float]]:
    return {name: {int(s): e for s, e in by_severity.items()} for name, by_severity in errors.items()}


def imagenet_ce(errors: Errors) -> dict[str, float]:
    """CE_c (%) normalised by AlexNet, for the 15 ImageNet-C corruptions at all 5 severities."""
    errors = _by_int_severity(errors)
    if set(errors) != set(COMMON) or any(set(e) != set(SEVERITIES) for e in errors.values()):
        raise ValueError("CE normalised by AlexNet needs the errors of all 15 ImageNet-C corruptions at severities "
                         f"1-5 (AlexNet's errors are means over those), got {sorted(errors)} with severities "
                         f"{sorted({s for e in errors.values() for s in e})}")
    # AlexNet's per-severity errors are known only as their mean, so sum_s E^AlexNet_{c,s} = 5 x that mean.
    return {name: sum(errors[name].values()) / (len(SEVERITIES) * 100 * ALEXNET_ERROR[name]) * 100 for name in COMMON}


def relative_ce(errors: Errors, reference: Errors) -> dict[str, float]:
    """Per corruption: 100 x sum over severities of `errors` / the same sum of `reference` (e.g. our Standard)."""
    errors, reference = _by_int_severity(errors), _by_int_severity(reference)
    out = {}
    for name, by_severity in errors.items():
        if name not in reference or set(reference[name]) != set(by_severity):
            raise ValueError(f"relative CE of {name}: the reference has severities "
                             f"{sorted(reference.get(name, {}))}, the model {sorted(by_severity)}; they must match")
        if sum(reference[name].values()) == 0:
            raise ValueError(f"relative CE of {name}: the reference model makes no error on it, nothing to divide by")
        out[name] = 100 * sum(by_severity.values()) / sum(reference[name].values())
    return out


def mce(ce: Mapping[str, float]) -> float:
    """The mean of the per-corruption CEs."""
    return float(np.mean(list(ce.values())))


def rms_calibration_error(confidence, correct, bin_size: int = CALIBRATION_BIN_SIZE,
                          skip_last_bin: bool = False) -> float:
    """RMS calibration error (a fraction, like Hendrycks's `calib_err(..., p='2', beta=100)`).

    `confidence`: the predicted class's probability per sample; `correct`: whether that prediction was right.
    Bins and the last bin: see the module docstring.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if confidence.shape != correct.shape or confidence.ndim != 1 or len(confidence) == 0:
        raise ValueError(f"confidence and correct must be 1-D of one non-zero length, got shapes "
                         f"{confidence.shape} and {correct.shape}")
    order = np.argsort(confidence, kind="stable")
    confidence, correct = confidence[order], correct[order]
    n = len(confidence)
    starts = np.arange(0, max(n // bin_size, 1)) * bin_size
    ends = np.append(starts[1:], n)
    if skip_last_bin:
        starts, ends = starts[:-1], ends[:-1]
    squared = sum((end - start) / n * (confidence[start:end].mean() - correct[start:end].mean()) ** 2
                  for start, end in zip(starts, ends))
    return float(np.sqrt(squared))


def calibration_percent(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """RMS calibration error (%) of a model's logits (N, K) on labels (N,), confidence = max softmax probability."""
    confidence, prediction = logits.float().softmax(dim=1).max(dim=1)
    return 100 * rms_calibration_error(confidence.numpy(), (prediction == labels).numpy())
