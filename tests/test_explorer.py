"""The explorer's logic without a browser: recombination, views, predictions, image sources, the widgets' wiring,
and the notebook run headless by papermill on a fresh clone (no data, no runs)."""
import io
import shutil
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from PIL import Image

from apr_lib.study.config import REPO_ROOT, RunSpec, load_profile, metrics_file, run_config, run_dir
from apr_lib.errors import UserError
from apr_lib.paper.explorer import (PHOTOS, Explorer, ImageLibrary, decode_upload, fit_to_dataset, load_models,
                              log_amplitude_view, mix, phase_view, photo, png, spectrum, top_predictions)
from apr_lib.spectral import MODES, amplitude_phase, band_mask, recombine, swap_amplitude

NOW = datetime.now(timezone.utc)  # FileUpload values carry a datetime
NOTEBOOK = REPO_ROOT / "notebooks" / "00_explorer.ipynb"


def make_project(folder: Path, data_root: Path | None = None, trained: tuple[str, ...] = ()) -> Path:
    """A copy of the project in `folder`: data/ linked to `data_root` (none: a fresh clone's), and the tiny
    profile's runs of the methods in `trained` trained for real (about a second each)."""
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
            for method in trained:
                run = RunSpec("fmnist", "small_cnn", method, 0)
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


def test_amount_outside_zero_one_is_refused():
    s = spectrum(images((1, 4, 4), 0), "per_channel")
    with pytest.raises(ValueError, match="amount"):
        mix(s, s, 1.5, "per_channel")


# ---- what is shown ----

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


