"""The explorer as the README serves it (`voila notebooks/00_explorer.ipynb`), driven in Debian's headless Chromium.

Voilà runs on a free loopback port of a temporary copy of the project, with the notebook's `profile` set to tiny
(as papermill would set it). Playwright drives Chromium from /usr/bin (it never downloads a browser): it waits for
the widgets, clicks the amplitude slider's track and waits until the recombined image (and, when the tiny runs
exist, the predictions and the confidence curves' t marker) change, then uploads a file that is no image and waits
for the app's message. The server and its kernel are stopped by their own process ids.
"""
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from test_explorer import NOTEBOOK, make_project
from conftest import HANG_SECONDS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
MISSING = [reason for missing, reason in [
    (not CHROMIUM.is_file(), f"Debian's Chromium is not at {CHROMIUM} (`apt-get install chromium`; .ci/run installs it)"),
    (importlib.util.find_spec("playwright") is None, "the Python package playwright is not installed (pip install -e '.[dev]')"),
    (importlib.util.find_spec("voila") is None, "voila is not installed (pip install -e .)"),
] if missing]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(MISSING), reason="; ".join(MISSING))]

TIMEOUT_MS = HANG_SECONDS * 1000  # a cold kernel importing torch on a loaded 2-core machine takes its time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_profile(project: Path, profile: str) -> Path:
    """The project's explorer notebook with `profile` injected after its parameters cell, as papermill does."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    path = project / "notebooks" / NOTEBOOK.name
    nbformat.write(parameterize_notebook(load_notebook_node(str(path)), {"profile": profile}), path)
    return path


def start_voila(notebook: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with log.open("wb") as out:  # the child keeps its own copy of the file
        process = subprocess.Popen(
            [sys.executable, "-m", "voila", notebook.name, "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
             "--show_tracebacks=True"], cwd=notebook.parent, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "JUPYTER_RUNTIME_DIR": str(log.parent / "jupyter-runtime")})
    deadline = time.monotonic() + HANG_SECONDS
    while time.monotonic() < deadline:  # listening is enough: a GET of the page would start a kernel
        if process.poll() is not None:
            raise AssertionError(f"voila exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}/"
        except OSError:
            time.sleep(0.2)
    stop(process)
    raise AssertionError(f"voila did not listen on port {port} within 60 s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM lets Voilà shut its kernels down; whatever of its own processes survives is killed by id."""
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)  # its kernels
    except psutil.Error:  # it has already exited
        children = []
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


@pytest.fixture
def browser(tmp_path):
    """A fresh Chromium page (its own user-data folder) and the list of uncaught script errors on it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile", executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900})
        page, errors = context.new_page(), []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield page, errors
        finally:
            context.close()


@pytest.fixture(params=["trained", "untrained"])
def served_explorer(request, tmp_path, fmnist_root):
    trained = ("standard", "apr_sp") if request.param == "trained" else ()
    project = make_project(tmp_path / "project", fmnist_root, trained)
    log = tmp_path / "voila.log"
    process, url = start_voila(with_profile(project, "tiny"), log)
    try:
        yield request.param, url, log
    finally:
        stop(process)


def test_slider_changes_the_recombined_image_in_the_browser(served_explorer, browser, tmp_path):
    from playwright.sync_api import TimeoutError as PageTimeout

    situation, url, log = served_explorer
    page, errors = browser
    page.goto(url, wait_until="domcontentloaded", timeout=TIMEOUT_MS)
    try:  # widgets are drawn once the kernel has run the notebook; the status line comes with the first update
        page.wait_for_selector(".apr-status:has-text('update:')", timeout=TIMEOUT_MS)
    except PageTimeout:
        raise AssertionError(f"the explorer did not appear. Page:\n{page.inner_text('body')[-2000:]}\n"
                             f"Voila log:\n{log.read_text()[-3000:]}") from None
    recombined = page.locator("img.apr-recombined")
    readout = page.locator(".apr-amount .widget-readout")
    source, predictions = recombined.get_attribute("src"), page.inner_text(".apr-predictions")
    assert readout.inner_text() == "1.00"
    curves = page.locator(".apr-curve svg polyline")
    markers = page.locator(".apr-curve .apr-t-marker")
    if situation == "trained":  # one panel per model, its top 3 classes each, t marked where the slider is
        assert curves.count() == 2 * 3 and markers.count() == 2
        assert markers.first.get_attribute("data-t") == "1.00"
    else:
        assert curves.count() == 0

    track = page.locator(".apr-amount .noUi-target").bounding_box()
    clicked = time.perf_counter()
    page.mouse.click(track["x"] + 0.25 * track["width"], track["y"] + track["height"] / 2)
    page.wait_for_function("old => document.querySelector('img.apr-recombined').src !== old", arg=source,
                           timeout=TIMEOUT_MS)
    redraw_ms = (time.perf_counter() - clicked) * 1000
    assert 0 < float(readout.inner_text()) < 0.5
    assert page.evaluate("() => document.querySelector('img.apr-recombined').naturalWidth") > 0  # a real image

    if situation == "trained":
        assert "Standard" in predictions and "APR-SP" in predictions
        page.wait_for_function("old => document.querySelector('.apr-predictions').innerText !== old",
                               arg=predictions, timeout=TIMEOUT_MS)
        page.wait_for_function("() => document.querySelector('.apr-curve .apr-t-marker').dataset.t !== '1.00'",
                               timeout=TIMEOUT_MS)
        assert markers.first.get_attribute("data-t") == readout.inner_text()
        assert "No trained" not in page.inner_text(".apr-notes")
    else:
        assert predictions.strip() == ""
        notes = page.inner_text(".apr-notes")
        assert "No trained Standard and APR-SP model of the profile 'tiny'" in notes
        assert ("snakemake --cores 4 --config profile=tiny outputs/tiny/weights/fmnist/small_cnn/standard/seed0/model.pt"
                in notes)

    # The limits are stated before any upload; a file that is no image is answered in the app, not in a log.
    assert "at most 8 MB and 25 megapixels" in page.inner_text(".apr-explorer")
    with page.expect_file_chooser() as chooser:
        page.locator(".apr-explorer .widget-upload").first.click()
    chooser.value.set_files(files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"not a png"}])
    page.wait_for_selector(".apr-upload-message:has-text('broken.png is not an image PIL can read')",
                           timeout=TIMEOUT_MS)
    assert not errors, errors

    screenshot = tmp_path / f"explorer-{situation}.png"
    page.locator(".apr-explorer").screenshot(path=screenshot)
    assert screenshot.stat().st_size > 10_000
    print(f"\n{situation}: slider click to new recombined image: {redraw_ms:.0f} ms; screenshot {screenshot}")
