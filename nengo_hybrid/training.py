"""Interpolation training in NengoDL: anneal from rate to spikes.

`fit` wraps ``nengo_dl.Simulator.fit``. Before every batch it sets the
annealed parameter of each ensemble from a `.schedules.Schedule` (the precision
of `.HybridSpiking`, the threshold of `.SigmaDelta`), so
training starts close to the rate network and ends with the quantization the
network will be deployed with (the method of arXiv:2002.03553). After every
epoch it measures the activity bits on validation data and writes a checkpoint
that holds the parameters, the optimizer state *and* the schedule state
(NengoDL's ``save_params`` does not save the precision); `fit` resumes from it
and then produces exactly what an uninterrupted run would have.

Minibatches are made when NengoDL asks for them (`Minibatches`), from
arrays or, with ``inputs=``, from raw examples such as pixel sequences: the
simulator's inputs (the LMU's precomputed memory, say) then exist for one
minibatch at a time, so memory grows with the minibatch, not the dataset.
The checkpoint also holds the weights of the best epoch at the final
precision, which ``keep="best"`` restores at the end.

`freeze` turns the trained simulator back into a plain Nengo network that runs
in the reference simulator (and Nengo GUI, nengo-loihi) with the final precision.
"""

import time
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nengo
import numpy as np
import tensorflow as tf
from nengo.exceptions import ValidationError
from nengo_dl.config import get_setting

from nengo_hybrid import dl, interrupts, metrics
from nengo_hybrid.io import read_npz, write_npz
from nengo_hybrid.neurons import (
    HybridSpiking,
    SigmaDelta,
    annealed_param,
    check_annealed,
)
from nengo_hybrid.schedules import Schedule

CHECKPOINT_FORMAT = "nengo-hybrid-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint is unreadable or does not match the training run."""


@dataclass
class History:
    """What happened during `fit`: one record per epoch and per batch.

    Each epoch record has ``epoch``, ``loss`` (and ``val_*`` entries when
    validation data was given), ``precision`` and ``activity_bits`` per
    ensemble label, ``activity_bits_mean``, ``significant_bits_mean`` and
    ``seconds``. Batch records have ``epoch``, ``batch``, ``precision``.
    Epochs are counted from 0. ``kept`` says which epoch's weights the
    simulator holds at the end of `fit` and why (`fit`'s ``keep``): ``epoch``,
    ``keep``, ``metric`` and ``value`` (the validation score it was chosen by,
    ``None`` without validation data), ``reason``.
    """

    epochs: list = field(default_factory=list)
    batches: list = field(default_factory=list)
    kept: dict = None

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(
            epochs=list(data["epochs"]),
            batches=list(data["batches"]),
            kept=data.get("kept"),
        )

    def series(self, key):
        """One value per epoch, e.g. ``history.series("val_loss")``."""
        return [record.get(key) for record in self.epochs]


def hybrid_ensembles(network):
    """``{label: ensemble}`` for every annealed ensemble, in build order.

    Annealed ensembles have `.HybridSpiking` or `.SigmaDelta` neurons
    (`.neurons.annealed_param`). Unlabelled ensembles are called ``hybrid_0``,
    ``hybrid_1``, ...
    """
    found = [e for e in network.all_ensembles if annealed_param(e.neuron_type)]
    labels = {}
    for i, ens in enumerate(found):
        label = ens.label or f"hybrid_{i}"
        labels[label if label not in labels else f"{label}_{i}"] = ens
    return labels


def activity_probes(network):
    """Probes on the spikes of `.HybridSpiking` ensembles, keyed by ensemble."""
    return {
        probe.target.ensemble: probe
        for probe in network.all_probes
        if isinstance(probe.target, nengo.ensemble.Neurons)
        and isinstance(probe.target.ensemble.neuron_type, HybridSpiking)
        and probe.attr == "output"
        and probe.synapse is None
    }


class AnnealPrecision(tf.keras.callbacks.Callback):
    """Keras callback that sets precisions/thresholds from schedules before each batch.

    Usable directly with ``sim.fit`` (one call with ``epochs=N``), or driven
    epoch by epoch as `fit` does (set `epoch_offset` before each call).

    Parameters
    ----------
    sim : nengo_dl.Simulator
    schedules : dict of {nengo.Ensemble: Schedule}
    epochs : int
        Total epochs of the training run.
    steps_per_epoch : int
        Batches per epoch.
    """

    def __init__(self, sim, schedules, epochs, steps_per_epoch):
        super().__init__()
        self.sim = sim
        self.schedules = schedules
        self.labels = _labels(sim)
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.epoch_offset = 0
        self.current_epoch = 0
        self.batch_records = []

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = self.epoch_offset + epoch

    def precisions(self, epoch, batch):
        return {
            ens: schedule.value(epoch, batch, self.steps_per_epoch, self.epochs)
            for ens, schedule in self.schedules.items()
        }

    def on_train_batch_begin(self, batch, logs=None):
        interrupts.raise_if_interrupted()  # a Ctrl-C a finalizer swallowed
        values = self.precisions(self.current_epoch, batch)
        dl.set_annealed(self.sim, values)
        self.batch_records.append(
            {
                "epoch": self.current_epoch,
                "batch": batch,
                "precision": {self.labels[e]: v for e, v in values.items()},
            }
        )


def _labels(sim):
    """``{ensemble: label}`` for the annealed ensembles of ``sim``."""
    return {ens: label for label, ens in hybrid_ensembles(sim.model.toplevel).items()}


