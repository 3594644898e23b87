"""Figure 6 (section 3.2): the Fourier transform as four template-based contrasts (Eq. 3 and Eq. 4).

`measure` draws one test image's templates and checks Eq. (4)'s phase from the templates against torch.fft.fft2's
at every frequency of `n_check` grey test images (apr_lib.templates).
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Patch

from apr_lib.data import ImageSet, load_split
from apr_lib.paper.report import Condition, claim, dataset_name, figure_text
from apr_lib.progress import tqdm
from apr_lib.study.config import Profile
from apr_lib.templates import TEMPLATE_NAMES, compare_with_fft, grey, template_contrasts, templates
from apr_lib.uncertainty import Interval

KEY = "fig6_templates"
LABELS = {"R+": "$x \\otimes T^{R+}$", "R-": "$x \\otimes T^{R-}$", "I+": "$x \\otimes T^{I+}$",
          "I-": "$x \\otimes T^{I-}$"}


@dataclass
class Measured:
    test: ImageSet
    image_index: int
    x: torch.Tensor                      # the drawn test image, grey, float64 (H, W)
    frequencies: list[tuple[int, int]]   # (u, v) of the figure's rows
    checked: int                         # test images compared with the FFT
    max_error: float                     # largest |Eq. (4) - angle(fft2)|, radians
    n_compared: int                      # coefficients compared
    n_zero: int                          # coefficients zero up to rounding (no phase), left out
    off_by_pi: float                     # share of compared coefficients where arctan(Im / Re) is off by pi


def measure(profile: Profile, image_index: int = 0, frequencies: list[list[int]] = ((1, 0), (1, 1), (2, 3)),
            n_check: int = 100, seed: int = 0) -> Measured:
    test = load_split(profile["dataset"], profile["data_root"], train=False)
    x = grey(test.images[image_index:image_index + 1].double() / 255)[0]
    pick = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed))[:n_check]
    checks = [compare_with_fft(image) for image in tqdm(grey(test.images[pick].double() / 255), desc="images",
                                                        disable=None)]
    n_compared, n_zero = sum(c["n_compared"] for c in checks), sum(c["n_zero"] for c in checks)
    off_by_pi = sum(c["share_arctan_off_by_pi"] * c["n_compared"] for c in checks) / n_compared
    return Measured(test, image_index, x, [tuple(f) for f in frequencies], len(checks),
                    max(c["max_error"] for c in checks), n_compared, n_zero, off_by_pi)


def figure(profile: Profile, m: Measured):
    """Row (a): the image, its log-amplitude and phase spectra (centred, colour bars; the rows' frequencies circled)
    and the image rebuilt from its phase alone. Rows (b)...: per frequency (u, v) of `m.frequencies`, the image
    weighted by each of the four templates of Eq. (3), and Eq. (4)'s phase from their sums beside the FFT's."""
    x = m.x
    spectrum = torch.fft.fft2(x)
    height, width = x.shape
    tint = torch.tensor([0.2, 0.45, 1.0], dtype=x.dtype)
    fig, axes = plt.subplots(1 + len(m.frequencies), 5, figsize=(13, 2.7 * (1 + len(m.frequencies))), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.15]})
    phase_only = torch.fft.ifft2(torch.exp(1j * spectrum.angle())).real  # Oppenheim & Lim: the phase keeps the edges
    top = [("(a) image $x$", x, "gray", None),
           ("log(1 + amplitude)", torch.fft.fftshift(spectrum.abs().log1p()), "magma", None),
           ("phase (rad)", torch.fft.fftshift(spectrum.angle()), "twilight", (-math.pi, math.pi)),
           ("rebuilt from the phase alone", phase_only, "gray", None)]
    for ax, (title, image, cmap, limits) in zip(axes[0], top):
        shown = ax.imshow(image, cmap=cmap, **({} if limits is None else dict(vmin=limits[0], vmax=limits[1])))
        ax.set_title(title)
        if cmap != "gray":
            bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
            if limits is not None:
                bar.set_ticks([-math.pi, 0, math.pi], labels=["$-\\pi$", "0", "$\\pi$"])
    for u, v in m.frequencies:  # the rows' frequencies (and their mirrors) on the centred phase
        for su, sv in ((u, v), (-u, -v)):
            axes[0, 2].add_patch(plt.Circle(((sv + width // 2) % width, (su + height // 2) % height), 1.2,
                                            fill=False, color="black", linewidth=1.5))
    for row, (u, v) in enumerate(m.frequencies, start=1):
        weighted = templates(height, width, u, v)
        sums = template_contrasts(x, u, v)
        for col, name in enumerate(TEMPLATE_NAMES):
            template = weighted[name][..., None]  # the template in blue under the weighted image in grey
            axes[row, col].imshow((x[..., None] / x.max() * template + 0.35 * template * tint).clamp(0, 1))
            axes[row, col].set_title(f"{LABELS[name]}: sum {sums[name]:.1f}")
        axes[row, 0].set_ylabel(f"({chr(ord('a') + row)}) (u, v) = ({u}, {v})", fontsize=10)
        real, imag = sums["R+"] - sums["R-"], sums["I+"] - sums["I-"]
        eq4 = torch.atan2(torch.tensor(imag), torch.tensor(real)).item()
        axes[row, 4].text(0.0, 0.5, f"(u, v) = ({u}, {v})\nRe = R+ - R- = {real:.2f}\nIm = I+ - I- = {imag:.2f}\n"
                          f"Eq. (4): {eq4:+.4f} rad\nfft2:    {spectrum[u % height, v % width].angle():+.4f} rad",
                          family="monospace", fontsize=10, va="center")
    for ax in axes.flat:
        ax.set_xticks([]); ax.set_yticks([])
    for ax in axes[1:, 4]:
        ax.axis("off")
    axes[0, 4].set_visible(False)  # the top row has four panels; its fifth column holds the rows' text below
    handles = [Patch(color=(0.2 * 0.35, 0.45 * 0.35, 0.35), label="template T > 0 (blue)"),
               Patch(color="0.8", label="x weighted by T (grey)")]
    fig.legend(handles=handles, loc="upper right", bbox_to_anchor=(0.99, 0.93), frameon=False)
    fig.suptitle(f"Figure 6: four template-based contrasts per frequency ({dataset_name(profile)} test image "
                 f"{m.image_index}, {m.test.classes[m.test.labels[m.image_index]]}; nothing trained)", fontsize=12)
    fig.tight_layout()
    return fig


def figure_caption(profile: Profile, m: Measured) -> str:
    finding = (f"Eq. (4) from the four template contrasts gives the FFT's phase to within {m.max_error:.1e} rad at "
               f"every frequency of {m.checked} test images.")
    details = (f"Figure 6 on a {dataset_name(profile)} test image (grey; nothing is trained). (a) "
               "The image, its "
               "log-amplitude and phase spectra (centred, zero frequency in the middle; the circles mark the frequencies "
               "of the rows below and their mirrors), and the image rebuilt from its phase alone (unit amplitude), "
               "which keeps its outlines. Each further row is one frequency (u, v): the image weighted by each of the "
               "four templates of Eq. (3) (the template in blue, where it is positive), and the phase that Eq. (4) forms "
               "from the four sums beside the phase torch.fft.fft2 gives (atan2, pixel indices from 0).")
    return figure_text(finding, details)


ROUND_OFF = 1e-9  # radians: float64 agreement expected of an identity over these sizes


def claims(profile: Profile, m: Measured) -> list[dict]:
    """Eq. (4) is an identity: a check of the code's math, which can fail only on a bug (no sampling, no interval)."""
    margin = (ROUND_OFF - m.max_error) * 1e9  # nano-radians below the round-off bound
    condition = Condition(
        f"round-off bound {ROUND_OFF:g} rad - largest |Eq. (4) from the templates - angle of torch.fft.fft2| over every "
        f"(u, v) of {m.checked} grey test images, float64, in nano-radians",
        f"{m.max_error:.1e} rad", "identity (Eq. 4)", Interval(margin, margin, margin, (), "none"), +1)
    return [claim(
        "The phase spectrum is the arctan of the four template-based contrasts (Eq. 4), so the templates are encoded "
        "in the phase.", "Section 3.2, Eq. (3)-(4), Figure 6", "identity", [condition],
        f"exact (no sampling): Eq. (4) with atan2 (full angle): arctan(Im / Re) alone is off by pi at {m.off_by_pi:.0%} "
        f"of the coefficients (Re < 0); pixel indices from 0 as in FFT libraries; {m.n_zero} of "
        f"{m.n_compared + m.n_zero:,} coefficients are zero up to rounding (no phase) and left out; {profile['dataset']}")]
