"""The fast training path keeps the numbers of NengoDL's own.

Each comparison trains the same small hybrid LMU from the same seed through
`training.fit` twice: on the new path (``dl.fixed_size_loop`` with XLA, the
readout run once after the loop on the last step, the hidden layer's history
left out of the training step, one input pipeline per simulator) and on
NengoDL's own loop without XLA, built in the same test.
"""

import nengo_dl
import numpy as np
import pytest
import tensorflow as tf

from nengo_hybrid import dl, training
from nengo_hybrid.networks import LMUClassifier, hybrid_relu
from nengo_hybrid.schedules import Constant, Geometric

N_STEPS, BATCH, N_BATCHES = 12, 20, 10


@pytest.fixture(scope="module")
def sequences():
    rng = np.random.RandomState(3)
    x = rng.uniform(0, 1, size=(BATCH * N_BATCHES, N_STEPS, 1))
    y = (x[:, :, 0].mean(axis=1) * 10 // 1).clip(0, 9).astype(int)
    return x, y


class BatchLosses(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def lmu():
    return LMUClassifier(
        n_hidden=16,
        order=6,
        theta=N_STEPS,
        hidden_neurons=hybrid_relu(precision=2.0),
        memory="precomputed",
        seed=0,
    )


def batch_losses(x, y, schedule, fast, check_path=False):
    """Losses of the first batches and whether XLA ran, on one path."""
    net = dl.configure_classifier(lmu())
    losses = BatchLosses()
    with dl.fixed_size_loop(fast):
        sim = nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False, seed=0)
    with sim:
        if check_path:
            # the readout runs after the loop; the hidden history is not trained
            tail, _ = dl._last_step_ops(sim.tensor_graph)
            assert {type(ops[0]).__name__ for ops in tail} >= {"DotSet", "Copy"}
        sim.compile(
            optimizer=tf.optimizers.Adam(1e-2),
            loss={net.probe: tf.losses.SparseCategoricalCrossentropy(from_logits=True)},
        )
        training.fit(
            sim,
            net.inputs(x),
            {net.probe: net.targets(y)},
            schedule,
            epochs=1,
            progress=False,
            callbacks=[losses],
            jit_compile=fast,
        )
        if check_path:
            assert dl.prune_training_probes(sim) == {net.hidden_probe()}
        return np.array(losses.losses), sim.keras_model.jit_compile


def test_first_batches_losses_equal_nengo_dl_loop(sequences):
    x, y = sequences
    # the precision changes every batch, from rate-like to 1-bit spikes
    schedule = Geometric(64.0, 1.0)
    fast, xla = batch_losses(x, y, schedule, fast=True, check_path=True)
    today, today_xla = batch_losses(x, y, schedule, fast=False)
    assert xla and not today_xla
    assert len(fast) == len(today) == N_BATCHES
    np.testing.assert_allclose(fast, today, rtol=2e-5, atol=0)

    # control: the comparison sees the precision of every batch (a constant
    # precision of 1 gives other losses from the second batch on, on the
    # same path)
    constant, _ = batch_losses(x, y, Constant(1.0), fast=True)
    assert not np.allclose(constant[1:], fast[1:], rtol=2e-5, atol=0)

    # control: the comparison sees which step the readout reads (the last
    # input step zeroed changes only the last step, and the losses)
    last_zeroed = x.copy()
    last_zeroed[:, -1] = 0
    changed, _ = batch_losses(last_zeroed, y, schedule, fast=True)
    assert not np.allclose(changed, fast, rtol=2e-5, atol=0)


def test_last_step_readout_and_pruning_keep_outputs():
    """Prediction on the new path equals NengoDL's loop for every probe."""
    rng = np.random.RandomState(1)
    x = rng.uniform(0, 1, size=(BATCH, N_STEPS, 1))
    net = dl.configure_classifier(lmu())
    outputs = {}
    for fast in (True, False):
        with dl.fixed_size_loop(fast):
            sim = nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False)
        with sim:
            sim.compile(loss={net.probe: "mse"})
            pruned = dl.prune_training_probes(sim)
            assert pruned == ({net.hidden_probe()} if fast else set())
            outputs[fast] = sim.predict_on_batch(net.inputs(x))
    for probe in (net.probe, net.hidden_probe()):
        assert outputs[True][probe].shape == outputs[False][probe].shape
        np.testing.assert_allclose(outputs[True][probe], outputs[False][probe])
    assert outputs[True][net.hidden_probe()].shape[1] == N_STEPS


