"""Amplitude and phase of images (paper section 3) and their recombination (Eq. 1 and Eq. 5).

For an image x with spectrum F_x = A_x * exp(i P_x) (Eq. 1), APR-P builds

    APR_P(x_i, x_j) = iDFT(A_{x_j} * exp(i P_{x_i}))            (Eq. 5)

which is `swap_amplitude(x_i, x_j)`: the phase of x_i, the amplitude of x_j.

Tensors are float images shaped (..., C, H, W). Two transforms are offered:
- "per_channel": a 2-D DFT of each channel (the paper's text);
- "channel3d":   a 3-D DFT over (C, H, W), the channel axis included (the released code).
On one-channel images the two coincide.

Band masks (Figure 4) are radial in the centred spectrum, as in the frequency helper of the paper's
reference [46]: low = radius < r_low, mid = r_low <= radius < r_high, high = radius >= r_high.
The bins a band leaves out, zero after masking, take the paper's z-hat rule (zeros become 1) so that every
frequency still carries a phase; the bins inside the band keep their values (a non-negative image's zero-frequency
phase stays 0). The phase filled in is 1 on one bin of each conjugate pair and -1 on its mirror (0 on bins that
are their own mirror), so the spectrum stays Hermitian and its inverse real.
"""
from __future__ import annotations

import math

import torch

MODES = ("per_channel", "channel3d")
BANDS = ("full", "low", "mid", "high")


def _fft_dims(x: torch.Tensor, mode: str) -> tuple[int, ...]:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not one of {MODES}")
    if not torch.is_tensor(x) or x.ndim < 3:
        raise ValueError(f"expected a tensor shaped (..., C, H, W), got {getattr(x, 'shape', type(x))}")
    return (-2, -1) if mode == "per_channel" else (-3, -2, -1)


def _as_fft_input(x: torch.Tensor) -> torch.Tensor:
    if not x.is_floating_point():
        raise ValueError(f"expected a float tensor, got dtype {x.dtype}; convert images with x.float() / 255")
    # torch.fft has no bfloat16/float16 kernels on every device: compute in float32, cast back later.
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def amplitude_phase(x: torch.Tensor, mode: str = "per_channel") -> tuple[torch.Tensor, torch.Tensor]:
    """Amplitude |F_x| and phase angle(F_x) of the DFT of `x` (Eq. 1); both shaped like `x`."""
    spectrum = torch.fft.fftn(_as_fft_input(x), dim=_fft_dims(x, mode))
    return spectrum.abs(), spectrum.angle()


def recombine(amplitude: torch.Tensor, phase: torch.Tensor, mode: str = "per_channel") -> torch.Tensor:
    """Real part of iDFT(amplitude * exp(i phase)), shaped like the inputs."""
    if amplitude.shape != phase.shape:
        raise ValueError(f"amplitude {tuple(amplitude.shape)} and phase {tuple(phase.shape)} differ in shape")
    spectrum = torch.polar(_as_fft_input(amplitude), _as_fft_input(phase))
    return torch.fft.ifftn(spectrum, dim=_fft_dims(amplitude, mode)).real


def swap_amplitude(x_phase: torch.Tensor, x_amplitude: torch.Tensor, mode: str = "per_channel") -> torch.Tensor:
    """Eq. (5): the image with the phase of `x_phase` and the amplitude of `x_amplitude`.

    Returns the real part of the inverse transform, in `x_phase`'s shape and dtype (no clamping:
    values may leave [0, 1], as in the released code).
    """
    if x_phase.shape != x_amplitude.shape:
        raise ValueError(f"x_phase {tuple(x_phase.shape)} and x_amplitude {tuple(x_amplitude.shape)} differ in shape")
    _fft_dims(x_phase, mode)
    return swap_stacked(torch.stack([_as_fft_input(x_phase), _as_fft_input(x_amplitude)]), mode).to(x_phase.dtype)


def swap_stacked(pair: torch.Tensor, mode: str = "per_channel") -> torch.Tensor:
    """`swap_amplitude(pair[0], pair[1], mode)` for a float tensor (2, ..., C, H, W): both images in one transform."""
    _fft_dims(pair, mode)
    spectrum = half_spectrum(pair, mode)
    power = _power(spectrum)
    return from_half_spectrum(_with_amplitude(spectrum[0], power[0], power[1]), mode, pair.shape[-2:])


