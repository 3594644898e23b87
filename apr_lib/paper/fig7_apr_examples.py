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
from apr_lib.augment.apr import to_uint8_levels
from apr_lib.augment.ops import OPS, apply_op, sample_level
from apr_lib.data import load_split
from apr_lib.paper.report import Condition, claim, dataset_name, figure_text
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
    own = apr["s_overflow"]
    rms_s, other = m.rms_s[own], OTHER_OVERFLOW[own]
    closer = "less" if rms_s.mean() < m.rms_p.mean() else "more"
    finding = (f"APR-S as the profile sets it ({own}) changes an image {closer} than APR-P (RMS pixel difference "
               f"{rms_s.mean():.3f} vs {m.rms_p.mean():.3f} over {len(m.x):,} test images; {m.rms_s[other].mean():.3f} "
               f"with {other}); the paper says APR-S changes images less.")
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
