"""The networks Nengo GUI opens: test digits, displays, trained runs, chip placement.

The browser side (layouts, plots drawn) is in ``test_gui.py``; this module runs
the same ``model`` objects in plain simulators. The central check: with a
trained run, the classes the GUI model shows for the digits it plays are the
classes the run's frozen network gives in the Nengo reference simulator,
outside the GUI, on the same digits played back to back (as ``nengo-hybrid
deploy`` plays them).
"""

import pathlib
import runpy

import nengo
import numpy as np
import pytest

from nengo_hybrid import cli, zoo
from nengo_hybrid.networks import (
    GUI_COUNT_LEVELS,
    DigitPlayer,
    _Scoreboard,
    hybrid_relu,
    memory_response,
    spike_count_raster,
    spike_count_scale,
)
from nengo_hybrid.pipeline.deploy import present
from nengo_hybrid.pipeline.runs import read_frozen, recipe_of
from nengo_hybrid.tasks import RUN_ENV, gui_model, trained_recipe
from nengo_hybrid.zoo import RecipeError

ROOT = pathlib.Path(__file__).resolve().parents[1]
QUICK = ROOT / "models" / "lmu_quick.py"
N_DIGITS = 10


def train_quick(folder, epochs=1, n_train=500):
    """A briefly trained quick LMU run: train (and freeze), evaluate on 100 test
    digits (the spike counts ``check`` chooses strategies from), check."""
    run = pathlib.Path(folder) / "lmu_quick"
    args = ["--model", QUICK, "--out", run, "--epochs", epochs, "--n-train", n_train]
    assert cli.main(["train"] + [str(a) for a in args]) == 0
    assert cli.main(["evaluate", "--run", str(run), "--n-test", "100"]) == 0
    assert cli.main(["check", "--run", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return train_quick(tmp_path_factory.mktemp("gui_run"))


def settings_of(path):
    return zoo.read_settings(path)


def last_step_classes(data, n_steps):
    """Classes from scores ``(steps, classes)``, read on each sequence's last step."""
    return np.asarray(data)[n_steps - 1 :: n_steps].argmax(axis=1)


# ------------------------------------------------------------ trained runs


def test_trained_gui_model_predicts_as_frozen_reference(quick_run, monkeypatch):
    """10 digits played in the GUI model: same classes as the frozen network
    in the reference simulator, outside the GUI."""
    monkeypatch.setenv(RUN_ENV, str(quick_run))
    model = runpy.run_path(str(QUICK))["model"]  # what Nengo GUI executes
    recipe = recipe_of(quick_run)
    n_steps = recipe["n_steps"]
    with model:
        scores = nengo.Probe(model.gui.scores)
        hidden = nengo.Probe(model.lmu.hidden.neurons)
    with nengo.Simulator(model, progress_bar=False) as sim:
        sim.run_steps(N_DIGITS * n_steps)
    shown = model.gui.scoreboard.output.results  # (index, label, class) shown
    gui_classes = last_step_classes(sim.data[scores], n_steps)

    reference = read_frozen(quick_run).build(recipe)
    data = recipe.load_data("embedded")
    present(reference, data.x_test[:N_DIGITS])
    with reference:
        ref_scores = nengo.Probe(reference.probe.target)
        ref_hidden = nengo.Probe(reference.lmu.hidden.neurons)
    with nengo.Simulator(reference, progress_bar=False) as ref:
        ref.run_steps(N_DIGITS * n_steps)
    ref_classes = last_step_classes(ref.data[ref_scores], n_steps)

    assert [r[0] for r in shown] == list(range(N_DIGITS))  # test digits 0..9
    assert [r[1] for r in shown] == list(data.y_test[:N_DIGITS])
    assert [r[2] for r in shown] == list(gui_classes)
    np.testing.assert_array_equal(gui_classes, ref_classes)
    assert len(set(ref_classes)) > 1, "a trained network tells digits apart"
    # the same spikes (the memory differs by float32 rounding only)
    same = np.mean(sim.data[hidden] == ref.data[ref_hidden])
    assert same > 0.999


def test_trained_recipe_must_match_the_model_file(quick_run):
    dense = ROOT / "models" / "mnist_dense.py"
    with pytest.raises(RecipeError, match="differ"):
        trained_recipe(quick_run, settings_of(dense), dense)
    recipe, frozen = trained_recipe(quick_run, settings_of(QUICK), QUICK)
    assert recipe.name == "lmu_quick" and frozen.precisions == {"hidden": 2.0}


def test_trained_gui_model_on_the_emulator(quick_run):
    """Placed as deployed: check.json's strategy, memory as host encoder spikes,
    displays on the host; the raster shows the chip's multi-bit counts."""
    import nengo_hybrid
    from nengo_hybrid.pipeline.specs import parse_strategy
    from nengo_hybrid.report import read_stage

    model = gui_model(settings_of(QUICK), run=quick_run, backend="nengo_hybrid")
    checked = read_stage(quick_run, "check")
    hidden = model.lmu.hidden
    assert model.config[hidden].strategy == parse_strategy(
        checked["strategies"]["hidden"]
    )
    assert [e.label for e in model.gui.encoders] == ["memory_spikes", "input_spikes"]
    for ens in model.gui.host_ensembles + model.gui.encoders:
        assert model.config[ens].on_chip is False
    n_steps = recipe_of(quick_run)["n_steps"]
    with model:
        counts = nengo.Probe(hidden.neurons)
        rows = nengo.Probe(model.gui.counts.neurons)
    with nengo_hybrid.Simulator(model, progress_bar=False) as sim:
        sim.run_steps(2 * n_steps)
    n = sim.data[counts] * spike_count_scale(hidden.neuron_type)
    np.testing.assert_allclose(n, np.round(n), atol=1e-6)
    assert n.max() >= 2  # multi-bit counts come off the chip
    lit = (sim.data[rows] > 0).reshape(len(n), -1, GUI_COUNT_LEVELS + 1)
    assert lit[..., 1:].any() and not lit[..., -1].any()
    # the scoreboard reads the scores 2 steps late (host-chip latency)
    assert model.gui.scoreboard.output.latency == 2
    assert len(model.gui.scoreboard.output.results) == 1


def test_gui_command(quick_run, monkeypatch, capsys):
    """``nengo-hybrid gui --run R`` opens the run's model with the run in the
    environment; a model that is not the run's is a usage error."""
    launched = []
    monkeypatch.setattr(cli, "_launch_gui", lambda argv, env: launched.append(
        (argv, env)) or cli.EXIT_OK)  # fmt: skip
    assert cli.main(["gui", "--run", str(quick_run), "-b", "nengo_hybrid"]) == 0
    ((argv, env),) = launched
    assert argv[:2] == ["-b", "nengo_hybrid"]
    assert pathlib.Path(argv[2]).name == "lmu_quick.py"
    assert env == {RUN_ENV: str(quick_run.resolve())}
    code = cli.main(["gui", "--run", str(quick_run), "--model", "mnist_dense"])
    assert code == cli.EXIT_USAGE
    assert "differ" in capsys.readouterr().err
    assert cli.main(["gui", "--run", str(quick_run / "missing")]) == cli.EXIT_USAGE
    assert cli.main(["gui", "--model", "mnist_dense", "--no-browser"]) == 0
    argv, env = launched[-1]
    assert argv[-1] == "--no-browser" and env == {RUN_ENV: ""}


# ------------------------------------------------------------ untrained pieces


def run_items(request_values, n_items=7, n_steps=3):
    """``[index, step]`` of `DigitPlayer` with the slider at ``request_values[k]``."""
    values = np.asarray(request_values, dtype=float)
    with nengo.Network() as net:
        slider = nengo.Node(lambda t: values[int(round(t / 0.001)) - 1])
        items = nengo.Node(DigitPlayer(n_items, n_steps), size_in=1)
        nengo.Connection(slider, items, synapse=None)
        probe = nengo.Probe(items)
    with nengo.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(len(values))
    return sim.data[probe]


def test_test_items_follow_the_slider():
    # slider at 5: items 5, 6, 0 (wrapping); moved to 2 during item 0: 2 next
    out = run_items([5] * 8 + [2] * 7)
    assert list(out[:, 1]) == [0, 1, 2] * 5
    assert list(out[::3, 0]) == [5, 6, 0, 2, 3]


def test_gui_memory_restarts_at_each_sequence():
    """Step by step, the linear memory of the GUI model equals the memory
    computed from zero for each sequence (as in training and deployment)."""
    model = runpy.run_path(str(QUICK))["model"]
    settings = settings_of(QUICK)
    x = zoo.read(QUICK).load_data("embedded").x_test[:3]
    with model:
        memory = nengo.Probe(model.lmu.memory)
    with nengo.Simulator(model, progress_bar=False) as sim:
        sim.run_steps(3 * settings["n_steps"])
    net = settings["network"]
    expected = memory_response(x, net["order"], net["theta"]).reshape(len(x) * 49, -1)
    np.testing.assert_allclose(sim.data[memory], expected, atol=1e-6)
    assert model.lmu.memory_mode == "linear"


def test_spike_count_rows_show_the_bits_of_each_count():
    counts = np.array([0, 1, 2, 3, 4, 7, 8, 16, 19])
    with nengo.Network() as net:
        layer = nengo.Ensemble(
            len(counts), 1, neuron_type=hybrid_relu(precision=2.0),
            gain=np.ones(len(counts)), bias=counts / 2.0,  # count = bias * precision
        )  # fmt: skip
        raster, shown = spike_count_raster(layer, n_shown=len(counts))
        probe = nengo.Probe(raster.neurons)
    with nengo.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(3)
    lit = (sim.data[probe][-1] > 0).reshape(len(counts), GUI_COUNT_LEVELS + 1)
    bits = [int(n).bit_length() for n in counts]
    np.testing.assert_array_equal(lit.sum(axis=1), np.minimum(bits, GUI_COUNT_LEVELS))
    assert not lit[:, -1].any()  # the separating row
    np.testing.assert_array_equal(shown, np.arange(len(counts)))


def test_scoreboard_reads_late_scores_for_the_right_digit():
    labels = np.array([3, 1, 4])
    board = _Scoreboard(labels, n_steps=4, score_steps=2, latency=2)
    favoured = [3, 0, 4]  # the class the scores of each digit favour
    for k in range(3 * 4 + 2):
        index, step = min(k // 4, 2), k % 4
        scores = np.zeros(10)
        if k >= 2:  # the scores of step k - 2 arrive now
            scores[favoured[(k - 2) // 4]] = 1.0
        board(0.001 * (k + 1), np.concatenate([scores, [index, step]]))
    assert board.results == [(0, 3, 3), (1, 1, 0), (2, 4, 4)]
    html = board._nengo_html_
    assert "label <b>4</b>" in html and "(step 2 of 4)" in html
    assert "<b>2</b> of 3 correct" in html


@pytest.mark.parametrize("name", ["lmu_quick", "mnist_dense"])
def test_untrained_gui_models_play_and_score(name):
    model = runpy.run_path(str(ROOT / "models" / f"{name}.py"))["model"]
    steps = model.gui.player.output.n_steps
    with nengo.Simulator(model, progress_bar=False) as sim:
        sim.run_steps(2 * steps)
    results = model.gui.scoreboard.output.results
    labels = zoo.read(name).load_data("embedded").y_test
    assert [r[:2] for r in results] == [(0, labels[0]), (1, labels[1])]


def test_empty_run_variable_means_untrained(monkeypatch):
    monkeypatch.setenv(RUN_ENV, "")
    model = gui_model(settings_of(QUICK))
    assert model.gui.scoreboard is not None
