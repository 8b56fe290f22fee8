"""Browser tests: every model in ``models/`` opens in Nengo GUI with its plots.

Each test starts a Nengo GUI server on loopback (in a subprocess, with an
ephemeral port) with the model's layout file (``models/MODEL.py.cfg``, copied
to a temporary path so that the GUI's own saves leave ``models/`` untouched),
loads the page in headless Chromium through Playwright, presses play, lets a
few digits play, and checks that no error is shown (neither in the GUI's
console pane nor as a JavaScript error) and that the layout's plots are there
and drawn: the spike-count raster has spikes (multi-bit counts for the LMUs),
the class-score and other value plots have lines, the digit image is drawn,
the HTML view names the digit's label, and moving the slider makes the chosen
test digit play next. A screenshot of each run is saved as a test artifact in
``tests/artifacts/``.

Backends: the reference simulator (``nengo``) and nengo-loihi's emulator through
``nengo_hybrid`` (``nengo -b nengo_hybrid FILE``: Nengo GUI imports the module
and uses its ``Simulator``, `nengo_hybrid.hardware.Simulator`); plain
``-b nengo_loihi`` does not know HybridSpiking neurons. The default run opens
``models/lmu_quick.py`` (untrained) on both; the other models, and the quick
LMU with a briefly trained run (``NENGO_HYBRID_RUN``), are marked slow. The
trained network's classes are checked against the reference simulator in
``test_gui_model.py``.

Set-up (what CI runs): ``tests/setup_browser.sh`` installs Debian's
``chromium`` and Playwright for Python. Without them these tests are skipped
with the reason. Playwright's own browser download is never used.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import pytest

from nengo_hybrid import zoo
from nengo_hybrid.networks import GUI_COUNT_LEVELS

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
# digits (sequences or presentations) to play before looking at the plots
N_DIGITS = 3

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
        # the default run opens one model in the GUI (half a minute each)
        params.append(
            pytest.param(
                path, LOIHI_BACKEND, marks=[pytest.mark.slow], id=f"{path.stem}-loihi"
            )
        )
    return params


class GuiServer:
    """A Nengo GUI server in a subprocess, stopped on exit."""

    def __init__(self, model, backend, cfg, run=None):
        env = dict(os.environ)
        env.pop("NENGO_HYBRID_RUN", None)
        if run is not None:
            env["NENGO_HYBRID_RUN"] = str(run)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(model), backend, str(cfg)],
            cwd=str(ROOT),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
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


def digit_seconds(model):
    """Simulated seconds one digit plays in ``model`` (read from its recipe)."""
    settings = zoo.read(model).settings
    steps = settings.get("n_steps") or settings["network"]["presentation_steps"]
    return steps * 0.001


# what the page's plots show: one entry per component (nengo_gui's JS objects)
COMPONENTS_JS = """() => Nengo.Component.components.map(c => {
    const kind = c instanceof Nengo.Raster ? 'raster'
        : c instanceof Nengo.Value ? 'value'
        : c instanceof Nengo.Image ? 'image'
        : c instanceof Nengo.HTMLView ? 'html'
        : c instanceof Nengo.Slider ? 'slider' : 'other';
    const info = {kind: kind, label: c.label.textContent,
                  in_dom: document.body.contains(c.div)};
    if (kind === 'value') {
        info.points = Array.from(c.div.querySelectorAll('path.line')).map(
            p => ((p.getAttribute('d') || '').match(/L/g) || []).length);
    }
    if (kind === 'raster') {
        info.ticks = ((c.path.attr('d') || '').match(/M/g) || []).length;
        info.rows = [].concat(...c.data_store.data[0].map(a => Array.from(a)));
    }
    if (kind === 'image') {
        info.image = (c.image.attr('xlink:href') || '').length;
    }
    if (kind === 'html') {
        info.text = c.pdiv.innerText;
    }
    return info;
})"""


def _wait_time(page, seconds):
    """Wait until simulated time passes ``seconds`` (or an error shows)."""
    page.wait_for_function(
        f"() => parseFloat(document.querySelector('#ticks_tr td')"
        f".textContent) > {seconds} || "
        "document.querySelector('#console_error').textContent.length > 0",
        timeout=HANG_GUARD_MS,
    )


# the test digit chosen with the slider after the plots were read
CHOSEN_DIGIT = 123


def choose_digit(page, index):
    """Move the digit slider to ``index``; return the scoreboard's text once it
    plays that digit (within one digit's time)."""
    page.evaluate(
        "(index) => Nengo.Component.components.find("
        "c => c instanceof Nengo.Slider).sliders[0].set_value(index)",
        index,
    )
    html = (
        "() => Nengo.Component.components.find(c => c instanceof Nengo.HTMLView)"
        ".pdiv.innerText"
    )
    # the wait returns the text it saw: read later, the next digit may be playing
    seen = page.wait_for_function(
        f"() => {{ const t = ({html})(); return (t.includes('#{index},') || "
        "document.querySelector('#console_error').textContent.length > 0) && t; }",
        timeout=HANG_GUARD_MS,
    )
    return seen.json_value()


def run_in_browser(model, backend, tmp_path, screenshot, run=None, n_digits=N_DIGITS):
    """Open ``model`` with its layout in Nengo GUI, press play, return what showed.

    Parameters
    ----------
    run : path, optional
        A trained run folder (``NENGO_HYBRID_RUN`` for the server).
    n_digits : int
        Digits to play before reading the plots.

    Returns
    -------
    dict
        ``times`` (simulated times read from the GUI), ``components`` (what
        each plot showed, `COMPONENTS_JS`), ``console_error`` (text of the
        GUI's error pane), ``page_errors`` (uncaught JavaScript errors),
        ``icon`` (class of the play/pause icon) and ``server_output``.
    """
    from playwright.sync_api import sync_playwright

    cfg = tmp_path / "layout.cfg"
    layout = pathlib.Path(f"{model}.cfg")
    if layout.exists():
        shutil.copy(layout, cfg)
    with GuiServer(model, backend, cfg, run=run) as server:
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
                page.click("#Toggle_ace")  # hide the code editor: room for the plots
                times = [_sim_time(page)]
                page.click("#pause_button")
                # simulated time must advance (twice), past a few digits
                _wait_time(page, 0.01)
                times.append(_sim_time(page))
                _wait_time(page, max(times[-1], n_digits * digit_seconds(model)))
                times.append(_sim_time(page))
                time.sleep(1.0)  # let the plots draw before reading them
                components = page.evaluate(COMPONENTS_JS)
                page.screenshot(path=str(screenshot), full_page=True)
                chosen = choose_digit(page, CHOSEN_DIGIT)
                return {
                    "times": times,
                    "components": components,
                    "chosen": chosen,
                    "console_error": page.inner_text("#console_error"),
                    "page_errors": page_errors,
                    "icon": page.get_attribute("#pause_button_icon", "class"),
                    "server_output": server.output,
                }
            finally:
                browser.close()


def check_plots(result, model, multibit=True):
    """The layout's plots are in the page and show the network at work."""
    by_kind = {}
    for c in result["components"]:
        assert c["in_dom"], c
        by_kind.setdefault(c["kind"], []).append(c)
    assert {"raster", "value", "image", "html", "slider"} <= set(by_kind), by_kind
    # the spike-count raster has drawn spikes; rows above the first of each
    # neuron's group are counts of 2 or more
    (raster,) = [r for r in by_kind["raster"] if r["label"].endswith("spike counts")]
    assert raster["ticks"] > 0, raster
    if multibit:
        rows = GUI_COUNT_LEVELS + 1
        assert any(r % rows >= 1 for r in raster["rows"]), "no multi-bit count drawn"
    # every value plot has lines with data, the class scores among them
    labels = [v["label"] for v in by_kind["value"]]
    assert "class scores" in labels, labels
    for value in by_kind["value"]:
        assert value["points"] and min(value["points"]) > 10, value
    (image,) = by_kind["image"]
    assert image["image"] > 100, image  # a PNG data URL of the digit
    (html,) = by_kind["html"]
    assert "label" in html["text"] and "correct" in html["text"], html
    # the slider chose the digit that plays next
    assert f"test digit #{CHOSEN_DIGIT}," in result["chosen"], result["chosen"]


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
    assert times[2] >= N_DIGITS * digit_seconds(model)
    # untrained, a chip runs OneBit (nothing measured): multi-bit on the reference
    check_plots(
        result, model, multibit=model.stem.startswith("lmu") and backend == "nengo"
    )
    assert screenshot.stat().st_size > 0


def test_models_exist():
    """The browser test needs at least the default model to open."""
    assert (ROOT / "models" / DEFAULT_MODEL).exists(), (
        f"models/{DEFAULT_MODEL} is missing; the GUI test opens it"
    )


@pytest.fixture(scope="module")
def trained_quick(tmp_path_factory):
    from test_gui_model import train_quick

    return train_quick(tmp_path_factory.mktemp("gui_trained"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["nengo", LOIHI_BACKEND])
def test_trained_model_in_gui(trained_quick, backend, tmp_path):
    """A trained run (NENGO_HYBRID_RUN) opens with the same plots; on the
    emulator its hidden layer runs the strategy ``check`` chose, so the chip's
    multi-bit counts show in the raster."""
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / f"gui-lmu_quick-trained-{backend}.png"
    model = ROOT / "models" / DEFAULT_MODEL
    result = run_in_browser(model, backend, tmp_path, screenshot, run=trained_quick)
    assert result["console_error"].strip() == "", result["console_error"]
    assert result["page_errors"] == []
    check_plots(result, model, multibit=True)
