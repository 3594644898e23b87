"""Figures 2/3 (amplitude swaps and where predictions follow) and Figure 5 (high-frequency features, t-SNE, probe)."""
import numpy as np
import pytest
import torch

from apr_lib.ood import swapped
from apr_lib.paper.fig2_amplitude_swap import swap_claims, swap_stats_table
from apr_lib.paper.fig5_tsne import (high_frequency_amplitude, probe_claims, separability_table, tsne_embedding,
                                     with_gaussian_noise)
from apr_lib.spectral import amplitude_phase
from apr_lib.swap_analysis import PAIR_LABELS, follow_per_pair, follow_stats, random_pairs


class AmplitudeOnly(torch.nn.Module):
    """Logits from the amplitude spectrum alone: class 0 = more low-frequency energy, class 1 = more high-frequency."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # predict() reads the device from the parameters

    def forward(self, x):
        amplitude, _ = amplitude_phase(x - x.mean(dim=(-2, -1), keepdim=True), "per_channel")
        low, high = amplitude[..., 1:3, 1:3].sum(dim=(1, 2, 3)), amplitude[..., 10:18, 10:18].sum(dim=(1, 2, 3))
        return torch.stack([low, high], 1) / amplitude.sum(dim=(1, 2, 3), keepdim=False)[:, None] * 20


def patterns(n: int, high: bool, seed: int) -> torch.Tensor:
    """Mid-grey uint8 images (N, 1, 28, 28) of a random low- or high-frequency cosine pattern (a swap never clips)."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.arange(28.0)
    images = []
    for _ in range(n):
        f = (torch.randint(11, 14, (2,), generator=g) if high else torch.randint(1, 3, (2,), generator=g)).float()
        shift = torch.rand(2, generator=g) * 6.28
        images.append(0.5 + 0.2 * torch.cos(2 * np.pi * f[0] * grid[:, None] / 28 + shift[0])
                      * torch.cos(2 * np.pi * f[1] * grid[None, :] / 28 + shift[1]))
    return (torch.stack(images)[:, None] * 255).round().to(torch.uint8)


def test_swapped_image_with_its_own_amplitude_is_itself():
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    assert (swapped(images, images, "per_channel").int() - images.int()).abs().max() <= 1
    other = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    out = swapped(images, other, "channel3d")
    assert out.dtype == torch.uint8 and out.shape == images.shape


def test_random_pairs_with_labels_pair_different_labels():
    labels = torch.tensor([0, 0, 1, 1, 2])
    i, j = random_pairs(5, 5, 200, seed=0, first_labels=labels, second_labels=labels)
    assert len(i) == len(j) == 200 and (labels[i] != labels[j]).all()
    assert torch.equal(random_pairs(5, 5, 10, seed=3)[0], random_pairs(5, 5, 10, seed=3)[0])
    with pytest.raises(ValueError, match="same label"):
        random_pairs(2, 2, 5, seed=0, first_labels=torch.tensor([1, 1]), second_labels=torch.tensor([1, 1]))


def test_follow_stats_of_a_model_that_sees_only_the_amplitude():
    model = AmplitudeOnly()
    low, high = patterns(20, high=False, seed=0), patterns(20, high=True, seed=1)
    assert (model(low.float() / 255).argmax(1) == 0).all() and (model(high.float() / 255).argmax(1) == 1).all()
    pairs = follow_per_pair(model, low, high, "per_channel", amplitude_labels=torch.ones(20, dtype=torch.long))
    assert pairs["follows_amplitude"].all() and not pairs["follows_phase"].any()
    stats = follow_stats(pairs)
    assert stats["compared"] == 20
    assert stats["follows_amplitude"] == 100 and stats["follows_phase"] == 0 and stats["neither"] == 0
    # Pairs the model cannot tell apart are left out of the shares.
    same = follow_stats(follow_per_pair(model, low, low.flip(0), "per_channel"))
    assert same["compared"] == 0 and same["follows_amplitude"] == 0


