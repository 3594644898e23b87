"""Eq. (3) and Eq. (4): the four templates, and the phase they give against torch.fft.fft2 (Figure 6's claim)."""
import math

import pytest
import torch
from skimage import data
from skimage.transform import resize

from apr_lib.templates import (TEMPLATE_NAMES, angle_difference, compare_with_fft, grey, pixel_angles,
                               template_contrasts, template_phase, templates)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def photo(height: int, width: int) -> torch.Tensor:
    """scikit-image's bundled camera photo (a real image), resized, as float64 in [0, 1]."""
    return torch.from_numpy(resize(data.camera(), (height, width), anti_aliasing=True))


@pytest.mark.parametrize("shape", [(32, 32), (24, 40)], ids=["square", "non-square"])
def test_template_phase_equals_the_fft_angle_at_every_frequency(shape):
    x = photo(*shape)
    spectrum = torch.fft.fft2(x)
    assert spectrum.abs().min() > 1e-6 * x.sum()  # every coefficient has a phase
    assert angle_difference(template_phase(x), spectrum.angle()).max() < 1e-9
    check = compare_with_fft(x)
    assert check["max_error"] < 1e-9 and check["n_compared"] == x.numel() and check["n_zero"] == 0


def test_templates_split_cos_and_sin_into_nonnegative_halves():
    u, v = 3, 5
    t = templates(16, 16, u, v)
    theta = pixel_angles(16, 16, u, v)
    assert set(t) == set(TEMPLATE_NAMES) and all((t[name] >= 0).all() for name in TEMPLATE_NAMES)
    assert torch.allclose(t["R+"] - t["R-"], torch.cos(theta)) and torch.allclose(t["I+"] - t["I-"], torch.sin(theta))
    assert (t["R+"] * t["R-"] == 0).all() and (t["I+"] * t["I-"] == 0).all()  # complementary regions


def test_template_contrasts_give_the_real_and_imaginary_parts():
    x = photo(20, 20)
    for u, v in [(0, 0), (1, 0), (2, 7), (19, 3)]:
        sums = template_contrasts(x, u, v)
        coefficient = torch.fft.fft2(x)[u, v]
        assert sums["R+"] - sums["R-"] == pytest.approx(coefficient.real.item(), abs=1e-9)
        assert sums["I+"] - sums["I-"] == pytest.approx(coefficient.imag.item(), abs=1e-9)


def test_one_based_indices_as_printed_turn_each_phase():
    """The paper sums n, m = 1..N: that equals the DFT times exp(-2 pi i (u + v) / N), hence indices from 0 here."""
    x = photo(12, 12)
    u, v, n = 2, 5, 12
    one_based = (x * torch.exp(1j * pixel_angles(n, n, u, v) - 2j * math.pi * (u + v) / n)).sum()
    shifted = torch.fft.fft2(x)[u, v] * torch.exp(torch.tensor(-2j * math.pi * (u + v) / n))
    assert torch.allclose(one_based, shifted)
    assert angle_difference(one_based.angle(), torch.fft.fft2(x)[u, v].angle()) > 0.1


def test_arctan_of_the_ratio_is_off_by_pi_exactly_where_the_real_part_is_negative():
    spectrum = torch.fft.fft2(photo(16, 16))
    off = angle_difference(torch.atan(spectrum.imag / spectrum.real), spectrum.angle())
    assert torch.allclose(off[spectrum.real < 0], torch.tensor(math.pi, dtype=off.dtype))
    assert (off[spectrum.real > 0] < 1e-12).all()
    assert compare_with_fft(photo(16, 16))["share_arctan_off_by_pi"] == pytest.approx(
        (spectrum.real < 0).double().mean().item())


def test_zero_coefficients_are_counted_apart():
    x = torch.zeros(8, 8, dtype=torch.float64)
    x[:, ::2] = 1.0  # stripes: most coefficients are exactly zero
    check = compare_with_fft(x)
    assert check["n_zero"] > 0 and check["n_compared"] + check["n_zero"] == 64 and check["max_error"] < 1e-9


def test_grey_keeps_one_channel_and_takes_the_luminance_of_rgb():
    rgb = torch.rand(2, 3, 5, 6)
    expected = 0.2989 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    assert torch.allclose(grey(rgb), expected, atol=1e-3)
    assert torch.equal(grey(rgb[:, :1]), rgb[:, 0])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) with C in \(1, 3\), got \(2, 2, 5, 6\)"):
        grey(rgb[:, :2])


def test_template_phase_names_a_wrong_input():
    with pytest.raises(ValueError, match=r"grey float image shaped \(H, W\), got torch.float32 \(1, 8, 8\)"):
        template_phase(torch.rand(1, 8, 8))