def _uniform_precisions(sim, labels):
    """``{label: value}`` for ensembles whose neurons share one precision/threshold."""
    return {
        labels[e]: v
        for e, v in dl.get_annealed(sim).items()
        if not isinstance(v, np.ndarray)
    }


def _resolve_schedules(sim, schedule):
    ensembles = hybrid_ensembles(sim.model.toplevel)
    if not ensembles:
        raise ValidationError(
            "the network has no HybridSpiking or SigmaDelta ensembles to anneal; "
            "build it with nengo_hybrid.HybridSpiking or nengo_hybrid.SigmaDelta "
            "neurons",
            attr="sim",
        )
    if isinstance(schedule, Schedule):
        schedules = {ens: schedule for ens in ensembles.values()}
    elif isinstance(schedule, dict):
        unknown = [e for e in schedule if e not in ensembles.values()]
        if unknown:
            raise ValidationError(
                f"schedule given for {unknown}, which are not HybridSpiking or "
                "SigmaDelta ensembles of this simulator's network",
                attr="schedule",
            )
        bad = [s for s in schedule.values() if not isinstance(s, Schedule)]
        if bad:
            raise ValidationError(f"not a Schedule: {bad[0]!r}", attr="schedule")
        schedules = dict(schedule)
    else:
        schedules = None
    if schedules is not None:
        for ens, each in schedules.items():
            each.check_values(ens.neuron_type)
        return schedules
    raise ValidationError(
        f"schedule must be a Schedule or {{ensemble: Schedule}}, got {schedule!r}",
        attr="schedule",
    )


def _n_samples(data, name):
    arrays = list(data.values()) if isinstance(data, dict) else [data]
    sizes = {np.shape(a)[0] for a in arrays}
    if len(sizes) != 1:
        raise ValidationError(f"all {name} arrays must have the same length", attr=name)
    for a in arrays:
        if np.issubdtype(np.asarray(a).dtype, np.floating) and not np.all(
            np.isfinite(a)
        ):
            raise ValidationError(
                f"{name} contains NaN or infinity; clean the data first", attr=name
            )
    return sizes.pop()


def _paired(sim, data, objects, name, kind):
    """``{object: array}`` as NengoDL pairs ``data`` with input nodes or probes."""
    if not isinstance(data, (dict, list, tuple)):
        data = [data]
    if isinstance(data, (list, tuple)):
        if len(data) > len(objects):
            raise ValidationError(
                f"{name} has {len(data)} arrays but the network has {len(objects)} "
                f"{kind}s {objects}; pass a dict {{{kind}: array}}",
                attr=name,
            )
        return {obj: np.asarray(value) for obj, value in zip(objects, data)}
    by_name = {sim.get_name(obj): obj for obj in objects}
    paired = {}
    for key, value in data.items():
        obj = by_name.get(key) if isinstance(key, str) else key
        if obj not in objects:
            raise ValidationError(
                f"{name} is given for {key!r}, which is not an {kind} of this "
                f"simulator's network; key {name} by one of {objects}",
                attr=name,
            )
        paired[obj] = np.asarray(value)
    return paired


def _check_shapes(sim, x, y, names=("x", "y")):
    """Check ``x`` and ``y`` against the network before TensorFlow sees them.

    Each input must be ``(n_examples, n_steps, node.size_out)``, all with the
    same ``n_steps``. Each target must be ``(n_examples, steps, d)`` where
    ``steps`` is what the probe records (``n_steps``, or 1 with
    ``keep_history=False``) and ``d`` is the probe's size, or 1 for class labels,
    which must then be integers in ``[0, d)``.
    """
    x_name, y_name = names
    inputs = _paired(sim, x, list(sim.node_inputs), x_name, "input node")
    n_steps = None
    for node, value in inputs.items():
        if value.ndim != 3 or value.shape[2] != node.size_out:
            raise ValidationError(
                f"{x_name} for {node} must have shape (n_examples, n_steps, "
                f"{node.size_out}) ({node.size_out} = the node's size_out), got "
                f"{value.shape}; reshape the inputs or feed the node they are for",
                attr=x_name,
            )
        if n_steps is not None and value.shape[1] != n_steps:
            raise ValidationError(
                f"all {x_name} arrays must have the same number of steps; {node} has "
                f"{value.shape[1]}, another input node has {n_steps}",
                attr=x_name,
            )
        n_steps = value.shape[1]

    targets = _paired(sim, y, list(sim.model.probes), y_name, "probe")
    for probe, value in targets.items():
        size = probe.size_in
        keep_history = get_setting(sim.model, "keep_history", True, obj=probe)
        steps = n_steps if keep_history else 1
        if value.ndim != 3 or value.shape[2] not in (size, 1):
            raise ValidationError(
                f"{y_name} for {probe} must have shape (n_examples, {steps}, {size}) "
                f"({size} = the probe's size), or (n_examples, {steps}, 1) for class "
                f"labels; got {value.shape}",
                attr=y_name,
            )
        if steps is not None and value.shape[1] != steps:
            why = (
                f"the inputs {x_name} have {n_steps} steps"
                if keep_history
                else "it has keep_history=False, so it records only the last step"
            )
            raise ValidationError(
                f"{y_name} for {probe} has {value.shape[1]} steps, but the probe "
                f"records {steps} ({why}); give targets of shape (n_examples, "
                f"{steps}, {value.shape[2]})",
                attr=y_name,
            )
        if value.shape[2] == 1 < size and value.size:
            # one target per step for a d-wide output: class labels (sparse
            # categorical losses), indices into the probe's outputs
            low, high = value.min(), value.max()
            integral = not np.issubdtype(value.dtype, np.floating) or np.all(
                value == np.round(value)
            )
            if not integral or low < 0 or high >= size:
                raise ValidationError(
                    f"{y_name} for {probe} holds class labels (one value per step "
                    f"for {size} outputs), which must be integers in [0, {size}); "
                    f"got values in [{low:g}, {high:g}]"
                    + ("" if integral else " that are not all integers")
                    + "; relabel the classes 0.."
                    + f"{size - 1} or widen the output",
                    attr=y_name,
                )


