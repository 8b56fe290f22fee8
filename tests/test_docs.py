"""The runnable examples in the docstrings of the main entry points.

Each docstring's ``Examples`` section is run with doctest, so the examples a
user copies stay true to the code.
"""

import doctest

import pytest

import nengo_hybrid
from nengo_hybrid import HybridSpiking, SigmaDelta, hardware, training


def run_examples(obj, name, globs=None):
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(obj, name=name, globs=dict(globs or {}))
    n_examples = sum(len(t.examples) for t in tests)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    return n_examples, result


@pytest.mark.parametrize(
    "obj, name",
    [
        (HybridSpiking, "HybridSpiking"),
        (SigmaDelta, "SigmaDelta"),
        (training.fit, "training.fit"),
        (hardware.check, "hardware.check"),
        (hardware.Simulator, "hardware.Simulator"),
        (hardware.add_params, "hardware.add_params"),
    ],
)
def test_docstring_examples(obj, name):
    n_examples, result = run_examples(obj, name, {"nengo_hybrid": nengo_hybrid})
    assert n_examples >= 3, f"{name} has no runnable examples"
    assert result.failed == 0 and result.attempted == n_examples


def test_a_wrong_example_fails():
    """Control: the runner does report an example whose output is wrong."""

    def wrong():
        """
        >>> 1 + 1
        3
        """

    _, result = run_examples(wrong, "wrong")
    assert result.failed == 1