class FixedLogits(torch.nn.Module):
    """Returns the same logits for any input; remembers the input range it saw."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor([logits])

    def forward(self, x):
        self.seen = (x.min().item(), x.max().item())
        return self.logits.expand(len(x), -1)


def test_top_predictions_are_sorted_softmax_of_a_clipped_image():
    model = FixedLogits([0.0, 2.0, 1.0, -1.0])
    top = top_predictions(model, torch.tensor([[[-3.0, 4.0]]]), ["a", "b", "c", "d"], k=3)
    assert [name for name, _ in top] == ["b", "c", "a"]
    expected = torch.tensor([0.0, 2.0, 1.0, -1.0]).softmax(0)[[1, 2, 0]].tolist()
    assert [p for _, p in top] == pytest.approx(expected)
    assert model.seen == (0.0, 1.0)


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


def test_an_upload_that_is_no_image_says_so():
    with pytest.raises(UserError, match="notes.txt is not an image"):
        decode_upload(b"just text", "notes.txt", 1, 28)


def test_without_the_dataset_photos_are_offered_and_the_fix_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(make_project(tmp_path))
    library = ImageLibrary(load_profile("tiny"))
    assert "apr data prepare --profile tiny" in library.notice and "snakemake --cores 4 all" in library.notice
    assert [key for _, key in library.options] == [f"photo:{name}" for name in PHOTOS]
    assert library.resolve("test:2", "photo:camera") == "photo:camera"
    with pytest.raises(UserError, match="no image 'test:2'"):
        library.get("test:2")


def test_dataset_offers_one_test_image_per_class(tmp_path, monkeypatch, fmnist_root):
    monkeypatch.chdir(make_project(tmp_path, fmnist_root))
    library = ImageLibrary(load_profile("tiny"))
    tests = [(label, key) for label, key in library.options if key.startswith("test:")]
    assert len(tests) == 10 and library.notice == ""
    assert {label.split("(")[1].rstrip(")") for label, _ in tests} == set(library.test.classes)
    index = int(tests[3][1][5:])
    assert library.test.labels[index] == 3  # ordered by class
    torch.testing.assert_close(library.get(tests[3][1]), library.test.images[index].float() / 255)
    library.get("test:123")  # any test image by index, labelled with its class
    assert library.labels["test:123"] == f"test #123 ({library.test.classes[library.test.labels[123]]})"


# ---- models ----

def test_missing_runs_give_the_command_that_trains_them(tmp_path, monkeypatch):
    monkeypatch.chdir(make_project(tmp_path))
    models, hint = load_models(load_profile("tiny"))
    assert models == {}
    assert ("snakemake --cores 4 --config profile=tiny runs/tiny/fmnist/small_cnn/standard/seed0/model.pt "
            "runs/tiny/fmnist/small_cnn/apr_sp/seed0/model.pt") in hint
    assert "No trained Standard and APR-SP model" in hint


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory, fmnist_root):
    return make_project(tmp_path_factory.mktemp("explorer"), fmnist_root, trained=("standard", "apr_sp"))


def test_trained_runs_are_loaded(trained_project, monkeypatch):
    monkeypatch.chdir(trained_project)
    models, hint = load_models(load_profile("tiny"))
    assert hint == "" and list(models) == ["Standard", "APR-SP"]
    assert models["Standard"](torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_one_missing_run_is_named_alone(trained_project, tmp_path, monkeypatch):
    project = make_project(tmp_path)
    shutil.copytree(trained_project / "runs/tiny/fmnist/small_cnn/standard", project / "runs/tiny/fmnist/small_cnn/standard")
    monkeypatch.chdir(project)
    models, hint = load_models(load_profile("tiny"))
    assert list(models) == ["Standard"]
    assert "No trained APR-SP model" in hint and "Train it with" in hint and "standard/seed0" not in hint


# ---- the widgets, driven from Python ----

def test_explorer_updates_views_and_predictions(trained_project, monkeypatch):
    monkeypatch.chdir(trained_project)
    explorer = Explorer(load_profile("tiny"), "test:2", "test:1", amount=1.0)
    recombined, spectra = explorer.views[6].value, [v.value for v in explorer.views[:6]]
    predictions = explorer.predictions.value
    for heading in ("Standard", "APR-SP", "phase image", "amplitude image", "recombined"):
        assert heading in predictions
    assert predictions.count("%") == 2 * 3 * 3  # top 3 of two models on three images
    assert explorer.notices == [] and "update: " in explorer.status.value  # data and runs are there: nothing to fix

    explorer.amount.value = 0.0  # back to the image's own amplitude: the image itself
    shown = np.asarray(Image.open(io.BytesIO(explorer.views[6].value)))
    assert np.array_equal(shown, np.asarray(Image.open(io.BytesIO(explorer.views[0].value))))
    assert explorer.views[6].value != recombined and explorer.predictions.value != predictions
    assert [v.value for v in explorer.views[:6]] == spectra  # the sources did not change
    assert "t = 0.00" in explorer.captions[6].value

    amplitude_shown = explorer.views[7].value
    explorer.amplitude_band.value = "high"
    assert explorer.views[7].value != amplitude_shown and "high band" in explorer.captions[7].value
    explorer.radii.value = (3, 6)
    assert explorer.views[7].value != amplitude_shown

    explorer.pickers[1].value = "photo:coins"
    assert [v.value for v in explorer.views[3:6]] != spectra[3:6]


def test_upload_is_offered_and_chosen(trained_project, monkeypatch):
    monkeypatch.chdir(trained_project)
    explorer = Explorer(load_profile("tiny"))
    buffer = io.BytesIO()
    Image.fromarray(np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))).save(buffer, format="PNG")
    recombined = explorer.views[6].value
    explorer.uploads[1].value = ({"name": "ramp.png", "type": "image/png", "size": 1, "last_modified": NOW,
                                  "content": memoryview(buffer.getvalue())},)
    assert explorer.pickers[1].value == "upload:ramp.png"
    assert ("upload: ramp.png", "upload:ramp.png") in explorer.pickers[0].options
    assert explorer.views[6].value != recombined
    explorer.uploads[0].value = ({"name": "bad.png", "type": "image/png", "size": 1, "last_modified": NOW,
                                  "content": memoryview(b"not a png")},)
    assert "bad.png is not an image" in explorer.status.value and explorer.pickers[0].value == "test:13"
    # The same name again, other content: a new entry, not the first file's cached spectrum.
    buffer = io.BytesIO()
    Image.new("L", (32, 32), 200).save(buffer, format="PNG")
    ramp_view = explorer.views[3].value
    explorer.uploads[1].value = ({"name": "ramp.png", "type": "image/png", "size": 1, "last_modified": NOW,
                                  "content": memoryview(buffer.getvalue())},)
    assert explorer.pickers[1].value == "upload:ramp.png (2)" and explorer.views[3].value != ramp_view
    assert "bad.png" not in explorer.status.value  # a good upload clears the last problem


def test_fresh_clone_explorer_shows_photos_and_both_fixes(tmp_path, monkeypatch):
    monkeypatch.chdir(make_project(tmp_path))
    explorer = Explorer(load_profile("tiny"), "test:2", "test:1")
    assert [p.value for p in explorer.pickers] == ["photo:camera", "photo:astronaut"]
    assert explorer.predictions.value == ""
    assert "apr data prepare" in explorer.status.value and "runs/tiny/fmnist/small_cnn/apr_sp/seed0/model.pt" in explorer.status.value


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
    assert "apr data prepare --profile tiny" in state and "--config profile=tiny runs/tiny/" in state