def _check_validation_data(sim, validation_data, inputs=None):
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValidationError(
            "validation_data must be a tuple (x_val, y_val), got "
            f"{type(validation_data).__name__}",
            attr="validation_data",
        )
    x_val, y_val = validation_data
    n_val = _n_samples(x_val, "validation x")
    if _n_samples(y_val, "validation y") != n_val:
        raise ValidationError(
            "validation x and y must have the same number of examples",
            attr="validation_data",
        )
    if n_val < sim.minibatch_size:
        raise ValidationError(
            f"validation_data has {n_val} examples, fewer than the minibatch size "
            f"{sim.minibatch_size}; give at least one minibatch",
            attr="validation_data",
        )
    _check_shapes(
        sim,
        _sample_inputs(sim, x_val, inputs),
        y_val,
        names=("validation x", "validation y"),
    )
    return n_val


def _n_steps(x):
    """Steps per sequence of the inputs ``x``."""
    if isinstance(x, dict):
        x = next(iter(x.values()))
    elif isinstance(x, (list, tuple)):
        x = x[0]
    return np.shape(x)[1]


def _take(data, index):
    if isinstance(data, dict):
        return {k: np.asarray(v)[index] for k, v in data.items()}
    return np.asarray(data)[index]


def _inputs_of(x, inputs, index):
    """The simulator inputs of examples ``index`` of ``x`` (made by ``inputs``)."""
    x = _take(x, index)
    return x if inputs is None else inputs(x)


def _sample_inputs(sim, x, inputs):
    """Simulator inputs whose shapes to check: ``x``, or ``inputs`` of a minibatch."""
    if inputs is None:
        return x
    return _inputs_of(x, inputs, slice(0, sim.minibatch_size))


class Minibatches:
    """Minibatches of ``(x, y)`` in a given order, made when NengoDL asks.

    Minibatch ``i`` holds examples ``order[i * b : (i + 1) * b]`` (``b`` the
    simulator's minibatch size; a last partial minibatch is left out, as NengoDL
    does with arrays). Only the examples of that minibatch are copied, and
    ``inputs`` turns them into simulator inputs then, so whatever it derives
    from them (e.g. the LMU's precomputed memory) is never held for the whole
    dataset. `dataset` feeds them to ``sim.fit``, ``sim.evaluate`` or
    ``validation_data``.

    Parameters
    ----------
    sim : nengo_dl.Simulator
    x : array or dict
        Examples: simulator inputs as for ``sim.fit``, or whatever ``inputs``
        takes.
    y : array or dict
        Targets, as for ``sim.fit``.
    order : array of int, optional
        Example order (default: as stored).
    inputs : callable, optional
        Makes the simulator inputs (a dict ``{node: array}``) from a minibatch
        of ``x``, e.g. ``network.inputs``.
    """

    def __init__(self, sim, x, y, order=None, inputs=None):
        self.sim, self.x, self.y, self.inputs = sim, x, y, inputs
        n = _n_samples(x, "x")
        self.order = np.arange(n) if order is None else np.asarray(order)

    def __len__(self):
        return len(self.order) // self.sim.minibatch_size

    def __getitem__(self, i):
        """``(x, y)`` of minibatch ``i``: dicts keyed by NengoDL's names."""
        if not 0 <= i < len(self):
            raise IndexError(f"minibatch {i} of {len(self)}")
        size = self.sim.minibatch_size
        index = self.order[i * size : (i + 1) * size]
        batch = dl.minibatch(
            self.sim, _inputs_of(self.x, self.inputs, index), _take(self.y, index)
        )
        # floating-point data in Keras' dtype, as Keras converts arrays
        floatx = tf.keras.backend.floatx()
        return tf.nest.map_structure(
            lambda a: (
                a.astype(floatx, copy=False)
                if np.issubdtype(a.dtype, np.floating)
                else a
            ),
            batch,
        )

    def batches(self):
        """The minibatches in order (a generator)."""
        return (self[i] for i in range(len(self)))

    def signature(self):
        """``tf.TensorSpec`` structure of a minibatch."""
        return tf.nest.map_structure(lambda a: tf.TensorSpec(a.shape, a.dtype), self[0])

    def dataset(self):
        """The minibatches as a ``tf.data.Dataset`` with their full shapes.

        Keras sees the same shapes and dtypes as with arrays (it chooses, say,
        the accuracy metric named ``"accuracy"`` from them) and knows the
        number of minibatches; the next minibatch is made while the current
        one runs.
        """
        data = tf.data.Dataset.from_generator(
            self.batches, output_signature=self.signature()
        )
        return data.apply(tf.data.experimental.assert_cardinality(len(self))).prefetch(
            1
        )