def per_pair(amplitude: float, phase: float, high: float, seeds: int = 3, n: int = 400) -> dict:
    """Per-pair results of `seeds` models of each kind of pairs: the shares (%) of pairs that follow the amplitude,
    the phase, and get the amplitude label with high confidence, + seed (points), exactly."""
    rng = np.random.default_rng(int(amplitude * 10 + phase))
    def share(percent: float) -> np.ndarray:
        return np.stack([rng.permutation(n) < round(n * (percent + s) / 100) for s in range(seeds)])
    follows = share(amplitude)
    kinds = {"follows_amplitude": follows, "follows_phase": ~follows & share(phase * 100 / max(100 - amplitude, 1)),
             "told_apart": np.ones((seeds, n), bool), "neither": np.zeros((seeds, n), bool),
             "confidence": np.full((seeds, n), 0.7), "amplitude_label_high_confidence": share(high)}
    return {kind: kinds for kind in PAIR_LABELS}


@pytest.mark.parametrize("standard, apr, verdicts", [
    ((60, 25, 5), (20, 70, 1), ["holds", "holds", "holds"]),
    ((30, 60, 0), (40, 50, 10), ["fails", "fails", "fails"]),  # Standard follows the phase more and is rarely confident
])
def test_swap_claims(standard, apr, verdicts):
    claims = swap_claims({"Standard": per_pair(*standard), "APR-SP": per_pair(*apr)}, "Standard", "APR-SP", "photos",
                         "made up")
    assert [c["verdict"] for c in claims] == verdicts
    assert claims[1]["ours"] == f"{standard[0] + 1:.1f} vs {apr[0] + 1:.1f}"  # means over seeds 0, 1, 2


def test_swap_stats_table_averages_the_seeds():
    table = swap_stats_table({"A": per_pair(60, 25, 5), "B": per_pair(20, 70, 1)})
    assert list(table["pairs"]) == list(PAIR_LABELS.values()) * 2 and set(table["seeds"]) == {3}
    assert table["follows_amplitude"].iloc[0] == pytest.approx(61)


def test_high_frequency_features():
    flat = torch.full((2, 3, 16, 16), 100, dtype=torch.uint8)
    features = high_frequency_amplitude(flat, radius=4)
    radius = np.sqrt(np.fft.fftfreq(16, 1 / 16)[:, None] ** 2 + np.fft.fftfreq(16, 1 / 16)[None, :] ** 2)
    assert features.shape == (2, 3 * (radius >= 4).sum())
    assert np.allclose(features, 0)  # a flat image has no energy away from frequency 0
    noisy = with_gaussian_noise(flat, 3, seed=0)
    assert noisy.shape == flat.shape and noisy.dtype == torch.uint8 and high_frequency_amplitude(noisy, 4).mean() > 0.5


def test_probe_and_tsne():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (100, 20)), rng.normal(0, 1, (100, 20))
    table, correct = separability_table({"same": (a, b), "shifted": (a, b + 3), "control": (a, rng.normal(0, 1, (100, 20)))},
                                        seed=0)
    accuracy = table.set_index("comparison")["probe_accuracy"]
    assert 35 < accuracy["same"] < 65 and accuracy["shifted"] == 100  # one distribution: chance; shifted: separable
    assert correct["shifted"].shape == (2, 100) and correct["shifted"].all()
    assert (table["probe_low"] <= table["probe_accuracy"]).all() and (table["chance"] == 50).all()
    embedded = tsne_embedding(a, b, seed=0)
    assert embedded.shape == (200, 2) and np.isfinite(embedded).all()
    claims = probe_claims(correct, "shifted", "same", "control", "made here", 100)
    # (a) far above the control: holds; (b) a claim of no difference can fail but never hold
    assert [c["verdict"] for c in claims] == ["holds", "inconclusive"]
    assert claims[0]["low"] > 0 and claims[1]["low"] <= 0 <= claims[1]["high"]
    shifted_as_ood = probe_claims(correct, "shifted", "shifted", "control", "made here", 100)
    assert shifted_as_ood[1]["verdict"] == "fails"
