"""The interactive amplitude-phase explorer (paper Figures 2 to 4): pure functions, then the ipywidgets app.

An image x keeps its phase P_x while its amplitude moves from its own (t = 0) to another image's (t = 1):

    x_t = iDFT( keep_band((1 - t) A_x + t A_other, amplitude_band) * exp(i keep_band(P_x, phase_band)) )

With full bands and t = 1 this is Eq. (5), `swap_amplitude(x, other)`; restricting amplitude and phase to the
low / mid / high bands with the z-hat rule gives Figure 4's images. Everything above `class Explorer` is pure
(tensors or bytes in, tensors or bytes out) and unit-tested without a browser; `Explorer` builds the widgets and
wires them to those functions. It caches the spectra of the chosen images (and the models' predictions on
them), so a slider move costs one interpolation, one inverse FFT, two forward passes and three small PNGs.
"""
from __future__ import annotations

import html
import io
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from apr_lib.data import DATASETS, load_split
from apr_lib.errors import UserError
from apr_lib.paper.weights import trained_dir
from apr_lib.runs import load_run
from apr_lib.spectral import BANDS, MODES, amplitude_phase, keep_band, recombine
from apr_lib.study.config import Profile, RunSpec, run_dir
from apr_lib.study.sections import section
from apr_lib.study.targets import model_runs as section_model_runs

# scikit-image's bundled photos (no download needed), offered beside the dataset's test images.
PHOTOS = ("camera", "astronaut", "chelsea", "coffee", "rocket", "coins", "clock", "brick", "horse")
MODELS = {"standard": "Standard", "apr_sp": "APR-SP"}  # method -> label, the two models compared
RADII = (4, 10)  # default (r_low, r_high) of the bands, in DFT bins
DISPLAY_PIXELS = 150  # images are enlarged by a whole factor to about this many pixels, without smoothing


# ---- spectra and the recombination ----

@dataclass(frozen=True)
class Spectrum:
    amplitude: torch.Tensor  # (C, H, W)
    phase: torch.Tensor


def spectrum(image: torch.Tensor, mode: str) -> Spectrum:
    return Spectrum(*amplitude_phase(image, mode))


def mix(own: Spectrum, other: Spectrum, amount: float, mode: str, amplitude_band: str = "full",
        phase_band: str = "full", radii: tuple[float, float] = RADII) -> tuple[torch.Tensor, Spectrum]:
    """The image with `own`'s phase and the amplitude (1 - amount) A_own + amount A_other, each kept to its band.

    Returns the image (real part, not clipped) and the amplitude and phase it was built from.
    """
    if not 0 <= amount <= 1:
        raise ValueError(f"amount={amount!r}: the amplitude moves from the image's own (0) to the other's (1)")
    amplitude = keep_band(torch.lerp(own.amplitude, other.amplitude, amount), amplitude_band, radii)
    phase = keep_band(own.phase, phase_band, radii)
    return recombine(amplitude, phase, mode), Spectrum(amplitude, phase)


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

@torch.inference_mode()
def top_predictions(model: torch.nn.Module, image: torch.Tensor, classes: list[str], k: int = 3) -> list[tuple[str, float]]:
    """The k most probable classes of a (C, H, W) image and their softmax confidences.

    The image is clipped to [0, 1] first, so the model sees what the explorer shows.
    """
    probabilities = model(image.clamp(0, 1)[None].float()).softmax(dim=1)[0]
    top = probabilities.topk(min(k, len(classes)))
    return [(classes[i], p) for p, i in zip(top.values.tolist(), top.indices.tolist())]


def model_runs(profile: Profile) -> dict[str, RunSpec]:
    """Figure 2's Standard and APR-SP runs (the profile's first Table 1 architecture and first seed), whose weights
    the DAG publishes (apr_lib.paper.weights)."""
    return section_model_runs(profile, section("fig2_amplitude_swap"))


def how_to_train(profile: Profile, missing: list[RunSpec]) -> str:
    """The sentence shown when runs are missing: which, and the command that trains just them."""
    select = "" if profile.name == "default" else f" --config profile={profile.name}"
    targets = " ".join(f"{run_dir(profile, run).as_posix()}/model.pt" for run in missing)
    names = " and ".join(MODELS[run.method] for run in missing)
    return (f"No trained {names} model of the profile {profile.name!r} yet, so no predictions are shown. "
            f"Train {'it' if len(missing) == 1 else 'them'} with `snakemake --cores 4{select} {targets}` "
            f"(or the whole profile with `snakemake --cores 4 all{select}`), then re-run this notebook.")


