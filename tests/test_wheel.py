"""The wheel, installed into a fresh venv outside the checkout (slow: minutes).

Runs ``benchmarks/wheel_install.py``: ``--help``, ``check --model lmu_quick`` and
``run --epochs 1`` from an empty folder, and the ``nengo.backends`` entry point.
"""

import pathlib
import runpy

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_runs_outside_the_checkout():
    script = runpy.run_path(str(ROOT / "benchmarks" / "wheel_install.py"))
    assert script["main"](["--no-results"]) == 0
