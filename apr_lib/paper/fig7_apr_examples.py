"""Figure 7 (section 4): the two ways of Amplitude-Phase Recombination, APR-P (Eq. 5) and APR-S (Eq. 6), on test
images, and how far each moves an image from the original (the caption's claim, measured).

`measure` recombines `n_measure` test images with APR-P (probability 1, no clean copy) and APR-S (recombination
probability 1), with the profile's `apr` options, and the RMS pixel difference of each from its original; APR-S both
with the profile's overflow and with the other one (the released code's uint8 wrap-around, `s_overflow: wrap`, or
clipping), and the share of pixels where the two differ: those that wrap around.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch

from apr_lib.augment import APRP, APRS
from apr_lib.data import load_split
from apr_lib.paper.report import Condition, claim
from apr_lib.spectral import swap_amplitude
from apr_lib.study.config import Profile
from apr_lib.uncertainty import interval, mean_of

KEY = "fig7_apr_examples"
OTHER_OVERFLOW = {"wrap": "clip", "clip": "wrap"}


@dataclass
class Measured:
    x: torch.Tensor               # the measured test images, float (N, C, H, W) in [0, 1]
    n_examples: int               # rows of the figure: the first images of x
    seed: int
    rms_p: torch.Tensor           # (N,) RMS difference from the original: APR-P
    rms_s: dict[str, torch.Tensor]  # overflow ("wrap", "clip") -> (N,) the same for APR-S
    wrapped: float                # share of APR-S's pixels where wrap and clip differ (those that wrap around)


def _aprs(profile: Profile, swap_prob: float, seed: int, **overrides) -> APRS:
    apr = profile["apr"]
    options = dict(severity=apr["s_severity"], mode=apr["fft_mode"], distracter=apr["s_distracter"],
                   overflow=apr["s_overflow"]) | overrides
    return APRS(swap_prob=swap_prob, generator=torch.Generator().manual_seed(seed), **options)


def rms_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.clamp(0, 1) - b).pow(2).mean(dim=(1, 2, 3)).sqrt()


def test_images(profile: Profile, n: int, seed: int) -> torch.Tensor:
    test = load_split(profile["dataset"], profile["data_root"], train=False)
    pick = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed))[:n]
    return test.images[pick].float() / 255


def recombined_by_overflow(profile: Profile, x: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """APR-S (recombination probability 1) of `x` with wrap-around and with clipping: the same draws."""
    return {overflow: _aprs(profile, 1.0, seed, overflow=overflow)(x) for overflow in ("wrap", "clip")}


def wrap_share(profile: Profile, n_images: int = 1000, seed: int = 0) -> float:
    """Share of the pixels of APR-S's recombined images (the profile's options) that wrap around with the released
    uint8 conversion: where wrap and clip differ, on `n_images` test images."""
    images = recombined_by_overflow(profile, test_images(profile, n_images, seed), seed)
    return float((images["wrap"] != images["clip"]).float().mean())


def measure(profile: Profile, n_examples: int = 6, n_measure: int = 1000, seed: int = 0) -> Measured:
    x = test_images(profile, n_measure, seed)
    y = torch.zeros(len(x), dtype=torch.long)  # APR-P keeps labels; they play no part here
    aprp_all = APRP(prob=1.0, mode=profile["apr"]["fft_mode"], keep_clean=False,
                    generator=torch.Generator().manual_seed(seed))(x, y)[0]
    aprs = recombined_by_overflow(profile, x, seed)
    return Measured(x, n_examples, seed, rms_difference(aprp_all, x),
                    {overflow: rms_difference(images, x) for overflow, images in aprs.items()},
                    float((aprs["wrap"] != aprs["clip"]).float().mean()))


def summary(profile: Profile, m: Measured) -> str:
    """The measured distances in two lines."""
    own = profile["apr"]["s_overflow"]
    rms_p, rms_s = m.rms_p, m.rms_s[own]
    return (f"RMS difference from the original over {len(m.x)} images: APR-P {rms_p.mean():.2f} (sd {rms_p.std():.2f}), "
            f"APR-S {rms_s.mean():.2f} (sd {rms_s.std():.2f}); APR-S is closer for "
            f"{(rms_s < rms_p).float().mean():.0%} of the images\n"
            f"s_overflow={own!r}; pixels that wrap around with the released uint8 conversion: {m.wrapped:.1%}; APR-S "
            f"with {OTHER_OVERFLOW[own]!r}: {m.rms_s[OTHER_OVERFLOW[own]].mean():.2f}")


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
    plt.hist([m.rms_p.numpy(), m.rms_s["clip"].numpy(), m.rms_s["wrap"].numpy()], bins=40,
             label=["APR-P", "APR-S, clipped", "APR-S, released wrap"], alpha=0.7)
    plt.xlabel("RMS difference from the original"); plt.ylabel("images"); plt.legend(); plt.tight_layout()
    return fig


def claims(profile: Profile, m: Measured) -> list[dict]:
    """The caption's claim with the profile's APR-S overflow (the paper's claim) and with the other one: the released
    code's claim where that is its wrap-around, a check beyond the paper where it is clipping."""
    apr, own = profile["apr"], profile["apr"]["s_overflow"]
    text = "Images inverted by APR-S are less different from the original image than those of APR-P."
    result = []
    for overflow in (own, OTHER_OVERFLOW[own]):
        rms_s = m.rms_s[overflow]
        found = interval(mean_of((rms_s - m.rms_p).double().numpy()[None]), trained=False)
        condition = Condition(f"mean RMS pixel difference from the original over {len(m.x)} test images, APR-S - APR-P",
                              f"{rms_s.mean():.3f} vs {m.rms_p.mean():.3f}", "qualitative (shown, not measured)",
                              found, -1, digits=3)
        note = (f"{profile['dataset']}, fft_mode {apr['fft_mode']}, APR-S with s_overflow {overflow}: closer than "
                f"APR-P for {(rms_s < m.rms_p).float().mean():.0%} of the images; with the released uint8 conversion "
                f"{m.wrapped:.1%} of the pixels of recombined images wrap around; interval over the test images")
        if overflow == own:
            result.append(claim(text, "Figure 7 (caption)", "paper", [condition], note))
        else:
            kind = "released code" if overflow == "wrap" else "beyond paper"
            label = "as released, uint8 wrap-around" if overflow == "wrap" else "clipped"
            result.append(claim(f"{text[:-1]} (APR-S {label}).", "Figure 7 (caption)", kind, [condition], note))
    return result
