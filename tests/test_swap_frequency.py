"""Figures 2/3 (amplitude swaps and where predictions follow) and Figure 5 (high-frequency features, t-SNE, probe)."""
import numpy as np
import pandas as pd
import pytest
import torch

from apr_lib.ood import swapped
from apr_lib.paper.fig2_amplitude_swap import swap_claims, swap_stats_table
from apr_lib.paper.fig5_tsne import (high_frequency_amplitude, probe_accuracy, probe_claims, separability_table,
                                     tsne_embedding, with_gaussian_noise)
from apr_lib.spectral import amplitude_phase
from apr_lib.swap_analysis import PAIR_LABELS, follow_stats, random_pairs


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
    stats = follow_stats(model, low, high, "per_channel", amplitude_labels=torch.ones(20, dtype=torch.long))
    assert stats["compared"] == 20
    assert stats["follows_amplitude"] == 100 and stats["follows_phase"] == 0 and stats["neither"] == 0
    # Pairs the model cannot tell apart are left out of the shares.
    same = follow_stats(model, low, low.flip(0), "per_channel")
    assert same["compared"] == 0 and same["follows_amplitude"] == 0


def stats_table(standard_amplitude: float, apr_amplitude: float, standard_high: float, apr_high: float) -> pd.DataFrame:
    rows = []
    for model, amplitude, high in [("Standard", standard_amplitude, standard_high),
                                   ("APR-SP", apr_amplitude, apr_high)]:
        for kind, label in PAIR_LABELS.items():
            rows.append({"model": model, "pairs": label, "n_pairs": 100, "compared": 90, "follows_amplitude": amplitude,
                         "follows_phase": 100 - amplitude - 10, "neither": 10, "mean_confidence": 70,
                         "amplitude_label_high_confidence": None if kind == "ood_amplitude" else high})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("numbers, verdicts", [
    ((60, 20, 5, 1), ["holds", "holds", "holds"]),
    ((30, 40, 0, 0), ["fails", "fails", "fails"]),  # Standard follows the phase more; no high-confidence image
])
def test_swap_claims(numbers, verdicts):
    claims = swap_claims(stats_table(*numbers), "Standard", "APR-SP", "digits")
    assert [c["verdict"] for c in claims] == verdicts
    assert claims[1]["ours"] == f"{numbers[0]:.1f} vs {numbers[1]:.1f}"


def test_swap_stats_table_on_toy_models():
    images = torch.cat([patterns(10, False, 0), patterns(10, True, 1)])
    labels = torch.tensor([0] * 10 + [1] * 10)
    table = swap_stats_table({"A": AmplitudeOnly(), "B": AmplitudeOnly()}, images, labels, patterns(10, True, 2),
                             n_pairs=30, seed=0, mode="per_channel")
    assert list(table["pairs"]) == list(PAIR_LABELS.values()) * 2
    assert table["follows_amplitude"].iloc[0] == 100  # test pairs of different labels: amplitude decides
    assert table["amplitude_label_high_confidence"].iloc[2] is None  # OOD amplitude: no label


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
    assert 35 < probe_accuracy(a, b, seed=0)[0] < 65  # one distribution: chance
    assert probe_accuracy(a, b + 3, seed=0)[0] == 100  # shifted: separable
    embedded = tsne_embedding(a, b, seed=0)
    assert embedded.shape == (200, 2) and np.isfinite(embedded).all()
    table = separability_table({"same": (a, b), "shifted": (a, b + 3)}, seed=0)
    assert list(table["comparison"]) == ["same", "shifted"] and (table["chance"] == 50).all()
    claims = probe_claims(table.assign(comparison=["control", "noise"]).pipe(
        lambda t: pd.concat([t, t.iloc[[0]].assign(comparison="ood")])), "noise", "ood", "control", "made here")
    assert [c["verdict"] for c in claims] == ["holds", "holds"]
