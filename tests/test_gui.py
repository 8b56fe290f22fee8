"""Browser tests: every model in ``models/`` opens and simulates in Nengo GUI.

Each test starts a Nengo GUI server on loopback (in a subprocess, with an
ephemeral port), loads the page in headless Chromium through Playwright,
presses play, and checks that simulated time advances and that no error is
shown, neither in the GUI's console pane nor as a JavaScript error. A
screenshot of each run is saved as a test artifact in ``tests/artifacts/``.

Backends: the reference simulator (``nengo``) and nengo-loihi's emulator through
``nengo_hybrid`` (``nengo -b nengo_hybrid FILE``: Nengo GUI imports the module
and uses its ``Simulator``, `nengo_hybrid.hardware.Simulator`); plain
``-b nengo_loihi`` does not know HybridSpiking neurons. The default run opens
``models/lmu_quick.py`` on both; the other models are marked slow.

Set-up (what CI runs): ``tests/setup_browser.sh`` installs Debian's
``chromium`` and Playwright for Python. Without them these tests are skipped
with the reason. Playwright's own browser download is never used.
"""

import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = sorted(p for p in (ROOT / "models").glob("*.py") if not p.name.startswith("_"))
ARTIFACTS = pathlib.Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("NENGO_HYBRID_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# upper bound on any wait in the browser (a hang guard, not a timing assertion)
HANG_GUARD_MS = 600_000
# Nengo GUI backend for nengo-loihi's emulator: a module with a ``Simulator``;
# nengo_hybrid.Simulator is nengo_loihi.Simulator with the HybridSpiking builder
LOIHI_BACKEND = "nengo_hybrid"
# the model used by the default (fast) test; the others are marked slow
DEFAULT_MODEL = "lmu_quick.py"

# Starts the GUI server on 127.0.0.1 with an ephemeral port, prints the URL
# (with the session token) on one line, then serves until terminated. The
# layout file (.cfg) goes to a temporary path so models/ is left untouched.
SERVER = r"""
import sys
import nengo_gui.gui
import nengo_gui.page
from nengo_gui.guibackend import GuiServerSettings, ModelContext

filename, backend, cfg = sys.argv[1:4]
settings = GuiServerSettings(("127.0.0.1", 0), auto_shutdown=0)
page = nengo_gui.page.PageSettings(backend=backend, filename_cfg=cfg)
gui = nengo_gui.gui.BaseGUI(ModelContext(filename=filename), settings, page)
print("NENGO_GUI_URL " + str(gui.server.get_url(token=True)), flush=True)
gui.start()
"""


def _browser_missing():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed; run tests/setup_browser.sh"
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} not found; run tests/setup_browser.sh (apt chromium)"
    return None


pytestmark = pytest.mark.skipif(
    _browser_missing() is not None, reason=str(_browser_missing())
)


def _model_params():
    params = []
    for path in MODELS:
        marks = [] if path.name == DEFAULT_MODEL else [pytest.mark.slow]
        params.append(pytest.param(path, "nengo", marks=marks, id=f"{path.stem}-nengo"))
        params.append(
            pytest.param(path, LOIHI_BACKEND, marks=marks, id=f"{path.stem}-loihi")
        )
    return params


class GuiServer:
    """A Nengo GUI server in a subprocess, stopped on exit."""

    def __init__(self, model, backend, cfg):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(model), backend, str(cfg)],
            cwd=str(ROOT),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = []
        self.url = None
        for line in self.proc.stdout:
            self.output.append(line)
            match = re.match(r"NENGO_GUI_URL (\S+)", line)
            if match:
                self.url = match.group(1)
                break
        if self.url is None:
            self.proc.wait(timeout=30)
            raise RuntimeError(
                "Nengo GUI server did not start:\n" + "".join(self.output)
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _sim_time(page):
    text = page.inner_text("#ticks_tr td")
    return float(text) if text.strip() else 0.0


def run_in_browser(model, backend, tmp_path, screenshot):
    """Open ``model`` in Nengo GUI, press play, return what the page showed.

    Returns
    -------
    dict
        ``times`` (simulated times read from the GUI), ``console_error`` (text
        of the GUI's error pane), ``page_errors`` (uncaught JavaScript errors),
        ``icon`` (class of the play/pause icon) and ``server_output``.
    """
    from playwright.sync_api import sync_playwright

    with GuiServer(model, backend, tmp_path / "layout.cfg") as server:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                # generous limits only guard against hangs: the server executes
                # the model file (importing TensorFlow) while serving the page
                page.set_default_timeout(HANG_GUARD_MS)
                page_errors = []
                page.on("pageerror", lambda err: page_errors.append(str(err)))
                page.goto(server.url, wait_until="domcontentloaded")
                page.wait_for_selector("#pause_button", state="attached")
                # The GUI builds the model before play is enabled; a model that
                # fails to build shows the error in #console_error instead.
                page.wait_for_function(
                    "() => !document.querySelector('#pause_button')"
                    ".hasAttribute('disabled') || "
                    "document.querySelector('#console_error')"
                    ".textContent.length > 0",
                    timeout=HANG_GUARD_MS,
                )
                times = [_sim_time(page)]
                page.click("#pause_button")
                # simulated time must advance; wait for two distinct increases
                page.wait_for_function(
                    "() => parseFloat(document.querySelector('#ticks_tr td')"
                    ".textContent) > 0.01 || "
                    "document.querySelector('#console_error').textContent.length > 0",
                    timeout=HANG_GUARD_MS,
                )
                times.append(_sim_time(page))
                page.wait_for_function(
                    f"() => parseFloat(document.querySelector('#ticks_tr td')"
                    f".textContent) > {times[-1]} || "
                    "document.querySelector('#console_error').textContent.length > 0",
                    timeout=HANG_GUARD_MS,
                )
                times.append(_sim_time(page))
                time.sleep(0.5)  # let the plots draw before the screenshot
                page.screenshot(path=str(screenshot), full_page=True)
                return {
                    "times": times,
                    "console_error": page.inner_text("#console_error"),
                    "page_errors": page_errors,
                    "icon": page.get_attribute("#pause_button_icon", "class"),
                    "server_output": server.output,
                }
            finally:
                browser.close()


@pytest.mark.parametrize("model, backend", _model_params())
def test_model_simulates_in_gui(model, backend, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / f"gui-{model.stem}-{backend.replace('.', '_')}.png"
    result = run_in_browser(model, backend, tmp_path, screenshot)

    assert result["console_error"].strip() == "", result["console_error"]
    assert result["page_errors"] == []
    assert "glyphicon-remove" not in result["icon"], "build error icon shown"
    times = result["times"]
    assert times[1] > times[0] and times[2] > times[1], f"time did not advance: {times}"
    assert screenshot.stat().st_size > 0


def test_models_exist():
    """The browser test needs at least the default model to open."""
    assert (ROOT / "models" / DEFAULT_MODEL).exists(), (
        f"models/{DEFAULT_MODEL} is missing; the GUI test opens it"
    )
