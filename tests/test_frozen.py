"""The frozen network file, and a run that builds the NengoDL graph only twice."""

import contextlib
import io
import shutil

import nengo
import nengo_dl
import numpy as np
import pytest
from test_cli import write_recipe

from nengo_hybrid import cli, frozen, training, zoo
from nengo_hybrid.pipeline.runs import FROZEN


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny recipe trained for one epoch, counting NengoDL simulator builds."""
    folder = tmp_path_factory.mktemp("frozen")
    recipe = write_recipe(folder)
    out = folder / "run"
    builds = []
    original = nengo_dl.Simulator.__init__

    def counting(self, *args, **kwargs):
        builds.append(args[0] if args else kwargs.get("network"))
        original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nengo_dl.Simulator, "__init__", counting)
        args = ["run", "--model", recipe, "--out", out, "--n-train", 100]
        args += ["--n-test", 50, "--n-samples", 3]
        code = cli.main([str(a) for a in args])
    assert code == 0
    return out, recipe, builds


def test_run_builds_nengo_dl_twice(run):
    """Once for training (which also freezes), once for evaluation; check and
    deploy read the frozen file."""
    _, _, builds = run
    assert len(builds) == 2


def _spikes(net, x):
    """Hidden spikes of ``net`` playing sequences ``x`` in the reference simulator."""
    from nengo_hybrid.pipeline.deploy import present

    n_steps = present(net, x)
    probe = net.hidden_probe()
    with nengo.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(n_steps)
    return sim.data[probe]


def _data(recipe):
    return zoo.read(recipe).load_data("embedded").x_test[:3]


def test_frozen_file_equals_in_memory_freeze(run):
    """Rebuilding from frozen.npz gives the spikes of freezing the trained
    simulator directly (the path before the file existed)."""
    from nengo_hybrid.pipeline.freeze import restore
    from nengo_hybrid.pipeline.runs import recipe_of

    out, recipe_path, _ = run
    recipe = recipe_of(out)
    x = _data(recipe_path)
    with contextlib.redirect_stdout(io.StringIO()):
        net, sim = restore(out, recipe)
        with sim:
            training.freeze(sim, net)
    net.probes.remove(net.hidden_probe())
    net._hidden_probe = None
    reference = _spikes(net, x)
    from_file = _spikes(frozen.read(out / FROZEN).build(recipe), x)
    assert reference.any()
    assert np.array_equal(reference, from_file)

    # control: one weight changed in the file changes the spikes
    data = frozen.read(out / FROZEN)
    record, values = next(
        (r, v) for r, v in data.connections if r["kind"] == "transform"
    )
    values["transform"] = values["transform"].copy()
    values["transform"].flat[0] += 5.0
    assert not np.array_equal(reference, _spikes(data.build(recipe), x))


def test_frozen_file_needs_no_tensorflow(run, tmp_path):
    import subprocess
    import sys

    out, _, _ = run
    code = (
        "import sys; from nengo_hybrid import frozen; "
        f"net = frozen.read({str(out / FROZEN)!r}).build(); "
        "print(len(net.all_ensembles), 'tensorflow' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert proc.stdout.split()[-1] == "False"


def test_frozen_file_errors(run, tmp_path):
    out, recipe_path, _ = run
    with pytest.raises(frozen.FrozenError, match="is missing: train the run first"):
        frozen.read(tmp_path / "nope.npz")

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((out / FROZEN).read_bytes()[:200])
    with pytest.raises(frozen.FrozenError, match=f"{truncated} is unreadable"):
        frozen.read(truncated)

    # a recipe whose hidden layer changed since freezing: nothing is changed
    bigger = zoo.read(write_recipe(tmp_path, name="bigger", n_hidden=9))
    net = bigger.build()
    before = [e.bias for e in net.all_ensembles]
    with pytest.raises(frozen.FrozenError, match="does not fit the network built"):
        frozen.read(out / FROZEN).build(bigger)
    with pytest.raises(frozen.FrozenError, match="recipe changed since"):
        frozen.read(out / FROZEN).apply(net)
    assert [e.bias for e in net.all_ensembles] == before


def test_check_and_deploy_work_without_checkpoint(run, tmp_path, capsys):
    """The later stages read only frozen.npz (and the stage JSON files)."""
    out, _, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "checkpoint.npz").unlink()
    assert cli.main(["check", "--run", str(copy)]) == 0
    assert cli.main(["deploy", "--run", str(copy), "--n-samples", "2"]) == 0