def load_models(profile: Profile) -> tuple[dict[str, torch.nn.Module], str]:
    """The trained Standard and APR-SP models of the profile found under runs/ or published under outputs/ (label ->
    model, on the CPU), and the how-to-train sentence for those missing ("" when both exist)."""
    models, missing = {}, []
    for method, run in model_runs(profile).items():
        folder = trained_dir(profile, run)
        if folder is not None:
            models[MODELS[method]] = load_run(folder, device="cpu")[0]  # one image at a time: the CPU is quickest
        else:
            missing.append(run)
    return models, how_to_train(profile, missing) if missing else ""


# ---- image sources: the dataset's test images, scikit-image's photos, uploads ----

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


def decode_upload(data: bytes, name: str, channels: int, size: int) -> torch.Tensor:
    """An uploaded file's bytes, decoded with PIL and fitted to the dataset; UserError if it is no image."""
    try:
        picture = Image.open(io.BytesIO(data))
        picture.load()
    except OSError as e:  # UnidentifiedImageError (not an image) is one; a truncated file another
        reason = "" if isinstance(e, UnidentifiedImageError) else f" ({e})"
        raise UserError(f"{name} is not an image PIL can read{reason}; upload a PNG, JPEG, GIF, BMP or TIFF file") from None
    return fit_to_dataset(picture, channels, size)


class ImageLibrary:
    """The images to choose from, by key: "test:<i>" (test image i of the profile's dataset), "photo:<name>"
    (scikit-image), "upload:<file name>". Without the dataset on disk it offers the photos and says how to get it."""

    def __init__(self, profile: Profile):
        self.dataset = DATASETS[profile["dataset"]]
        self.images: dict[str, torch.Tensor] = {}
        self.labels: dict[str, str] = {}  # key -> text shown in the dropdowns, in the order shown
        self.notice = ""
        try:
            self.test = load_split(profile["dataset"], profile["data_root"], train=False)
        except UserError as e:
            self.test = None
            self.notice = (f"The {profile['dataset']} images are not on disk ({str(e).splitlines()[0]}), so only "
                           f"scikit-image's photos are offered. Get the dataset with `apr data prepare --profile "
                           f"{profile.name}` (or `snakemake --cores 4 all`), then re-run this notebook.")
        else:
            first_of_class = {}
            for index, label in enumerate(self.test.labels.tolist()):
                first_of_class.setdefault(label, index)
            for index in sorted(first_of_class.values(), key=lambda i: self.test.labels[i]):
                self.labels[f"test:{index}"] = self._test_label(index)
        for name in PHOTOS:
            self.labels[f"photo:{name}"] = f"photo: {name}"

    def _test_label(self, index: int) -> str:
        return f"test #{index} ({self.test.classes[self.test.labels[index]]})"

    @property
    def options(self) -> list[tuple[str, str]]:
        """(label, key) pairs for an ipywidgets Dropdown."""
        return [(label, key) for key, label in self.labels.items()]

    def get(self, key: str) -> torch.Tensor:
        if key not in self.images:
            self.images[key] = self._load(key)
            if key not in self.labels:  # only a test image can be new here
                self.labels[key] = self._test_label(int(key[5:]))
        return self.images[key]

    def _load(self, key: str) -> torch.Tensor:
        source, _, name = key.partition(":")
        if source == "test" and self.test is not None and name.isdigit() and int(name) < len(self.test.labels):
            return self.test.images[int(name)].float() / 255
        if source == "photo" and name in PHOTOS:
            return photo(name, self.dataset.channels, self.dataset.size)
        raise UserError(f"no image {key!r}: choose one of {', '.join(self.labels)}"
                        + ("" if self.test is None else f", or test:<i> with i < {len(self.test.labels)}"))

    def add_upload(self, name: str, data: bytes) -> str:
        """Decode and add an uploaded file; its key is new even when the name is not (caches are keyed by it)."""
        key, copies = f"upload:{name}", 1
        while key in self.images:
            copies += 1
            key = f"upload:{name} ({copies})"
        self.images[key] = decode_upload(data, name, self.dataset.channels, self.dataset.size)
        self.labels[key] = key.replace(":", ": ", 1)
        return key

    def resolve(self, key: str, fallback: str) -> str:
        """`key` if it can be shown, else `fallback` (a photo): a test image asked for without the dataset."""
        return key if key.startswith(("photo:", "upload:")) or self.test is not None else fallback