class _Feed:
    """One ``tf.data.Dataset`` per simulator and role, fed from swappable `Minibatches`.

    ``Dataset.from_generator`` traces its functions when it is made, which
    costs a fifth of a second, about as much as three training steps of the
    quick LMU; `fit` makes one per epoch (and per call). A feed makes it once
    and reads the minibatches of whichever `Minibatches` it was last given
    (each iterator binds the one current when it starts), as long as they
    have the same shapes and dtypes.
    """

    _feeds = weakref.WeakKeyDictionary()

    def __init__(self, signature, length):
        self.signature, self.length, self.source = signature, length, None
        data = tf.data.Dataset.from_generator(
            lambda: self.source.batches(), output_signature=signature
        )
        self.dataset = data.apply(
            tf.data.experimental.assert_cardinality(length)
        ).prefetch(1)

    @classmethod
    def dataset_of(cls, minibatches, role):
        """The dataset of ``minibatches`` for ``role`` (``"train"``, ``"validation"``)."""
        signature = minibatches.signature()
        feeds = cls._feeds.setdefault(minibatches.sim, {})
        feed = feeds.get(role)
        if (
            feed is None
            or feed.signature != signature
            or feed.length != len(minibatches)
        ):
            feed = feeds[role] = cls(signature, len(minibatches))
        feed.source = minibatches
        return feed.dataset


KEEP = ("last", "best")


def fit(
    sim,
    x,
    y,
    schedule,
    epochs=1,
    validation_data=None,
    checkpoint=None,
    seed=0,
    bits_samples=None,
    progress=True,
    callbacks=(),
    jit_compile="auto",
    inputs=None,
    keep="last",
):
    """Train ``sim`` while annealing precisions or thresholds by ``schedule``.

    The precision of `.HybridSpiking` ensembles, the threshold of `.SigmaDelta`
    ensembles (`.neurons.annealed_param`): one kind of schedule for both.

    The training step leaves out the history of probes that no loss or metric
    reads (`nengo_hybrid.dl.prune_training_probes`; validation and the bit
    measurement still see it), and the input pipeline is made once per
    simulator and reused by later epochs and calls.

    Parameters
    ----------
    sim : nengo_dl.Simulator
        A simulator on which ``compile`` has been called.
    x, y : array or dict
        Training inputs and targets, as for ``sim.fit``. Inputs are
        ``(n_examples, n_steps, node.size_out)``; targets ``(n_examples, steps,
        probe size)`` with ``steps`` what the probe records (``n_steps``, or 1
        with ``keep_history=False``), or ``(n_examples, steps, 1)`` class labels
        (integers in ``[0, probe size)``). Checked before training starts. With
        ``inputs``, ``x`` holds the examples ``inputs`` takes instead.
    schedule : Schedule or dict of {nengo.Ensemble: Schedule}
        One schedule for every annealed ensemble, or one per ensemble
        (ensembles without an entry keep their current value). Its values
        are checked against the neurons they drive before training starts
        (e.g. ``Linear(0, 5)`` is a valid threshold schedule, not a precision
        schedule).
    epochs : int
        Total number of epochs (including those already done in a checkpoint).
    validation_data : tuple (x_val, y_val), optional
        Evaluated after every epoch (``val_*`` in the history); its first
        ``bits_samples`` examples are used to measure activity bits. Checked
        like ``x, y`` (and for NaN); at least one minibatch.
    checkpoint : str or Path, optional
        A ``.npz`` file written atomically after every epoch. If it exists,
        training resumes from it.
    seed : int
        Seeds the per-epoch shuffle, so runs (and resumed runs) are repeatable.
    bits_samples : int, optional
        Validation examples used for the bit metrics (default: one minibatch).
    progress : bool
        Show a progress bar over the batches of the whole run (its remaining
        time counts validation too), and a line per epoch with the loss, the
        validation accuracy and the activity bits.
    callbacks : list of tf.keras.callbacks.Callback
        Extra callbacks, run after the precision has been set for the batch.
    jit_compile : "auto" or bool
        Compile the training and prediction steps with XLA
        (`nengo_hybrid.dl.use_xla`). ``"auto"``: when every operator of the
        network compiles and the run simulates at least
        `nengo_hybrid.dl.XLA_MIN_BATCH_STEPS` minibatch steps (epochs x
        batches x steps), below which compiling costs more than it saves;
        not for sequences longer than `nengo_hybrid.dl.XLA_MAX_SEQUENCE_STEPS`
        if the loss reads a probe's history (XLA was slower at the paper
        size's 784 steps with a history in the training step, faster without).
        Stays set on ``sim.keras_model`` afterwards.
    inputs : callable, optional
        Makes the simulator inputs (``{node: array}``) from a minibatch of
        examples of ``x`` (and of ``x_val``), e.g. ``network.inputs``. Inputs
        derived from the examples then exist for one minibatch at a time.
        Default: ``x`` are the simulator inputs. Either way minibatches are
        copied out of ``x`` and ``y`` one at a time (`Minibatches`).
    keep : {"last", "best"}
        Which weights the simulator holds at the end: the last epoch's, or
        those of the epoch with the best validation score (accuracy if a
        metric is named ``*accuracy``, else the lowest loss) among the epochs
        that ended at the final precision (the schedule's ``hold`` phase, or
        all epochs of a schedule that reaches it early); epochs at a higher
        precision are left out. ``"best"`` needs ``validation_data``. The
        checkpoint holds both, so a finished run can be resumed with the
        other choice. ``History.kept`` records which epoch was kept and why.

    Returns
    -------
    History

    Examples
    --------
    Two epochs of a small network, annealing the precision from rate-like (64)
    to the deployment value (2):

    >>> import nengo, nengo_dl, numpy as np, tensorflow as tf
    >>> from nengo_hybrid import HybridSpiking, training
    >>> from nengo_hybrid.schedules import Geometric
    >>> with nengo.Network(seed=0) as net:
    ...     inp = nengo.Node(np.zeros(2))
    ...     ens = nengo.Ensemble(
    ...         8, 1, neuron_type=HybridSpiking(nengo.RectifiedLinear())
    ...     )
    ...     _ = nengo.Connection(inp, ens.neurons, transform=np.ones((8, 2)))
    ...     out = nengo.Node(size_in=1)
    ...     _ = nengo.Connection(ens.neurons, out, transform=np.full((1, 8), 1e-3))
    ...     probe = nengo.Probe(out)
    >>> x = np.random.RandomState(0).rand(20, 3, 2)
    >>> y = x.sum(axis=-1, keepdims=True)[:, :, :1]
    >>> with nengo_dl.Simulator(net, minibatch_size=10, progress_bar=False) as sim:
    ...     sim.compile(optimizer=tf.optimizers.Adam(1e-2), loss="mse")
    ...     history = training.fit(
    ...         sim, {inp: x}, {probe: y}, schedule=Geometric(64, 2), epochs=2,
    ...         progress=False,
    ...     )
    ...     final = nengo_hybrid.dl.get_precision(sim)[ens]
    >>> len(history.epochs), round(final, 6)
    (2, 2.0)
    """
    n_samples = _check_fit_arguments(sim, x, y, epochs, validation_data, inputs, keep)
    schedules = _resolve_schedules(sim, schedule)
    steps_per_epoch = n_samples // sim.minibatch_size
    dl.prune_training_probes(sim)
    dl.use_xla(
        sim,
        jit_compile,
        epochs * steps_per_epoch * _n_steps(x),
        sequence_steps=_n_steps(x),
    )
    anneal = AnnealPrecision(sim, schedules, epochs, steps_per_epoch)
    history = History()
    run_info = _run_info(sim, schedules, epochs, steps_per_epoch, seed)
    final = _final_precisions(anneal, epochs)

    start_epoch, best = 0, None
    if checkpoint is not None and Path(checkpoint).exists():
        start_epoch, history, best = _restore(sim, checkpoint, expect=run_info)
        if best is None and history.epochs:  # written before best epochs were kept
            best = _better(None, history.epochs[-1], final, sim)

    validation = None
    if validation_data is not None:
        validation = _Feed.dataset_of(
            Minibatches(sim, *validation_data, inputs=inputs), "validation"
        )
    bar = _progress_bar(epochs, steps_per_epoch, start_epoch, progress)
    probes = activity_probes(sim.model.toplevel)
    for epoch in range(start_epoch, epochs):
        tic = time.perf_counter()
        order = np.random.RandomState(seed + epoch).permutation(n_samples)
        anneal.epoch_offset = epoch
        anneal.batch_records = []
        result = sim.fit(
            _Feed.dataset_of(Minibatches(sim, x, y, order, inputs), "train"),
            epochs=1,
            shuffle=False,
            verbose=0,
            validation_data=validation,
            callbacks=[anneal, bar.callback(epoch, anneal), *callbacks],
        )
        record = {"epoch": epoch}
        record.update({k: float(v[-1]) for k, v in result.history.items()})
        record["precision"] = _uniform_precisions(sim, anneal.labels)
        if validation_data is not None and probes:
            record.update(
                _bits(sim, validation_data[0], inputs, probes, bits_samples, anneal)
            )
        record["seconds"] = time.perf_counter() - tic
        history.epochs.append(record)
        history.batches.extend(anneal.batch_records)
        best = _better(best, record, final, sim)
        if checkpoint is not None:
            save_checkpoint(sim, checkpoint, epoch + 1, history, run_info, best=best)
        bar.epoch_end(record)
    bar.close()
    history.kept = _keep(sim, history, best, keep, final)
    return history


