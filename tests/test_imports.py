"""Light imports: the package, the CLI's help and the TensorFlow-free stages.

Each case runs in a fresh interpreter, since this test process has imported
TensorFlow long before.
"""

import subprocess
import sys

import pytest


def fresh(code):
    """Run ``code`` in a new interpreter; return its last printed line."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


HEAVY = "print(*[m in sys.modules for m in ('tensorflow', 'nengo_dl', 'nengo_loihi')])"


def test_import_nengo_hybrid_is_light():
    assert fresh(f"import nengo_hybrid, sys; {HEAVY}") == "False False False"
    # control: the check can see a heavy import
    assert fresh(f"import nengo_hybrid.dl, sys; {HEAVY}") == "True True False"


@pytest.mark.parametrize(
    "module",
    [
        "nengo_hybrid.schedules",
        "nengo_hybrid.metrics",
        "nengo_hybrid.networks",
        "nengo_hybrid.zoo",
        "nengo_hybrid.tasks",
        "nengo_hybrid.frozen",
        "nengo_hybrid.plots",
        "nengo_hybrid.pipeline.check",
        "nengo_hybrid.pipeline.deploy",
        "nengo_hybrid.pipeline.report",
        "nengo_hybrid.hardware.strategies",
        "nengo_hybrid.hardware.profiles",
        "nengo_hybrid.hardware.plans",
        "nengo_hybrid.baselines",
        "nengo_hybrid.sweep",
        "nengo_hybrid.sweep_report",
    ],
)
def test_tensorflow_free_modules(module):
    assert fresh(f"import {module}, sys; {HEAVY}").split()[:2] == ["False", "False"]


def test_building_a_recipe_needs_no_tensorflow():
    code = (
        "import sys; from nengo_hybrid import zoo; "
        "net = zoo.read('lmu_quick').build(); zoo.read('mnist_dense').build(); "
        f"{HEAVY}"
    )
    assert fresh(code).split()[:2] == ["False", "False"]


def test_help_imports_nothing_heavy():
    code = (
        "import sys\nfrom nengo_hybrid import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"{HEAVY}\n"
    )
    assert fresh(code) == "False False False"


def test_sweep_help_imports_no_ray():
    heavy = HEAVY.replace("'nengo_loihi'", "'nengo_loihi', 'ray'")
    code = (
        "import sys\nfrom nengo_hybrid import cli\n"
        "try:\n    cli.main(['sweep', '--help'])\nexcept SystemExit:\n    pass\n"
        f"{heavy}\n"
    )
    assert fresh(code) == "False False False False"


def test_plots_leave_matplotlib_alone():
    """No backend is forced: importing and drawing never loads pyplot."""
    code = (
        "import sys, matplotlib, tempfile, pathlib\n"
        "before = matplotlib.rcParams._get_backend_or_none()\n"
        "from nengo_hybrid import plots\n"
        "plots.spike_raster([[0, 1], [2, 0]], pathlib.Path(tempfile.mkdtemp()) / 'r.png')\n"
        "print(matplotlib.rcParams._get_backend_or_none() == before, "
        "'matplotlib.pyplot' in sys.modules)\n"
    )
    assert fresh(code) == "True False"


def test_nengo_dl_registers_the_builder_on_first_use():
    """No explicit import of nengo_hybrid.dl: NengoDL's build loads it."""
    code = (
        "import sys, warnings\nimport nengo, nengo_dl\n"
        "from nengo_hybrid import HybridSpiking\n"
        "warnings.simplefilter('error', UserWarning)\n"
        "warnings.filterwarnings('ignore', message='No GPU')\n"
        "with nengo.Network() as net:\n"
        "    e = nengo.Ensemble(4, 1, neuron_type=HybridSpiking(nengo.LIFRate(), 2))\n"
        "with nengo_dl.Simulator(net, progress_bar=False) as sim:\n"
        "    sim.run_steps(2)\n"
        "print('nengo_hybrid.dl' in sys.modules)\n"
    )
    assert fresh(code) == "True"