def predictions_html(rows: dict[str, dict[str, list[tuple[str, float]]]]) -> str:
    """A table: one row per model, one column per image, each cell its top classes with confidences."""
    columns = list(next(iter(rows.values())))
    cell = "padding:1px 8px;vertical-align:top;white-space:nowrap;text-align:left"
    head = "".join(f"<th style='{cell}'>{html.escape(c)}</th>" for c in columns)
    body = ""
    for model, cells in rows.items():
        tds = "".join(f"<td style='{cell}'>" + "<br>".join(
            f"{'<b>' if rank == 0 else ''}{html.escape(name)} {p:.1%}{'</b>' if rank == 0 else ''}"
            for rank, (name, p) in enumerate(cells[c])) + "</td>" for c in columns)
        body += f"<tr><th style='{cell}'>{html.escape(model)}</th>{tds}</tr>"
    # The widget's own line height (28 px) would spread the rows apart.
    return f"<table style='line-height:1.35;font-size:12px'><tr><th></th>{head}</tr>{body}</table>"


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


class Explorer:
    """The app: two image pickers (with uploads), FFT mode, the amplitude slider, bands and radii; live views of
    both images, their spectra and the recombined image; the Standard and APR-SP models' top-3 predictions.

    Show it with `display(Explorer(profile).widget)`. CSS classes (apr-explorer, apr-amount, apr-recombined, apr-predictions,
    apr-status) name the parts a browser test drives.
    """

    def __init__(self, profile: Profile, phase_image: str = "test:13", amplitude_image: str = "test:2",
                 amount: float = 1.0, fft_mode: str | None = None, amplitude_band: str = "full",
                 phase_band: str = "full", radii: tuple[int, int] = RADII):
        import ipywidgets as w  # imported here: the [explorer] extra; the pure functions above work without it

        self.library = ImageLibrary(profile)
        self.models, self.train_hint = load_models(profile)
        size, channels = self.library.dataset.size, self.library.dataset.channels
        info = DATASETS[profile["dataset"]]
        self.classes = (self.library.test.classes if self.library.test else
                        list(info.classes or map(str, range(info.num_classes))))  # CIFAR-100 names live in its files
        self.scale = display_scale(size)
        self._spectra: dict[tuple[str, str], Spectrum] = {}
        self._source_predictions: dict[tuple[str, str], list[tuple[str, float]]] = {}
        keys = [self.library.resolve(phase_image, "photo:camera"), self.library.resolve(amplitude_image, "photo:astronaut")]
        for key in keys:
            self.library.get(key)  # fails here, naming the key, if a parameter asks for an unknown image

        self.pickers = [w.Dropdown(options=self.library.options, value=key, layout=w.Layout(width="200px"))
                        for key in keys]
        self.uploads = [w.FileUpload(accept="image/*", multiple=False, description="upload",
                                     layout=w.Layout(width="110px")) for _ in self.pickers]
        self.mode = w.ToggleButtons(options=MODES, value=fft_mode or profile["apr"]["fft_mode"],
                                    tooltips=["2-D DFT of each channel (the paper's text)",
                                              "3-D DFT over channels too (the released code)"],
                                    style={"button_width": "100px"})
        self.amount = w.FloatSlider(value=amount, min=0, max=1, step=0.05, readout_format=".2f")
        self.amount.add_class("apr-amount")
        self.amplitude_band, self.phase_band = (w.ToggleButtons(options=BANDS, value=band, style={"button_width": "56px"})
                                                for band in (amplitude_band, phase_band))
        max_radius = math.ceil(math.hypot(size / 2, size / 2))
        self.radii = w.IntRangeSlider(value=radii, min=1, max=max_radius)

        captions = ["phase image x", "log amplitude of x", "phase of x",
                    "amplitude image y", "log amplitude of y", "phase of y",
                    "recombined", "amplitude used", "phase used"]
        self.views = [w.Image(format="png", width=size * self.scale, height=size * self.scale) for _ in captions]
        self.views[6].add_class("apr-recombined")
        self.captions = [w.HTML(f"<b>{c}</b>") for c in captions]
        grid = w.GridBox([w.VBox([c, v]) for c, v in zip(self.captions, self.views)],
                         layout=w.Layout(grid_template_columns="repeat(3, max-content)", grid_gap="4px 12px"))
        self.predictions = w.HTML()
        self.predictions.add_class("apr-predictions")
        self.status = w.HTML()
        self.status.add_class("apr-status")
        hint = "t = 0: x's own amplitude; t = 1: y's (Eq. 5)"
        if channels == 1:
            hint += ". One channel: both FFT modes give the same spectra"

        def row(label, *children):  # a label of fixed width, so the controls line up
            return w.HBox([w.Label(label, layout=w.Layout(width="120px")), *children])

        controls = w.VBox([row("phase from x", self.pickers[0], self.uploads[0]),
                           row("amplitude from y", self.pickers[1], self.uploads[1]),
                           row("FFT mode", self.mode), row("amplitude t", self.amount),
                           w.HTML(f"<div style='line-height:1.35;font-size:smaller'>{hint}</div>"), row("amplitude band", self.amplitude_band),
                           row("phase band", self.phase_band), row("band radii", self.radii),
                           self.predictions, self.status], layout=w.Layout(width="470px"))
        self.widget = w.HBox([controls, grid], layout=w.Layout(align_items="flex-start", grid_gap="24px"))
        self.widget.add_class("apr-explorer")

        for picker in self.pickers:
            picker.observe(self._on_sources, "value")
        self.mode.observe(self._on_sources, "value")
        for upload, picker in zip(self.uploads, self.pickers):
            upload.observe(lambda change, picker=picker: self._on_upload(change, picker), "value")
        for control in (self.amount, self.amplitude_band, self.phase_band, self.radii):
            control.observe(self._on_mix, "value")
        self.notices = [n for n in (self.library.notice, self.train_hint) if n]
        self.upload_problem = ""
        self._on_sources()

    # Image or mode changed: new spectra (cached), new source views and predictions, then the mix.
    @one_thread()
    def _on_sources(self, change=None) -> None:
        for offset, picker in zip((0, 3), self.pickers):
            image, sp = self.library.get(picker.value), self._spectrum(picker.value, self.mode.value)
            for view, shown in zip(self.views[offset:offset + 3], (image, log_amplitude_view(sp.amplitude), phase_view(sp.phase))):
                view.value = png(shown, self.scale)
        self._on_mix()

    def _spectrum(self, key: str, mode: str) -> Spectrum:
        if (key, mode) not in self._spectra:
            self._spectra[key, mode] = spectrum(self.library.get(key), mode)
        return self._spectra[key, mode]

    @one_thread()
    def _on_mix(self, change=None) -> None:
        started = time.perf_counter()
        own, other = (self._spectrum(p.value, self.mode.value) for p in self.pickers)
        image, used = mix(own, other, self.amount.value, self.mode.value, self.amplitude_band.value,
                          self.phase_band.value, self.radii.value)
        self.views[6].value = png(image, self.scale)
        self.views[7].value = png(log_amplitude_view(used.amplitude), self.scale)
        self.views[8].value = png(phase_view(used.phase), self.scale)
        self.captions[6].value = f"<b>recombined</b> (t = {self.amount.value:.2f})"
        self.captions[7].value = f"<b>amplitude used</b> ({self.amplitude_band.value} band)"
        self.captions[8].value = f"<b>phase used</b> ({self.phase_band.value} band)"
        if self.models:
            self.predictions.value = predictions_html({label: {
                "phase image": self._predict(label, self.pickers[0].value),
                "amplitude image": self._predict(label, self.pickers[1].value),
                "recombined": top_predictions(model, image, self.classes)} for label, model in self.models.items()})
        self.last_update_ms = (time.perf_counter() - started) * 1000
        self._show_status()

    def _predict(self, label: str, key: str) -> list[tuple[str, float]]:
        if (label, key) not in self._source_predictions:
            self._source_predictions[label, key] = top_predictions(self.models[label], self.library.get(key), self.classes)
        return self._source_predictions[label, key]

    def _on_upload(self, change, picker) -> None:
        if not change["new"]:
            return
        upload = change["new"][-1]
        try:
            key = self.library.add_upload(upload["name"], bytes(upload["content"]))
            self.upload_problem = ""
        except UserError as e:
            self.upload_problem = str(e)
            self._show_status()
            return
        values = [key if p is picker else p.value for p in self.pickers]
        for p, value in zip(self.pickers, values):
            p.unobserve(self._on_sources, "value")  # new options reset a Dropdown's value: put it back quietly
            p.options, p.value = self.library.options, value
            p.observe(self._on_sources, "value")
        self._on_sources()

    def _show_status(self) -> None:
        lines = [html.escape(n) for n in (*self.notices, self.upload_problem) if n]
        lines.append(f"update: {self.last_update_ms:.0f} ms")
        self.status.value = f"<div style='line-height:1.35'>{'<br>'.join(lines)}</div>"
