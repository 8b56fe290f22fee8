import re

import nengo
import nengo_dl
import numpy as np
import pytest
import tensorflow as tf
from nengo.exceptions import ValidationError

from nengo_hybrid import HybridSpiking, dl, training
from nengo_hybrid.data import embedded_mnist
from nengo_hybrid.schedules import Constant, Geometric, Linear

N_STEPS, BATCH = 4, 20


@pytest.fixture(scope="module")
def digits():
    images, labels = embedded_mnist()
    # the embedded digits are sorted by class: take every 62nd for all ten
    index = np.arange(80) * 62
    x = np.repeat(images[index, None, :], N_STEPS, axis=1)
    y = np.repeat(labels[index, None, None], N_STEPS, axis=1).astype(np.float64)
    assert set(np.unique(y)) == set(range(10))
    return x, y


def build(hidden=(32, 16), dtype="float32", prefix="h"):
    with nengo.Network(seed=0) as net:
        nengo_dl.configure_settings(stateful=False, dtype=dtype)
        net.config[nengo.Connection].synapse = None
        inp = nengo.Node(np.zeros(784), label="input")
        layer = inp
        for i, size in enumerate(hidden):
            ens = nengo.Ensemble(
                size,
                1,
                label=f"{prefix}{i}",
                neuron_type=HybridSpiking(nengo.RectifiedLinear(), precision=1000.0),
            )
            nengo.Connection(layer, ens.neurons, transform=nengo_dl.dists.Glorot())
            nengo.Probe(ens.neurons)
            layer = ens.neurons
        out = nengo.Node(size_in=10)
        nengo.Connection(layer, out, transform=nengo_dl.dists.Glorot())
        probe = nengo.Probe(out)
    return net, inp, probe


def mean_logit_loss(y_true, y_pred):
    return tf.losses.sparse_categorical_crossentropy(
        y_true[:, -1], tf.reduce_mean(y_pred, axis=1), from_logits=True
    )


def train(
    x, y, schedule, epochs, checkpoint=None, callbacks=(), net=None, validation=True
):
    net, inp, probe = build() if net is None else net
    with nengo_dl.Simulator(
        net, minibatch_size=BATCH, progress_bar=False, seed=0
    ) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(1e-4), loss={probe: mean_logit_loss})
        history = training.fit(
            sim,
            {inp: x},
            {probe: y},
            schedule,
            epochs=epochs,
            checkpoint=checkpoint,
            validation_data=({inp: x[:40]}, {probe: y[:40]}) if validation else None,
            progress=False,
            callbacks=list(callbacks),
        )
        return history, sim.keras_model.get_weights()