def swap_amplitude_with_partners(x: torch.Tensor, partner: torch.Tensor, mode: str = "per_channel") -> torch.Tensor:
    """`swap_amplitude(x, x[partner], mode)` (APR-P's pairs within a batch), transforming the batch only once."""
    _fft_dims(x, mode)
    if partner.shape != (len(x),):
        raise ValueError(f"partner must hold one index per image, shape ({len(x)},), got {tuple(partner.shape)}")
    spectrum = half_spectrum(_as_fft_input(x), mode)
    power = _power(spectrum)
    recombined = _with_amplitude(spectrum, power, power.index_select(0, partner))
    return from_half_spectrum(recombined, mode, x.shape[-2:]).to(x.dtype)


# --- the fast transform behind the swaps -------------------------------------------------------------------------
#
# Both images are real, so their spectra are Hermitian and half of each (the non-negative frequencies of the last
# axis, as rfftn keeps them) determines the result. With "channel3d" on RGB images, the 3-point DFT along the
# channel axis is done first, in the real domain: it turns the channels into a = x0 + x1 + x2 (frequency 0) and the
# real and imaginary parts b, c of frequency 1 (frequency 2 is its conjugate), then 2-D real FFTs of a, b, c give
# the 3-D spectrum as R(a), R(b) + i R(c), R(b) - i R(c): rfftn over (C, H, W), at about half its cost. Sums and
# differences come before any scaling, so a gray image's colour frequencies are exactly zero, as NumPy's and torch's
# fftn give them (the released code's), and take the phase angle(0) = 0.

_SIN_60 = math.sqrt(3) / 2


def half_spectrum(x: torch.Tensor, mode: str) -> torch.Tensor:
    """The non-negative last-axis half of the DFT of real `x` (..., C, H, W) for `mode`, shaped (..., C, H, W//2+1):
    rfft2, or with "channel3d" rfftn over (C, H, W) (for RGB as above)."""
    channels = x.shape[-3]
    if mode == "per_channel" or channels == 1:
        return torch.fft.rfft2(x)
    if channels != 3:
        return torch.fft.rfftn(x, dim=(-3, -2, -1))
    # In place on one copy (fewer large temporaries): planes a, b, c from red, green, blue.
    planes = x.clone()
    a, b, c = planes.unbind(-3)
    others, difference = b + c, c - b
    b.copy_(a).sub_(others, alpha=0.5)
    a.add_(others)
    c.copy_(difference).mul_(_SIN_60)
    spectrum = torch.fft.rfft2(planes)
    real, plus, minus = spectrum.unbind(-3)  # R(a), R(b), R(c) -> R(a), R(b) + i R(c), R(b) - i R(c)
    minus.mul_(1j)
    plus.add_(minus)
    minus.mul_(-2).add_(plus)
    return spectrum


