import re

import nengo
import nengo_dl
import numpy as np
import pytest
import tensorflow as tf
from nengo.exceptions import ValidationError

from nengo_hybrid import HybridSpiking, dl, training
from nengo_hybrid.data import embedded_mnist
from nengo_hybrid.schedules import Constant, Geometric, Linear, Stepwise

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
    x,
    y,
    schedule,
    epochs,
    checkpoint=None,
    callbacks=(),
    net=None,
    validation=True,
    keep="last",
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
            keep=keep,
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


# ---------------------------------------------- minibatches made on demand

LMU_RECIPE = dict(
    network=dict(n_hidden=8, order=4, theta=16, memory="precomputed"),
    schedule=dict(type="Geometric", start=16.0, end=2.0),
    seed=0,
)


class BatchLosses(tf.keras.callbacks.Callback):
    """Each training batch's loss (Keras' running mean over the epoch)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(float(logs["loss"]))


@pytest.fixture(scope="module")
def sequences():
    from nengo_hybrid.data import psmnist

    data = psmnist(source="embedded", pool=7)  # 16 steps
    return data.x_train[:100], data.y_train[:100], data.x_val[:40], data.y_val[:40]


def lmu_sim(net):
    from nengo_hybrid.pipeline.train import compile_classifier, simulator

    sim = simulator(net, 10, 0)
    compile_classifier(sim, net, 1e-2)  # sparse cross-entropy and "accuracy"
    return sim


def test_streamed_minibatches_equal_whole_arrays(sequences):
    """The first 10 batches' losses and the validation results of `fit` with
    the memory made per minibatch equal NengoDL's fit on whole arrays (the
    code before minibatches were streamed), for the same seed."""
    from nengo_hybrid.networks import build_classifier

    x, y, x_val, y_val = sequences
    schedule = Geometric(16.0, 2.0)
    results = {}
    for way in ("whole", "streamed", "control"):
        net = build_classifier(LMU_RECIPE)
        sizes, losses = [], BatchLosses()

        def inputs(u, net=net, sizes=sizes):
            sizes.append(len(u))
            return net.inputs(u)

        with lmu_sim(net) as sim:
            validation = (x_val, {net.probe: net.targets(y_val)})
            if way == "whole":
                anneal = training.AnnealPrecision(
                    sim, {net.lmu.hidden: schedule}, 1, 10
                )
                order = np.random.RandomState(0).permutation(len(y))
                history = sim.fit(
                    net.inputs(x[order]),
                    {net.probe: net.targets(y[order])},
                    epochs=1,
                    shuffle=False,
                    verbose=0,
                    validation_data=(net.inputs(x_val), validation[1]),
                    callbacks=[anneal, losses],
                ).history
                record = {k: v[-1] for k, v in history.items()}
            else:
                history = training.fit(
                    sim,
                    x,
                    {net.probe: net.targets(y)},
                    schedule,
                    validation_data=validation,
                    seed=0 if way == "streamed" else 1,
                    progress=False,
                    callbacks=[losses],
                    inputs=inputs,
                )
                record = history.epochs[0]
                # the memory exists for one minibatch at a time
                assert max(sizes) == 10 and sum(sizes) >= len(y) + len(y_val)
        results[way] = (np.array(losses.seen), record)

    whole, streamed, control = (results[k] for k in ("whole", "streamed", "control"))
    assert len(whole[0]) == len(streamed[0]) == 10
    np.testing.assert_allclose(streamed[0], whole[0], rtol=1e-6)
    for key in ("val_loss", "val_logits_accuracy"):
        assert streamed[1][key] == pytest.approx(whole[1][key], rel=1e-6), key
    # control: another shuffle (seed) gives other losses
    assert not np.allclose(control[0], whole[0], rtol=1e-6)


def test_minibatches_dataset_has_full_shapes(sequences):
    from nengo_hybrid.networks import build_classifier

    x, y, _, _ = sequences
    net = build_classifier(LMU_RECIPE)
    with lmu_sim(net) as sim:
        batches = training.Minibatches(
            sim, x, {net.probe: net.targets(y)}, order=np.arange(99, -1, -1),
            inputs=net.inputs,
        )  # fmt: skip
        assert len(batches) == 10
        spec = batches.dataset().element_spec
        inputs, targets = batches[0]
        with pytest.raises(IndexError):
            batches[10]
        memory, probe = sim.get_name(net.lmu.memory), sim.get_name(net.probe)
    assert spec[0][memory].shape == (10, 16, 5) and spec[0][memory].dtype == tf.float32
    assert spec[0]["n_steps"].shape == (10, 1)
    assert spec[1][probe].shape == (10, 1, 1)
    # minibatch 0 is the last 10 examples, in the given order
    np.testing.assert_array_equal(
        inputs[memory], net.inputs(x[99:89:-1])[net.lmu.memory]
    )
    assert not np.array_equal(inputs[memory], net.inputs(x[:10])[net.lmu.memory])


# ---------------------------------------------- the best epoch at the final precision


class WreckAt(tf.keras.callbacks.Callback):
    """Gradient ascent from batch ``after`` on: makes the later epochs worse."""

    def __init__(self, after):
        super().__init__()
        self.after, self.count = after, 0

    def on_train_batch_begin(self, batch, logs=None):
        if self.count == self.after:
            self.model.optimizer.learning_rate.assign(-1e-2)
        self.count += 1


def test_keep_best_epoch_at_final_precision(digits, tmp_path):
    x, y = digits
    # epoch 1 at 1e5 (left out), epochs 2-4 at the final 1e4; the last one wrecked
    schedule = Stepwise({0: 1e5, 1: 1e4})
    runs = {}
    for keep in ("best", "last"):
        checkpoint = tmp_path / f"{keep}.npz"
        history, weights = train(
            x, y, schedule, epochs=4, checkpoint=checkpoint, keep=keep,
            callbacks=[WreckAt(3 * 4)],
        )  # fmt: skip
        runs[keep] = history, weights, checkpoint
    history, best_weights, checkpoint = runs["best"]
    losses = history.series("val_loss")
    assert losses[3] > min(losses[1:3])  # the wreck made the last epoch worse
    best = 1 + int(np.argmin(losses[1:]))
    assert history.kept["epoch"] == best and history.kept["keep"] == "best"
    assert history.kept["metric"] == "val_loss"
    assert history.kept["value"] == pytest.approx(losses[best])
    assert (
        "epochs that ended at the final precision (h0 10000, h1 10000): 2, 3, 4"
        in (history.kept["reason"])
    )
    # the simulator ends with the kept epoch's weights, as the checkpoint has them
    meta, arrays = training.read_checkpoint(checkpoint)
    assert meta["best"]["epoch"] == best and meta["epochs_done"] == 4
    for i, w in enumerate(best_weights):
        np.testing.assert_array_equal(arrays[f"best_weight_{i}"], w)
    # control: keep="last" ends with the last weights, which differ
    last_history, last_weights, _ = runs["last"]
    assert last_history.kept["epoch"] == 3 and last_history.kept["keep"] == "last"
    assert last_history.series("val_loss") == losses
    for i, w in enumerate(last_weights):
        np.testing.assert_array_equal(arrays[f"weight_{i}"], w)
    assert not all(np.array_equal(a, b) for a, b in zip(best_weights, last_weights))

    # load_checkpoint restores either; resuming the finished run with "best" too
    net, inp, probe = build()
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(1e-4), loss={probe: mean_logit_loss})
        training.load_checkpoint(sim, checkpoint, keep="best")
        for a, b in zip(sim.keras_model.get_weights(), best_weights):
            np.testing.assert_array_equal(a, b)
        training.load_checkpoint(sim, checkpoint)
        for a, b in zip(sim.keras_model.get_weights(), last_weights):
            np.testing.assert_array_equal(a, b)
    resumed, weights = train(
        x, y, schedule, epochs=4, checkpoint=runs["last"][2], keep="best",
        callbacks=[WreckAt(3 * 4)],
    )  # fmt: skip
    assert resumed.kept["epoch"] == best
    for a, b in zip(weights, best_weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # test_keep_best_epoch_at_final_precision covers the default run
def test_keep_best_survives_interruption(digits, tmp_path):
    x, y = digits
    schedule = Stepwise({0: 1e5, 1: 1e4})
    full, full_weights = train(
        x, y, schedule, epochs=3, keep="best", callbacks=[WreckAt(2 * 4)]
    )
    checkpoint = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):  # dies in the middle of epoch 3
        train(
            x, y, schedule, epochs=3, checkpoint=checkpoint, keep="best",
            callbacks=[WreckAt(2 * 4), Interrupt(2 * 4 + 2)],
        )  # fmt: skip
    assert training.read_checkpoint(checkpoint)[0]["best"]["epoch"] == 1
    resumed, weights = train(
        x, y, schedule, epochs=3, checkpoint=checkpoint, keep="best",
        callbacks=[WreckAt(0)],  # counts this process's batches: epoch 3's first
    )  # fmt: skip
    assert resumed.kept == full.kept and resumed.kept["epoch"] == 1
    for a, b in zip(weights, full_weights):
        np.testing.assert_array_equal(a, b)


def test_keep_is_checked_before_training(digits):
    x, y = digits
    net, inp, probe = build()
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(1e-4), loss={probe: mean_logit_loss})
        before = sim.keras_model.get_weights()
        with pytest.raises(ValidationError, match="keep='best'.*validation_data"):
            training.fit(sim, {inp: x}, {probe: y}, Constant(10.0), keep="best")
        with pytest.raises(ValidationError, match="keep must be one of"):
            training.fit(sim, {inp: x}, {probe: y}, Constant(10.0), keep="first")
        with pytest.raises(ValidationError, match="inputs must be a function"):
            training.fit(sim, {inp: x}, {probe: y}, Constant(10.0), inputs=3)
        for a, b in zip(before, sim.keras_model.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_damaged_best_record_is_refused(digits, tmp_path):
    from nengo_hybrid.io import write_npz

    x, y = digits
    checkpoint = tmp_path / "run.npz"
    train(x, y, Constant(500.0), epochs=1, checkpoint=checkpoint)
    meta, arrays = training.read_checkpoint(checkpoint)
    assert meta["best"]["epoch"] == 0  # control: a complete record loads (below)
    del arrays["best_weight_0"]
    write_npz(checkpoint, arrays, meta)
    net, inp, probe = build()
    with nengo_dl.Simulator(net, minibatch_size=BATCH, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(1e-4), loss={probe: mean_logit_loss})
        before = sim.keras_model.get_weights()
        with pytest.raises(training.CheckpointError, match="best epoch is damaged"):
            training.load_checkpoint(sim, checkpoint)
        for a, b in zip(before, sim.keras_model.get_weights()):
            np.testing.assert_array_equal(a, b)


# ---------------------------------------------- what the user sees


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _eta_after_a_pause(bar):
    """Remaining seconds ``bar`` shows after 5 batches of 1 s, a 10 s pause
    (validation) and one more batch of 1 s (of 10 batches)."""
    clock = bar._time = FakeClock()
    bar.start_t = bar.last_print_t = 0.0
    for seconds in [1, 1, 1, 1, 1, 10, 1]:
        clock.now += seconds
        bar.update(1)
    shown = bar.format_dict
    rate = shown["rate"] or (shown["n"] - shown["initial"]) / clock.now
    bar.close()
    return (shown["total"] - shown["n"]) / rate


def test_remaining_time_is_the_whole_run_average():
    """After a long pause between epochs, the remaining time is the run's
    average per batch times the batches left (16 s / 7 * 3), not the last pace."""
    from tqdm.auto import tqdm

    progress = training._progress_bar(2, 5, 0, enabled=True)
    assert _eta_after_a_pause(progress.bar) == pytest.approx(16 / 7 * 3)
    # control: tqdm's default estimate (recent pace) shows another time
    control = _eta_after_a_pause(tqdm(total=10, smoothing=0.3))
    assert control != pytest.approx(16 / 7 * 3, rel=0.05)


def test_progress_shows_validation_accuracy_and_bits(sequences, capsys):
    from nengo_hybrid.networks import build_classifier

    x, y, x_val, y_val = sequences
    net = build_classifier(LMU_RECIPE)
    with lmu_sim(net) as sim:
        history = training.fit(
            sim, x, {net.probe: net.targets(y)}, Geometric(16.0, 2.0), epochs=2,
            validation_data=(x_val, {net.probe: net.targets(y_val)}),
            inputs=net.inputs,
        )  # fmt: skip
    err = capsys.readouterr().err
    for record in history.epochs:
        line = (
            f"epoch {record['epoch'] + 1}/2: loss {record['loss']:.4g}, validation "
            f"accuracy {record['val_logits_accuracy']:.4f}, activity bits "
            f"{record['activity_bits_mean']:.3f}, precision hidden "
        )
        assert line in err
    # the bar shows the last finished epoch's results next to the current batch
    assert f"val_acc={history.epochs[0]['val_logits_accuracy']:.4f}" in err
