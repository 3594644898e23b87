"""The interactive amplitude-phase explorer (paper Figures 2 to 4): pure functions, then the ipywidgets app.

An image x keeps its phase P_x while its amplitude moves from its own (t = 0) to another image y's (t = 1):

    x_t = iDFT( keep_band((1 - t) A_x + t A_y, amplitude_band) * exp(i keep_band(P_x, phase_band)) )

With full bands and t = 1 this is Eq. (5), `swap_amplitude(x, y)`; restricting amplitude and phase to the
low / mid / high bands with the z-hat rule gives Figure 4's images. Beside it the app shows each image's phase-only
and amplitude-only reconstruction, the swap in both directions, and each model's confidence in its top classes
against t (one batched forward pass over the t grid).

Everything above `class Explorer` is pure (tensors or bytes in, tensors, text or bytes out) and unit-tested without
a browser; `Explorer` builds the widgets and wires them to those functions. What depends only on the images, the
FFT mode and the bands (spectra, swaps, the confidence curves) is computed when they change, so a slider move
costs one recombination, one forward pass per model, three small PNGs and an SVG string.
"""
from __future__ import annotations

import html
import io
import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from apr_lib.data import DATASETS, load_split
from apr_lib.errors import UserError
from apr_lib.models import BandRecombinedInput, config_bands
from apr_lib.ood import OODSet, ood_sets
from apr_lib.paper.fig4_amp_phase_grid import KEY as FIG4
from apr_lib.paper.report import DATASET_NAMES
from apr_lib.paper.weights import train_command, trained_dir
from apr_lib.runs import load_run
from apr_lib.spectral import BANDS, MODES, amplitude_phase, keep_band, recombine
from apr_lib.study.config import Profile, RunSpec, run_config, table_runs
from apr_lib.study.sections import section
from apr_lib.study.targets import model_runs as section_model_runs

# scikit-image's bundled photos (no download needed), offered beside the dataset's test images.
PHOTOS = ("camera", "astronaut", "chelsea", "coffee", "rocket", "coins", "clock", "brick", "horse")
MODELS = {"standard": "Standard", "apr_sp": "APR-SP"}  # method -> label, the two models compared
DISPLAY_PIXELS = 140  # images are enlarged by a whole factor to about this many pixels, without smoothing
CURVE_POINTS = 21  # t values of the confidence curves: the slider's steps of 0.05
TOP = 3  # classes listed per prediction and drawn per curve
# Uploads travel to the kernel in one websocket message, and a Jupyter server (tornado) drops any message over
# 10 MiB without a word to either side; a limit below it lets the app refuse a larger file itself.
MAX_UPLOAD_BYTES = 8 * 2**20
MAX_PIXELS = 25_000_000  # decoding more takes seconds and hundreds of MB for an image shrunk to 28 x 28 pixels
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000")  # Okabe-Ito


# ---- spectra and the recombination ----

@dataclass(frozen=True)
class Spectrum:
    amplitude: torch.Tensor  # (C, H, W)
    phase: torch.Tensor


def spectrum(image: torch.Tensor, mode: str) -> Spectrum:
    return Spectrum(*amplitude_phase(image, mode))


def mix(own: Spectrum, other: Spectrum, amount: float | torch.Tensor, mode: str, amplitude_band: str = "full",
        phase_band: str = "full", radii: tuple[float, float] | None = None) -> tuple[torch.Tensor, Spectrum]:
    """The image with `own`'s phase and the amplitude (1 - amount) A_own + amount A_other, each kept to its band
    (`radii` = (r_low, r_high) in DFT bins, needed unless both bands are full).

    `amount` is a number, or a 1-D tensor of T numbers for a batch (T, C, H, W) of images in one transform.
    Returns the image(s) (real part, not clipped) and the amplitude and phase they were built from.
    """
    amounts = torch.as_tensor(amount, dtype=own.amplitude.dtype)
    if amounts.ndim > 1 or not bool(((amounts >= 0) & (amounts <= 1)).all()):
        raise ValueError(f"amount={amount!r}: the amplitude moves from the image's own (0) to the other's (1)")
    if radii is None and (amplitude_band, phase_band) != ("full", "full"):
        raise ValueError(f"bands {amplitude_band!r} / {phase_band!r} need radii=(r_low, r_high) in DFT bins")
    weight = amounts.reshape(-1, *[1] * own.amplitude.ndim) if amounts.ndim else amounts
    amplitude = keep_band(torch.lerp(own.amplitude, other.amplitude, weight), amplitude_band, radii, mode=mode)
    phase = keep_band(own.phase, phase_band, radii, phase=True, mode=mode).expand_as(amplitude)
    return recombine(amplitude, phase, mode), Spectrum(amplitude, phase)


