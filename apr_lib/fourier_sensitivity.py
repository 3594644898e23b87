"""Fourier heat map (Yin et al., NeurIPS 2019, "A Fourier perspective on model robustness"): beyond the paper.

For every frequency (u, v) of the centred H x W spectrum, each test image x gets the additive perturbation

    x + eps * r * U_{u,v}, clipped to [0, 1]

where U_{u,v} = cos(2 pi (u n / H + v m / W)) / ||.||_2 is the real Fourier basis image of unit L2 norm (the real
part of the inverse DFT of a one-hot spectrum at (u, v)) and r in {-1, +1} is a random sign per image and channel,
as in Yin et al. The heat map holds the test error (%) at each (u, v), laid out like torch.fft.fftshift: the zero
frequency at (H // 2, W // 2). U_{u,v} = U_{-u,-v}, so only one of each pair of positions is evaluated and the
other gets the same value.

The same signs serve every frequency and every model, so that differences between two models' maps come from the
models, not from the draw.
"""
from __future__ import annotations

import torch

from apr_lib.progress import tqdm
from apr_lib.spectral import radial_frequency
from apr_lib.templates import pixel_angles


def centred_radius(height: int, width: int) -> torch.Tensor:
    """Distance of each position of a centred (H, W) map from the zero frequency, in bins."""
    return torch.fft.fftshift(radial_frequency(height, width))


def fourier_basis(height: int, width: int, u: int, v: int) -> torch.Tensor:
    """U_{u,v}: the real Fourier basis image of frequency (u, v), (H, W) float32 with unit L2 norm."""
    basis = torch.cos(pixel_angles(height, width, u, v))
    return (basis / basis.norm()).float()


def random_signs(n_images: int, channels: int, seed: int) -> torch.Tensor:
    """r: one sign in {-1, +1} per image and channel, shaped (N, C, 1, 1)."""
    draw = torch.randint(0, 2, (n_images, channels, 1, 1), generator=torch.Generator().manual_seed(seed))
    return draw.float() * 2 - 1


def _one_of_each_pair(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """Positions (i, j) of the centred map with the position of (-u, -v), one entry per pair (a position at the
    zero or the Nyquist frequency is its own mirror)."""
    pairs, seen = [], set()
    for i in range(height):
        for j in range(width):
            # The frequency of index i is i - H // 2 (modulo H); -(i - H // 2) sits at index 2 (H // 2) - i.
            mirror = (2 * (height // 2) - i) % height, (2 * (width // 2) - j) % width
            if (i, j) not in seen:
                seen.update({(i, j), mirror})
                pairs.append((i, j, *mirror))
    return pairs


@torch.inference_mode()
def fourier_errors(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
                   signs: torch.Tensor, batch_size: int, desc: str = "frequencies") -> torch.Tensor:
    """Whether `model` misclassifies each of `images` (N, C, H, W floats in [0, 1]) perturbed at each frequency:
    (H, W, N) booleans, the frequencies centred; `signs` from random_signs(N, C, seed)."""
    n, channels, height, width = images.shape
    if signs.shape != (n, channels, 1, 1):
        raise ValueError(f"signs shaped {tuple(signs.shape)}; expected {(n, channels, 1, 1)} (random_signs)")
    device = next(model.parameters()).device
    wrong = torch.empty(height, width, n, dtype=torch.bool)
    for i, j, mirror_i, mirror_j in tqdm(_one_of_each_pair(height, width), desc=desc, unit="frequency", disable=None):
        u, v = i - height // 2, j - width // 2
        perturbation = eps * signs * fourier_basis(height, width, u, v)
        for start in range(0, n, batch_size):
            x = (images[start:start + batch_size] + perturbation[start:start + batch_size]).clamp(0, 1)
            logits = model(x.to(device))
            wrong[i, j, start:start + batch_size] = logits.argmax(1).cpu() != labels[start:start + batch_size]
        wrong[mirror_i, mirror_j] = wrong[i, j]
    return wrong


def fourier_heatmap(wrong: torch.Tensor) -> torch.Tensor:
    """The heat map: test error (%) at each frequency, (H, W) centred, from `fourier_errors`."""
    return 100.0 * wrong.float().mean(-1)


def band_error(heatmap: torch.Tensor, split_radius: float) -> dict[str, float]:
    """Mean error (%) of a centred heat map over its low (radius < split_radius) and high (>= split_radius)
    frequencies."""
    radius = centred_radius(*heatmap.shape)
    return {"low": float(heatmap[radius < split_radius].mean()), "high": float(heatmap[radius >= split_radius].mean())}
