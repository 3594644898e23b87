"""apr_lib.uncertainty on synthetic data with known answers: the bootstrap replicates are the statistic of explicit
resamples, the AUROC is scikit-learn's, and the 95% intervals cover a known difference about 95% of the time."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from apr_lib.uncertainty import (Estimate, auroc_of, combine, difference, image_weights, interval, mean_of,
                                 mean_over)


def resample(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The images a row of bootstrap counts draws, explicitly (the last axis of `values` holds the images)."""
    return np.repeat(values, counts.astype(int), axis=-1)


def test_image_weights_are_resamples_and_the_same_for_the_same_images():
    weights = image_weights(50)
    assert weights.shape == (1000, 50) and np.all(weights.sum(1) == 50) and np.all(weights >= 0)
    assert image_weights(50) is weights                    # one set of resamples per size: comparisons are paired
    assert not np.array_equal(image_weights(50, salt=1), weights)
    assert len({tuple(row) for row in weights[:100]}) == 100  # real resamples, not one row repeated


def test_mean_replicates_are_means_of_explicit_resamples():
    values = np.random.default_rng(0).normal(size=(3, 40))
    estimate = mean_of(values)
    np.testing.assert_allclose(estimate.point, values.mean(1))
    counts = image_weights(40)[7]
    np.testing.assert_allclose(estimate.replicates[:, 7], resample(values, counts).mean(1), rtol=1e-5)


def test_auroc_is_scikit_learns_with_ties_and_its_replicates_recompute_it_on_resamples():
    rng = np.random.default_rng(1)
    score_in = rng.integers(0, 6, (2, 30)).astype(float)  # few levels: many ties inside and across the sets
    score_out = rng.integers(0, 4, (2, 20)).astype(float)
    estimate = auroc_of(score_in, score_out, salt_in=3, salt_out=4)

    def sklearn_auroc(a, b):
        return 100 * roc_auc_score(np.r_[np.ones(len(a)), np.zeros(len(b))], np.r_[a, b])

    np.testing.assert_allclose(estimate.point, [sklearn_auroc(a, b) for a, b in zip(score_in, score_out)])
    counts_in, counts_out = image_weights(30, 3)[11], image_weights(20, 4)[11]
    expected = [sklearn_auroc(resample(a, counts_in), resample(b, counts_out)) for a, b in zip(score_in, score_out)]
    np.testing.assert_allclose(estimate.replicates[:, 11], expected, rtol=1e-6)


def simulated_coverage(seed_sd: float, experiments: int = 150, seeds: int = 3, images: int = 300) -> float:
    """Share of experiments whose interval of A - B holds the true difference 0.2: per-image values share an image
    effect (so pairing matters), each method adds its own image noise, each run a seed offset of sd `seed_sd`."""
    rng = np.random.default_rng(2)
    covered = 0
    for k in range(experiments):
        image = rng.normal(0, 1, images)
        a = 1.0 + image + rng.normal(0, 0.5, images) + rng.normal(0, seed_sd, (seeds, 1))
        b = 0.8 + image + rng.normal(0, 0.5, images) + rng.normal(0, seed_sd, (seeds, 1))
        found = difference(mean_of(a), mean_of(b), salt=k)
        assert found.seed_variation == "included"
        covered += found.low <= 0.2 <= found.high
    return covered / experiments


@pytest.mark.parametrize("seed_sd", [0.01, 0.3])
def test_intervals_cover_a_known_difference_about_95_percent_of_the_time(seed_sd):
    # 0.01: the test images dominate; 0.3: three seeds dominate, where resampling the seeds would cover ~80%.
    # With 150 experiments a true 95% gives 0.91-0.99 nineteen times in twenty.
    assert 0.90 <= simulated_coverage(seed_sd) <= 0.995


def test_a_large_difference_excludes_zero_and_no_difference_mostly_does_not():
    rng = np.random.default_rng(3)
    image = rng.normal(0, 1, 500)
    runs = lambda shift: shift + image + rng.normal(0, 0.3, (3, 500)) + rng.normal(0, 0.05, (3, 1))
    large = difference(mean_of(runs(1.0)), mean_of(runs(0.0)))
    assert large.low > 0.5 and large.high < 1.5 and large.estimate == pytest.approx(1.0, abs=0.2)
    same = [difference(mean_of(runs(0.0)), mean_of(runs(0.0)), salt=k) for k in range(40)]
    assert sum(s.low <= 0 <= s.high for s in same) >= 34


def test_pairing_over_images_narrows_the_interval():
    # The same per-image difficulty on both sides: paired resamples cancel it, so the interval is far narrower
    # than either side's own.
    rng = np.random.default_rng(4)
    image = rng.normal(0, 3, (1, 400))
    a, b = mean_of(image + 1 + rng.normal(0, 0.1, (3, 400))), mean_of(image + rng.normal(0, 0.1, (3, 400)))
    paired = difference(a, b)
    alone = interval(a)
    assert paired.high - paired.low < (alone.high - alone.low) / 5


def test_one_seed_leaves_training_variation_unknown_and_no_training_has_none():
    one = mean_of(np.random.default_rng(5).normal(size=(1, 100)))
    three = mean_of(np.random.default_rng(6).normal(size=(3, 100)))
    assert difference(one, three).seed_variation == "unknown"
    assert interval(one).seed_variation == "unknown"
    assert interval(three).seed_variation == "included"
    assert difference(three, Estimate.fixed(0.0)).seeds == (3,)
    assert interval(one, trained=False).seed_variation == "none"


def test_seed_level_widens_the_interval_by_the_spread_of_the_seeds():
    base = np.random.default_rng(7).normal(size=(1, 200)).repeat(3, 0)
    tight = interval(mean_of(base + np.array([[0.0], [0.01], [-0.01]])))
    spread = interval(mean_of(base + np.array([[0.0], [1.0], [-1.0]])))
    assert spread.high - spread.low > 3 * (tight.high - tight.low)


def test_combine_and_mean_over_work_seed_by_seed():
    a, b = mean_of(np.ones((3, 10))), mean_of(np.full((3, 10), 3.0))
    np.testing.assert_allclose(combine(np.subtract, b, a).point, [2, 2, 2])
    np.testing.assert_allclose(mean_over([a, b]).replicates, 2.0)
    with pytest.raises(ValueError, match="same seeds"):
        combine(np.subtract, a, mean_of(np.ones((2, 10))))


def test_rounding_moves_the_bounds_outwards():
    found = difference(mean_of(np.random.default_rng(8).normal(size=(3, 50))), Estimate.fixed(0.0))
    shown = found.rounded(1)
    assert shown.low <= found.low and shown.high >= found.high
    assert shown.high - shown.low < found.high - found.low + 0.2