def swaps(x: Spectrum, y: Spectrum, mode: str, amplitude_band: str = "full", phase_band: str = "full",
          radii: tuple[float, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (5) both ways: (x's phase with y's amplitude, y's phase with x's amplitude), within the bands."""
    return (mix(x, y, 1.0, mode, amplitude_band, phase_band, radii)[0],
            mix(y, x, 1.0, mode, amplitude_band, phase_band, radii)[0])


def phase_only(s: Spectrum, mode: str) -> torch.Tensor:
    """The image rebuilt from its phase alone: every frequency given the mean amplitude (so pixel values keep a
    comparable scale). It keeps edges and shape, and centres on zero (the zero frequency loses the mean)."""
    return recombine(torch.full_like(s.amplitude, s.amplitude.mean().item()), s.phase, mode)


def amplitude_only(s: Spectrum, mode: str) -> torch.Tensor:
    """The image rebuilt from its amplitude alone (zero phase): a blob symmetric about pixel (0, 0)."""
    return recombine(s.amplitude, torch.zeros_like(s.phase), mode)


# ---- what is shown ----

def _centred(z: torch.Tensor) -> torch.Tensor:
    return torch.fft.fftshift(z, dim=(-2, -1))  # zero frequency in the middle, as spectra are usually drawn


def log_amplitude_view(amplitude: torch.Tensor) -> torch.Tensor:
    """log(1 + A), centred and scaled to [0, 1] per channel (the amplitude spans decades)."""
    view = _centred(amplitude).log1p()
    low = view.amin(dim=(-2, -1), keepdim=True)
    high = view.amax(dim=(-2, -1), keepdim=True)
    return (view - low) / (high - low).clamp_min(1e-12)


def phase_view(phase: torch.Tensor) -> torch.Tensor:
    """The phase, centred, from [-pi, pi] to [0, 1]."""
    return (_centred(phase) + math.pi) / (2 * math.pi)


def rescale(image: torch.Tensor, centred: bool) -> tuple[torch.Tensor, str]:
    """An image of any range mapped onto [0, 1] for display, per panel (all channels alike), and how, for the caption.

    min-max (centred=False): black = its minimum, white = its maximum. Centred (for images that centre on zero, such
    as those rebuilt without the low amplitude band): grey = 0, black and white = -/+ its largest magnitude, so the
    sign stays readable. Clipping to [0, 1] instead would show such an image mostly black.
    """
    if centred:
        bound = image.abs().max().clamp_min(1e-12)
        return 0.5 + image / (2 * bound), f"rescaled: grey 0, white +{bound.item():.2g}"
    low, high = image.min(), image.max()
    return (image - low) / (high - low).clamp_min(1e-12), f"rescaled: black {low.item():.2g}, white {high.item():.2g}"


def band_view(image: torch.Tensor, amplitude_band: str, phase_band: str) -> tuple[torch.Tensor, str]:
    """How a recombined image is shown, and the caption's note. From whole spectra it lies mostly in [0, 1] and is
    clipped there, as the whole-spectrum models see it; with a band left out it is rescaled (`rescale`), centred when
    the amplitude band drops the zero frequency (mid, high): the image then centres on zero."""
    if (amplitude_band, phase_band) == ("full", "full"):
        return image.clamp(0, 1), "clipped to [0, 1], as the models see it"
    return rescale(image, centred=amplitude_band in ("mid", "high"))


def amplitude_only_view(image: torch.Tensor, decades: int = 3) -> tuple[torch.Tensor, str]:
    """An amplitude-only image, centred on pixel (0, 0) and log-scaled with its sign, sign(v) log(1 + |v| / s) with s
    `decades` decades below the peak: its peak (the mean amplitude) would otherwise leave the rest black."""
    view = _centred(image)
    scale = view.abs().max().clamp_min(1e-12) * 10.0**-decades
    shown, _ = rescale(view.sign() * (view.abs() / scale).log1p(), centred=True)
    return shown, f"log-scaled ({decades} decades), grey 0"


def png(image: torch.Tensor, scale: int = 1) -> bytes:
    """PNG of a (C, H, W) image in [0, 1] (clipped; 1 channel grey, 3 RGB), enlarged `scale` times without smoothing."""
    pixels = (image.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    out = io.BytesIO()
    picture.save(out, format="PNG", compress_level=1)  # fast beats small for a few KB sent to the browser
    return out.getvalue()


def display_scale(size: int) -> int:
    return max(1, round(DISPLAY_PIXELS / size))


# ---- predictions ----

@dataclass(frozen=True)
class Predictor:
    """A model and how it sees an image: clipped to [0, 1] (a whole-spectrum model, trained on images in [0, 1]),
    or as it is (Figure 4's band models, trained on band images that centre on zero and are not clipped)."""
    label: str
    model: torch.nn.Module
    clip: bool = True


@torch.inference_mode()
def probabilities(predictor: Predictor, images: torch.Tensor) -> torch.Tensor:
    """Softmax confidences (B, K) of a batch (B, C, H, W), or (K,) of one image (C, H, W)."""
    batch = images if images.ndim == 4 else images[None]
    batch = batch.clamp(0, 1) if predictor.clip else batch
    result = predictor.model(batch.float()).softmax(dim=1)
    return result if images.ndim == 4 else result[0]


def top_classes(confidences: torch.Tensor, classes: Sequence[str], k: int = TOP) -> list[tuple[str, float]]:
    """The k most probable classes of one image's confidences (K,), most probable first."""
    top = confidences.topk(min(k, len(classes)))
    return [(classes[i], p) for p, i in zip(top.values.tolist(), top.indices.tolist())]


def confidence_curves(own: Spectrum, other: Spectrum, predictors: Sequence[Predictor], mode: str,
                      ts: torch.Tensor, amplitude_band: str = "full", phase_band: str = "full",
                      radii: tuple[float, float] | None = None) -> dict[str, torch.Tensor]:
    """Each model's confidences (T, K) on x_t for every t in `ts`: one batched forward pass per model."""
    images = mix(own, other, ts, mode, amplitude_band, phase_band, radii)[0]
    return {p.label: probabilities(p, images) for p in predictors}


def model_runs(profile: Profile) -> dict[str, RunSpec]:
    """Figure 2's Standard and APR-SP runs (the profile's first Table 1 architecture and first seed), whose weights
    the DAG publishes (apr_lib.paper.weights)."""
    return section_model_runs(profile, section("fig2_amplitude_swap"))


def trained_model(profile: Profile, run: RunSpec) -> torch.nn.Module | None:
    """The trained model of `run` on the CPU (one image at a time: the CPU is quickest), None before it is trained.

    The explorer's one place that finds a run's weights: runs/ if trained here, else the published copy
    (apr_lib.paper.weights, which refuses a copy that does not match the manifest's checksums).
    """
    folder = trained_dir(profile, run)
    return None if folder is None else load_run(folder, device="cpu")[0]


def _select(profile: Profile) -> str:
    """snakemake's option choosing the profile (none for the default)."""
    return "" if profile.name == "default" else f" --config profile={profile.name}"


def how_to_train(profile: Profile, missing: list[RunSpec]) -> str:
    """The sentence shown when runs are missing: which, and the command that trains just them."""
    names = " and ".join(MODELS[run.method] for run in missing)
    return (f"No trained {names} model of the profile {profile.name!r} yet, so no predictions are shown. "
            f"Train {'it' if len(missing) == 1 else 'them'} with `{train_command(profile, missing)}` "
            f"(or the whole profile with `snakemake --cores 4 all{_select(profile)}`), then re-run this notebook.")


def band_runs(profile: Profile) -> dict[tuple[str, str], tuple[RunSpec, tuple[float, float]]]:
    """Figure 4's band-limited runs of the profile (its fig4_amp_phase_grid table, first seed of each cell) by
    (amplitude band, phase band), with the band radii each was trained with."""
    if FIG4 not in profile["tables"]:
        return {}
    runs = {}
    for run in table_runs(profile, FIG4):
        config = run_config(profile, run)
        if (bands := config_bands(config)) != ("full", "full"):
            runs.setdefault(bands, (run, tuple(config["bands"]["radii"])))
    return runs


class ModelShelf:
    """The trained models the explorer predicts with: the profile's Standard and APR-SP models (loaded at once) and
    Figure 4's band models (each loaded when its bands are first chosen)."""

    def __init__(self, profile: Profile):
        self.profile = profile
        self.full: dict[str, torch.nn.Module] = {}
        missing = []
        for method, run in model_runs(profile).items():
            if (model := trained_model(profile, run)) is None:
                missing.append(run)
            else:
                self.full[MODELS[method]] = model
        self.hint = how_to_train(profile, missing) if missing else ""
        self.band_runs = band_runs(profile)
        self._band_models: dict[RunSpec, torch.nn.Module | None] = {}

    def predictors(self, amplitude_band: str, phase_band: str, radii: tuple[float, float], mode: str,
                   channels: int) -> tuple[list[Predictor], str]:
        """Who predicts on images of these bands, and a note saying why (empty for whole spectra).

        Figure 4's model of the two bands when the profile has trained it with these radii and the same transform
        (its input is a per-channel DFT; one channel makes both modes alike); otherwise the whole-spectrum models.
        """
        whole = [Predictor(label, model) for label, model in self.full.items()]
        if (amplitude_band, phase_band) == ("full", "full"):
            return whole, ""
        bands = f"amplitude band {amplitude_band} with phase band {phase_band}"
        if (amplitude_band, phase_band) not in self.band_runs:
            reason = f"The profile's Figure 4 runs ({FIG4}) do not include {bands}"
        else:
            run, trained_radii = self.band_runs[amplitude_band, phase_band]
            if run not in self._band_models:
                self._band_models[run] = trained_model(self.profile, run)
            model = self._band_models[run]
            if model is None:
                reason = f"Figure 4's model for {bands} is not trained yet (`{train_command(self.profile, [run])}`)"
            elif tuple(radii) != trained_radii:
                reason = (f"Figure 4's model for {bands} was trained with band radii {trained_radii[0]:g}, "
                          f"{trained_radii[1]:g}: set them for its predictions")
            elif mode != "per_channel" and channels > 1:
                reason = f"Figure 4's model for {bands} was trained on per-channel DFTs: choose per_channel"
            else:
                assert isinstance(model, BandRecombinedInput)  # build_run_model puts it first for band runs
                label = f"Fig. 4 model (A {amplitude_band}, P {phase_band})"
                return [Predictor(label, model.model, clip=False)], (
                    f"Predictions of Figure 4's model trained on such images (run {run.name}); like in its training it "
                    "sees each band image as it is, unclipped (for x and y: their own band images, t = 0).")
        if not whole:
            return [], reason + "."
        return whole, (reason + "; the whole-spectrum models predict instead, on the band images clipped to [0, 1]: "
                       "images unlike any they were trained on.")


def predictions_html(rows: dict[str, dict[str, list[tuple[str, float]]]]) -> str:
    """A table: one row per image, one column per model, each cell its top classes with confidences."""
    columns = list(next(iter(rows.values())))
    cell = "padding:1px 8px;vertical-align:top;white-space:nowrap;text-align:left"
    head = "".join(f"<th style='{cell}'>{html.escape(c)}</th>" for c in columns)
    body = ""
    for image, cells in rows.items():
        tds = "".join(f"<td style='{cell}'>" + "<br>".join(
            f"{'<b>' if rank == 0 else ''}{html.escape(name)} {p:.1%}{'</b>' if rank == 0 else ''}"
            for rank, (name, p) in enumerate(cells[c])) + "</td>" for c in columns)
        body += f"<tr style='border-top:1px solid #ddd'><th style='{cell}'>{html.escape(image)}</th>{tds}</tr>"
    # The widget's own line height (28 px) would spread the rows apart.
    return (f"<table style='line-height:1.35;font-size:12px'><tr><th style='{cell}'>top {TOP} classes</th>{head}</tr>"
            f"{body}</table>")


def curve_svg(ts: Sequence[float], curves: dict[str, torch.Tensor], classes: Sequence[str], t_now: float,
              notes: dict[int, str] | None = None, k: int = TOP) -> str:
    """One small line plot per model (SVG): the confidence of its k classes most confident at some t, against t,
    with the current t as a dashed line and each class's confidence there in the legend.

    A class keeps its colour in every panel. `notes` adds a remark to a class's legend entry, e.g. "x's class".
    """
    notes = notes or {}
    width, height, left, top, bottom, line = 250, 120, 40, 24, 36, 16  # plot area and margins, px
    shown = {label: c.amax(dim=0).topk(min(k, c.shape[1])).indices.tolist() for label, c in curves.items()}
    order = list(dict.fromkeys(i for indices in shown.values() for i in indices))
    colour = {i: PALETTE[n % len(PALETTE)] for n, i in enumerate(order)}
    panel_width, panel_height = left + width + 24, top + height + bottom + line * k
    parts = []
    for n, (label, confidences) in enumerate(curves.items()):
        x0 = n * panel_width

        def x(t: float) -> float:
            return x0 + left + t * width

        def y(p: float) -> float:
            return top + (1 - p) * height

        parts.append(f"<text x='{x0 + left}' y='14'><tspan font-weight='bold'>{html.escape(label)}</tspan>: "
                     "confidence against t</text>"
                     f"<rect x='{x(0)}' y='{top}' width='{width}' height='{height}' fill='none' stroke='#999'/>")
        for v in (0, 0.5, 1):
            parts.append(f"<line x1='{x(0)}' x2='{x(1)}' y1='{y(v)}' y2='{y(v)}' stroke='#ddd'/>"
                         f"<text x='{x(0) - 4}' y='{y(v) + 4}' text-anchor='end'>{v:g}</text>"
                         f"<text x='{x(v)}' y='{top + height + 14}' text-anchor='middle'>{v:g}</text>")
        parts.append(f"<text x='{x(0.5)}' y='{top + height + 29}' text-anchor='middle'>t: x's amplitude → y's</text>"
                     f"<text transform='translate({x0 + 11},{y(0.5)}) rotate(-90)' text-anchor='middle'>"
                     "confidence</text>")
        for rank, index in enumerate(shown[label]):
            values = confidences[:, index].tolist()
            points = " ".join(f"{x(t):.1f},{y(p):.1f}" for t, p in zip(ts, values))
            parts.append(f"<polyline points='{points}' fill='none' stroke='{colour[index]}' stroke-width='2'/>")
            row = top + height + bottom + line * rank + 10
            now = float(np.interp(t_now, ts, values))
            parts.append(f"<line x1='{x(0)}' x2='{x(0) + 18}' y1='{row - 4}' y2='{row - 4}' stroke='{colour[index]}' "
                         f"stroke-width='3'/><text x='{x(0) + 24}' y='{row}'>{html.escape(classes[index])}"
                         f"{html.escape(notes.get(index, ''))}: {now:.0%}</text>")
        parts.append(f"<line class='apr-t-marker' data-t='{t_now:.2f}' x1='{x(t_now):.1f}' x2='{x(t_now):.1f}' "
                     f"y1='{top}' y2='{top + height}' stroke='#222' stroke-dasharray='4 3'/>")
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{panel_width * len(curves)}' height='{panel_height}' "
            f"font-family='sans-serif' font-size='12'>{''.join(parts)}</svg>")


# ---- image sources: test images, OOD sets, scikit-image's photos, uploads ----

def fit_to_dataset(picture: Image.Image, channels: int, size: int) -> torch.Tensor:
    """A PIL image as the dataset's images are: centre-cropped square, size x size, 1 (grey) or 3 (RGB) channels.

    Returns a float (C, H, W) tensor in [0, 1].
    """
    picture = ImageOps.exif_transpose(picture).convert("L" if channels == 1 else "RGB")
    picture = ImageOps.fit(picture, (size, size), Image.Resampling.LANCZOS)
    pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255)
    return pixels[None] if channels == 1 else pixels.permute(2, 0, 1).contiguous()


def photo(name: str, channels: int, size: int) -> torch.Tensor:
    """One of scikit-image's bundled photos (skimage.data.<name>), fitted to the dataset."""
    import skimage.data  # imported here: it loads every bundled photo's reader, and only the photos need it

    pixels = getattr(skimage.data, name)()
    if pixels.dtype == bool:  # the horse is a silhouette
        pixels = pixels.astype(np.uint8) * 255
    return fit_to_dataset(Image.fromarray(pixels), channels, size)


def upload_limits(channels: int, size: int) -> str:
    """The limits an upload must keep, as stated beside the upload buttons before anything is uploaded."""
    return (f"Uploads: one image file (PNG, JPEG, GIF, BMP, TIFF, WebP) of at most {MAX_UPLOAD_BYTES // 2**20} MB "
            f"and {MAX_PIXELS // 10**6} megapixels (a larger JPEG is read at a reduced size), centre-cropped to "
            f"{size} x {size} {'grey' if channels == 1 else 'RGB'}. A file over 10 MB cannot reach the app: nothing happens then.")


def decode_upload(data: bytes, name: str, channels: int, size: int) -> torch.Tensor:
    """An uploaded file's bytes, decoded with PIL and fitted to the dataset.

    UserError, naming the file and the fix, for a file over MAX_UPLOAD_BYTES, one that is no image or is truncated,
    and an image over MAX_PIXELS (a JPEG is first decoded at 1/2, 1/4 or 1/8 of its size where that suffices)
    or over PIL's decompression-bomb limit.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise UserError(f"{name} is {len(data) / 2**20:.1f} MB, over the {MAX_UPLOAD_BYTES // 2**20} MB upload limit; "
                        f"upload a smaller file (it is shrunk to {size} x {size} pixels anyway)")
    try:
        with warnings.catch_warnings():  # PIL warns above 89 megapixels; the stricter MAX_PIXELS refuses them below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data))
        picture.draft("L" if channels == 1 else "RGB", (4 * size, 4 * size))  # JPEG only: decode at a reduced scale
        if picture.width * picture.height > MAX_PIXELS:
            raise UserError(f"{name} is {picture.width:,} x {picture.height:,} pixels, over the {MAX_PIXELS // 10**6} "
                            "megapixel upload limit; shrink it first (it is shrunk to "
                            f"{size} x {size} pixels anyway)")
        picture.load()
        return fit_to_dataset(picture, channels, size)
    except UserError:
        raise
    except Image.DecompressionBombError as e:  # raised by Image.open above twice PIL's pixel limit
        raise UserError(f"{name} is refused as a possible decompression bomb ({e}); upload an image of at most "
                        f"{MAX_PIXELS // 10**6} megapixels") from None
    # A malformed file fails in PIL's decoders in many ways (UnidentifiedImageError and "truncated" are OSErrors;
    # ValueError, SyntaxError, ...): each is answered in the app, never only in the kernel's log.
    except Exception as e:
        reason = "" if isinstance(e, UnidentifiedImageError) else f" ({e})"
        raise UserError(f"{name} is not an image PIL can read{reason}; upload a PNG, JPEG, GIF, BMP, TIFF or WebP "
                        "file") from None


class ImageLibrary:
    """The images to choose from, in collections: "test" (the profile's test images), "ood:<set>" (each of the
    profile's OOD sets, made on first use exactly as the pipeline makes them), "photo" (scikit-image's photos) and
    "upload". One image's key: "test:<i>", "ood:<set>:<i>", "photo:<name>", "upload:<file name>".

    Without the dataset on disk it offers the photos and says how to get the dataset.
    """

    def __init__(self, profile: Profile):
        self.profile = profile
        self.dataset = DATASETS[profile["dataset"]]
        self.dataset_name = DATASET_NAMES.get(profile["dataset"], profile["dataset"])
        self.images: dict[str, torch.Tensor] = {}
        self.uploads: list[str] = []  # upload keys, in upload order
        self.ood: dict[str, OODSet] = {}
        self.notice = ""
        try:
            self.test = load_split(profile["dataset"], profile["data_root"], train=False)
        except UserError as e:
            self.test = None
            self.notice = (f"The {profile['dataset']} images are not on disk ({str(e).splitlines()[0]}), so only "
                           f"scikit-image's photos are offered. Get the dataset with `apr data prepare --profile "
                           f"{profile.name}` (or `snakemake --cores 4 all`), then re-run this notebook.")

    @property
    def classes(self) -> list[str]:
        if self.test is not None:
            return list(self.test.classes)
        return list(self.dataset.classes or map(str, range(self.dataset.num_classes)))  # CIFAR-100's live in its files

    def collections(self) -> list[tuple[str, str]]:
        """(label, collection) pairs for a Dropdown; OOD sets need the test images (corollary2 is built from them)."""
        offered = []
        if self.test is not None:
            offered.append((f"{self.dataset_name} test set", "test"))
            offered += [(f"OOD set: {name}", f"ood:{name}") for name in self.profile["ood"]["sets"]]
        offered.append(("scikit-image photos", "photo"))
        if self.uploads:
            offered.append(("uploads", "upload"))
        return offered

    def _ood_set(self, name: str) -> OODSet:
        if name not in self.ood:  # the pipeline's own function, for this one set (blobs take a few seconds)
            cfg = {**self.profile.cfg, "ood": {**self.profile["ood"], "sets": [name]}}
            self.ood[name] = ood_sets(cfg, self.test.images)[name]
        return self.ood[name]

    def count(self, collection: str) -> int:
        """How many images a collection holds (making an OOD set on first use; UserError if a real set is missing)."""
        if collection == "test" and self.test is not None:
            return len(self.test.labels)
        if collection.startswith("ood:") and self.test is not None and collection[4:] in self.profile["ood"]["sets"]:
            return len(self._ood_set(collection[4:]).images)
        if collection == "photo":
            return len(PHOTOS)
        if collection == "upload":
            return len(self.uploads)
        raise UserError(f"no collection {collection!r}: choose one of {', '.join(c for _, c in self.collections())}")

    def key(self, collection: str, index: int) -> str:
        if not 0 <= index < self.count(collection):
            raise UserError(f"{collection} has {self.count(collection):,} images, so there is no image #{index}")
        if collection == "photo":
            return f"photo:{PHOTOS[index]}"
        if collection == "upload":
            return self.uploads[index]
        return f"{collection}:{index}"

    def locate(self, key: str) -> tuple[str, int]:
        """(collection, index) of a key; UserError naming the forms a key takes if it names no image."""
        source, _, name = key.rpartition(":") if key.startswith("ood:") else key.partition(":")
        if key in self.uploads:
            return "upload", self.uploads.index(key)
        if source == "photo" and name in PHOTOS:
            return "photo", PHOTOS.index(name)
        if source in {c for _, c in self.collections()} and name.isdigit() and int(name) < self.count(source):
            return source, int(name)
        offered = "; ".join(f"{c}: {self.count(c)} images" for _, c in self.collections() if not c.startswith("ood:"))
        raise UserError(f"no image {key!r}: a key is test:<i>, ood:<set>:<i> (sets: "
                        f"{', '.join(self.profile['ood']['sets'])}), photo:<name> ({', '.join(PHOTOS)}) or "
                        f"upload:<file name>; here {offered}"
                        + ("" if self.test is not None else " (the dataset is not on disk)"))

    def get(self, key: str) -> torch.Tensor:
        """The image of a key, float (C, H, W) in [0, 1]."""
        if key not in self.images:
            collection, index = self.locate(key)
            if collection == "test":
                self.images[key] = self.test.images[index].float() / 255
            elif collection == "photo":
                self.images[key] = photo(PHOTOS[index], self.dataset.channels, self.dataset.size)
            else:
                self.images[key] = self._ood_set(collection[4:]).images[index].float() / 255
        return self.images[key]

    def true_class(self, key: str) -> int | None:
        """The class index of a test image, None for any other."""
        return int(self.test.labels[self.locate(key)[1]]) if key.startswith("test:") else None

    def short_name(self, key: str) -> str:
        """A few words naming the image: a test image's class, else where it comes from."""
        collection, index = self.locate(key)
        if collection == "test":
            return self.classes[self.true_class(key)]
        return f"OOD {collection[4:]} #{index}" if collection.startswith("ood:") else key.replace(":", " ", 1)

    def describe(self, key: str) -> str:
        """One line saying what the image is: its class, its OOD set's origin, or its file."""
        collection, index = self.locate(key)
        if collection == "test":
            return f"test image #{index} of {self.count('test'):,}: {self.classes[self.true_class(key)]}"
        if collection.startswith("ood:"):
            return f"{collection[4:]} #{index}: {self._ood_set(collection[4:]).source}"
        return key.replace(":", ": ", 1)

    def add_upload(self, name: str, data: bytes) -> str:
        """Decode and add an uploaded file; its key is new even when the name is not (caches are keyed by it)."""
        key, copies = f"upload:{name}", 1
        while key in self.images:
            copies += 1
            key = f"upload:{name} ({copies})"
        self.images[key] = decode_upload(data, name, self.dataset.channels, self.dataset.size)
        self.uploads.append(key)
        return key

    def resolve(self, key: str, fallback: str) -> str:
        """`key` if it can be shown, else `fallback` (a photo): a test or OOD image asked for without the dataset."""
        return key if key.startswith(("photo:", "upload:")) or self.test is not None else fallback


def out_of_distribution_note(library: ImageLibrary, keys: dict[str, str]) -> str:
    """A warning naming the chosen images (role -> key) that are not the dataset's own, or "" if there are none."""
    foreign = [role for role, key in keys.items() if not key.startswith("test:")]
    if not foreign:
        return ""
    what = " and ".join(foreign)
    one = len(foreign) == 1
    return (f"Out of distribution: {what} {'is not a' if one else 'are not'} {library.dataset_name} "
            f"image{'' if one else 's'}. The models know only its {len(library.classes)} classes "
            f"({', '.join(library.classes[:3])}, ...) and name one of them all the same, so a high confidence here is "
            "no recognition (Table 2 measures how well confidence tells such images apart).")


# ---- the widgets ----

@contextmanager
def one_thread():
    """Torch on one thread meanwhile: for one small image more threads only add waiting. On a busy 2-core machine,
    two threads stalled slider updates for up to 2 s; one thread kept them under 0.1 s (ResNet-18, 32 px)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# The image panels: (name, title), row by row; x's and y's rows, then the recombination's.
PANELS = [(f"{v}{part}", title.format(v=v)) for v in "xy" for part, title in [
    ("", "{v}"), ("_amplitude", "log amplitude of {v}"), ("_phase", "phase of {v}"),
    ("_phase_only", "{v}'s phase only"), ("_amplitude_only", "{v}'s amplitude only")]] + [
    ("mix", "x_t"), ("mix_amplitude", "amplitude used"), ("mix_phase", "phase used"),
    ("swap_xy", "x's phase + y's amplitude"), ("swap_yx", "y's phase + x's amplitude")]


@dataclass
class Picker:
    """One image's controls: a collection, an index in it, an upload button, and a line saying what it is."""
    role: str  # "x" or "y"
    collection: Any  # ipywidgets' Dropdown, BoundedIntText, FileUpload, HTML (imported by Explorer, not here)
    index: Any
    upload: Any
    description: Any


class Explorer:
    """The app: for each of the two images a collection (test set, OOD sets, photos, uploads), an index and an upload
    button; FFT mode, the amplitude slider, bands and radii; live views of both images (spectra, phase-only and
    amplitude-only reconstructions), the recombined image, both swaps; the models' top-3 predictions and
    confidence curves against t.

    Show it with `display(Explorer(profile).widget)`. CSS classes (apr-explorer, apr-amount, apr-recombined,
    apr-predictions, apr-curve, apr-upload-message, apr-notes, apr-status) name the parts a browser test drives.
    """

    def __init__(self, profile: Profile, phase_image: str = "test:13", amplitude_image: str = "test:2",
                 amount: float = 1.0, fft_mode: str | None = None, amplitude_band: str = "full",
                 phase_band: str = "full", radii: tuple[int, int] | None = None):
        import ipywidgets as w  # imported here: the [explorer] extra; the pure functions above work without it

        self.library = ImageLibrary(profile)
        self.shelf = ModelShelf(profile)
        size, channels = self.library.dataset.size, self.library.dataset.channels
        self.classes = self.library.classes
        self.scale = display_scale(size)
        self.ts = torch.linspace(0, 1, CURVE_POINTS, dtype=torch.float64)
        self._spectra: dict[tuple[str, str], Spectrum] = {}
        self._quiet = False  # set while the app itself changes a picker, so that its handlers stay still
        keys = [self.library.resolve(phase_image, "photo:camera"), self.library.resolve(amplitude_image, "photo:astronaut")]
        places = [self.library.locate(key) for key in keys]  # fails here, naming the key, for an unknown image

        def picker(role: str, place: tuple[str, int]) -> Picker:
            collection = w.Dropdown(options=self.library.collections(), value=place[0], layout=w.Layout(width="190px"))
            index = w.BoundedIntText(value=place[1], min=0, max=self.library.count(place[0]) - 1,
                                     layout=w.Layout(width="80px"))
            upload = w.FileUpload(accept="image/*", multiple=False, description="upload", layout=w.Layout(width="110px"))
            return Picker(role, collection, index, upload, w.HTML())

        self.pickers = [picker(role, place) for role, place in zip("xy", places)]
        self.mode = w.ToggleButtons(options=MODES, value=fft_mode or profile["apr"]["fft_mode"],
                                    tooltips=["2-D DFT of each channel (the paper's text)",
                                              "3-D DFT over channels too (the released code)"],
                                    style={"button_width": "100px"})
        self.amount = w.FloatSlider(value=amount, min=0, max=1, step=1 / (CURVE_POINTS - 1), readout_format=".2f")
        self.amount.add_class("apr-amount")
        self.amplitude_band, self.phase_band = (w.ToggleButtons(options=BANDS, value=band, style={"button_width": "56px"})
                                                for band in (amplitude_band, phase_band))
        max_radius = math.ceil(math.hypot(size / 2, size / 2))
        self.radii = w.IntRangeSlider(value=tuple(radii or profile["bands"]["radii"]), min=1, max=max_radius)

        self.views = {name: w.Image(format="png", width=size * self.scale, height=size * self.scale)
                      for name, _ in PANELS}
        self.views["mix"].add_class("apr-recombined")
        self.titles = dict(PANELS)
        self.captions = {name: w.HTML() for name, _ in PANELS}
        grid = w.GridBox([w.VBox([self.captions[name], self.views[name]]) for name, _ in PANELS],
                         layout=w.Layout(grid_template_columns="repeat(5, max-content)", grid_gap="4px 10px"))
        self.predictions, self.curve, self.upload_message, self.notes, self.status = (w.HTML() for _ in range(5))
        for part, css in ((self.predictions, "apr-predictions"), (self.curve, "apr-curve"),
                          (self.upload_message, "apr-upload-message"), (self.notes, "apr-notes"),
                          (self.status, "apr-status")):
            part.add_class(css)
        hint = "t = 0: x's own amplitude; t = 1: y's (Eq. 5)"
        if channels == 1:
            hint += ". One channel: both FFT modes give the same spectra"

        def small(text: str) -> w.HTML:
            return w.HTML(f"<div style='line-height:1.35;font-size:smaller'>{text}</div>")

        def row(label, *children):  # a label of fixed width, so the controls line up
            return w.HBox([w.Label(label, layout=w.Layout(width="120px")), *children])

        sources = []
        for p, title in zip(self.pickers, ("phase image x", "amplitude image y")):
            sources += [w.HTML(f"<b>{title}</b>"), w.HBox([p.collection, p.index, p.upload]), p.description]
        controls = w.VBox([*sources, small(html.escape(upload_limits(channels, size))), self.upload_message,
                           row("FFT mode", self.mode), row("amplitude t", self.amount), small(hint),
                           row("amplitude band", self.amplitude_band), row("phase band", self.phase_band),
                           row("band radii", self.radii), self.notes, self.status],
                          layout=w.Layout(width="440px"))
        results = w.HBox([self.predictions, self.curve], layout=w.Layout(align_items="flex-start", grid_gap="24px"))
        self.widget = w.VBox([w.HBox([controls, grid], layout=w.Layout(align_items="flex-start", grid_gap="20px")),
                              results])
        self.widget.add_class("apr-explorer")

        for p in self.pickers:
            p.collection.observe(lambda change, p=p: self._on_collection(p, change["old"]), "value")
            p.index.observe(self._on_sources, "value")
            p.upload.observe(lambda change, p=p: self._on_upload(change, p), "value")
        self.mode.observe(self._on_sources, "value")
        for control in (self.amplitude_band, self.phase_band, self.radii):
            control.observe(self._on_bands, "value")
        self.amount.observe(self._on_mix, "value")
        self.last_update_ms = 0.0
        self.problem = ""  # why the last chosen collection cannot be shown, until one can
        self.band_note = ""  # who predicts on band images, and why
        self._on_sources()

    # ---- state ----

    def key(self, p: Picker) -> str:
        return self.library.key(p.collection.value, p.index.value)

    def _spectrum(self, key: str) -> Spectrum:
        if (key, self.mode.value) not in self._spectra:
            self._spectra[key, self.mode.value] = spectrum(self.library.get(key), self.mode.value)
        return self._spectra[key, self.mode.value]

    @property
    def _bands(self) -> tuple[str, str, tuple[int, int]]:
        return self.amplitude_band.value, self.phase_band.value, tuple(self.radii.value)

    def _show(self, name: str, image: torch.Tensor, note: str = "", title: str | None = None) -> None:
        self.views[name].value = png(image, self.scale)
        self.captions[name].value = (f"<div style='line-height:1.25;font-size:12px;width:{self.views[name].width}px;"
                                     "height:60px;overflow:hidden'>"
                                     f"<b>{html.escape(title or self.titles[name])}</b><br>"
                                     f"<span style='color:#555'>{html.escape(note) or '&nbsp;'}</span></div>")

    # ---- updates: sources, then what depends on the bands, then what depends on t ----

    @one_thread()
    def _on_sources(self, change=None) -> None:
        if self._quiet:
            return
        for p in self.pickers:
            key = self.key(p)
            image, s = self.library.get(key), self._spectrum(key)
            p.description.value = f"<div style='font-size:smaller;line-height:1.35'>{html.escape(self.library.describe(key))}</div>"
            v = p.role
            self._show(v, image)
            self._show(f"{v}_amplitude", log_amplitude_view(s.amplitude), "log(1 + A), centred")
            self._show(f"{v}_phase", phase_view(s.phase), "-π black, π white")
            self._show(f"{v}_phase_only", *rescale(phase_only(s, self.mode.value), centred=True))
            self._show(f"{v}_amplitude_only", *amplitude_only_view(amplitude_only(s, self.mode.value)))
        self._on_bands()

    @one_thread()
    def _on_bands(self, change=None) -> None:
        """Everything that does not move with t: the phase used, both swaps, who predicts, the curves, and the
        predictions on x, y and the swaps (the curves' end points: t = 0 is x's band image, t = 1 the swap)."""
        amplitude_band, phase_band, radii = self._bands
        x, y = (self._spectrum(self.key(p)) for p in self.pickers)
        mode = self.mode.value
        self._show("mix_phase", phase_view(keep_band(x.phase, phase_band, radii, phase=True, mode=mode)),
                   f"{phase_band} band")
        for name, image in zip(("swap_xy", "swap_yx"), swaps(x, y, mode, amplitude_band, phase_band, radii)):
            self._show(name, *band_view(image, amplitude_band, phase_band))
        self.predictors, self.band_note = self.shelf.predictors(amplitude_band, phase_band, radii, mode,
                                                                 self.library.dataset.channels)
        self.curves = confidence_curves(x, y, self.predictors, mode, self.ts, amplitude_band, phase_band, radii)
        ends = mix(y, x, torch.tensor([0.0, 1.0]), mode, amplitude_band, phase_band, radii)[0]
        reverse = {p.label: probabilities(p, ends) for p in self.predictors}
        self.fixed = {p.label: {"x": self.curves[p.label][0], "y": reverse[p.label][0],
                                "swap_xy": self.curves[p.label][-1], "swap_yx": reverse[p.label][1]}
                      for p in self.predictors}
        keys = {p.role: self.key(p) for p in self.pickers}
        # The predictions table's rows, in order; x_t's label (None) changes with t.
        self.rows = {"x": f"x ({self.library.short_name(keys['x'])})", "y": f"y ({self.library.short_name(keys['y'])})",
                     "mix": None, "swap_xy": "x's phase + y's amplitude", "swap_yx": "y's phase + x's amplitude"}
        roles: dict[int, list[str]] = {}  # a test image's class -> "x", "y" or both, for the curves' legends
        for role, key in keys.items():
            if (c := self.library.true_class(key)) is not None:
                roles.setdefault(c, []).append(role)
        self.class_notes = {c: f" ({' and '.join(r)}'s class)" for c, r in roles.items()}
        self._on_mix()

    @one_thread()
    def _on_mix(self, change=None) -> None:
        started = time.perf_counter()
        amplitude_band, phase_band, radii = self._bands
        x, y = (self._spectrum(self.key(p)) for p in self.pickers)
        t = self.amount.value
        image, used = mix(x, y, t, self.mode.value, amplitude_band, phase_band, radii)
        self._show("mix", *band_view(image, amplitude_band, phase_band), title=f"x_t, t = {t:.2f}")
        self._show("mix_amplitude", log_amplitude_view(used.amplitude), f"{amplitude_band} band, t = {t:.2f}")
        if self.predictors:
            now = {p.label: probabilities(p, image) for p in self.predictors}
            self.predictions.value = predictions_html({
                label or f"x_t, t = {t:.2f}": {p.label: top_classes(now[p.label] if name == "mix" else
                                                                    self.fixed[p.label][name], self.classes)
                                               for p in self.predictors} for name, label in self.rows.items()})
            self.curve.value = curve_svg(self.ts.tolist(), self.curves, self.classes, t, self.class_notes)
        else:
            self.predictions.value = self.curve.value = ""
        self.last_update_ms = (time.perf_counter() - started) * 1000
        self._show_status()

    # ---- pickers and uploads ----

    def _set_quietly(self, p: Picker, collection: str, index: int) -> None:
        """Point a picker at an image without each changed control triggering an update of its own."""
        self._quiet = True
        try:
            p.collection.options = self.library.collections()
            p.collection.value = collection
            p.index.max = max(0, self.library.count(collection) - 1)
            p.index.value = index
        finally:
            self._quiet = False

    def _on_collection(self, p: Picker, previous: str) -> None:
        if self._quiet:
            return
        collection = p.collection.value
        self.status.value = f"loading {html.escape(collection)} ..."  # an OOD set is made now: seconds for blobs
        try:
            index = min(p.index.value, self.library.count(collection) - 1)
        except UserError as e:  # e.g. a real OOD set that is not on disk
            self.problem = str(e)
            self._set_quietly(p, previous, p.index.value)
            self._show_status()
            return
        self.problem = ""
        self._set_quietly(p, collection, index)
        self._on_sources()

    def _on_upload(self, change, p: Picker) -> None:
        if not change["new"]:
            return
        upload = change["new"][-1]
        try:
            key = self.library.add_upload(upload["name"], bytes(upload["content"]))
        except UserError as e:
            self.upload_message.value = f"<div style='color:#b00020;line-height:1.35'>{html.escape(str(e))}</div>"
            return
        finally:
            p.upload.value = ()  # so that the same file can be chosen again
        self.upload_message.value = (f"<div style='line-height:1.35'>{html.escape(upload['name'])}: uploaded as "
                                     f"image {p.role}.</div>")
        for q in self.pickers:
            where = self.library.locate(key) if q is p else (q.collection.value, q.index.value)
            self._set_quietly(q, *where)
        self._on_sources()

    def _show_status(self) -> None:
        keys = {p.role: self.key(p) for p in self.pickers}
        notes = [self.library.notice, self.shelf.hint, out_of_distribution_note(self.library, keys),
                 self.band_note]
        self.notes.value = "".join(f"<p style='line-height:1.35;margin:4px 0'>{html.escape(n)}</p>" for n in notes if n)
        problem = (f"<span style='color:#b00020'>{html.escape(self.problem)}</span><br>" if self.problem else "")
        self.status.value = f"<div style='line-height:1.35'>{problem}update: {self.last_update_ms:.0f} ms</div>"
