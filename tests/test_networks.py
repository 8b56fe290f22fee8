"""The LMU network: its fixed memory, its delay property, its size, and NengoDL."""

import runpy
from pathlib import Path

import nengo
import numpy as np
import pytest
import scipy.signal
from nengo.exceptions import ValidationError

import nengo_hybrid  # noqa: F401 (registers the NengoDL builder)
from nengo_hybrid.networks import (
    LMU,
    LMUClassifier,
    count_parameters,
    delay_readout,
    hybrid_relu,
    legendre_system,
    lmu_matrices,
    lmu_param_count,
    memory_response,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("order, theta", [(1, 5), (6, 20), (64, 784), (256, 784)])
def test_discretisation_equals_scipy(order, theta):
    A, B = legendre_system(order, theta)
    C, D = np.eye(order), np.zeros((order, 1))
    Ad, Bd, *_ = scipy.signal.cont2discrete((A, B, C, D), dt=1.0, method="zoh")
    ours_A, ours_B = lmu_matrices(order, theta)
    assert np.allclose(ours_A, Ad, rtol=1e-10, atol=1e-12)
    assert np.allclose(ours_B, Bd, rtol=1e-10, atol=1e-12)


def test_legendre_system_matches_keras_lmu():
    keras_lmu = pytest.importorskip("keras_lmu")
    cell = keras_lmu.LMUCell(memory_d=1, order=12, theta=30, hidden_cell=None)
    cell.build((None, 1))
    Ad, Bd = lmu_matrices(12, 30)
    # keras-lmu stores the transposed (row-vector) system
    assert np.allclose(np.asarray(cell.A).T, Ad, atol=1e-5)
    assert np.allclose(np.asarray(cell.B).T, Bd, atol=1e-5)


def _run_memory(memory, u, order, theta):
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(nengo.processes.PresentInput(u, 0.001))
        lmu = LMU(
            4, order, theta, memory=memory, hidden_neurons=nengo.RectifiedLinear()
        )
        nengo.Connection(stim, lmu.input, synapse=None)
        probe = nengo.Probe(lmu.memory)
    with nengo.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(len(u))
    return sim.data[probe]


def _smooth_signal(n_steps, theta, seed=1):
    # band-limited below the memory's resolution (order / theta)
    process = nengo.processes.WhiteSignal(
        period=n_steps * 0.001, high=1.5 / (theta * 0.001), rms=0.5, seed=seed
    )
    return process.run_steps(n_steps, dt=0.001)


def test_untrained_memory_reconstructs_delayed_input():
    """The LMU's defining property: P_i(2r - 1) @ m[t] ≈ u[t - r theta]."""
    order, theta, n_steps = 12, 100, 600
    u = _smooth_signal(n_steps, theta)
    m = _run_memory("linear", u, order, theta)
    for r in (0.0, 0.25, 0.5, 0.75, 1.0):
        delay = int(round(r * theta))
        estimate = m[theta:] @ delay_readout(order, r)[0]
        target = u[theta - delay : n_steps - delay, 0]
        nrmse = np.sqrt(np.mean((estimate - target) ** 2) / np.mean(target**2))
        assert nrmse < 0.05, (r, nrmse)  # stated error: < 5% NRMSE
    # sanity: a wrong delay does not reconstruct
    wrong = m[theta:] @ delay_readout(order, 0.5)[0] - u[theta:, 0]
    assert np.sqrt(np.mean(wrong**2) / np.mean(u[theta:] ** 2)) > 0.3


def test_precomputed_memory_equals_recurrence():
    order, theta = 10, 40
    u = np.random.RandomState(0).rand(3, 90, 2)
    m = memory_response(u, order, theta)
    Ad, Bd = lmu_matrices(order, theta)
    state = np.zeros((3, 2, order))
    for t in range(90):
        state = state @ Ad.T + u[:, t, :, None] * Bd[:, 0]
        assert np.allclose(m[:, t], state.reshape(3, -1), atol=1e-5)


def test_quantized_memory_converges_to_linear():
    order, theta, n_steps = 8, 50, 300
    u = _smooth_signal(n_steps, theta, seed=2)
    linear = _run_memory("linear", u, order, theta)
    errors = [
        np.sqrt(np.mean((_run_memory(hybrid_relu(p), u, order, theta) - linear) ** 2))
        for p in (2, 16, 128)
    ]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02 * np.sqrt(np.mean(linear**2))


def test_paper_configuration_parameter_count():
    lmu = LMU(212, 256, 784, output_d=10)
    # (256 memory + 1 input) x 212 + 212 x 212 + 212 bias + (212 + 1) x 10 readout
    assert lmu.trainable_parameters() == 101770 == lmu_param_count(212, 256, 1, 10)
    assert lmu.memory.size_out == 256


def test_parameter_count_matches_nengo_dl():
    nengo_dl = pytest.importorskip("nengo_dl")
    for memory in ("linear", "precomputed", hybrid_relu(8.0)):
        net = LMUClassifier(n_hidden=7, order=5, theta=11, memory=memory)
        with nengo_dl.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
            n_tf = sum(int(np.prod(w.shape)) for w in sim.keras_model.trainable_weights)
        assert n_tf == count_parameters(net) == lmu_param_count(7, 5, 1, 10) == 178


def _predict(net, x, minibatch_size=4):
    import nengo_dl

    with nengo_dl.Simulator(
        net, minibatch_size=minibatch_size, progress_bar=False
    ) as sim:
        out = sim.predict(net.inputs(x), verbose=0)
    return out


def test_nengo_dl_precomputed_equals_step_by_step():
    x = np.random.RandomState(3).rand(4, 30, 1).astype(np.float32)
    logits = []
    for memory in ("linear", "precomputed"):
        net = LMUClassifier(
            n_hidden=16,
            order=8,
            theta=30,
            memory=memory,
            hidden_neurons=nengo.RectifiedLinear(),
        )
        logits.append(_predict(net, x)[net.probe])
    assert logits[0].shape == (4, 1, 10)
    assert np.allclose(logits[0], logits[1], atol=1e-4)
    assert np.std(logits[0]) > 1e-3


def test_hybrid_hidden_is_quantized_in_nengo_dl():
    x = np.random.RandomState(4).rand(4, 30, 1).astype(np.float32)
    net = LMUClassifier(
        n_hidden=16,
        order=8,
        theta=30,
        hidden_neurons=hybrid_relu(2.0),
        memory="precomputed",
    )
    probe = net.hidden_probe()
    out = _predict(net, x)[probe]
    assert out.shape == (4, 30, 16)  # full history although keep_history=False
    counts = out * 2.0  # output = n / precision
    assert np.allclose(counts, np.round(counts), atol=1e-4)
    assert counts.max() >= 1


def test_training_reduces_loss_through_quantized_hidden():
    nengo_dl = pytest.importorskip("nengo_dl")
    import tensorflow as tf

    from nengo_hybrid.data import psmnist

    data = psmnist(source="embedded", pool=7)
    x, y = data.x_train[:50], data.y_train[:50]  # fit 50 real 16-step sequences
    net = LMUClassifier(
        n_hidden=32,
        order=8,
        theta=16,
        hidden_neurons=hybrid_relu(2.0),
        memory="precomputed",
    )
    with nengo_dl.Simulator(net, minibatch_size=10, progress_bar=False, seed=0) as sim:
        sim.compile(
            tf.optimizers.Adam(0.01),
            loss={net.probe: tf.losses.SparseCategoricalCrossentropy(from_logits=True)},
        )
        before = sim.evaluate(net.inputs(x), {net.probe: net.targets(y)}, verbose=0)[
            "loss"
        ]
        sim.fit(net.inputs(x), {net.probe: net.targets(y)}, epochs=20, verbose=0)
        after = sim.evaluate(net.inputs(x), {net.probe: net.targets(y)}, verbose=0)[
            "loss"
        ]
    assert after < 0.85 * before  # measured: 2.32 -> 1.77


def test_lmu_validation():
    with pytest.raises(ValidationError, match="memory must be"):
        LMU(4, 4, 10, memory="spiking")
    with pytest.raises(ValidationError):
        LMU(0, 4, 10)
    with pytest.raises(ValidationError):
        LMU(4, 4, -1.0)
    with pytest.raises(ValueError, match="batch, n_steps, input_d"):
        memory_response(np.zeros((5, 3)), 4, 10)


@pytest.mark.parametrize("name", ["lmu_quick", "lmu_paper", "mnist_dense"])
def test_model_files_define_gui_model_and_recipe(name):
    from nengo_hybrid import zoo

    ns = runpy.run_path(str(ROOT / "models" / f"{name}.py"))
    model, recipe = ns["model"], ns["RECIPE"]
    assert isinstance(model, nengo.Network)
    # the zoo reads the same RECIPE without running the file
    assert zoo.read(name).settings == recipe
    if name == "mnist_dense":
        assert model.presentation_steps == recipe["network"]["presentation_steps"]
        with nengo.Simulator(model, progress_bar=False) as sim:  # what Nengo GUI runs
            sim.run_steps(2 * model.presentation_steps)
        assert np.any(sim.data[model.probe] != 0)
        return
    assert {
        "task",
        "data",
        "n_steps",
        "network",
        "schedule",
        "epochs",
        "minibatch_size",
        "learning_rate",
        "seed",
    } <= set(recipe)
    assert model.lmu.memory_mode == "linear"  # runs step by step in Nengo GUI
    if name == "lmu_paper":
        assert model.lmu.trainable_parameters() == 101770
        return
    assert zoo.read(name).build().lmu.memory_mode == "precomputed"
    with nengo.Simulator(model, progress_bar=False) as sim:  # what Nengo GUI runs
        sim.run_steps(60)
    assert np.all(np.isfinite(sim.data[model.probe]))


@pytest.mark.slow
def test_quick_recipe_learns():
    """A few epochs of the quick recipe beat chance clearly (slow: ~1-2 min)."""
    study = runpy.run_path(str(ROOT / "benchmarks" / "psmnist_study.py"))
    load_data, run_hybrid = study["load_data"], study["run_hybrid"]
    recipe = runpy.run_path(str(ROOT / "models" / "lmu_quick.py"))["RECIPE"]
    data = load_data(recipe, "embedded", n_train=2000)
    row = run_hybrid(recipe, data, precision=2.0, epochs=4)
    assert row["test_accuracy"] > 0.5


def test_memory_response_paths_and_chunks_agree(monkeypatch):
    """The Toeplitz product and the FFT give the same memory, in any chunking."""
    from nengo_hybrid import networks

    u = np.random.RandomState(1).rand(300, 49, 2)  # more than one chunk
    toeplitz = memory_response(u, 8, 30)
    monkeypatch.setattr(networks, "TOEPLITZ_MAX", 0)  # force the FFT
    fft = memory_response(u, 8, 30)
    np.testing.assert_allclose(fft, toeplitz, rtol=1e-6, atol=1e-7)
    monkeypatch.setattr(networks, "MEMORY_CHUNK", 7)
    np.testing.assert_array_equal(memory_response(u, 8, 30), fft)
    # one sequence at a time (a minibatch of 1) gives the same values
    np.testing.assert_array_equal(memory_response(u[5:6], 8, 30)[0], fft[5])
    # control: another window gives another memory
    assert not np.allclose(memory_response(u, 8, 20), fft, atol=1e-3)
