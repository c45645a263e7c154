"""End to end: notebook 4 in JupyterLab in headless Chromium, driven by Playwright, as a learner uses it.

Runs in CI (CI=true), where `make test` installs Debian's chromium. Elsewhere, without chromium, it is skipped
with a message saying how to enable it.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_lib import load_model
from vae_lib.core.settings import REPO_ROOT, outputs_dir
from vae_lib.course.shipped import shipped_checkpoint
from vae_lib.pictures.explorer import IMAGE_SCALE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NOTEBOOK = "04_latent_explorer.ipynb"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = outputs_dir() / "figures" / "explorer.png"


def _requirements_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return "chromium is not installed"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None


def _skip_or_fail_without_browser() -> None:
    missing = _requirements_missing()
    if missing is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{missing}, but CI=true requires the browser test: `make test` installs chromium when CI=true")
    pytest.skip(
        f"{missing}: run `sudo apt-get install chromium` (Debian/Ubuntu) to enable the browser test, "
        "or run `CI=true make test`, which installs it"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def jupyter_lab(tmp_path: Path):
    """Start JupyterLab on a free local port with a token, serving a copy of notebook 4; stop it afterwards."""
    _skip_or_fail_without_browser()
    shutil.copy(REPO_ROOT / "notebooks" / NOTEBOOK, tmp_path / NOTEBOOK)  # autosave must not touch the committed one
    port, token = _free_port(), os.urandom(16).hex()
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')  # no news pop-up
    log = (tmp_path / "jupyter.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path}",
            "--LabApp.expose_app_in_browser=True",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
            "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        },
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"JupyterLab did not start:\n{(tmp_path / 'jupyter.log').read_text()}") from None
                time.sleep(0.5)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _image_pixels(page, locator) -> np.ndarray:
    """Return the pixels of an <img> as the page has them, every IMAGE_SCALE-th one (the 28 x 28 decoded image)."""
    from PIL import Image

    data = page.evaluate(
        "async (img) => { const r = await fetch(img.src); return Array.from(new Uint8Array(await r.arrayBuffer())); }",
        locator.element_handle(),
    )
    return np.asarray(Image.open(io.BytesIO(bytes(data))).convert("L"))[::IMAGE_SCALE, ::IMAGE_SCALE]


def test_explorer_slider_redraws_the_decoded_image_in_jupyterlab(jupyter_lab) -> None:
    from playwright.sync_api import sync_playwright

    base, token = jupyter_lab
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}", timeout=120_000)
            page.wait_for_function(
                "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
                " return k && k.status === 'idle'; }",
                timeout=180_000,
            )
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            slider = page.locator(".vae-slider-z1").first
            decoded = page.locator("img.vae-decoded").first
            slider.wait_for(timeout=180_000)
            page.wait_for_function("(img) => img.src && img.complete", arg=decoded.element_handle(), timeout=60_000)
            before = _image_pixels(page, decoded)

            page.evaluate(
                """(img) => {
                    window.vaeTimes = [];
                    document.addEventListener('keydown', () => { window.vaeKeyTime = performance.now(); }, true);
                    new MutationObserver(() => window.vaeTimes.push(performance.now() - window.vaeKeyTime))
                        .observe(img, {attributes: true, attributeFilter: ['src']});
                }""",
                decoded.element_handle(),
            )
            handle = slider.locator(".noUi-handle").first
            handle.focus()
            presses = 8
            for press in range(presses):
                page.keyboard.press("ArrowRight")
                page.wait_for_function(f"() => window.vaeTimes.length >= {press + 1}", timeout=30_000)
            latencies = page.evaluate("window.vaeTimes")
            page.wait_for_timeout(300)
            after = _image_pixels(page, decoded)
            readouts = [float(page.locator(f".vae-slider-z{dim} .widget-readout").first.inner_text()) for dim in (1, 2)]
            decoded.scroll_into_view_if_needed()
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.locator(".jp-OutputArea-output", has=decoded).first.screenshot(path=str(SCREENSHOT))
        finally:
            browser.close()

    assert readouts[0] == pytest.approx(0.05 * presses) and readouts[1] == 0.0
    assert not np.array_equal(before, after), "moving the slider did not change the decoded image"
    model = load_model(shipped_checkpoint("2d"))
    with torch.no_grad():
        expected = model.decode(torch.tensor([readouts], dtype=torch.float32))[0, 0].numpy()
    expected = np.rint(np.clip((expected + 1) / 2, 0, 1) * 255).astype(int)
    assert np.abs(after.astype(int) - expected).max() <= 1, "the page shows another image than model.decode gives"
    print(
        f"\nslider move to updated image in the page: median {statistics.median(latencies):.0f} ms, "
        f"max {max(latencies):.0f} ms over {len(latencies)} key presses; screenshot {SCREENSHOT}"
    )
