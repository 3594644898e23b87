"""The Fourier heat map: basis images, the symmetric half, and a toy model whose heat map is known."""
import pytest
import torch
import torch.nn as nn

from apr_lib.fourier_sensitivity import (_one_of_each_pair, band_error, centred_radius, fourier_basis, fourier_errors,
                                         fourier_heatmap, random_signs)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("u, v", [(0, 0), (1, 2), (-3, 4), (4, -4), (-4, 0)])
def test_basis_is_the_unit_norm_real_part_of_a_one_hot_spectrum(u, v):
    size = 8
    basis = fourier_basis(size, size, u, v)
    one_hot = torch.zeros(size, size, dtype=torch.complex128)
    one_hot[u % size, v % size] = 1
    expected = torch.fft.ifft2(one_hot).real
    assert basis.norm() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(basis, (expected / expected.norm()).float(), atol=1e-6)
    assert torch.allclose(basis, fourier_basis(size, size, -u, -v), atol=1e-6)  # U_{u,v} = U_{-u,-v}
    spectrum = torch.fft.fft2(basis.double()).abs()
    assert set(map(tuple, (spectrum > 1e-6).nonzero().tolist())) == {(u % size, v % size), (-u % size, -v % size)}


@pytest.mark.parametrize("height, width", [(8, 8), (5, 6), (28, 28)])
def test_the_half_plane_covers_every_position_once(height, width):
    pairs = _one_of_each_pair(height, width)
    covered = [(i, j) for i, j, _, _ in pairs] + [(a, b) for i, j, a, b in pairs if (a, b) != (i, j)]
    assert sorted(covered) == [(i, j) for i in range(height) for j in range(width)]
    for i, j, a, b in pairs:  # the mirror holds the negated frequency
        assert (i - height // 2 + a - height // 2) % height == 0 and (j - width // 2 + b - width // 2) % width == 0


def test_half_of_a_28_px_plane_is_394_positions():
    assert len(_one_of_each_pair(28, 28)) == (28 * 28 + 4) // 2  # 4 positions are their own mirror


class Detector(nn.Module):
    """Predicts class 1 when the image has a component at frequency +-(a, b), else class 0."""

    def __init__(self, size: int, a: int, b: int):
        super().__init__()
        self.project = nn.Linear(size * size, 1, bias=False)
        with torch.no_grad():
            self.project.weight.copy_(fourier_basis(size, size, a, b).flatten())

    def forward(self, x):
        score = self.project(x.flatten(1)).abs()
        return torch.cat([0.5 - score, score - 0.5], dim=1)


def test_a_detector_of_one_frequency_fails_there_and_only_there():
    size, a, b = 8, 1, -3
    images = torch.full((6, 1, size, size), 0.5)  # flat grey: no component but the zero frequency; no clipping
    wrong = fourier_errors(Detector(size, a, b), images, torch.zeros(6, dtype=torch.long), eps=1.0,
                           signs=random_signs(6, 1, seed=0), batch_size=4)
    assert wrong.shape == (size, size, 6)
    expected = torch.zeros(size, size)
    expected[a + size // 2, b + size // 2] = expected[-a + size // 2, -b + size // 2] = 100.0
    assert torch.equal(fourier_heatmap(wrong), expected)
    assert wrong[a + size // 2, b + size // 2].all() and wrong.sum() == 2 * 6  # every image, both mirror positions


def test_signs_are_reproducible_and_checked():
    signs = random_signs(50, 3, seed=1)
    assert signs.shape == (50, 3, 1, 1) and set(signs.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(signs, random_signs(50, 3, seed=1))
    with pytest.raises(ValueError, match=r"signs shaped \(50, 3, 1, 1\); expected \(4, 1, 1, 1\)"):
        fourier_errors(Detector(4, 1, 1), torch.rand(4, 1, 4, 4), torch.zeros(4, dtype=torch.long), 1.0, signs, 4)


def test_band_error_splits_the_map_by_radius():
    radius = centred_radius(8, 8)
    assert radius[4, 4] == 0 and radius[0, 0] == pytest.approx(32 ** 0.5)
    heatmap = (radius >= 2).float() * 100  # errs only from radius 2 on
    assert band_error(heatmap, 2.0) == {"low": 0.0, "high": 100.0}
