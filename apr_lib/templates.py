"""The DFT as four template-based contrasts (paper section 3.2, Eq. 3 and Eq. 4, Figure 6).

For a grey image x of H x W pixels and a frequency (u, v), with the angle of each pixel

    theta(n, m) = -2 pi (u n / H + v m / W)        n = 0..H-1, m = 0..W-1

the Fourier coefficient is F_x(u, v) = sum x(n, m) e^{i theta} (torch.fft.fft2's sign convention). Eq. (3)
splits cos and sin into their positive and negative parts, four templates:

    T^{R+} = max(cos theta, 0)   T^{R-} = max(-cos theta, 0)   T^{I+} = max(sin theta, 0)   T^{I-} = max(-sin theta, 0)

so that Re F = sum x T^{R+} - sum x T^{R-} and Im F = sum x T^{I+} - sum x T^{I-}: each a contrast between the
image's mass on two complementary regions. Eq. (4) writes the phase as arctan(Im / Re); `template_phase` uses
atan2(Im, Re), the full angle in (-pi, pi] that torch.angle returns (arctan of the ratio alone cannot tell
Re < 0 from Re > 0 and is off by pi there).

Two deviations from the paper's notation, both needed to equal the DFT of every FFT library: pixel indices start
at 0 (the paper sums n, m = 1..N, which turns every phase by -2 pi (u + v) / N), and non-square images divide by
H and W separately (the paper's N x N case is H = W = N).
"""
from __future__ import annotations

import math

import torch
from torchvision.transforms.v2.functional import rgb_to_grayscale

TEMPLATE_NAMES = ("R+", "R-", "I+", "I-")


def _grey_image(x: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(x) or x.ndim != 2 or not x.is_floating_point():
        raise ValueError(f"expected a grey float image shaped (H, W), got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    return x


def grey(images: torch.Tensor) -> torch.Tensor:
    """Float images (N, C, H, W), C in {1, 3}, as grey images (N, H, W) (RGB: ITU-R 601 luminance)."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images shaped (N, C, H, W) with C in (1, 3), got {tuple(images.shape)}")
    return (rgb_to_grayscale(images) if images.shape[1] == 3 else images)[:, 0]


def pixel_angles(height: int, width: int, u: torch.Tensor | int, v: torch.Tensor | int,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """theta(n, m) = -2 pi (u n / H + v m / W), shaped (*broadcast(u, v), H, W)."""
    u = torch.as_tensor(u, dtype=dtype)[..., None, None]
    v = torch.as_tensor(v, dtype=dtype)[..., None, None]
    n = torch.arange(height, dtype=dtype)[:, None]
    m = torch.arange(width, dtype=dtype)[None, :]
    return -2 * math.pi * (u * n / height + v * m / width)


def templates(height: int, width: int, u: torch.Tensor | int, v: torch.Tensor | int,
              dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """Eq. (3): the four templates T^{R+}, T^{R-}, T^{I+}, T^{I-} of frequency (u, v), each (..., H, W) >= 0."""
    theta = pixel_angles(height, width, u, v, dtype)
    cos, sin = torch.cos(theta), torch.sin(theta)
    return {"R+": cos.clamp(min=0), "R-": (-cos).clamp(min=0), "I+": sin.clamp(min=0), "I-": (-sin).clamp(min=0)}


def template_contrasts(x: torch.Tensor, u: int, v: int) -> dict[str, float]:
    """sum x * T for each template of (u, v): the four numbers Eq. (4) is built from."""
    x = _grey_image(x)
    return {name: float((x.to(t.dtype) * t).sum()) for name, t in templates(*x.shape, u, v).items()}


def template_phase(x: torch.Tensor) -> torch.Tensor:
    """Eq. (4) for every (u, v): atan2(sum x T^{I+} - sum x T^{I-}, sum x T^{R+} - sum x T^{R-}), shaped (H, W)
    like torch.fft.fft2(x), in float64.

    Computed from the templates themselves, one row u at a time (H x W x H x W numbers in all), not by an FFT.
    """
    x = _grey_image(x).to(torch.float64)
    height, width = x.shape
    phase = torch.empty(height, width, dtype=torch.float64)
    v = torch.arange(width)
    for u in range(height):
        t = templates(height, width, u, v)  # each (W, H, W): every v of this row
        real = (x * t["R+"]).sum((-2, -1)) - (x * t["R-"]).sum((-2, -1))
        imag = (x * t["I+"]).sum((-2, -1)) - (x * t["I-"]).sum((-2, -1))
        phase[u] = torch.atan2(imag, real)
    return phase


def angle_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| for angles, wrapped to [0, pi] (so pi and -pi are the same angle)."""
    return torch.remainder(a - b + math.pi, 2 * math.pi).sub(math.pi).abs()


def compare_with_fft(x: torch.Tensor) -> dict:
    """How far Eq. (4)'s template phase is from torch.fft.fft2's angle, over every (u, v) of `x`.

    A coefficient that is zero up to rounding (|F| <= 1e-9 sum |x|; sum |x| bounds every |F|) has no phase:
    both sides are then rounding noise, so such (u, v) are counted apart and left out of the maximum.
    Returns max_error (radians), n_compared, n_zero, and share_arctan_off_by_pi: the share of compared (u, v)
    with Re < 0, where arctan(Im / Re), the ratio as the paper prints it, is off by pi.
    """
    x = _grey_image(x).to(torch.float64)
    spectrum = torch.fft.fft2(x)
    defined = spectrum.abs() > 1e-9 * x.abs().sum()
    ours = template_phase(x)
    return {"max_error": float(angle_difference(ours, spectrum.angle())[defined].max()),
            "n_compared": int(defined.sum()), "n_zero": int((~defined).sum()),
            "share_arctan_off_by_pi": float((spectrum.real[defined] < 0).double().mean())}
