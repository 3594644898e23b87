"""The explorer's logic without a browser: recombination, reconstructions, views, predictions and curves, image
sources and upload checks (on real files written here), the models it predicts with, the widgets' wiring, and the
notebook run headless by papermill on a fresh clone (no data, no runs)."""
import io
import shutil
import struct
import warnings
import xml.etree.ElementTree as ET
import zlib
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from PIL import Image

from apr_lib.errors import UserError
from apr_lib.ood import ood_sets
from apr_lib.paper.explorer import (MAX_PIXELS, MAX_UPLOAD_BYTES, PHOTOS, Explorer, ImageLibrary, ModelShelf,
                                    Predictor, amplitude_only, amplitude_only_view, band_view, confidence_curves,
                                    curve_svg, decode_upload, fit_to_dataset, log_amplitude_view, mix,
                                    out_of_distribution_note, phase_only, phase_view, photo, png, probabilities,
                                    rescale, spectrum, swaps, top_classes, upload_limits)
from apr_lib.runs import load_run
from apr_lib.spectral import MODES, amplitude_phase, band_mask, band_recombine, recombine, swap_amplitude
from apr_lib.study.config import REPO_ROOT, Profile, RunSpec, load_profile, metrics_file, run_config, run_dir

NOW = datetime.now(timezone.utc)  # FileUpload values carry a datetime
NOTEBOOK = REPO_ROOT / "notebooks" / "00_explorer.ipynb"
BAND_RUN = "standard@amp-low_phase-high"  # the tiny profile's one band-limited Figure 4 run