def test_last_step_ops_need_last_value_probes():
    """A readout whose probe keeps its history stays in the loop (control)."""
    net = dl.configure_classifier(lmu())
    net.config[net.probe].keep_history = True
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        tail, _ = dl._last_step_ops(sim.tensor_graph)
        assert "DotSet" not in {type(ops[0]).__name__ for ops in tail}
        sim.compile(loss={net.probe: "mse"})
        # the scored probe is read by the loss: never pruned
        assert net.probe in dl.loss_probes(sim)
        assert net.probe not in dl.prune_training_probes(sim)


def test_feed_reuses_one_dataset_for_the_current_minibatches(sequences):
    x, y = sequences
    net = dl.configure_classifier(lmu())
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        targets = {net.probe: net.targets(y)}
        first = training.Minibatches(sim, x, targets, inputs=net.inputs)
        order = np.arange(len(y))[::-1]
        second = training.Minibatches(sim, x, targets, order=order, inputs=net.inputs)
        dataset = training._Feed.dataset_of(first, "train")
        assert training._Feed.dataset_of(second, "train") is dataset
        # the dataset yields the minibatches of the one given last ...
        got = next(iter(dataset))
        tf.nest.map_structure(np.testing.assert_array_equal, got, second[0])
        # ... not those of the first (control)
        assert not np.array_equal(
            got[0][net.lmu.memory.label], first[0][0][net.lmu.memory.label]
        )
        # other shapes get their own dataset
        shorter = training.Minibatches(sim, x[:, :-1], targets, inputs=net.inputs)
        assert training._Feed.dataset_of(shorter, "train") is not dataset


def test_precision_change_reaches_xla_prediction_without_rebuild(sequences):
    x, _ = sequences
    net = dl.configure_classifier(lmu())
    probe = net.hidden_probe()
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        assert dl.xla_blockers(sim) == []
        assert dl.use_xla(sim)
        inputs = net.inputs(x[:BATCH])
        outputs, functions = {}, []
        for p in (2.0, 3.0):
            dl.set_precision(sim, p)
            outputs[p] = sim.predict_on_batch(inputs)[probe]
            functions.append(sim.keras_model.predict_function)
        assert functions[0] is functions[1]  # not rebuilt
    # hidden_relu sends quanta of 1/p: whole counts at its own precision ...
    for p, out in outputs.items():
        np.testing.assert_allclose(out * p, np.round(out * p), atol=1e-3)
    # ... and not at the other one (control)
    assert np.abs(outputs[3.0] * 2 - np.round(outputs[3.0] * 2)).max() > 0.1


def test_xla_blockers_name_python_nodes():
    import nengo

    with nengo.Network() as net:
        inp = nengo.Node(np.zeros(1))
        f = nengo.Node(lambda t, x: x * 2, size_in=1)
        nengo.Connection(inp, f, synapse=None)
        nengo.Probe(f)
    with nengo_dl.Simulator(net, progress_bar=False) as sim:
        assert dl.xla_blockers(sim) == ["SimPyFuncBuilder"]
        assert not dl.use_xla(sim)
    with dl.fixed_size_loop(False):
        sim = nengo_dl.Simulator(net, progress_bar=False)
    with sim:
        assert "NengoDL's own" in dl.xla_blockers(sim)[0]


def test_auto_xla_for_long_sequences_only_without_training_history():
    net = dl.configure_classifier(lmu())
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        sim.compile(loss={net.probe: "mse"})
        long = dict(batch_steps=10**6, sequence_steps=dl.XLA_MAX_SEQUENCE_STEPS + 1)
        # the hidden history in the training step: long sequences stay off ...
        assert dl.training_histories(sim) == [net.hidden_probe()]
        assert not dl.use_xla(sim, "auto", **long)
        # ... short ones on (control: the length is what decides)
        assert dl.use_xla(sim, "auto", batch_steps=10**6, sequence_steps=N_STEPS)
        # without it (as training.fit builds the step), long sequences too
        dl.prune_training_probes(sim)
        assert dl.training_histories(sim) == []
        assert dl.use_xla(sim, "auto", **long)