class ReadPrecision(tf.keras.callbacks.Callback):
    """Reads the precision back from the simulator before every batch."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append(dl.get_precision(self.sim))


def test_neurons_follow_schedule(digits):
    x, y = digits
    schedule = {"h0": Geometric(1e5, 100.0), "h1": Linear(5000.0, 50.0)}
    net, inp, probe = build()
    by_ens = {e: schedule[e.label] for e in net.all_ensembles}
    reader = ReadPrecision()
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        reader.sim = sim
        sim.compile(optimizer=tf.optimizers.Adam(1e-4), loss={probe: mean_logit_loss})
        history = training.fit(
            sim,
            {inp: x},
            {probe: y},
            by_ens,
            epochs=3,
            progress=False,
            callbacks=[reader],
        )
    assert len(reader.seen) == 3 * 4
    for step, seen in enumerate(reader.seen):
        epoch, batch = divmod(step, 4)
        for ens, value in seen.items():
            expected = by_ens[ens].value(epoch, batch, steps_per_epoch=4, epochs=3)
            assert value == pytest.approx(expected, rel=1e-6)
    assert history.epochs[-1]["precision"] == {"h0": 100.0, "h1": 50.0}
    assert history.batches[5]["precision"]["h1"] == pytest.approx(
        by_ens[net.all_ensembles[1]].value(1, 1, 4, 3)
    )


def test_history_has_metrics(digits):
    x, y = digits
    history, _ = train(x, y, Geometric(1e5, 200.0), epochs=2)
    last = history.epochs[-1]
    assert set(last) >= {
        "loss",
        "val_loss",
        "precision",
        "activity_bits",
        "activity_bits_mean",
        "significant_bits_mean",
        "seconds",
    }
    assert set(last["activity_bits"]) == {"h0", "h1"}
    # every layer spikes, and the mean is over the layers
    assert min(last["activity_bits"].values()) > 0
    assert last["activity_bits_mean"] == pytest.approx(
        np.mean(list(last["activity_bits"].values()))
    )
    assert history.series("loss")[1] < history.series("loss")[0]


class Interrupt(tf.keras.callbacks.Callback):
    def __init__(self, after_batches):
        super().__init__()
        self.after, self.count = after_batches, 0

    def on_train_batch_begin(self, batch, logs=None):
        if self.count == self.after:
            raise KeyboardInterrupt
        self.count += 1


def test_resume_equals_uninterrupted(digits, tmp_path):
    x, y = digits
    schedule = Geometric(1e5, 200.0)
    full_history, full_weights = train(x, y, schedule, epochs=3)

    checkpoint = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):  # dies in the middle of epoch 2
        train(x, y, schedule, epochs=3, checkpoint=checkpoint, callbacks=[Interrupt(6)])
    assert checkpoint.exists() and not list(tmp_path.glob("*.tmp"))
    meta, _ = training.read_checkpoint(checkpoint)
    assert meta["epochs_done"] == 1

    resumed_history, resumed_weights = train(
        x, y, schedule, epochs=3, checkpoint=checkpoint
    )
    assert len(full_weights) == len(resumed_weights)
    for a, b in zip(full_weights, resumed_weights):
        np.testing.assert_array_equal(a, b)
    assert resumed_history.series("loss") == full_history.series("loss")
    # control: training changed the weights, so equal weights are not trivial
    net, _, _ = build()
    with nengo_dl.Simulator(
        net, minibatch_size=BATCH, progress_bar=False, seed=0
    ) as sim:
        initial = sim.keras_model.get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(initial, full_weights))


def test_checkpoint_mismatch_and_corruption(digits, tmp_path):
    x, y = digits
    checkpoint = tmp_path / "run.npz"
    train(x, y, Constant(500.0), epochs=1, checkpoint=checkpoint, validation=False)
    good = checkpoint.read_bytes()

    with pytest.raises(training.CheckpointError, match="schedules"):
        train(x, y, Constant(20.0), epochs=1, checkpoint=checkpoint, validation=False)
    with pytest.raises(training.CheckpointError, match="weight_shapes"):
        train(
            x,
            y,
            Constant(500.0),
            epochs=1,
            checkpoint=checkpoint,
            validation=False,
            net=build(hidden=(24, 16)),
        )

    checkpoint.write_bytes(good[: len(good) // 2])
    net, inp, probe = build()
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(1e-4), loss={probe: mean_logit_loss})
        before = sim.keras_model.get_weights()
        with pytest.raises(training.CheckpointError, match="unreadable.*delete it"):
            training.fit(
                sim,
                {inp: x},
                {probe: y},
                Constant(500.0),
                epochs=1,
                checkpoint=checkpoint,
                progress=False,
            )
        for a, b in zip(before, sim.keras_model.get_weights()):
            np.testing.assert_array_equal(a, b)  # nothing changed


def _state(sim):
    return (
        sim.keras_model.get_weights(),
        [v.numpy() for v in training._optimizer_variables(sim)],
        {e.label: p for e, p in dl.get_precision(sim).items()},
    )


def test_checkpoint_with_other_labels_changes_nothing(digits, tmp_path):
    x, y = digits
    checkpoint = tmp_path / "run.npz"
    train(x, y, Constant(500.0), epochs=1, checkpoint=checkpoint, validation=False)
    _, arrays = training.read_checkpoint(checkpoint)

    # same shapes, other labels: the precisions cannot be matched to ensembles
    net, inp, probe = build(prefix="layer")
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(1e-4), loss={probe: mean_logit_loss})
        weights, optimizer, precision = _state(sim)
        with pytest.raises(
            training.CheckpointError,
            match=re.escape(str(checkpoint)) + r".*\['h0', 'h1'\].*labels they had",
        ):
            training.load_checkpoint(sim, checkpoint)
        weights_after, optimizer_after, precision_after = _state(sim)
    # control: the checkpoint would have changed every kind of state
    assert not all(
        np.array_equal(arrays[f"weight_{i}"], w) for i, w in enumerate(weights)
    )
    assert not all(
        np.array_equal(arrays[f"optimizer_{i}"], v) for i, v in enumerate(optimizer)
    )
    assert precision == {"layer0": 1000.0, "layer1": 1000.0}
    for a, b in zip(weights + optimizer, weights_after + optimizer_after):
        np.testing.assert_array_equal(a, b)
    assert precision_after == precision

    # control: with the original labels the same checkpoint loads completely
    net, inp, probe = build()
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(1e-4), loss={probe: mean_logit_loss})
        epochs_done, history = training.load_checkpoint(sim, checkpoint)
        weights, optimizer, precision = _state(sim)
    assert epochs_done == 1 and len(history.epochs) == 1
    for i, w in enumerate(weights):
        np.testing.assert_array_equal(arrays[f"weight_{i}"], w)
    assert precision == {"h0": 500.0, "h1": 500.0}


def test_fit_rejects_bad_input(digits):
    x, y = digits
    net, inp, probe = build()
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        with pytest.raises(ValidationError, match="sim.compile"):
            training.fit(sim, {inp: x}, {probe: y}, Constant(10.0))
        sim.compile(optimizer=tf.optimizers.Adam(1e-4), loss={probe: mean_logit_loss})
        bad = x.copy()
        bad[3, 1, 5] = np.nan
        with pytest.raises(ValidationError, match="NaN"):
            training.fit(sim, {inp: bad}, {probe: y}, Constant(10.0))
        with pytest.raises(ValidationError, match="multiple of the minibatch"):
            training.fit(sim, {inp: x[:30]}, {probe: y[:30]}, Constant(10.0))
        with pytest.raises(ValidationError, match="Schedule"):
            training.fit(sim, {inp: x}, {probe: y}, 10.0)


def _labels_for(y, value, where=(3, 1, 0)):
    y = y.copy()
    y[where] = value
    return y


@pytest.mark.parametrize(
    "make_x, make_y, match",
    [
        (
            lambda x: x[:, :, :700],
            lambda y: y,
            r"x for <Node 'input'> must have shape \(n_examples, n_steps, 784\).*"
            r"got \(80, 4, 700\)",
        ),
        (
            lambda x: x,
            lambda y: np.repeat(y, 3, axis=2),
            r"y for <Probe .*> must have shape \(n_examples, 4, 10\).*got \(80, 4, 3\)",
        ),
        (lambda x: x, lambda y: y[:, :, 0], r"must have shape.*got \(80, 4\)"),
        (lambda x: x, lambda y: y[:, :3], "has 3 steps, but the probe records 4"),
        (lambda x: x[:, :3], lambda y: y, "has 4 steps, but the probe records 3"),
        (
            lambda x: x,
            lambda y: _labels_for(y, 10),
            r"integers in \[0, 10\); got values in \[0, 10\]",
        ),
        (lambda x: x, lambda y: _labels_for(y, -1), r"values in \[-1, 9\]"),
        (lambda x: x, lambda y: _labels_for(y, 2.5), "not all integers"),
        (lambda x: {"nope": x}, lambda y: y, "'nope', which is not an input node"),
    ],
    ids=[
        "x-features",
        "y-features",
        "y-rank",
        "y-steps",
        "x-steps",
        "label-too-high",
        "label-negative",
        "label-fraction",
        "unknown-key",
    ],
)
def test_fit_checks_shapes_against_network(digits, make_x, make_y, match):
    x, y = digits
    net, inp, probe = build()
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(1e-4), loss={probe: mean_logit_loss})
        before = sim.keras_model.get_weights()
        bad_x = make_x(x)
        with pytest.raises(ValidationError, match=match):
            training.fit(
                sim,
                bad_x if isinstance(bad_x, dict) else {inp: bad_x},
                {probe: make_y(y)},
                Constant(10.0),
                progress=False,
            )
        training._check_shapes(sim, {inp: x}, {probe: y})  # control: good data passes
        for a, b in zip(before, sim.keras_model.get_weights()):
            np.testing.assert_array_equal(a, b)  # nothing was trained


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (lambda x, y: (np.where(x == x.max(), np.nan, x), y), "validation x.*NaN"),
        (lambda x, y: (x, _labels_for(y, 12)), r"validation y.*\[0, 10\)"),
        (lambda x, y: (x[:, :, :10], y), "validation x for .*784"),
        (lambda x, y: (x[:10], y[:10]), "fewer than the minibatch size"),
    ],
    ids=["nan", "label", "features", "too-few"],
)
def test_fit_checks_validation_data(digits, corrupt, match):
    x, y = digits
    net, inp, probe = build()
    x_val, y_val = corrupt(x[:40], y[:40])
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(1e-4), loss={probe: mean_logit_loss})
        with pytest.raises(ValidationError, match=match):
            training.fit(
                sim,
                {inp: x},
                {probe: y},
                Constant(10.0),
                validation_data=({inp: x_val}, {probe: y_val}),
                progress=False,
            )


def test_targets_follow_keep_history(digits):
    x, y = digits
    net, inp, probe = build()
    with net:
        nengo_dl.configure_settings(keep_history=True)
    net.config[probe].keep_history = False
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        with pytest.raises(ValidationError, match="keep_history=False.*last step"):
            training._check_shapes(sim, {inp: x}, {probe: y})
        training._check_shapes(sim, {inp: x}, {probe: y[:, -1:]})  # control


def test_frozen_network_matches_nengo_dl_inference(digits):
    x, y = digits
    net, inp, probe = build(dtype="float64")
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(1e-3), loss={probe: mean_logit_loss})
        training.fit(
            sim, {inp: x}, {probe: y}, Geometric(1e5, 300.0), epochs=2, progress=False
        )
        n_steps = 12
        sequence = np.repeat(x[:1, :1], n_steps, axis=1)
        expected = sim.predict({inp: np.repeat(sequence, BATCH, axis=0)})
        training.freeze(sim, net)

    for ens in net.all_ensembles:
        assert ens.neuron_type.precision == 300.0
    inp.output = nengo.processes.PresentInput(sequence[0], presentation_time=0.001)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(n_steps)
    for p in net.all_probes:
        assert np.count_nonzero(expected[p][0]) > 0
        np.testing.assert_allclose(ref.data[p], expected[p][0], rtol=1e-9, atol=1e-9)


# --- networks.count_parameters against NengoDL's own trainable weights ---------


def _bare_ensemble():
    with nengo.Network(seed=0) as net:
        nengo.Ensemble(10, 1)
    return net


def _decoded_chain():
    with nengo.Network(seed=0) as net:
        stim = nengo.Node([0.0])
        a = nengo.Ensemble(10, 1)
        b = nengo.Ensemble(7, 2)
        nengo.Connection(stim, a)
        nengo.Connection(a, b[0])
        nengo.Probe(b)
    return net


def _transforms():
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(4))
        ens = nengo.Ensemble(4, 1)
        out = nengo.Node(size_in=2 * 3 * 3)
        nengo.Connection(stim, ens.neurons, transform=2.0)  # one shared weight
        nengo.Connection(stim, ens.neurons, transform=np.ones(4))  # diagonal
        sparse = nengo.transforms.Sparse(
            (4, 4), indices=[[0, 0], [1, 2]], init=[0.5, -1]
        )
        nengo.Connection(stim, ens.neurons, transform=sparse)
        conv = nengo.Convolution(2, (2, 2, 1), kernel_size=(2, 2), padding="same")
        nengo.Connection(stim, out[:8], transform=conv)
        nengo.Probe(out)
    return net


def _fixed_and_learning():
    with nengo.Network(seed=0) as net:
        nengo_dl.configure_settings(trainable=None)
        stim = nengo.Node([0.0, 0.0])
        with nengo.Network():
            a = nengo.Ensemble(6, 2)
        out = nengo.Node(size_in=2)
        nengo.Connection(stim, a)
        learned = nengo.Connection(a, out, learning_rule_type=nengo.PES())
        nengo.Connection(out, learned.learning_rule)
        net.config[a.neurons].trainable = False
        nengo.Probe(out)
    return net


@pytest.mark.parametrize(
    "make, expected",
    [
        # NengoDL trains an ensemble's biases even with no input: 10
        (_bare_ensemble, 10),
        # biases 10 + 7, encoders 10x1 + 7x2, decoders 1x10
        (_decoded_chain, 10 + 7 + 10 + 14 + 10),
        # biases 4, scalar 1, diagonal 4, sparse 2 nonzeros, kernel 2x2x1x2
        (_transforms, 4 + 1 + 4 + 2 + 8),
        # biases fixed, decoders changed by PES: only the encoders 6x2
        (_fixed_and_learning, 12),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_count_parameters_matches_nengo_dl(make, expected):
    from nengo_hybrid.networks import count_parameters

    with nengo_dl.Simulator(make(), minibatch_size=1, progress_bar=False) as sim:
        n_tf = sum(int(np.prod(w.shape)) for w in sim.keras_model.trainable_weights)
    # the hand count guards against both sides agreeing on a wrong structure
    assert n_tf == expected
    assert count_parameters(make()) == expected
