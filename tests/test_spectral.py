"""The spectral math of section 3 and Eq. (5), as properties over random images."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from apr_lib.spectral import (MODES, amplitude_phase, band_mask, band_recombine, conjugate_sign, from_half_spectrum,
                              half_spectrum, keep_band, radial_frequency, recombine, swap_amplitude,
                              swap_amplitude_with_partners, swap_stacked)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # MKL's threads crawl on shared cores

FFT_DIMS = {"per_channel": (-2, -1), "channel3d": (-3, -2, -1)}

shapes = st.tuples(st.integers(1, 3), st.sampled_from([1, 3]), st.integers(2, 9), st.integers(2, 9))


def images(shape, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), mode=st.sampled_from(MODES))
def test_swap_with_itself_is_identity(shape, seed, mode):
    x = images(shape, seed)
    torch.testing.assert_close(swap_amplitude(x, x, mode), x)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), mode=st.sampled_from(MODES))
def test_recombined_spectrum_has_amplitude_of_one_and_phase_of_the_other(shape, seed, mode):
    a, b = images(shape, seed), images(shape, seed + 1)
    amp_a, phase_a = amplitude_phase(a, mode)
    amp_b, _ = amplitude_phase(b, mode)
    # The spectrum before the real part is taken: amplitude of b, phase of a (Eq. 5).
    spectrum = torch.polar(amp_b, phase_a)
    torch.testing.assert_close(spectrum.abs(), amp_b)
    where_defined = amp_b > 1e-9  # a zero amplitude has no phase
    angle_diff = torch.remainder(spectrum.angle() - phase_a + math.pi, 2 * math.pi) - math.pi
    assert angle_diff[where_defined].abs().max() < 1e-9
    # swap_amplitude returns exactly the real part of that spectrum's inverse transform.
    expected = torch.fft.ifftn(spectrum, dim=FFT_DIMS[mode]).real
    torch.testing.assert_close(swap_amplitude(a, b, mode), expected)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), mode=st.sampled_from(MODES))
def test_batch_of_one_equals_single_image(shape, seed, mode):
    a, b = images(shape, seed), images(shape, seed + 7)
    batch = swap_amplitude(a, b, mode)
    for i in range(shape[0]):
        torch.testing.assert_close(swap_amplitude(a[i], b[i], mode), batch[i])
        torch.testing.assert_close(swap_amplitude(a[i:i + 1], b[i:i + 1], mode), batch[i:i + 1])


def test_amplitude_phase_roundtrip_and_matches_numpy():
    x = images((2, 3, 8, 6), 0)
    for mode in MODES:
        amp, phase = amplitude_phase(x, mode)
        torch.testing.assert_close(recombine(amp, phase, mode), x)
    numpy_spectrum = torch.from_numpy(__import__("numpy").fft.fftn(x.numpy(), axes=(1, 2, 3)))
    amp, phase = amplitude_phase(x, "channel3d")
    torch.testing.assert_close(amp, numpy_spectrum.abs())


def test_modes_coincide_on_one_channel_and_differ_on_three():
    gray_a, gray_b = images((4, 1, 8, 8), 1), images((4, 1, 8, 8), 2)
    torch.testing.assert_close(swap_amplitude(gray_a, gray_b, "per_channel"), swap_amplitude(gray_a, gray_b, "channel3d"))
    rgb_a, rgb_b = images((4, 3, 8, 8), 1), images((4, 3, 8, 8), 2)
    assert not torch.allclose(swap_amplitude(rgb_a, rgb_b, "per_channel"), swap_amplitude(rgb_a, rgb_b, "channel3d"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_output_keeps_shape_and_dtype(dtype):
    a, b = torch.rand(2, 3, 8, 8).to(dtype), torch.rand(2, 3, 8, 8).to(dtype)
    out = swap_amplitude(a, b)
    assert out.shape == a.shape and out.dtype == dtype


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="mode='rgb'"):
        swap_amplitude(torch.rand(3, 4, 4), torch.rand(3, 4, 4), mode="rgb")
    with pytest.raises(ValueError, match="float tensor"):
        swap_amplitude(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="differ in shape"):
        swap_amplitude(torch.rand(3, 4, 4), torch.rand(3, 4, 5))
    with pytest.raises(ValueError, match=r"\(\.\.\., C, H, W\)"):
        swap_amplitude(torch.rand(4, 4), torch.rand(4, 4))


def test_radial_frequency_matches_centred_distance():
    # The fftshift-ed spectrum has its zero frequency at (H/2, W/2) (HFC's frequency helper).
    for h, w in ((8, 8), (7, 10)):
        shifted = torch.fft.fftshift(radial_frequency(h, w))
        i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        torch.testing.assert_close(shifted, torch.sqrt((i - h // 2) ** 2 + (j - w // 2) ** 2.0))


def test_bands_partition_the_spectrum():
    low, mid, high = (band_mask(32, 32, band, (4, 10)) for band in ("low", "mid", "high"))
    assert ((low.int() + mid.int() + high.int()) == 1).all()
    assert low[0, 0] and high[16, 16]  # zero frequency is low; the Nyquist corner is high
    assert band_mask(32, 32, "full", (4, 10)).all()
    with pytest.raises(ValueError, match="band='side'"):
        band_mask(8, 8, "side", (2, 3))
    with pytest.raises(ValueError, match="radii"):
        band_mask(8, 8, "low", (5, 3))


def test_keep_band_fills_only_the_bins_outside_the_band():
    x = images((1, 1, 16, 16), 3)
    amp, phase = amplitude_phase(x)
    mask = band_mask(16, 16, "low", (3, 6))
    low = keep_band(amp, "low", (3, 6))
    torch.testing.assert_close(low[..., mask], amp[..., mask])
    assert (low[..., ~mask] == 1).all()  # outside the band: zero, then z-hat -> 1
    low_phase = keep_band(phase, "low", (3, 6), phase=True)
    torch.testing.assert_close(low_phase[..., mask], phase[..., mask])
    assert low_phase[0, 0, 0, 0] == 0  # the zero frequency's phase of a non-negative image stays 0 (z-hat left it 1)
    assert set(low_phase[..., ~mask].abs().unique().tolist()) <= {0.0, 1.0}
    assert keep_band(phase, "full", (3, 6)) is phase


@pytest.mark.parametrize("mode, shape", [("per_channel", (2, 1, 16, 16)), ("per_channel", (1, 3, 15, 12)),
                                         ("channel3d", (2, 3, 16, 16))])
@pytest.mark.parametrize("amplitude_band, phase_band", [("low", "low"), ("full", "high"), ("mid", "low")])
def test_band_limited_spectra_stay_hermitian_so_the_image_is_real(mode, shape, amplitude_band, phase_band):
    x = images(shape, 5)
    amplitude, phase = amplitude_phase(x, mode)
    dims = (-2, -1) if mode == "per_channel" else (-3, -2, -1)
    spectrum = torch.polar(keep_band(amplitude, amplitude_band, (3, 6), mode=mode),
                           keep_band(phase, phase_band, (3, 6), phase=True, mode=mode))
    mirrored = torch.roll(spectrum.flip(dims), shifts=(1,) * len(dims), dims=dims)  # S(-k) at k
    torch.testing.assert_close(mirrored, spectrum.conj(), atol=1e-4, rtol=1e-5)
    assert torch.fft.ifftn(spectrum, dim=dims).imag.abs().max() < 1e-4


def test_conjugate_sign_pairs_each_bin_with_its_mirror():
    for shape in ((8,), (7,), (4, 6), (3, 5, 4)):
        sign = conjugate_sign(shape)
        dims = tuple(range(len(shape)))
        torch.testing.assert_close(torch.roll(sign.flip(dims), (1,) * len(shape), dims), -sign)
        assert sign.flatten()[0] == 0 and set(sign.unique().tolist()) <= {-1.0, 0.0, 1.0}


def test_band_recombine_full_is_identity_and_low_pass_smooths():
    x = images((2, 1, 16, 16), 4)
    torch.testing.assert_close(band_recombine(x, "full", "full", (3, 6)), x)
    # A low-band amplitude (z-hat elsewhere) changes the image.
    assert not torch.allclose(band_recombine(x, "low", "full", (3, 6)), x)


# --- the fast swap: half spectra, the channel transform in the real domain, no angles ---------------------------

def with_angles(x_phase, x_amplitude, mode):
    """Eq. (5) as written: the real part of iDFT(|F(x_amplitude)| exp(i angle(F(x_phase))))."""
    _, phase = amplitude_phase(x_phase, mode)
    amplitude, _ = amplitude_phase(x_amplitude, mode)
    return recombine(amplitude, phase, mode)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_half_spectrum_is_rfftn_and_from_half_spectrum_its_inverse(channels):
    x = images((4, channels, 6, 7), channels)
    torch.testing.assert_close(half_spectrum(x, "channel3d"), torch.fft.rfftn(x, dim=(-3, -2, -1)))
    torch.testing.assert_close(half_spectrum(x, "per_channel"), torch.fft.rfft2(x))
    for mode in MODES:
        torch.testing.assert_close(from_half_spectrum(half_spectrum(x, mode), mode, x.shape[-2:]), x)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(5, 3, 8, 8), (4, 1, 7, 9), (3, 3, 5, 6), (3, 4, 6, 6)])
def test_fast_swap_equals_eq5_with_angles(mode, shape):
    g = torch.Generator().manual_seed(0)
    x, other = torch.rand(shape, generator=g, dtype=torch.float64), torch.rand(shape, generator=g, dtype=torch.float64)
    x[0] = 0  # an all-zero image: every frequency has angle 0, so it takes the partner's amplitude with no phase
    torch.testing.assert_close(swap_amplitude(x, other, mode), with_angles(x, other, mode))
    torch.testing.assert_close(swap_stacked(torch.stack([x, other]), mode), swap_amplitude(x, other, mode))
    partner = torch.randperm(len(x), generator=g)
    torch.testing.assert_close(swap_amplitude_with_partners(x, partner, mode), swap_amplitude(x, x[partner], mode))
    with pytest.raises(ValueError, match=r"partner must hold one index per image, shape \(\d+,\), got \(2,\)"):
        swap_amplitude_with_partners(x, partner[:2], mode)


def test_a_gray_rgb_image_has_no_colour_frequencies_so_their_phase_is_zero():
    # Equal channels make the channel frequencies m = 1, 2 exactly zero (the channel transform works on the real
    # pixels, so no round-off appears there): their phase is angle(0) = 0 and the result takes the amplitude there
    # with phase 0, as NumPy's transform in the released APR-S gives exact zeros too.
    gray = images((1, 1, 8, 8), 5).expand(1, 3, 8, 8)
    other = images((1, 3, 8, 8), 6)
    spectrum = half_spectrum(gray, "channel3d")
    assert (spectrum[:, 1:] == 0).all()
    out_spectrum = half_spectrum(swap_amplitude(gray, other, "channel3d"), "channel3d")
    amplitude = half_spectrum(other, "channel3d").abs()
    torch.testing.assert_close(out_spectrum[:, 1:], amplitude[:, 1:].to(out_spectrum.dtype))  # real, positive


def test_fast_swap_keeps_float32_and_stays_within_round_off():
    g = torch.Generator().manual_seed(1)
    x, other = torch.rand(8, 3, 32, 32, generator=g), torch.rand(8, 3, 32, 32, generator=g)
    out = swap_amplitude(x, other, "channel3d")
    assert out.dtype == torch.float32
    assert (out - with_angles(x.double(), other.double(), "channel3d")).abs().max() < 1e-5