def _check_fit_arguments(sim, x, y, epochs, validation_data, inputs, keep):
    """Check everything `fit` is given before anything changes; the example count."""
    if (
        sim.keras_model.optimizer is None
        or getattr(sim.keras_model, "loss", None) is None
    ):
        raise ValidationError(
            "call sim.compile(optimizer=..., loss=...) before training", attr="sim"
        )
    if int(epochs) != epochs or epochs < 1:
        raise ValidationError(
            f"epochs must be a positive integer, got {epochs}", attr="epochs"
        )
    if keep not in KEEP:
        raise ValidationError(f"keep must be one of {KEEP}, got {keep!r}", attr="keep")
    if keep == "best" and validation_data is None:
        raise ValidationError(
            "keep='best' chooses the epoch by its validation score: give "
            "validation_data, or keep='last'",
            attr="keep",
        )
    if inputs is not None and not callable(inputs):
        raise ValidationError(
            f"inputs must be a function making simulator inputs from examples "
            f"(e.g. network.inputs), got {inputs!r}",
            attr="inputs",
        )
    n_samples = _n_samples(x, "x")
    if _n_samples(y, "y") != n_samples:
        raise ValidationError("x and y must have the same number of examples", attr="y")
    if n_samples % sim.minibatch_size:
        raise ValidationError(
            f"{n_samples} training examples is not a multiple of the minibatch size "
            f"{sim.minibatch_size}; drop or pad examples",
            attr="x",
        )
    _check_shapes(sim, _sample_inputs(sim, x, inputs), y)
    if validation_data is not None:
        _check_validation_data(sim, validation_data, inputs)
    return n_samples


def _final_precisions(anneal, epochs):
    """``{label: precision}`` on the last batch of the run."""
    values = anneal.precisions(epochs - 1, anneal.steps_per_epoch - 1)
    return {anneal.labels[e]: float(v) for e, v in values.items()}


