import warnings

import nengo
import nengo_dl
import numpy as np
import pytest
import tensorflow as tf

from nengo_hybrid import HybridSpiking
from nengo_hybrid.dl import (
    HybridSpikingBuilder,
    get_annealed,
    get_precision,
    set_precision,
)

DT = 0.001


def hybrid_net(neuron_type, seed=0, n_neurons=30):
    with nengo.Network(seed=seed) as net:
        nengo_dl.configure_settings(dtype="float64")
        stim = nengo.Node(lambda t: np.sin(15 * t) * np.ones(2))
        ens = nengo.Ensemble(
            n_neurons,
            2,
            neuron_type=neuron_type,
            max_rates=nengo.dists.Uniform(250, 350),
        )
        nengo.Connection(stim, ens)
        probe = nengo.Probe(ens.neurons)
    return net, ens, probe


@pytest.mark.parametrize(
    "neuron_type",
    [
        HybridSpiking(nengo.RectifiedLinear(), precision=1.0),
        HybridSpiking(nengo.RectifiedLinear(), precision=4.0, max_spikes=1),
        HybridSpiking(nengo.LIFRate(), precision=3.0, amplitude=0.2),
        HybridSpiking(nengo.Tanh(), precision=6.0),
        HybridSpiking(nengo.Sigmoid(), precision=2.5, max_spikes=2),
    ],
    ids=repr,
)
def test_reference_and_nengo_dl_spike_counts_identical(neuron_type):
    net, ens, probe = hybrid_net(neuron_type)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run(0.3)
    with nengo_dl.Simulator(net, progress_bar=False) as dl:
        dl.run(0.3)
    scale = neuron_type.precision * DT / neuron_type.amplitude
    ref_counts = np.round(ref.data[probe] * scale)
    dl_counts = np.round(dl.data[probe] * scale)
    assert np.count_nonzero(ref_counts) > 100
    np.testing.assert_array_equal(dl_counts, ref_counts)