def from_half_spectrum(spectrum: torch.Tensor, mode: str, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """The real image (..., C, H, W) of a Hermitian spectrum given as `half_spectrum` lays it out. With "channel3d"
    on RGB the spectrum is overwritten (it is the swap's temporary)."""
    channels = spectrum.shape[-3]
    if mode == "per_channel" or channels == 1:
        return torch.fft.irfft2(spectrum, s=size)
    if channels != 3:
        return torch.fft.irfftn(spectrum, s=(channels, *size), dim=(-3, -2, -1))
    # The spectra of the planes a, 2b, 2c: G_0, G_1 + G_2 and (G_1 - G_2) / i
    _, plus, minus = spectrum.unbind(-3)
    plus.add_(minus)
    minus.mul_(-2).add_(plus).mul_(-1j)
    planes = torch.fft.irfft2(spectrum, s=size)
    a, b2, c2 = planes.unbind(-3)  # in place again: red, green, blue from a, 2b, 2c
    mean_others = (a - 0.5 * b2).div_(3)  # (green + blue) / 2
    c2.mul_(1 / (4 * _SIN_60))  # (blue - green) / 2
    a.add_(b2).div_(3)
    b2.copy_(mean_others).sub_(c2)
    c2.add_(mean_others)
    return planes


def _power(spectrum: torch.Tensor) -> torch.Tensor:
    """|F|^2, contiguous (cheaper than |F|: no hypot)."""
    return spectrum.real.square() + spectrum.imag.square()


def _with_amplitude(spectrum: torch.Tensor, power: torch.Tensor, amplitude_power: torch.Tensor) -> torch.Tensor:
    """The spectrum with amplitude sqrt(`amplitude_power`) and the phase of `spectrum` (whose |F|^2 is `power`,
    overwritten here: the callers' temporary).

    Computed without angles: A exp(i P) = F * A / |F|. Where |F| is zero (|F|^2 == 0) the phase is taken as 0, the
    angle of 0, and the result is A: F and |F|^2 are raised by 1 there. Written with arithmetic only, since masked
    selections over a whole spectrum cost ten times as much on a CPU.
    """
    zero = 1 - power.sign()
    scale = power.add_(zero).rsqrt_().mul_(amplitude_power.sqrt())
    return (spectrum + zero).mul_(scale)


def radial_frequency(height: int, width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Distance of each DFT bin from the zero frequency, in bins, laid out like torch.fft.fft2's output.

    Equals sqrt((i - H/2)^2 + (j - W/2)^2) of the fftshift-ed spectrum, without needing the shift.
    """
    fy = torch.fft.fftfreq(height, d=1.0 / height, device=device)
    fx = torch.fft.fftfreq(width, d=1.0 / width, device=device)
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def band_mask(height: int, width: int, band: str, radii: tuple[float, float],
              device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (H, W) mask of one frequency band, in fft2 layout. `radii` = (r_low, r_high)."""
    if band not in BANDS:
        raise ValueError(f"band={band!r} is not one of {BANDS}")
    r_low, r_high = radii
    if not 0 < r_low <= r_high:
        raise ValueError(f"radii={radii!r}: need 0 < r_low <= r_high")
    r = radial_frequency(height, width, device)
    if band == "full":
        return torch.ones_like(r, dtype=torch.bool)
    if band == "low":
        return r < r_low
    if band == "mid":
        return (r >= r_low) & (r < r_high)
    return r >= r_high


def conjugate_sign(shape: tuple[int, ...], device: torch.device | str | None = None) -> torch.Tensor:
    """+1 on one bin of each pair of conjugate DFT bins (k and -k modulo the size, over every axis of `shape`), -1 on
    the other, 0 on the bins that are their own conjugate (the zero frequency, Nyquist bins)."""
    index = torch.arange(int(torch.tensor(shape).prod()), device=device).reshape(shape)
    dims = tuple(range(len(shape)))
    mirror = torch.roll(index.flip(dims), shifts=(1,) * len(shape), dims=dims)  # the index of -k at k
    return torch.sign(mirror - index).float()


def keep_band(z: torch.Tensor, band: str, radii: tuple[float, float], phase: bool = False,
              mode: str = "per_channel") -> torch.Tensor:
    """Amplitude spectrum (or, with `phase`, phase spectrum) `z` of a `mode` DFT restricted to `band`, the bins outside
    the band filled by the z-hat rule (Figure 4's A-hat, P-hat): amplitude 1, phase +-1 (module docstring).

    The full band is returned unchanged (Figure 4's A_x and P_x carry no hat).
    """
    if band == "full":
        return z
    mask = band_mask(z.shape[-2], z.shape[-1], band, radii, device=z.device)
    if phase:
        fill = conjugate_sign(tuple(z.shape[d] for d in _fft_dims(z, mode)), z.device).to(z.dtype)
    else:
        fill = torch.ones((), dtype=z.dtype, device=z.device)
    return torch.where(mask, z, fill)


def band_recombine(x: torch.Tensor, amplitude_band: str, phase_band: str,
                   radii: tuple[float, float], mode: str = "per_channel") -> torch.Tensor:
    """Figure 4's training images: iDFT(A-hat_band * exp(i P-hat_band)) of `x` (real)."""
    amplitude, phase = amplitude_phase(x, mode)
    return recombine(keep_band(amplitude, amplitude_band, radii, mode=mode),
                     keep_band(phase, phase_band, radii, phase=True, mode=mode), mode).to(x.dtype)