def validation_score(record):
    """``(key, value, higher_is_better)`` that picks the best epoch of a record.

    The validation accuracy (a ``val_*accuracy`` entry) if there is one, else
    the validation loss; ``None`` for a record without validation results.
    """
    keys = sorted(k for k in record if k.startswith("val_") and k.endswith("accuracy"))
    if keys:
        return keys[0], record[keys[0]], True
    if "val_loss" in record:
        return "val_loss", record["val_loss"], False
    return None


def _at_precision(record, precision):
    """Whether the epoch of ``record`` ended at ``precision`` (float32 read-back)."""
    ended = record.get("precision") or {}
    return all(
        label in ended and np.isclose(ended[label], value, rtol=1e-5, atol=0)
        for label, value in precision.items()
    )


def _better(best, record, final, sim):
    """The new best ``(info, weights)`` if ``record``'s epoch beats ``best``.

    Only epochs that ended at the ``final`` precision and have a validation
    score compete; on a tie the earlier epoch stays.
    """
    score = validation_score(record)
    if score is None or not _at_precision(record, final):
        return best
    key, value, higher = score
    if best is not None:
        old = best[0]["value"]
        if not (value > old if higher else value < old):
            return best
    info = {"epoch": int(record["epoch"]), "metric": key, "value": float(value)}
    return info, [w.numpy() for w in sim.keras_model.weights]


def _keep(sim, history, best, keep, final):
    """Give ``sim`` the weights ``keep`` chooses; the `History.kept` record."""
    last = history.epochs[-1] if history.epochs else {"epoch": -1}
    score = validation_score(last)
    if keep == "last" or best is None:
        reason = "the last epoch" + (
            ""
            if keep == "last"
            else "; no epoch at the final precision has a validation score"
        )
        return {
            "epoch": int(last["epoch"]),
            "keep": keep,
            "metric": score and score[0],
            "value": score and score[1],
            "reason": reason,
        }
    info, weights = best
    sim.keras_model.set_weights(weights)
    candidates = [r["epoch"] + 1 for r in history.epochs if _at_precision(r, final)]
    finals = ", ".join(f"{label} {value:g}" for label, value in final.items())
    better = "lowest" if info["metric"] == "val_loss" else "highest"
    return {
        **info,
        "keep": keep,
        "reason": f"{better} {info['metric']} of the epochs that ended at the final "
        f"precision ({finals}): {', '.join(map(str, candidates))}",
    }


def _bits(sim, x_val, inputs, probes, bits_samples, anneal):
    n = sim.minibatch_size if bits_samples is None else bits_samples
    n = max(sim.minibatch_size, n - n % sim.minibatch_size)
    out = sim.predict(_inputs_of(x_val, inputs, slice(0, n)), verbose=0)
    precision = dl.get_precision(sim)
    bits, significant = {}, []
    for ens, probe in probes.items():
        p = precision[ens]
        p = float(np.mean(p)) if isinstance(p, np.ndarray) else p
        counts = metrics.spike_counts(out[probe], ens.neuron_type, sim.dt, precision=p)
        bits[anneal.labels[ens]] = metrics.activity_bits(counts)
        significant.append(metrics.significant_bits(counts))
    return {
        "activity_bits": bits,
        "activity_bits_mean": float(np.mean(list(bits.values()))),
        "significant_bits_mean": float(np.mean(significant)),
    }