def make_project(folder: Path, data_root: Path | None = None, trained: tuple[str, ...] = ()) -> Path:
    """A copy of the project in `folder`: data/ linked to `data_root` (none: a fresh clone's), and the tiny
    profile's runs in `trained` ("<method>" or "<method>@<variant>") trained for real (about a second each)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "Snakefile", folder)
    for sub in ("params", "notebooks"):
        shutil.copytree(REPO_ROOT / sub, folder / sub)
    if data_root is not None:
        (folder / "data").symlink_to(data_root, target_is_directory=True)
    if trained:
        from apr_lib.train import train_run

        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(folder)  # run paths are relative to the project root
            profile = load_profile("tiny")
            for entry in trained:
                method, _, variant = entry.partition("@")
                run = RunSpec("fmnist", "small_cnn", method, 0, variant)
                train_run(run_config(profile, run), run_dir(profile, run), metrics_file(profile, run, "train"),
                          progress=False)
    return folder


def images(shape, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---- the recombination ----

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("channels", [1, 3])
def test_slider_ends_are_the_image_and_eq5(mode, channels):
    x, other = images((channels, 8, 8), 0), images((channels, 8, 8), 1)
    own, theirs = spectrum(x, mode), spectrum(other, mode)
    torch.testing.assert_close(mix(own, theirs, 0.0, mode)[0], x)
    torch.testing.assert_close(mix(own, theirs, 1.0, mode)[0], swap_amplitude(x, other, mode))


def test_amplitude_moves_linearly_and_phase_stays():
    x, other = images((3, 8, 8), 2), images((3, 8, 8), 3)
    own, theirs = spectrum(x, "per_channel"), spectrum(other, "per_channel")
    image, used = mix(own, theirs, 0.25, "per_channel")
    torch.testing.assert_close(used.amplitude, 0.75 * own.amplitude + 0.25 * theirs.amplitude)
    torch.testing.assert_close(used.phase, own.phase)
    torch.testing.assert_close(image, recombine(used.amplitude, own.phase, "per_channel"))


def test_bands_restrict_amplitude_and_phase_filling_only_the_bins_outside():
    x, other = images((1, 12, 12), 4), images((1, 12, 12), 5)
    own, theirs = spectrum(x, "channel3d"), spectrum(other, "channel3d")
    radii = (2, 4)
    image, used = mix(own, theirs, 0.5, "channel3d", amplitude_band="low", phase_band="high", radii=radii)
    low, high = band_mask(12, 12, "low", radii), band_mask(12, 12, "high", radii)
    torch.testing.assert_close(used.amplitude[:, low], (0.5 * own.amplitude + 0.5 * theirs.amplitude)[:, low])
    assert torch.all(used.amplitude[:, ~low] == 1)  # zeroed bins become 1 (z-hat), so each keeps its phase
    torch.testing.assert_close(used.phase[:, high], own.phase[:, high])  # in the band: unchanged
    assert torch.all(used.phase[:, ~high].abs() <= 1)  # outside: +-1 (z-hat, conjugate bins mirrored), 0 at DC
    torch.testing.assert_close(image, recombine(used.amplitude, used.phase, "channel3d"))


@pytest.mark.parametrize("mode", MODES)
def test_a_batch_of_amounts_is_each_amount_in_turn(mode):
    x, other = images((3, 10, 10), 6), images((3, 10, 10), 7)
    own, theirs = spectrum(x, mode), spectrum(other, mode)
    ts = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    batch, used = mix(own, theirs, ts, mode, "mid", "low", (2, 4))
    assert batch.shape == (3, 3, 10, 10) and used.phase.shape == batch.shape
    for t, image in zip(ts.tolist(), batch):
        torch.testing.assert_close(image, mix(own, theirs, t, mode, "mid", "low", (2, 4))[0])


def test_amounts_outside_zero_one_and_bands_without_radii_are_refused():
    s = spectrum(images((1, 4, 4), 0), "per_channel")
    with pytest.raises(ValueError, match="amount"):
        mix(s, s, 1.5, "per_channel")
    with pytest.raises(ValueError, match="amount"):
        mix(s, s, torch.tensor([0.0, -0.1]), "per_channel")
    with pytest.raises(ValueError, match="need radii"):
        mix(s, s, 0.5, "per_channel", amplitude_band="low")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("channels", [1, 3])
def test_swaps_are_eq5_in_both_directions(mode, channels):
    x, y = images((channels, 9, 8), 8), images((channels, 9, 8), 9)
    x_phase, y_phase = swaps(spectrum(x, mode), spectrum(y, mode), mode)
    torch.testing.assert_close(x_phase, swap_amplitude(x, y, mode))
    torch.testing.assert_close(y_phase, swap_amplitude(y, x, mode))


@pytest.mark.parametrize("mode", MODES)
def test_phase_only_keeps_the_phase_with_the_mean_amplitude(mode):
    x = images((3, 8, 8), 10)
    s = spectrum(x, mode)
    rebuilt = spectrum(phase_only(s, mode), mode)
    torch.testing.assert_close(rebuilt.amplitude, torch.full_like(s.amplitude, s.amplitude.mean().item()))
    torch.testing.assert_close(torch.polar(torch.ones_like(s.phase), rebuilt.phase),
                               torch.polar(torch.ones_like(s.phase), s.phase))  # equal angles, modulo 2 pi


@pytest.mark.parametrize("mode", MODES)
def test_amplitude_only_keeps_the_amplitude_with_zero_phase(mode):
    x = images((3, 8, 8), 11)
    s = spectrum(x, mode)
    image = amplitude_only(s, mode)
    torch.testing.assert_close(spectrum(image, mode).amplitude, s.amplitude)
    # Zero phase: a real, even image, v[i, j] = v[-i, -j] (over channels too in 3-D), largest at pixel (0, 0).
    dims = (-2, -1) if mode == "per_channel" else (-3, -2, -1)
    flipped = torch.roll(image.flip(dims), shifts=(1,) * len(dims), dims=dims)
    torch.testing.assert_close(image, flipped)
    assert image[0, 0, 0] == image[0].max()


# ---- what is shown ----

def test_rescale_min_max_and_centred():
    image = torch.tensor([[[-0.5, 0.0], [0.25, 1.5]]])
    view, note = rescale(image, centred=False)
    torch.testing.assert_close(view, torch.tensor([[[0.0, 0.25], [0.375, 1.0]]]))
    assert note == "rescaled: black -0.5, white 1.5"
    view, note = rescale(image, centred=True)  # grey 0; the largest magnitude, 1.5, white (or black if negative)
    torch.testing.assert_close(view, torch.tensor([[[1 / 3, 0.5], [0.5 + 0.25 / 3, 1.0]]]))
    assert note == "rescaled: grey 0, white +1.5"
    flat, _ = rescale(torch.full((1, 2, 2), 0.3), centred=False)
    assert torch.isfinite(flat).all()


def test_band_images_without_the_low_band_are_shown_centred_not_clipped_black():
    x = images((1, 16, 16), 12)
    s = spectrum(x, "per_channel")
    whole, _ = mix(s, s, 0.0, "per_channel")
    view, note = band_view(whole, "full", "full")
    torch.testing.assert_close(view, whole.clamp(0, 1))
    assert note == "clipped to [0, 1], as the models see it"
    high, _ = mix(s, s, 0.0, "per_channel", "high", "full", (3, 6))
    assert high.mean().abs() < 0.01 < high.abs().max()  # centred on zero: about half would be clipped to black
    view, note = band_view(high, "high", "full")
    torch.testing.assert_close(view, rescale(high, centred=True)[0])
    assert note.startswith("rescaled: grey 0")
    low, _ = mix(s, s, 0.0, "per_channel", "low", "low", (3, 6))
    assert band_view(low, "low", "low")[1].startswith("rescaled: black")


def test_amplitude_only_view_is_centred_and_log_scaled():
    s = spectrum(images((1, 9, 9), 13), "per_channel")
    view, note = amplitude_only_view(amplitude_only(s, "per_channel"))
    assert view.shape == (1, 9, 9) and 0 <= view.min() and view.max() == 1
    assert view[0, 4, 4] == 1  # the peak, pixel (0, 0), drawn in the middle
    assert "log-scaled" in note


def test_log_amplitude_view_is_centred_and_scaled_per_channel():
    x = images((3, 9, 9), 6)
    view = log_amplitude_view(amplitude_phase(x, "per_channel")[0])
    assert view.shape == x.shape and view.min() == 0
    # A positive image's largest coefficient is its mean (zero frequency), drawn in the middle.
    assert torch.all(view[:, 4, 4] == 1) and torch.all(view.amax(dim=(1, 2)) == 1)


def test_phase_view_maps_minus_pi_to_zero_and_pi_to_one():
    phase = torch.tensor([-torch.pi, 0.0, torch.pi]).view(1, 1, 3)
    torch.testing.assert_close(torch.fft.ifftshift(phase_view(phase), dim=(-2, -1)), torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 3))


def test_png_is_clipped_enlarged_grey_or_rgb():
    grey = torch.tensor([[[-0.5, 0.5], [1.0, 1.5]]])
    decoded = Image.open(io.BytesIO(png(grey, scale=3)))
    assert decoded.mode == "L" and decoded.size == (6, 6)
    assert np.asarray(decoded)[::3, ::3].tolist() == [[0, 128], [255, 255]]
    assert Image.open(io.BytesIO(png(torch.zeros(3, 4, 5)))).mode == "RGB"


# ---- predictions and confidence curves ----

class FixedLogits(torch.nn.Module):
    """Returns the same logits for any input; remembers the input range it saw and counts its calls."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor([logits])
        self.calls = 0

    def forward(self, x):
        self.seen, self.calls = (x.min().item(), x.max().item()), self.calls + 1
        return self.logits.expand(len(x), -1)