def test_builder_registered_without_python_fallback():
    net, _, _ = hybrid_net(HybridSpiking(nengo.LIFRate(), precision=2.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with nengo_dl.Simulator(net, progress_bar=False) as sim:
            builders = [
                b.built_neurons
                for b in sim.tensor_graph.op_builder.op_builds.values()
                if hasattr(b, "built_neurons")
            ]
    assert not [w for w in caught if "falling back" in str(w.message)]
    assert any(isinstance(b, HybridSpikingBuilder) for b in builders)


def test_fallback_warning_is_detectable():
    # control for the test above: an unregistered subclass does fall back
    class Unregistered(HybridSpiking):
        pass

    net, _, _ = hybrid_net(Unregistered(nengo.LIFRate()))
    with pytest.warns(UserWarning, match="falling back to Python"):
        with nengo_dl.Simulator(net, progress_bar=False):
            pass


def input_gradient(neuron_type, n_steps=20, seed=0):
    """Gradient of sum(neuron output) w.r.t. an input driving the neurons."""
    with nengo.Network(seed=seed) as net:
        nengo_dl.configure_settings(dtype="float64")
        stim = nengo.Node(np.zeros(10))
        ens = nengo.Ensemble(
            10, 1, neuron_type=neuron_type, max_rates=nengo.dists.Uniform(250, 350)
        )
        nengo.Connection(stim, ens.neurons, synapse=None)
        nengo.Probe(ens.neurons)
    x = tf.constant(np.random.RandomState(seed).uniform(-1, 1, (1, n_steps, 10)))
    with nengo_dl.Simulator(net, progress_bar=False) as sim:
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = sim.keras_model([x, tf.constant([[n_steps]])], training=True)
            out = out[0] if isinstance(out, (list, tuple)) else out
            total = tf.reduce_sum(out)
        return tape.gradient(total, x).numpy(), out.numpy()


@pytest.mark.parametrize(
    "base", [nengo.RectifiedLinear(), nengo.LIFRate(), nengo.Tanh()], ids=repr
)
def test_training_gradient_is_base_rate_gradient(base):
    hybrid_grad, hybrid_out = input_gradient(HybridSpiking(base, precision=2.0))
    rate_grad, rate_out = input_gradient(base)
    # forward pass is quantized (differs from the rate), backward pass is the rate's
    assert not np.allclose(hybrid_out, rate_out)
    assert np.count_nonzero(rate_grad) > 0
    np.testing.assert_allclose(hybrid_grad, rate_grad, rtol=1e-10, atol=1e-12)
    counts = hybrid_out * 2.0 * DT
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)


def fit_losses(neuron_type, change=None):
    """Loss of two identical one-batch epochs (learning rate 0).

    ``change(sim)`` runs after the first epoch. Returns the losses, the train
    function's tracing count and the ensemble's annealed value at the end.
    """
    net, ens, probe = hybrid_net(neuron_type)
    x = np.zeros((4, 50, 2))  # the stimulus node is a function; x is unused
    with net:
        inp = nengo.Node(np.zeros(2))
        nengo.Connection(inp, ens)
    y = np.ones((4, 50, ens.n_neurons)) * 50

    class Anneal(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if change is not None:
                change(sim)

    with nengo_dl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.SGD(0.0), loss=tf.losses.mse)
        history = sim.fit(
            {inp: x}, {probe: y}, epochs=2, callbacks=[Anneal()], verbose=0
        )
        traces = sim.keras_model.train_function.experimental_get_tracing_count()
        value = get_annealed(sim)[ens]
    return history.history["loss"], traces, value


def test_precision_change_between_fit_batches_without_rebuild():
    neuron_type = HybridSpiking(nengo.RectifiedLinear(), precision=1.0)
    (fixed_1, fixed_2), fixed_traces, fixed_p = fit_losses(neuron_type)
    assert (
        fixed_1 == fixed_2 and fixed_p == 1.0
    )  # same batch, same precision, same loss

    (loss_1, loss_2), traces, precision = fit_losses(
        neuron_type, change=lambda sim: set_precision(sim, 40.0)
    )
    assert loss_1 == fixed_1
    assert loss_2 != loss_1
    assert precision == 40.0
    # no retracing beyond what Keras does anyway with a constant precision
    assert traces == fixed_traces


def test_set_precision_per_ensemble_and_predict():
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.ones(1))
        a = nengo.Ensemble(
            20, 1, neuron_type=HybridSpiking(nengo.RectifiedLinear(), precision=1.0)
        )
        b = nengo.Ensemble(
            20, 1, neuron_type=HybridSpiking(nengo.RectifiedLinear(), precision=1.0)
        )
        nengo.Connection(stim, a)
        nengo.Connection(stim, b)
        pa, pb = nengo.Probe(a.neurons), nengo.Probe(b.neurons)
    x = np.ones((1, 30, 1))
    with nengo_dl.Simulator(net, progress_bar=False) as sim:
        before = sim.predict({stim: x})
        set_precision(sim, {a: 25.0})
        after = sim.predict({stim: x})
        assert get_precision(sim) == {a: 25.0, b: 1.0}
        assert sim.keras_model.predict_function.experimental_get_tracing_count() == 1
    assert not np.array_equal(before[pa], after[pa])
    np.testing.assert_array_equal(before[pb], after[pb])


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_set_precision_rejects_invalid(bad):
    net, _, _ = hybrid_net(HybridSpiking(nengo.RectifiedLinear()))
    with nengo_dl.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(nengo.exceptions.ValidationError, match="finite and > 0"):
            set_precision(sim, bad)


def test_set_precision_without_hybrid_ensembles():
    with nengo.Network() as net:
        nengo.Ensemble(5, 1)
    with nengo_dl.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(nengo.exceptions.ValidationError, match="no HybridSpiking"):
            set_precision(sim, 2.0)