class _progress_bar:
    """A tqdm bar over all batches of the run, updated from a Keras callback.

    Its remaining time is the run's average time per batch so far (validation
    and bit measurements included) times the batches left, so it does not
    jump at epoch boundaries. After each epoch it prints one line with the
    loss, the validation accuracy and the activity bits, and shows the last
    of these next to the bar.
    """

    def __init__(self, epochs, steps_per_epoch, start_epoch, enabled):
        from tqdm.auto import tqdm

        self.epochs = epochs
        self.summary = {}
        #: what the bar calls the annealed value (set by `callback`)
        self.annealed = "precision"
        self.bar = tqdm(
            total=epochs * steps_per_epoch,
            initial=start_epoch * steps_per_epoch,
            disable=not enabled,
            unit="batch",
            desc="training",
            smoothing=0,
        )

    def callback(self, epoch, anneal):
        progress = self
        names = {annealed_param(ens.neuron_type) for ens in anneal.schedules}
        self.annealed = names.pop() if len(names) == 1 else "precision/threshold"

        class Update(tf.keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                bar = progress.bar
                bar.update(1)
                if bar.disable:
                    return
                precision = np.mean(
                    list(anneal.batch_records[-1]["precision"].values())
                )
                loss = (logs or {}).get("loss", float("nan"))
                bar.set_postfix(
                    {
                        "epoch": f"{epoch + 1}/{progress.epochs}",
                        "loss": f"{loss:.4g}",
                        progress.annealed: f"{precision:.4g}",
                        **progress.summary,  # of the last finished epoch
                    }
                )

        return Update()

    def epoch_end(self, record):
        """Show the results of the epoch of ``record``."""
        if self.bar.disable:
            return
        shown = epoch_results(record)
        self.summary = {short: text for _, short, text in shown}
        parts = [f"loss {record.get('loss', float('nan')):.4g}"]
        parts += [f"{name} {text}" for name, _, text in shown]
        precision = record.get("precision") or {}
        if precision:
            parts.append(
                f"{self.annealed} "
                + ", ".join(
                    f"{label} {value:.4g}" for label, value in precision.items()
                )
            )
        parts.append(f"{record['seconds']:.1f} s")
        self.bar.write(
            f"epoch {record['epoch'] + 1}/{self.epochs}: " + ", ".join(parts),
            file=self.bar.fp,  # where the bar is (tqdm's default: stdout)
        )

    def close(self):
        self.bar.close()


def epoch_results(record):
    """``[(name, short name, text)]``: the validation results shown of an epoch.

    The validation score (`validation_score`) and the mean activity bits, for
    the line printed after the epoch (names) and next to the progress bar
    until the next epoch ends (short names).
    """
    shown = []
    score = validation_score(record)
    if score is not None:
        key, value, _ = score
        if key == "val_loss":
            shown.append(("validation loss", "val_loss", f"{value:.4g}"))
        else:
            shown.append(("validation accuracy", "val_acc", f"{value:.4f}"))
    if record.get("activity_bits_mean") is not None:
        shown.append(("activity bits", "bits", f"{record['activity_bits_mean']:.3f}"))
    return shown


def _run_info(sim, schedules, epochs, steps_per_epoch, seed):
    labels = _labels(sim)
    return {
        "schedules": {labels[e]: s.to_dict() for e, s in schedules.items()},
        "epochs": int(epochs),
        "steps_per_epoch": int(steps_per_epoch),
        "seed": int(seed),
        "minibatch_size": int(sim.minibatch_size),
        "weight_shapes": [list(w.shape) for w in sim.keras_model.weights],
    }


def _optimizer_variables(sim):
    optimizer = sim.keras_model.optimizer
    if not optimizer.variables or len(optimizer.variables) <= 1:
        optimizer.build(sim.keras_model.trainable_variables)
    return list(optimizer.variables)


def save_checkpoint(sim, path, epochs_done, history, run_info, best=None):
    """Write parameters, optimizer state and schedule state atomically to ``path``.

    ``best``: ``(info, weights)`` of the best epoch at the final precision
    (`fit` tracks it), stored with the rest in the same file.
    """
    arrays = {f"weight_{i}": w.numpy() for i, w in enumerate(sim.keras_model.weights)}
    arrays.update(
        {f"optimizer_{i}": v.numpy() for i, v in enumerate(_optimizer_variables(sim))}
    )
    meta = {
        "format": CHECKPOINT_FORMAT,
        "epochs_done": int(epochs_done),
        "run": run_info,
        # "precision" holds each ensemble's annealed value (threshold for SigmaDelta)
        "precision": {
            label: np.atleast_1d(dl.get_annealed(sim)[e]).tolist()
            for e, label in _labels(sim).items()
        },
        "history": history.to_dict(),
    }
    if best is not None:
        info, weights = best
        meta["best"] = info
        arrays.update({f"best_weight_{i}": w for i, w in enumerate(weights)})
    return write_npz(path, arrays, meta)


def read_checkpoint(path):
    """Read a checkpoint's metadata and arrays; raise `CheckpointError` if unreadable."""
    path = Path(path)
    try:
        meta, arrays = read_npz(path)
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {path} is unreadable (truncated or corrupt: {err}); delete it "
            "to start training from scratch, or pass another checkpoint path"
        ) from err
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a nengo-hybrid checkpoint (format {meta.get('format')!r}, "
            f"expected {CHECKPOINT_FORMAT!r})"
        )
    return meta, arrays


def load_checkpoint(sim, path, expect=None, keep="last"):
    """Restore a checkpoint into ``sim``; nothing changes unless it all matches.

    Everything is checked first (run description, weight and optimizer shapes,
    the ensemble labels and sizes of the saved precisions, the history); only
    then are weights, optimizer state and precisions assigned. A mismatch
    raises `CheckpointError` naming the file and leaves ``sim`` untouched.

    Parameters
    ----------
    sim : nengo_dl.Simulator
    path : str or Path
    expect : dict, optional
        The run description the checkpoint must match (schedules, epochs,
        batches per epoch, seed, weight shapes); `fit` passes its own.
    keep : {"last", "best"}
        The weights of the last epoch, or those of the best epoch at the final
        precision (as `fit` keeps them; the last ones if the checkpoint has
        none, e.g. from a run without validation data).

    Returns
    -------
    epochs_done : int
    history : History
    """
    if keep not in KEEP:
        raise ValidationError(f"keep must be one of {KEEP}, got {keep!r}", attr="keep")
    epochs_done, history, best = _restore(sim, path, expect)
    if keep == "best" and best is not None:
        sim.keras_model.set_weights(best[1])
    return epochs_done, history