class MeanLogits(torch.nn.Module):
    """Logits that follow the image: class 0 grows with its mean brightness, class 1 stays at 0."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        mean = x.mean(dim=(1, 2, 3))
        return torch.stack([4 * mean, torch.zeros_like(mean)], dim=1)


def test_predictors_see_clipped_or_unclipped_images():
    image = torch.tensor([[[-3.0, 4.0]]])
    whole, band = FixedLogits([0.0, 2.0, 1.0, -1.0]), FixedLogits([0.0, 2.0, 1.0, -1.0])
    confidences = probabilities(Predictor("whole", whole), image)
    assert whole.seen == (0.0, 1.0) and confidences.shape == (4,)
    probabilities(Predictor("band", band, clip=False), image[None].expand(5, -1, -1, -1))
    assert band.seen == (-3.0, 4.0)
    top = top_classes(confidences, ["a", "b", "c", "d"], k=3)
    assert [name for name, _ in top] == ["b", "c", "a"]
    assert [p for _, p in top] == pytest.approx(torch.tensor([0.0, 2.0, 1.0, -1.0]).softmax(0)[[1, 2, 0]].tolist())


def test_confidence_curves_take_one_forward_pass_per_model():
    x, y = torch.zeros(1, 6, 6, dtype=torch.float64), torch.ones(1, 6, 6, dtype=torch.float64)
    models = [MeanLogits(), MeanLogits()]
    predictors = [Predictor("a", models[0]), Predictor("b", models[1])]
    ts = torch.linspace(0, 1, 11, dtype=torch.float64)
    curves = confidence_curves(spectrum(x, "per_channel"), spectrum(y, "per_channel"), predictors, "per_channel", ts)
    assert [m.calls for m in models] == [1, 1] and list(curves) == ["a", "b"]
    assert curves["a"].shape == (11, 2)
    # x is black, y white: only the mean moves, linearly with t, and class 0's logit with it.
    expected = torch.stack([4 * ts, torch.zeros_like(ts)], dim=1).softmax(dim=1)
    torch.testing.assert_close(curves["a"], expected.float(), atol=1e-5, rtol=0)


def test_curve_svg_draws_each_models_top_classes_and_marks_t():
    ts = [0.0, 0.5, 1.0]
    rising = torch.tensor([[0.1, 0.9, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.9, 0.1, 0.0, 0.0]])
    steady = torch.tensor([[0.0, 0.0, 0.8, 0.2]] * 3)
    svg = curve_svg(ts, {"Standard": rising, "APR-SP": steady}, ["a", "b", "c", "d"], 0.25, {1: " (x's class)"}, k=2)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    lines = root.findall(f"{ns}polyline")
    assert len(lines) == 4  # two classes per model
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert [t.text for t in root.iter(f"{ns}tspan")] == ["Standard", "APR-SP"]
    assert "b (x's class): 70%" in texts and "a: 30%" in texts  # legend: the confidence at the marked t
    assert "c: 80%" in texts and "d: 20%" in texts
    markers = [line for line in root.iter(f"{ns}line") if line.get("class") == "apr-t-marker"]
    assert [m.get("data-t") for m in markers] == ["0.25", "0.25"]
    first = [float(p.split(",")[0]) for p in lines[0].get("points").split()]
    assert float(markers[0].get("x1")) == pytest.approx(first[0] + 0.25 * (first[-1] - first[0]))
    assert len({line.get("stroke") for line in lines}) == 4  # four classes, four colours


# ---- uploads, with real files ----

def one_bit_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG, compressed row by row: hundreds of megapixels in a few dozen KB, never held in
    memory whole."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row, compressor = b"\0" * (1 + (width + 7) // 8), zlib.compressobj(9)  # filter byte 0, then the bits
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def written(tmp_path: Path, name: str, data: bytes) -> bytes:
    """The bytes of a real file: written to disk and read back, as a browser reads an upload."""
    (tmp_path / name).write_bytes(data)
    return (tmp_path / name).read_bytes()


def png_file(picture: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def test_a_valid_png_upload_is_fitted(tmp_path):
    ramp = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (40, 1)))  # 64 x 40, dark to bright
    image = decode_upload(written(tmp_path, "ramp.png", png_file(ramp)), "ramp.png", 1, 28)
    assert image.shape == (1, 28, 28) and image[0, :, 0].max() < image[0, :, -1].min()
    black = decode_upload(written(tmp_path, "small.png", one_bit_png(64, 48)), "small.png", 3, 32)
    assert black.shape == (3, 32, 32) and black.max() == 0  # the hand-built PNG is a valid image


def test_a_truncated_upload_says_so(tmp_path):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
    data = written(tmp_path, "cut.png", png_file(noise)[:2000])
    with pytest.raises(UserError, match=r"cut.png is not an image PIL can read \(.*truncated"):
        decode_upload(data, "cut.png", 1, 28)
    with pytest.raises(UserError, match="notes.txt is not an image PIL can read; upload a PNG"):
        decode_upload(written(tmp_path, "notes.txt", b"just text"), "notes.txt", 1, 28)


def test_a_decompression_bomb_is_refused(tmp_path):
    data = written(tmp_path, "bomb.png", one_bit_png(20_000, 20_000))  # 400 megapixels, above twice PIL's limit
    assert len(data) < 100_000
    with pytest.raises(UserError, match=r"bomb.png is refused as a possible decompression bomb .* at most 25 mega"):
        decode_upload(data, "bomb.png", 1, 28)


def test_an_image_over_the_pixel_limit_is_refused_without_pils_warning(tmp_path):
    data = written(tmp_path, "big.png", one_bit_png(10_000, 10_000))  # 100 megapixels: PIL warns, we refuse
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing leaks to the log
        with pytest.raises(UserError, match=r"big.png is 10,000 x 10,000 pixels, over the 25 megapixel upload limit"):
            decode_upload(data, "big.png", 1, 28)


def test_a_large_jpeg_is_read_at_a_reduced_size(tmp_path):
    buffer = io.BytesIO()
    Image.new("L", (6_000, 5_000), 200).save(buffer, format="JPEG")  # 30 megapixels, over the limit
    assert 6_000 * 5_000 > MAX_PIXELS
    image = decode_upload(written(tmp_path, "big.jpg", buffer.getvalue()), "big.jpg", 1, 28)
    assert image.shape == (1, 28, 28) and image.mean().item() == pytest.approx(200 / 255, abs=0.02)


def test_a_file_over_the_size_limit_is_refused(tmp_path):
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (1_800, 1_800, 3), dtype=np.uint8))
    data = written(tmp_path, "noise.png", png_file(noise, compress_level=0))
    assert len(data) > MAX_UPLOAD_BYTES
    with pytest.raises(UserError, match=r"noise.png is 9.3 MB, over the 8 MB upload limit"):
        decode_upload(data, "noise.png", 1, 28)


def test_the_limits_are_stated():
    text = upload_limits(1, 28)
    assert f"{MAX_UPLOAD_BYTES // 2**20} MB" in text and f"{MAX_PIXELS // 10**6} megapixels" in text
    assert "28 x 28 grey" in text and "10 MB" in text


# ---- image sources ----

@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_photos_and_uploads_are_fitted_to_the_dataset(channels, size):
    for name in ("astronaut", "camera", "horse"):  # RGB, grey, boolean
        image = photo(name, channels, size)
        assert image.shape == (channels, size, size) and image.dtype == torch.float32
        assert 0 <= image.min() < image.max() <= 1
    buffer = io.BytesIO()
    Image.new("RGB", (60, 30), (255, 0, 0)).save(buffer, format="JPEG")
    upload = decode_upload(buffer.getvalue(), "red.jpg", channels, size)
    assert upload.shape == (channels, size, size)
    expected = [1.0, 0.0, 0.0] if channels == 3 else [0.299]  # PIL's luma for pure red
    assert upload.mean(dim=(1, 2)).tolist() == pytest.approx(expected, abs=0.02)


def test_fit_to_dataset_crops_the_centre():
    picture = np.zeros((10, 30), dtype=np.uint8)
    picture[:, 10:20] = 255  # the white middle third survives a centre crop, the black sides do not
    assert fit_to_dataset(Image.fromarray(picture), 1, 5).min() > 0.9


def test_without_the_dataset_photos_are_offered_and_the_fix_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(make_project(tmp_path))
    library = ImageLibrary(load_profile("tiny"))
    assert "apr data prepare --profile tiny" in library.notice and "snakemake --cores 4 all" in library.notice
    assert library.collections() == [("scikit-image photos", "photo")]
    assert library.resolve("test:2", "photo:camera") == "photo:camera"
    assert library.resolve("ood:digits:2", "photo:camera") == "photo:camera"
    with pytest.raises(UserError, match=r"no image 'test:2': a key is test:<i>, ood:<set>:<i> .* not on disk"):
        library.get("test:2")


def test_any_test_image_and_the_profiles_ood_sets_are_offered(tmp_path, monkeypatch, fmnist_root):
    monkeypatch.chdir(make_project(tmp_path, fmnist_root))
    profile = load_profile("tiny")
    library = ImageLibrary(profile)
    assert library.notice == ""
    assert [c for _, c in library.collections()] == ["test", *(f"ood:{s}" for s in profile["ood"]["sets"]), "photo"]
    assert library.count("test") == len(library.test.labels) > 9_000
    assert library.locate("test:9876") == ("test", 9876) and library.key("test", 9876) == "test:9876"
    torch.testing.assert_close(library.get("test:9876"), library.test.images[9876].float() / 255)
    label = library.test.classes[library.test.labels[9876]]
    assert library.describe("test:9876") == f"test image #9876 of {library.count('test'):,}: {label}"
    # The OOD sets are the pipeline's: the same function, the profile's size and seed.
    pipeline = ood_sets(profile.cfg, library.test.images)
    for name in ("blobs", "corollary2"):
        assert library.count(f"ood:{name}") == profile["ood"]["per_set"]
        torch.testing.assert_close(library.get(f"ood:{name}:7"), pipeline[name].images[7].float() / 255)
        assert library.describe(f"ood:{name}:7") == f"{name} #7: {pipeline[name].source}"
    assert library.true_class("ood:blobs:7") is None and library.key("photo", 1) == "photo:astronaut"
    assert [library.short_name(key) for key in ("test:9876", "ood:blobs:7", "photo:camera")] == [
        label, "OOD blobs #7", "photo camera"]
    with pytest.raises(UserError, match="test has 10,000 images, so there is no image #10000"):
        library.key("test", library.count("test"))
    key = library.add_upload("dot.png", png_file(Image.new("L", (8, 8), 90)))
    assert library.collections()[-1] == ("uploads", "upload") and library.locate(key) == ("upload", 0)


def test_the_out_of_distribution_note_names_the_foreign_images(tmp_path, monkeypatch, fmnist_root):
    monkeypatch.chdir(make_project(tmp_path, fmnist_root))
    library = ImageLibrary(load_profile("tiny"))
    assert out_of_distribution_note(library, {"x": "test:1", "y": "test:2"}) == ""
    note = out_of_distribution_note(library, {"x": "photo:camera", "y": "test:2"})
    assert note.startswith("Out of distribution: x is not a Fashion-MNIST image. The models know only its 10 classes")
    assert "x and y are not Fashion-MNIST images" in out_of_distribution_note(library, {"x": "photo:camera",
                                                                                      "y": "ood:digits:3"})


# ---- models ----

def test_missing_runs_give_the_command_that_trains_them(tmp_path, monkeypatch):
    monkeypatch.chdir(make_project(tmp_path))
    shelf = ModelShelf(load_profile("tiny"))
    assert shelf.full == {}
    # Standard and APR-SP are published (the notebooks load them): the command trains and publishes them
    assert ("snakemake --cores 4 --config profile=tiny outputs/tiny/weights/fmnist/small_cnn/standard/seed0/model.pt "
            "outputs/tiny/weights/fmnist/small_cnn/apr_sp/seed0/model.pt") in shelf.hint
    assert "No trained Standard and APR-SP model" in shelf.hint
    predictors, note = shelf.predictors("low", "high", (4, 10), "channel3d", 1)
    assert predictors == [] and note == ("Figure 4's model for amplitude band low with phase band high is not trained "
                                         "yet (`snakemake --cores 4 --config profile=tiny runs/tiny/fmnist/small_cnn/"
                                         "standard@amp-low_phase-high/seed0/model.pt`).")


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory, fmnist_root):
    return make_project(tmp_path_factory.mktemp("explorer"), fmnist_root, trained=("standard", "apr_sp", BAND_RUN))


def test_trained_runs_are_loaded(trained_project, monkeypatch):
    monkeypatch.chdir(trained_project)
    shelf = ModelShelf(load_profile("tiny"))
    assert shelf.hint == "" and list(shelf.full) == ["Standard", "APR-SP"]
    predictors, note = shelf.predictors("full", "full", (4, 10), "channel3d", 1)
    assert [(p.label, p.clip) for p in predictors] == [("Standard", True), ("APR-SP", True)] and note == ""


def test_band_images_are_predicted_by_figure_4s_model_as_it_was_trained(trained_project, monkeypatch):
    monkeypatch.chdir(trained_project)
    profile = load_profile("tiny")
    shelf = ModelShelf(profile)
    [predictor], note = shelf.predictors("low", "high", (4, 10), "channel3d", 1)
    assert predictor.label == "Fig. 4 model (A low, P high)" and not predictor.clip
    assert "run fmnist/small_cnn/standard@amp-low_phase-high/seed0" in note and "unclipped" in note
    # On x's band image (t = 0) it says what the whole band run says on x itself: the band image is its input.
    run = RunSpec("fmnist", "small_cnn", "standard", 0, "amp-low_phase-high")
    model = load_run(run_dir(profile, run), device="cpu")[0]
    x = ImageLibrary(profile).get("test:5")
    band_image = mix(spectrum(x, "channel3d"), spectrum(x, "channel3d"), 0.0, "channel3d", "low", "high", (4, 10))[0]
    torch.testing.assert_close(band_image, band_recombine(x, "low", "high", (4, 10)), atol=1e-5, rtol=0)
    with torch.inference_mode():
        expected = model(x[None]).softmax(dim=1)[0]
    torch.testing.assert_close(probabilities(predictor, band_image), expected, atol=1e-4, rtol=0)


def test_without_a_matching_band_model_the_whole_models_predict_and_say_why(trained_project, monkeypatch):
    monkeypatch.chdir(trained_project)
    shelf = ModelShelf(load_profile("tiny"))
    for bands, radii, reason in [(("low", "high"), (3, 10), "was trained with band radii 4, 10: set them"),
                                 (("mid", "mid"), (4, 10), "The profile's Figure 4 runs (fig4_amp_phase_grid) do not "
                                                           "include amplitude band mid with phase band mid")]:
        predictors, note = shelf.predictors(*bands, radii, "channel3d", 1)
        assert [p.label for p in predictors] == ["Standard", "APR-SP"] and reason in note
        assert note.endswith("the whole-spectrum models predict instead, on the band images clipped to [0, 1]: "
                             "images unlike any they were trained on.")
    assert "trained on per-channel DFTs" in shelf.predictors("low", "high", (4, 10), "channel3d", 3)[1]


# ---- the widgets, driven from Python ----

def decoded(view) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(view.value)), dtype=np.int16)


def upload_value(name: str, data: bytes) -> tuple[dict, ...]:
    return ({"name": name, "type": "image/png", "size": len(data), "last_modified": NOW, "content": memoryview(data)},)


def test_explorer_updates_views_predictions_and_curves(trained_project, monkeypatch):
    monkeypatch.chdir(trained_project)
    explorer = Explorer(load_profile("tiny"), "test:2", "test:1", amount=1.0)
    sources = {name: explorer.views[name].value for name in explorer.views if name[0] in "xy"}
    recombined, predictions, curve = explorer.views["mix"].value, explorer.predictions.value, explorer.curve.value
    x_class, y_class = (explorer.classes[explorer.library.true_class(key)] for key in ("test:2", "test:1"))
    for heading in ("Standard", "APR-SP", f"x ({x_class})", f"y ({y_class})", "x_t, t = 1.00",
                    "x&#x27;s phase + y&#x27;s amplitude", "y&#x27;s phase + x&#x27;s amplitude"):
        assert heading in predictions
    assert predictions.count("%") == 5 * 2 * 3  # top 3 of two models on five images
    assert curve.count("<polyline") == 2 * 3 and "data-t='1.00'" in curve
    assert explorer.notes.value == "" and "update: " in explorer.status.value  # data and runs: nothing to fix
    # At t = 1 the recombined image is the first swap.
    assert np.abs(decoded(explorer.views["mix"]) - decoded(explorer.views["swap_xy"])).max() <= 1

    explorer.amount.value = 0.0  # back to the image's own amplitude: the image itself
    assert np.abs(decoded(explorer.views["mix"]) - decoded(explorer.views["x"])).max() <= 1
    assert explorer.views["mix"].value != recombined and explorer.predictions.value != predictions
    assert "data-t='0.00'" in explorer.curve.value and "x_t, t = 0.00" in explorer.captions["mix"].value
    assert {name: explorer.views[name].value for name in sources} == sources  # the sources did not change

    amplitude_shown = explorer.views["mix_amplitude"].value
    explorer.amplitude_band.value = "high"
    assert explorer.views["mix_amplitude"].value != amplitude_shown and "high band" in explorer.captions["mix_amplitude"].value
    assert "rescaled: grey 0" in explorer.captions["mix"].value and "rescaled: grey 0" in explorer.captions["swap_yx"].value
    assert "do not include amplitude band high with phase band full" in explorer.notes.value
    explorer.phase_band.value = "high"
    explorer.amplitude_band.value = "low"  # the tiny profile's band run
    assert "Fig. 4 model (A low, P high)" in explorer.predictions.value and "Standard" not in explorer.predictions.value
    assert explorer.curve.value.count("<polyline") == 3
    explorer.radii.value = (3, 6)
    assert "was trained with band radii 4, 10" in explorer.notes.value and "Standard" in explorer.predictions.value


def test_pickers_reach_any_test_image_and_the_ood_sets(trained_project, monkeypatch):
    monkeypatch.chdir(trained_project)
    explorer = Explorer(load_profile("tiny"))
    x, y = explorer.pickers
    x.index.value = 4321
    assert explorer.key(x) == "test:4321" and "test image #4321 of 10,000" in x.description.value
    y.collection.value = "ood:digits"
    assert explorer.key(y) == "ood:digits:2" and y.index.max == 99  # the index is kept where the set allows
    assert "scikit-learn" in y.description.value and "Out of distribution: y is not a Fashion-MNIST" in explorer.notes.value
    assert "y (OOD digits #2)" in explorer.predictions.value
    y.index.value = 99
    y.collection.value = "photo"
    assert explorer.key(y) == f"photo:{PHOTOS[-1]}" and y.index.max == len(PHOTOS) - 1
    explorer.pickers[0].collection.value = "ood:corollary2"
    assert "x and y are not Fashion-MNIST images" in explorer.notes.value


def test_a_missing_real_ood_set_is_explained_in_the_app(trained_project, monkeypatch):
    monkeypatch.chdir(trained_project)
    tiny = load_profile("tiny")
    profile = Profile(tiny.path, {**tiny.cfg, "ood": {**tiny["ood"], "sets": ["svhn", "digits"]}})
    explorer = Explorer(profile)
    x = explorer.pickers[0]
    x.collection.value = "ood:svhn"  # SVHN's file is not in the data folder
    assert "OOD set &#x27;svhn&#x27;: data/SVHN/test_32x32.mat not found" in explorer.status.value
    assert x.collection.value == "test" and explorer.key(x) == "test:13"
    x.collection.value = "ood:digits"
    assert "svhn" not in explorer.status.value and explorer.key(x) == "ood:digits:13"


def test_uploads_are_chosen_and_bad_ones_explained_in_the_app(trained_project, monkeypatch, tmp_path):
    monkeypatch.chdir(trained_project)
    explorer = Explorer(load_profile("tiny"))
    x, y = explorer.pickers
    recombined = explorer.views["mix"].value
    ramp = png_file(Image.fromarray(np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))))
    y.upload.value = upload_value("ramp.png", written(tmp_path, "ramp.png", ramp))
    assert explorer.key(y) == "upload:ramp.png" and y.upload.value == ()  # emptied, so it can take the file again
    assert ("uploads", "upload") in x.collection.options and explorer.views["mix"].value != recombined
    assert "ramp.png: uploaded as image y" in explorer.upload_message.value
    for name, data, message in [
            ("bad.png", b"not a png", "bad.png is not an image PIL can read"),
            ("bomb.png", one_bit_png(20_000, 20_000), "bomb.png is refused as a possible decompression bomb"),
            ("noise.png", b"\0" * (MAX_UPLOAD_BYTES + 1), "noise.png is 8.0 MB, over the 8 MB upload limit")]:
        x.upload.value = upload_value(name, written(tmp_path, name, data))
        assert message in explorer.upload_message.value and "color:#b00020" in explorer.upload_message.value
        assert explorer.key(x) == "test:13"  # nothing else changed
    # The same name again, other content: a new entry, not the first file's cached spectrum.
    ramp_view = explorer.views["y"].value
    y.upload.value = upload_value("ramp.png", png_file(Image.new("L", (32, 32), 200)))
    assert explorer.key(y) == "upload:ramp.png (2)" and explorer.views["y"].value != ramp_view
    assert "bad" not in explorer.upload_message.value  # a good upload replaces the last problem


def test_fresh_clone_explorer_shows_photos_and_both_fixes(tmp_path, monkeypatch):
    monkeypatch.chdir(make_project(tmp_path))
    explorer = Explorer(load_profile("tiny"), "test:2", "test:1")
    assert [explorer.key(p) for p in explorer.pickers] == ["photo:camera", "photo:astronaut"]
    assert explorer.predictions.value == "" and explorer.curve.value == ""
    assert "apr data prepare" in explorer.notes.value
    assert "outputs/tiny/weights/fmnist/small_cnn/apr_sp/seed0/model.pt" in explorer.notes.value


# ---- the notebook, headless ----

@pytest.mark.slow
def test_notebook_runs_headless_with_papermill_on_a_fresh_clone(tmp_path):
    import papermill

    project = make_project(tmp_path / "project")  # no data/, no runs/
    out = tmp_path / "explorer.ipynb"
    papermill.execute_notebook(str(project / "notebooks" / NOTEBOOK.name), str(out), parameters={"profile": "tiny"},
                               cwd=str(project / "notebooks"), progress_bar=False, kernel_name="python3")
    nb = nbformat.read(out, as_version=4)
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in shown)
    # The widgets' state is stored with the notebook, so they render as static output; it holds both fixes.
    state = str(nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"])
    assert "apr data prepare --profile tiny" in state and "--config profile=tiny outputs/tiny/weights/" in state
