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
from apr_lib.augment.apr import to_uint8_levels
from apr_lib.augment.ops import OPS, apply_op, sample_level
from apr_lib.data import load_split
from apr_lib.paper.report import claim, dataset_name, figure_text
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


def aprs_views(profile: Profile, x: torch.Tensor, seed: int) -> dict[str, object]:
    """Eq. (6) drawn step by step on images x (B, C, H, W) in [0, 1]: each image's single-operation view S(x) and
    distracter view S~(x) (one AugMix op each, at the profile's `apr.s_severity`; S~ applied to S(x) where
    `apr.s_distracter` is "nested", as released, else to x), and the recombination iDFT(A_S~ exp(i P_S)) stored as
    uint8 levels with clipping and with the released wrap-around. The names of the ops are returned too, so the
    figure can say why a row barely changes (a translation keeps the amplitude spectrum)."""
    apr, generator = profile["apr"], torch.Generator().manual_seed(seed)
    width = x.shape[-1]

    def one_op(images: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
        names = [OPS[k] for k in torch.randint(len(OPS), (len(images),), generator=generator).tolist()]
        out = torch.cat([apply_op(image[None], name, sample_level(name, apr["s_severity"], 1, generator,
                                                                     image_size=width))
                         for image, name in zip(images, names)])
        return out, names

    view, view_ops = one_op(x)
    distracter, distracter_ops = one_op(view if apr["s_distracter"] == "nested" else x)
    recombined = swap_amplitude(view, distracter, apr["fft_mode"])
    return {"view": view, "view_ops": view_ops, "distracter": distracter, "distracter_ops": distracter_ops,
            "clip": to_uint8_levels(recombined, "clip"), "wrap": to_uint8_levels(recombined, "wrap")}


def figure(profile: Profile, m: Measured):
    """As the paper's Figure 7: (a) APR-P on pairs of test images, both ways (Eq. 5); (b) APR-S on one image: its view
    S(x), its distracter S~(x) and their recombination (Eq. 6), clipped, and as released (uint8 wrap-around)."""
    rows = m.x[:m.n_examples]
    partners = torch.roll(rows, 1, dims=0)
    mode = profile["apr"]["fft_mode"]
    s = aprs_views(profile, rows, m.seed)
    columns = [("$x_i$", rows, None), ("$x_j$", partners, None),
               ("APR-P$(x_i, x_j)$", swap_amplitude(rows, partners, mode), None),
               ("APR-P$(x_j, x_i)$", swap_amplitude(partners, rows, mode), None),
               ("$x$", rows, None), ("$\\mathcal{S}(x)$", s["view"], s["view_ops"]),
               ("$\\tilde{\\mathcal{S}}(x)$", s["distracter"], s["distracter_ops"]), ("APR-S$(x)$, clipped", s["clip"], None)]
    columns.append(("APR-S$(x)$ as released\n(uint8 wrap-around)", s["wrap"], None))
    fig, axes = plt.subplots(m.n_examples, len(columns), figsize=(1.75 * len(columns) + 0.4, 1.95 * m.n_examples + 0.9),
                             squeeze=False, gridspec_kw={"wspace": 0.08, "hspace": 0.35})
    for col, (title, images, ops) in enumerate(columns):
        axes[0, col].set_title(title, fontsize=10)
        for row in range(m.n_examples):
            ax = axes[row, col]
            ax.imshow(images[row].clamp(0, 1).permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]); ax.set_yticks([])
            if ops is not None:
                ax.set_xlabel(ops[row].replace("_", " "), fontsize=9, labelpad=2)
    for left, right, label in ((0, 3, "(a) APR-P: an image takes the amplitude of another (Eq. 5)"),
                               (4, len(columns) - 1, "(b) APR-S: a view takes the amplitude of a distracter view (Eq. 6)")):
        x0, x1 = axes[0, left].get_position().x0, axes[0, right].get_position().x1
        fig.text((x0 + x1) / 2, axes[0, 0].get_position().y1 + 0.55 / fig.get_figheight(), label, ha="center",
                 fontsize=11, weight="bold")
    fig.suptitle(f"Figure 7: the two ways of Amplitude-Phase Recombination on {dataset_name(profile)} test images "
                 f"({mode} DFT; nothing trained)", y=axes[0, 0].get_position().y1 + 1.0 / fig.get_figheight(),
                 fontsize=12)
    return fig


def figure_caption(profile: Profile, m: Measured) -> str:
    apr = profile["apr"]
    wrap = ("; the last column stores it as the released code does, as uint8 without clipping, so values below 0 "
            f"wrap around to white ({m.wrapped:.1%} of the pixels of recombined images)")
    closer = "less" if m.rms_s.mean() < m.rms_p.mean() else "more"
    finding = (f"APR-S as the profile sets it changes an image {closer} than APR-P (RMS pixel difference "
               f"{m.rms_s.mean():.3f} vs {m.rms_p.mean():.3f} over {len(m.x):,} test images; {m.rms_s_clipped.mean():.3f} "
               "with clipping); the paper says APR-S changes images less.")
    details = (f"Figure 7 on {dataset_name(profile)} test images (drawn at random; nothing is "
               "trained). (a) APR-P: each "
               "image keeps its phase and takes the amplitude of the next row's image, both ways (shown clipped to "
               "[0, 1]). (b) APR-S: one AugMix operation gives S(x) and a second one the distracter S~(x) (the ops are "
               f"named under the images; severity {apr['s_severity']}, distracter {apr['s_distracter']}); APR-S(x) "
               "keeps the phase of S(x) and takes the amplitude of S~(x), stored as uint8 with clipping" + wrap + ". "
               "The released APR-S takes the phase from either view at random and recombines with probability "
               f"{apr['s_swap_prob']}; a translation changes the phase only, so a row whose distracter is one shows "
               "almost no change.")
    return figure_text(finding, details)


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