def _restore(sim, path, expect=None):
    """`load_checkpoint` with the last weights; also return the best ``(info, weights)``."""
    meta, arrays = read_checkpoint(path)
    fix = (
        "resume with the network and settings that wrote it, or pass another "
        "checkpoint path (or delete this one) to start afresh"
    )
    missing = [
        key for key in ("run", "epochs_done", "precision", "history") if key not in meta
    ]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {missing} in its metadata (written by another "
            f"tool or damaged); {fix}"
        )
    run = meta["run"]
    expect = expect or {
        "weight_shapes": [list(w.shape) for w in sim.keras_model.weights]
    }
    for key, wanted in expect.items():
        if run.get(key) != wanted:
            raise CheckpointError(
                f"checkpoint {path} does not match this training run: its {key} is "
                f"{run.get(key)!r}, this run's is {wanted!r}; {fix}"
            )

    try:
        weights = _checked_arrays(
            arrays, "weight", [tuple(w.shape) for w in sim.keras_model.weights]
        )
    except ValueError as err:
        raise CheckpointError(f"checkpoint {path}: {err}; {fix}") from None
    optimizer_vars = _optimizer_variables(sim)
    try:
        saved_opt = _checked_arrays(
            arrays, "optimizer", [tuple(v.shape) for v in optimizer_vars]
        )
    except ValueError as err:
        raise CheckpointError(
            f"checkpoint {path} has optimizer state that does not fit this simulator's "
            f"{type(sim.keras_model.optimizer).__name__} ({err}); compile with the "
            "optimizer the checkpoint was written with"
        ) from None
    best = _checked_best(sim, path, meta, arrays, fix)
    precision = _checked_precision(sim, path, meta["precision"], fix)
    try:
        epochs_done = int(meta["epochs_done"])
        history = History.from_dict(meta["history"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"checkpoint {path} has an unreadable epoch count or history ({err!r}); "
            f"{fix}"
        ) from err

    # everything matches: assign
    sim.keras_model.set_weights(weights)
    for var, value in zip(optimizer_vars, saved_opt):
        var.assign(value)
    for (var, sl), values in precision:
        var[sl].assign(values)
    return epochs_done, history, best


def _checked_arrays(arrays, prefix, shapes):
    """``arrays[f"{prefix}_{i}"]`` for every expected shape; ValueError if not."""
    n_saved = sum(1 for key in arrays if key.startswith(f"{prefix}_"))
    if n_saved != len(shapes):
        raise ValueError(
            f"it holds {n_saved} {prefix} arrays, this simulator has {len(shapes)}"
        )
    out = []
    for i, shape in enumerate(shapes):
        value = arrays.get(f"{prefix}_{i}")
        if value is None or value.shape != shape:
            got = None if value is None else value.shape
            raise ValueError(
                f"its {prefix}_{i} has shape {got}, this simulator's is {shape}"
            )
        out.append(value)
    return out


def _checked_best(sim, path, meta, arrays, fix):
    """The checkpoint's best epoch ``(info, weights)``, checked; ``None`` if absent."""
    if "best" not in meta:
        return None
    info = meta["best"]
    try:
        if not isinstance(info, dict) or not {"epoch", "metric", "value"} <= set(info):
            raise ValueError(f"its description is {info!r}")
        weights = _checked_arrays(
            arrays, "best_weight", [tuple(w.shape) for w in sim.keras_model.weights]
        )
    except ValueError as err:
        raise CheckpointError(
            f"checkpoint {path}: the record of its best epoch is damaged ({err}); {fix}"
        ) from None
    return info, weights


def _checked_precision(sim, path, saved, fix):
    """``[((variable, slice), values)]`` for the saved precisions, all checked."""
    ensembles = hybrid_ensembles(sim.model.toplevel)
    if not isinstance(saved, dict):
        raise CheckpointError(
            f"checkpoint {path} has no per-ensemble precisions ({saved!r}); {fix}"
        )
    unknown = sorted(set(saved) - set(ensembles))
    absent = sorted(set(ensembles) - set(saved))
    if unknown or absent:
        problems = []
        if unknown:
            problems.append(
                f"has precisions for ensembles labelled {unknown}, which this "
                "network lacks"
            )
        if absent:
            problems.append(f"has no precision for this network's {absent}")
        raise CheckpointError(
            f"checkpoint {path} {' and '.join(problems)} (this network's "
            f"HybridSpiking ensembles are {sorted(ensembles)}). Ensembles are matched "
            "by label: give them the labels they had when the checkpoint was "
            "written, or pass another checkpoint path (or delete this one) to "
            "start afresh"
        )
    slices = dl.annealed_slices(sim)
    out = []
    for label, values in saved.items():
        ens = ensembles[label]
        var, sl = slices[ens]
        n = sl.stop - sl.start
        values = np.asarray(values, dtype=var.dtype.as_numpy_dtype)
        try:
            if values.ndim != 1 or values.size not in (1, n):
                raise ValidationError(f"got shape {values.shape}", attr="values")
            for value in values:
                check_annealed(ens.neuron_type, value)
        except ValidationError:
            name = annealed_param(ens.neuron_type)
            bound = "> 0" if name == "precision" else ">= 0"
            raise CheckpointError(
                f"checkpoint {path}: the {name} of {label!r} must be one or {n} "
                f"finite values {bound}, got {values.tolist()!r}; {fix}"
            ) from None
        out.append(((var, sl), values * np.ones(n, dtype=values.dtype)))
    return out


def freeze(sim, network):
    """Write trained parameters and final precisions/thresholds into ``network``.

    Calls ``sim.freeze_params(network)`` and gives every `.SigmaDelta` ensemble
    its own neuron type with the threshold the simulator ended with, and every
    `.HybridSpiking` ensemble one with the final precision and the simulator's
    initial voltages (freezing gains and biases changes
    which random numbers Nengo draws, so the voltages are pinned explicitly).
    The result runs in the reference simulator, Nengo GUI and nengo-loihi and
    gives the same spikes as NengoDL inference at the same dtype.

    Returns
    -------
    network : nengo.Network
        The same object, modified in place.
    """
    sim.freeze_params(network)
    annealed = dl.get_annealed(sim)
    for ens in hybrid_ensembles(network).values():
        value = annealed[ens]
        name = annealed_param(ens.neuron_type)
        if isinstance(value, np.ndarray):
            raise ValidationError(
                f"{ens} has different {name}s per neuron; freeze needs one per "
                "ensemble",
                attr=name,
            )
        if isinstance(ens.neuron_type, SigmaDelta):
            ens.neuron_type = ens.neuron_type.with_threshold(value)
            continue
        old = ens.neuron_type
        voltage = np.array(sim.model.sig[ens.neurons]["voltage"].initial_value)
        ens.neuron_type = HybridSpiking(
            old.base_type,
            precision=value,
            max_spikes=old.max_spikes,
            amplitude=old.amplitude,
            initial_state={"voltage": voltage},
        )
    return network
