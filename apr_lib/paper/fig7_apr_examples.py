"""Figure 7 (section 4): the two ways of Amplitude-Phase Recombination, APR-P (Eq. 5) and APR-S (Eq. 6), on test
images, and how far each moves an image from the original (the caption's claim, measured).

`measure` recombines `n_measure` test images with APR-P (probability 1, no clean copy) and APR-S (recombination
probability 1), with the profile's `apr` options, and the RMS pixel difference of each from its original; APR-S also
with clipping, to show how much the released uint8 wrap-around (`s_overflow: wrap`) moves the images.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch

from apr_lib.augment import APRP, APRS
from apr_lib.data import load_split
from apr_lib.paper.report import claim
from apr_lib.spectral import swap_amplitude
from apr_lib.study.config import Profile

KEY = "fig7_apr_examples"


@dataclass
class Measured:
    x: torch.Tensor               # the measured test images, float (N, C, H, W) in [0, 1]
    n_examples: int               # rows of the figure: the first images of x
    seed: int
    rms_p: torch.Tensor           # (N,) RMS difference from the original: APR-P
    rms_s: torch.Tensor           # APR-S as the profile sets it
    rms_s_clipped: torch.Tensor   # APR-S with clipping instead of the profile's overflow
    wrapped: float                # share of APR-S's pixels that differ from clipping (those that wrap around)


def _aprs(profile: Profile, swap_prob: float, seed: int, **overrides) -> APRS:
    apr = profile["apr"]
    options = dict(severity=apr["s_severity"], mode=apr["fft_mode"], distracter=apr["s_distracter"],
                   overflow=apr["s_overflow"]) | overrides
    return APRS(swap_prob=swap_prob, generator=torch.Generator().manual_seed(seed), **options)


def rms_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.clamp(0, 1) - b).pow(2).mean(dim=(1, 2, 3)).sqrt()


def measure(profile: Profile, n_examples: int = 6, n_measure: int = 1000, seed: int = 0) -> Measured:
    test = load_split(profile["dataset"], profile["data_root"], train=False)
    pick = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed))[:n_measure]
    x, y = test.images[pick].float() / 255, test.labels[pick]
    aprp_all = APRP(prob=1.0, mode=profile["apr"]["fft_mode"], keep_clean=False,
                    generator=torch.Generator().manual_seed(seed))(x, y)[0]
    aprs_all = _aprs(profile, 1.0, seed)(x)
    aprs_clipped = _aprs(profile, 1.0, seed, overflow="clip")(x)
    return Measured(x, n_examples, seed, rms_difference(aprp_all, x), rms_difference(aprs_all, x),
                    rms_difference(aprs_clipped, x), float((aprs_all != aprs_clipped).float().mean()))


def summary(profile: Profile, m: Measured) -> str:
    """The measured distances in two lines."""
    rms_p, rms_s = m.rms_p, m.rms_s
    return (f"RMS difference from the original over {len(m.x)} images: APR-P {rms_p.mean():.2f} (sd {rms_p.std():.2f}), "
            f"APR-S {rms_s.mean():.2f} (sd {rms_s.std():.2f}); APR-S is closer for "
            f"{(rms_s < rms_p).float().mean():.0%} of the images\n"
            f"s_overflow={profile['apr']['s_overflow']!r}; pixels that wrap around: {m.wrapped:.1%}; APR-S with "
            f"clipping: {m.rms_s_clipped.mean():.2f}")


def figure(profile: Profile, m: Measured):
    """Each row: x_i, the partner x_j whose amplitude APR-P borrows, APR-P(x_i, x_j); the single-operation view S(x_i)
    and the APR-S image (recombined with probability 1, so that every row shows a recombination)."""
    rows = m.x[:m.n_examples]
    partners = torch.roll(rows, 1, dims=0)
    aprp_rows = swap_amplitude(rows, partners, profile["apr"]["fft_mode"])
    # The same generator seed gives APRS the same first operation, so S(x) below is the view APR-S recombined.
    views = _aprs(profile, 0.0, m.seed)(rows)
    aprs_rows = _aprs(profile, 1.0, m.seed)(rows)
    columns = [("$x_i$ (phase)", rows), ("$x_j$ (amplitude)", partners), ("APR-P$(x_i, x_j)$", aprp_rows),
               ("$\\mathcal{S}(x_i)$", views), ("APR-S$(x_i)$", aprs_rows)]
    fig, axes = plt.subplots(m.n_examples, len(columns), figsize=(1.6 * len(columns), 1.6 * m.n_examples),
                             squeeze=False)
    for col, (title, images) in enumerate(columns):
        axes[0, col].set_title(title, fontsize=9)
        for row in range(m.n_examples):
            image = images[row].clamp(0, 1).permute(1, 2, 0).squeeze(-1).numpy()
            axes[row, col].imshow(image, cmap="gray", vmin=0, vmax=1)
            axes[row, col].axis("off")
    fig.suptitle(f"Figure 7: APR-P and APR-S ({profile.name} profile, {profile['dataset']} test images)", fontsize=10)
    fig.tight_layout()
    return fig


def distance_histogram(m: Measured):
    fig = plt.figure(figsize=(5, 3))
    plt.hist([m.rms_p.numpy(), m.rms_s.numpy(), m.rms_s_clipped.numpy()], bins=40,
             label=["APR-P", "APR-S", "APR-S, clipped"], alpha=0.7)
    plt.xlabel("RMS difference from the original"); plt.ylabel("images"); plt.legend(); plt.tight_layout()
    return fig


def claims(profile: Profile, m: Measured) -> list[dict]:
    apr, rms_p, rms_s = profile["apr"], m.rms_p, m.rms_s
    return [claim(
        "Images inverted by APR-S are less different from the original image than those of APR-P.",
        "Figure 7 (caption)",
        f"mean RMS pixel difference from the original over {len(m.x)} test images, APR-S vs APR-P",
        f"{rms_s.mean():.3f} vs {rms_p.mean():.3f}",
        "qualitative (shown, not measured)",
        bool(rms_s.mean() < rms_p.mean()),
        f"APR-S closer for {(rms_s < rms_p).float().mean():.0%} of the images; {profile['dataset']}, fft_mode "
        f"{apr['fft_mode']}, s_overflow {apr['s_overflow']} ({m.wrapped:.1%} of pixels wrap; "
        f"{m.rms_s_clipped.mean():.3f} with clipping)",
    )]
