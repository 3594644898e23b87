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
    dims = _fft_dims(x_phase, mode)
    spectrum = torch.fft.rfftn(_as_fft_input(x_phase), dim=dims)
    amplitude = torch.fft.rfftn(_as_fft_input(x_amplitude), dim=dims).abs()
    return _with_amplitude(spectrum, spectrum.abs(), amplitude, x_phase, dims)


def swap_amplitude_with_partners(x: torch.Tensor, partner: torch.Tensor, mode: str = "per_channel") -> torch.Tensor:
    """`swap_amplitude(x, x[partner], mode)` (APR-P's pairs within a batch), transforming the batch only once."""
    dims = _fft_dims(x, mode)
    if partner.shape != (len(x),):
        raise ValueError(f"partner must hold one index per image, shape ({len(x)},), got {tuple(partner.shape)}")
    spectrum = torch.fft.rfftn(_as_fft_input(x), dim=dims)
    magnitude = spectrum.abs()
    return _with_amplitude(spectrum, magnitude, magnitude.index_select(0, partner), x, dims)


def _with_amplitude(spectrum: torch.Tensor, magnitude: torch.Tensor, amplitude: torch.Tensor, like: torch.Tensor,
                    dims: tuple[int, ...]) -> torch.Tensor:
    """The real image whose half spectrum (rfftn) has `amplitude` and the phase of `spectrum` (of magnitude
    `magnitude`), shaped and typed like `like`.

    Computed without angles: A exp(i P) = F * A / |F| (= A where F = 0, whose angle is 0). Both images are real, so
    the recombined spectrum is Hermitian and its inverse real: half spectra give the same image as the real part
    of the full `ifftn`, at about a third of the cost.
    """
    nonzero = magnitude > 0
    recombined = torch.where(nonzero, spectrum * (amplitude / torch.where(nonzero, magnitude, 1.0)),
                             amplitude.to(spectrum.dtype))
    return torch.fft.irfftn(recombined, s=[like.shape[d] for d in dims], dim=dims).to(like.dtype)


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
