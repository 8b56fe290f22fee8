"""NengoDL integration: the TensorFlow builders for `.HybridSpiking` and `.SigmaDelta`.

Importing this module registers the builders with NengoDL; `nengo_hybrid.builder`
imports it the first time a `nengo_dl.Simulator` builds such neurons. This is
the only module that reaches into NengoDL's builder internals.

It also builds NengoDL's simulation loop with fixed-size probe buffers
(`fixed_size_loop`), which lets TensorFlow compile a whole training step with
XLA (`use_xla`): the same arithmetic, with far fewer kernel launches per step.
In that loop, operators whose results only last-step probes read (a
classifier's readout) run once after the loop (`_last_step_ops`), and the
training step can leave out the history of probes no loss reads
(`prune_training_probes`). The Nengo network is not changed by any of these.

The annealed parameter (`.neurons.annealed_param`) of every population, the
precision of `.HybridSpiking` and the threshold of `.SigmaDelta`, lives in a
non-trainable ``tf.Variable`` (one entry per neuron), so it can be changed
between batches of ``sim.fit`` without rebuilding or retracing the graph; see
`set_annealed` (and `set_precision`, `set_threshold`).
"""

import contextlib
import sys

import numpy as np
import tensorflow as tf
from nengo.builder.operator import Copy, DotInc, ElementwiseInc, Reset
from nengo.exceptions import ValidationError
from nengo_dl import config as nengo_dl_config
from nengo_dl.compat import SimProbe
from nengo_dl.neuron_builders import (
    GenericNeuronBuilder,
    PoissonSpikingBuilder,
    SimNeuronsBuilder,
    StochasticSpikingBuilder,
    TFNeuronBuilder,
)
from nengo_dl.op_builders import SimPyFuncBuilder, SparseDotIncBuilder
from nengo_dl.process_builders import GenericProcessBuilder, SimProcessBuilder
from nengo_dl.tensor_graph import TensorGraph
from nengo_dl.tensor_node import SimTensorNodeBuilder

from nengo_hybrid.neurons import HybridSpiking, SigmaDelta, check_annealed


def _op_slices(ops):
    """Sizes of the merged neuron operators, and each one's slice of the group."""
    sizes = [op.J.shape[0] for op in ops]
    starts = np.cumsum([0] + sizes)
    return sizes, {
        op: slice(int(a), int(b)) for op, a, b in zip(ops, starts, starts[1:])
    }


class HybridSpikingBuilder(TFNeuronBuilder):
    """Build a group of `.HybridSpiking` neuron operators.

    The forward pass is the quantized output, with the voltage carried across
    steps in training as in inference. The backward pass is straight-through:
    the gradient is that of ``amplitude * r(J)``, i.e. the base rate's gradient
    (NengoDL builds the base type as a separate operator feeding this one).
    """

    spiking = True

    def __init__(self, ops):
        super().__init__(ops)
        self.precision = None  # created once, reused if the graph is rebuilt

    def build_pre(self, signals, config):
        super().build_pre(signals, config)
        sizes, self.slices = _op_slices(self.ops)

        if self.precision is None:
            initial = np.concatenate(
                [np.full(n, op.neurons.precision) for op, n in zip(self.ops, sizes)]
            )
            # init_scope lifts the variable out of any graph being traced, so the
            # same variable is captured by every tf.function that runs the model
            with tf.init_scope():
                self.precision = tf.Variable(
                    initial.astype(signals.dtype.as_numpy_dtype),
                    trainable=False,
                    name="hybrid_spiking_precision",
                )

        limits = [
            np.inf if op.neurons.max_spikes is None else op.neurons.max_spikes
            for op in self.ops
        ]
        self.max_spikes = (
            None
            if all(np.isinf(limits))
            else tf.constant(np.repeat(limits, sizes), dtype=signals.dtype)
        )
        amplitude = np.repeat([op.neurons.amplitude for op in self.ops], sizes)
        self.amplitude_vec = tf.constant(amplitude, dtype=signals.dtype)

    def step(self, J, dt, voltage):
        precision = tf.cast(self.precision, J.dtype)
        voltage = voltage + (precision * dt) * J
        n_spikes = tf.floor(voltage)
        if self.max_spikes is not None:
            n_spikes = tf.clip_by_value(n_spikes, -self.max_spikes, self.max_spikes)
        voltage = voltage - n_spikes
        return n_spikes * (self.amplitude_vec / (precision * dt)), voltage

    def build_step(self, signals, **step_kwargs):
        rate = signals.gather(self.J_data)
        voltage = signals.gather(self.state_data["voltage"])
        spikes, voltage = self.step(rate, signals.dt, voltage)

        # straight-through estimator: forward = spikes, backward = d(rate)/dJ
        scaled_rate = rate * self.amplitude_vec
        out = scaled_rate + tf.stop_gradient(spikes - scaled_rate)

        signals.scatter(self.output_data, out)
        signals.scatter(self.state_data["voltage"], tf.stop_gradient(voltage))


class SigmaDeltaBuilder(TFNeuronBuilder):
    """Build a group of `.SigmaDelta` neuron operators.

    The forward pass is Lava's delta encoder and the receiver's reconstruction
    (`.SigmaDelta.step`), with the state carried across steps in training as in
    inference. The backward pass is straight-through: the gradient is that of
    ``amplitude * r(J)``, the base rate's. The threshold lives in a
    non-trainable variable (`set_threshold`).
    """

    spiking = True

    def __init__(self, ops):
        super().__init__(ops)
        self.threshold = None  # created once, reused if the graph is rebuilt

    def build_pre(self, signals, config):
        super().build_pre(signals, config)
        sizes, self.slices = _op_slices(self.ops)
        dtype = signals.dtype.as_numpy_dtype
        if self.threshold is None:
            initial = np.repeat([op.neurons.threshold for op in self.ops], sizes)
            with tf.init_scope():  # see HybridSpikingBuilder.build_pre
                self.threshold = tf.Variable(
                    initial.astype(dtype), trainable=False, name="sigma_delta_threshold"
                )
        cum_error = np.repeat([op.neurons.cum_error for op in self.ops], sizes)
        self.cum_error = tf.constant(cum_error)
        amplitude = np.repeat([op.neurons.amplitude for op in self.ops], sizes)
        self.amplitude_vec = tf.constant(amplitude.astype(dtype))

    def step(self, act, activation, residue, error, reconstruction):
        """Lava's ``delta_dynamics`` on every neuron; returns output and state."""
        threshold = tf.cast(self.threshold, act.dtype)
        delta = act - activation + residue
        accumulated = error + delta
        decides = tf.where(self.cum_error, accumulated, delta)
        sent = tf.where(tf.abs(decides) >= threshold, delta, tf.zeros_like(delta))
        reset = tf.where(sent != 0, tf.zeros_like(accumulated), accumulated)
        error = tf.where(self.cum_error, reset, error)
        reconstruction = reconstruction + sent
        state = (act, delta - sent, error, reconstruction)
        return reconstruction * self.amplitude_vec, state

    def build_step(self, signals, **step_kwargs):
        rate = signals.gather(self.J_data)
        names = ("activation", "residue", "error", "reconstruction")
        state = [signals.gather(self.state_data[name]) for name in names]
        output, state = self.step(rate, *state)

        # straight-through estimator: forward = reconstruction, backward = d(rate)/dJ
        scaled_rate = rate * self.amplitude_vec
        signals.scatter(
            self.output_data, scaled_rate + tf.stop_gradient(output - scaled_rate)
        )
        for name, value in zip(names, state):
            signals.scatter(self.state_data[name], tf.stop_gradient(value))


SimNeuronsBuilder.TF_NEURON_IMPL[HybridSpiking] = HybridSpikingBuilder
SimNeuronsBuilder.TF_NEURON_IMPL[SigmaDelta] = SigmaDeltaBuilder

#: the builder of each annealed neuron type, and its variable's attribute
ANNEALED_BUILDERS = {
    HybridSpiking: (HybridSpikingBuilder, "precision"),
    SigmaDelta: (SigmaDeltaBuilder, "threshold"),
}

# nengo-loihi imported before TensorFlow (by nengo_hybrid.hardware) has its own
# NengoDL builders switched off; NengoDL is here now, so switch them back on
if "nengo_hybrid.hardware.loihi" in sys.modules:
    sys.modules["nengo_hybrid.hardware.loihi"].enable_nengo_dl_builders()


def annealed_slices(sim, kinds=(HybridSpiking, SigmaDelta)):
    """Map each ensemble of the ``kinds`` in ``sim`` to its annealed parameter.

    Parameters
    ----------
    sim : nengo_dl.Simulator
        A built NengoDL simulator.
    kinds : tuple of type
        Neuron types to include (default: `.HybridSpiking` and `.SigmaDelta`).

    Returns
    -------
    dict of {nengo.Ensemble: (tf.Variable, slice)}
        The variable holding the per-neuron value (precision or threshold) and
        the slice of it that belongs to the ensemble.
    """
    kinds = tuple(kinds)
    out_to_ensemble = {
        sim.model.sig[ens.neurons]["out"]: ens
        for ens in sim.model.toplevel.all_ensembles
        if isinstance(ens.neuron_type, kinds)
    }
    found = {}
    for op_build in sim.tensor_graph.op_builder.op_builds.values():
        built = getattr(op_build, "built_neurons", None)
        for kind in kinds:
            builder_class, attr = ANNEALED_BUILDERS[kind]
            variable = getattr(built, attr, None)
            if isinstance(built, builder_class) and variable is not None:
                for op, sl in built.slices.items():
                    if op.output in out_to_ensemble:
                        found[out_to_ensemble[op.output]] = (variable, sl)
    return found


def precision_slices(sim):
    """`annealed_slices` of the `.HybridSpiking` ensembles (their precision)."""
    return annealed_slices(sim, (HybridSpiking,))


def get_annealed(sim, kinds=(HybridSpiking, SigmaDelta)):
    """Return ``{ensemble: value}``: the precision or threshold in use.

    A population whose neurons differ gets an array, the others a float.
    """
    result = {}
    for ens, (var, sl) in annealed_slices(sim, kinds).items():
        values = var.numpy()[sl]
        result[ens] = float(values[0]) if np.all(values == values[0]) else values
    return result


def get_precision(sim):
    """Return ``{ensemble: precision}`` as currently used by the simulator."""
    return get_annealed(sim, (HybridSpiking,))


def get_threshold(sim):
    """Return ``{ensemble: threshold}`` of the `.SigmaDelta` ensembles in use."""
    return get_annealed(sim, (SigmaDelta,))


def set_annealed(sim, value, ensembles=None, kinds=(HybridSpiking, SigmaDelta)):
    """Change the annealed parameter of ensembles without rebuilding.

    The precision of `.HybridSpiking`, the threshold of `.SigmaDelta`. Takes
    effect on the next call that runs the simulator (the next batch when called
    from a Keras callback during ``sim.fit``). All values are checked before
    any is assigned.

    Parameters
    ----------
    sim : nengo_dl.Simulator
        A built NengoDL simulator.
    value : float or dict of {nengo.Ensemble: float}
        The new value, for all ensembles or per ensemble (precision finite and
        ``> 0``; threshold finite and ``>= 0``).
    ensembles : iterable of nengo.Ensemble, optional
        With a scalar ``value``, restrict the change to these ensembles.
    kinds : tuple of type
        The neuron types whose ensembles may be set.
    """
    slices = annealed_slices(sim, kinds)
    names = " or ".join(kind.__name__ for kind in kinds)
    if not slices:
        raise ValidationError(
            f"The simulator has no {names} ensembles whose "
            f"{' or '.join(ANNEALED_BUILDERS[k][1] for k in kinds)} could be set; "
            f"was the network built with nengo_hybrid.{names} neurons?",
            attr="sim",
        )
    if isinstance(value, dict):
        targets = value
    else:
        chosen = slices if ensembles is None else ensembles
        targets = {ens: value for ens in chosen}

    updates = {}
    for ens, new in targets.items():
        if ens not in slices:
            raise ValidationError(
                f"{ens} is not a {names} ensemble in this simulator",
                attr="ensembles",
            )
        new = check_annealed(ens.neuron_type, new)
        var, sl = slices[ens]
        if var.ref() not in updates:
            updates[var.ref()] = var.numpy()
        updates[var.ref()][sl] = new
    # one assignment per variable: sliced assigns cost ~ms each in eager mode
    for ref, values in updates.items():
        ref.deref().assign(values)


def set_precision(sim, precision, ensembles=None):
    """Change the precision of `.HybridSpiking` ensembles without rebuilding.

    `set_annealed` for `.HybridSpiking` only; ``precision`` is finite and
    ``> 0``, for all ensembles or ``{ensemble: precision}``.
    """
    set_annealed(sim, precision, ensembles, kinds=(HybridSpiking,))


def set_threshold(sim, threshold, ensembles=None):
    """Change the threshold of `.SigmaDelta` ensembles without rebuilding.

    `set_annealed` for `.SigmaDelta` only; ``threshold`` is finite and
    ``>= 0``, for all ensembles or ``{ensemble: threshold}``.
    """
    set_annealed(sim, threshold, ensembles, kinds=(SigmaDelta,))


def configure_classifier(network):
    """NengoDL settings for a classifier network (`nengo_hybrid.tasks` contract).

    ``stateful=False`` (each batch starts from the initial state),
    ``keep_history=False`` (the score probe returns the last step only, unless
    the network scores over several steps), the full history for the probes of
    the measured layers (`layer_probes`, added here), and ``network.fixed``
    objects not trainable. Safe to call more than once.

    Classifiers built while NengoDL is imported get the same settings, without
    the layer probes (`configure_settings`).
    """
    configure_settings(network)
    for probe in network.layer_probes():
        network.config[probe].keep_history = True
    return network


def configure_settings(network):
    """The NengoDL settings of `configure_classifier`, without adding probes."""
    import nengo_dl

    if not getattr(network, "_nengo_dl_configured", False):
        with network:
            nengo_dl.configure_settings(
                stateful=False, keep_history=False, trainable=None
            )
        network._nengo_dl_configured = True
    if network.score_steps > 1:
        network.config[network.probe].keep_history = True
    for obj in network.fixed:
        network.config[obj].trainable = False
    return network


# -- the simulation loop -----------------------------------------------------

_settings = {"fixed_size_loop": True, "last_step_ops": True}
_nengo_dl_build_loop = TensorGraph._build_loop


@contextlib.contextmanager
def fixed_size_loop(enabled=True):
    """Build simulators inside this context with or without the fixed-size loop.

    The fixed-size loop is the default once this module is loaded; building
    with ``enabled=False`` gives NengoDL's own loop, for comparisons.
    """
    previous = _settings["fixed_size_loop"]
    _settings["fixed_size_loop"] = bool(enabled)
    try:
        yield
    finally:
        _settings["fixed_size_loop"] = previous


def _loop_length(graph):
    """Steps the loop can run: the input sequences' length, rounded up to a chunk.

    A tensor known when the graph is compiled (the shape of a node input), so
    XLA sees fixed-size buffers; without node inputs, the ``n_steps`` input.
    """
    inputs = list(graph.node_inputs.values())
    if not inputs:
        return graph.steps_to_run
    n_steps = tf.shape(inputs[0])[1]
    return -(-n_steps // graph.unroll) * graph.unroll


def _keeps_history(graph, probe):
    return nengo_dl_config.get_setting(
        graph.model, "keep_history", default=True, obj=probe
    )


def _unread_in_training(graph, probe):
    """Whether ``probe`` is built for training and no loss or metric reads it."""
    needed = getattr(graph, "loss_probes", None)
    return (
        getattr(graph, "building_training", None) is True
        and needed is not None
        and probe not in needed
    )


def _initial_probe_buffer(graph, probe, length):
    """A TensorArray of ``length`` steps, or the last value (no history).

    A probe that the training step builds but no loss or metric reads
    (`loss_probes`) carries its last value only, whatever its
    ``keep_history``: its history would be written every step and its (zero)
    gradient read back every step of the backward pass, for nothing.
    """
    if _keeps_history(graph, probe) and not _unread_in_training(graph, probe):
        return tf.TensorArray(graph.dtype, size=length, clear_after_read=True)
    shape = graph.signals[graph.model.sig[probe]["in"]].full_shape
    return tf.zeros(shape, dtype=graph.dtype)


def _stacked_probe(graph, probe, buffer):
    """Probe data ``(batch, steps, d)`` from a loop buffer, as NengoDL returns it."""
    x = buffer.stack() if isinstance(buffer, tf.TensorArray) else buffer[None]
    if graph.model.sig[probe]["in"].minibatched:
        perm = np.arange(x.shape.ndims)
        perm[[0, 1]] = perm[[1, 0]]
        return tf.transpose(x, perm=perm)  # (steps, batch, d) -> (batch, steps, d)
    return x[None]


#: operator types that may run once after the loop (`_last_step_ops`):
#: stateless arithmetic whose result depends on the current step's inputs only
_TAIL_TYPES = (Copy, DotInc, ElementwiseInc, Reset)


def _last_value_probes(graph):
    """Probes whose loop buffer carries the last step only (`_initial_probe_buffer`)."""
    return {
        p
        for p in graph.model.probes
        if not _keeps_history(graph, p) or _unread_in_training(graph, p)
    }


def _last_step_ops(graph):
    """Operator groups that can run once, after the loop, on the last step's values.

    A group qualifies when its operators are stateless arithmetic
    (`_TAIL_TYPES`), everything it writes is read only by other such groups
    or by probes that keep the last step only (a classifier's readout: the
    loss reads the logits of the last step), and nothing it reads is changed
    by an ``update`` (which would hold the next step's value after the loop).
    Each signal such a group increments is also set within these groups, so
    no value accumulates across steps. Returns ``(groups, boundary)``: the
    groups in plan order and the signals they read that the loop computes
    (carried out of the loop as their last values).
    """
    if not _settings["last_step_ops"]:
        return [], []
    plan = graph.plan
    last = _last_value_probes(graph)
    probe_bases = {graph.model.sig[p]["in"].base: p for p in graph.model.probes}
    updated = {s.base for ops in plan for op in ops for s in op.updates}
    # parameters an operator changes (online learning) have other values in
    # the loop than in their variables
    updated |= {
        s.base
        for ops in plan
        for op in ops
        for s in op.sets + op.incs
        if getattr(s.base, "trainable", None) is not None
    }
    readers = {}
    for ops in plan:
        if isinstance(ops[0], SimProbe):
            continue  # probes are checked above (``last``)
        for op in ops:
            for sig in op.reads:
                readers.setdefault(sig.base, set()).add(ops)

    def written(ops):
        return {s.base for op in ops for s in op.sets + op.incs}

    tail = {ops for ops in plan if all(isinstance(op, _TAIL_TYPES) for op in ops)}
    tail = {
        ops
        for ops in tail
        if not any(op.updates for op in ops)
        and not {s.base for op in ops for s in op.reads} & updated
    }
    changed = True
    while changed:
        changed = False
        for ops in list(tail):
            for base in written(ops):
                probe = probe_bases.get(base)
                if (probe is not None and probe not in last) or (
                    readers.get(base, set()) - tail
                ):
                    tail.discard(ops)
                    changed = True
                    break
    # increments need a set (or reset) of the same signal among the tail groups
    set_bases = {
        s.base for ops in tail for op in ops for s in op.sets if s.shape == s.base.shape
    }
    while True:
        bad = {
            ops
            for ops in tail
            if any(s.base not in set_bases for op in ops for s in op.incs)
        }
        if not bad:
            break
        tail -= bad
        set_bases = {
            s.base
            for ops in tail
            for op in ops
            for s in op.sets
            if s.shape == s.base.shape
        }
        # a group whose output was read by a dropped group stays valid (its
        # readers shrink), but one reading a dropped group's output does not
        tail = {
            ops
            for ops in tail
            if not any(
                s.base in {b for d in bad for b in written(d)}
                for op in ops
                for s in op.reads
            )
        }
    tail_written = {b for ops in tail for b in written(ops)}
    boundary = []
    for ops in plan:
        if ops not in tail:
            continue
        for op in ops:
            for sig in op.reads:
                if sig.base in tail_written or sig.trainable is not None:
                    continue  # computed after the loop, or a parameter
                if not any(sig is b for b in boundary):
                    boundary.append(sig)
    if not tail or any(b not in graph.signals for b in boundary):
        return [], []
    return [ops for ops in plan if ops in tail], boundary


def _build_step(graph, loop_i, update_probes, probes, progress):
    """NengoDL's ``TensorGraph._build_inner_loop``, gathering only ``probes``."""
    for unroll_iter in range(graph.unroll):
        with tf.name_scope(f"iteration_{unroll_iter}"):
            for node, vals in graph.node_inputs.items():
                if graph.model.sig[node]["out"] in graph.signals:
                    graph.signals.scatter(
                        graph.signals[graph.model.sig[node]["out"]], vals[:, loop_i]
                    )
            with tf.control_dependencies([loop_i]):
                side_effects = graph.op_builder.build_step(graph.signals, progress)
                probe_tensors = [
                    graph.signals.gather(graph.signals[graph.model.sig[p]["in"]])
                    for p in probes
                ]
            update_probes(probe_tensors, loop_i)
            with tf.control_dependencies(side_effects + probe_tensors):
                loop_i += 1
    return loop_i


def _build_fixed_size_loop(graph, progress):
    """NengoDL's ``TensorGraph._build_loop`` with buffers of a size XLA can see.

    Same steps, same operators, same outputs as NengoDL 3.6's loop, with
    these changes: the probe buffers have the input sequences' length instead
    of growing step by step (and the ``tf.while_loop`` has that bound as
    ``maximum_iterations``); a probe with ``keep_history=False`` carries its
    last value as a loop variable instead of a one-element buffer written
    under a ``tf.cond`` each step; and operators whose results only such
    probes read (a classifier's readout, `_last_step_ops`) run once after the
    loop on the last step's values instead of every step.
    """
    length = _loop_length(graph)
    probes = graph.model.probes
    tail, boundary = _last_step_ops(graph)
    tail_bases = {s.base for ops in tail for op in ops for s in op.sets + op.incs}
    after = [p for p in probes if graph.model.sig[p]["in"].base in tail_bases]
    during = [p for p in probes if p not in after]
    loop_plan = [ops for ops in graph.plan if ops not in set(tail)]

    def loop_condition(loop_i, n_steps, *_):
        return loop_i < n_steps

    def loop_body(loop_i, n_steps, buffers, carried, saved_state, base_params):
        graph._fill_bases(
            dict(zip(graph.saved_state, saved_state)),
            dict(zip(graph.base_params, base_params)),
        )
        buffers = list(buffers)

        def update_probes(probe_tensors, step):
            for i, value in enumerate(probe_tensors):
                if isinstance(buffers[i], tf.TensorArray):
                    buffers[i] = buffers[i].write(step, value)
                else:
                    buffers[i] = value

        loop_i = _build_step(graph, loop_i, update_probes, during, progress)
        carried = [graph.signals.gather(graph.signals[sig]) for sig in boundary]
        state = tuple(graph.signals.bases[key] for key in graph.saved_state)
        params = tuple(graph.signals.bases[key] for key in graph.base_params)
        return loop_i, n_steps, buffers, carried, state, params

    full_plan = graph.op_builder.plan
    graph.op_builder.plan = loop_plan
    try:
        loop_vars = tf.while_loop(
            cond=loop_condition,
            body=loop_body,
            loop_vars=(
                tf.constant(0),
                graph.steps_to_run,
                [_initial_probe_buffer(graph, p, length) for p in during],
                [
                    tf.zeros(graph.signals[sig].full_shape, graph.signals[sig].dtype)
                    for sig in boundary
                ],
                tuple(graph.saved_state.values()),
                tuple(graph.base_params.values()),
            ),
            parallel_iterations=1,
            maximum_iterations=length // graph.unroll,
        )
    finally:
        graph.op_builder.plan = full_plan
    steps_run = tf.tile(loop_vars[0][None], (graph.minibatch_size,))
    probe_arrays = {
        p: _stacked_probe(graph, p, buffer) for p, buffer in zip(during, loop_vars[2])
    }
    if tail:
        # the last step's readout: the parameters it reads are not changed by
        # any operator, so the variables hold the values the loop used
        with tf.name_scope("last_step"):
            graph._fill_bases(
                dict(zip(graph.saved_state, loop_vars[4])), graph.base_params
            )
            for sig, value in zip(boundary, loop_vars[3]):
                graph.signals.scatter(graph.signals[sig], value)
            for ops in tail:
                with graph.op_builder.name_scope(ops):
                    graph.op_builder.op_builds[ops].build_step(graph.signals)
            for p in after:
                value = graph.signals.gather(graph.signals[graph.model.sig[p]["in"]])
                probe_arrays[p] = _stacked_probe(graph, p, value)
    probe_arrays = {p: probe_arrays[p] for p in probes}
    return steps_run, probe_arrays, loop_vars[4], loop_vars[5]


def _build_loop(graph, progress):
    graph.fixed_size_loop = _settings["fixed_size_loop"]
    if graph.fixed_size_loop:
        return _build_fixed_size_loop(graph, progress)
    return _nengo_dl_build_loop(graph, progress)


TensorGraph._build_loop = _build_loop
_nengo_dl_call = TensorGraph.call


@tf.autograph.experimental.do_not_convert
def _call(graph, inputs, training=None, progress=None, stateful=False):
    """NengoDL's ``TensorGraph.call``, noting whether it builds a training step."""
    override = nengo_dl_config.get_setting(graph.model, "learning_phase", None)
    graph.building_training = training if override is None else override
    try:
        return _nengo_dl_call(
            graph, inputs, training=training, progress=progress, stateful=stateful
        )
    finally:
        graph.building_training = None


TensorGraph.call = _call


def loss_probes(sim):
    """The probes that ``sim``'s compiled loss and metrics read.

    NengoDL's ``Simulator.compile`` hands Keras a dict keyed by probe name (a
    single loss is given to every probe); None if the model is not compiled
    or Keras holds something else (then every probe counts as read).
    """
    model = sim.keras_model
    names = set()
    for container, attrs in (
        (model.compiled_loss, ("_user_losses",)),
        (model.compiled_metrics, ("_user_metrics", "_user_weighted_metrics")),
    ):
        if container is None:
            if attrs[0] == "_user_losses":
                return None
            continue
        for attr in attrs:
            value = getattr(container, attr, None)
            if value is None:
                continue
            if not isinstance(value, dict):
                return None
            names.update(k for k, v in value.items() if v is not None)
    io_names = sim.tensor_graph.io_names
    return {p for p in sim.model.probes if io_names[p] in names}


def prune_training_probes(sim, enabled=True):
    """Build ``sim``'s training step without the probes no loss or metric reads.

    With the fixed-size loop (`fixed_size_loop`), a probe that the compiled
    loss and metrics (`loss_probes`) do not read is carried as its last value
    only in the training step (``sim.fit``): its history is neither written
    each step nor read back by the gradient. Its output in the training step
    is then that last step, ``(batch, 1, d)``; nothing in ``sim.fit`` reads
    it. Evaluation and prediction are not changed, and neither is the network.
    Takes effect from the next training step (the step is traced again).

    Parameters
    ----------
    sim : nengo_dl.Simulator
        A compiled simulator.
    enabled : bool
        False builds every probe as configured (NengoDL's behaviour).

    Returns
    -------
    set of nengo.Probe
        The probes built without history in training (empty if none).
    """
    graph = sim.tensor_graph
    needed = loss_probes(sim) if enabled else None
    if needed != getattr(graph, "loss_probes", None):
        graph.loss_probes = needed
        sim.keras_model.train_function = None  # trace again
    if needed is None or not getattr(graph, "fixed_size_loop", False):
        return set()
    return {p for p in sim.model.probes if p not in needed and _keeps_history(graph, p)}


# -- XLA ---------------------------------------------------------------------

#: builders whose operators XLA cannot compile (Python functions run through
#: ``tf.numpy_function``, Keras layers of unknown content) or would draw
#: other random numbers than TensorFlow's kernels do
NOT_XLA = (
    GenericNeuronBuilder,
    GenericProcessBuilder,
    PoissonSpikingBuilder,
    SimPyFuncBuilder,
    SimTensorNodeBuilder,
    SparseDotIncBuilder,
    StochasticSpikingBuilder,
)


def _built(op_build):
    """The builder doing the work (NengoDL wraps neurons and processes)."""
    if isinstance(op_build, SimNeuronsBuilder):
        return op_build.built_neurons
    if isinstance(op_build, SimProcessBuilder):
        return op_build.built_process
    return op_build


def xla_blockers(sim):
    """Names of the operator builders in ``sim`` that XLA cannot compile.

    Empty when the whole simulation step compiles: `use_xla` then turns XLA on.
    """
    graph = sim.tensor_graph
    if not graph.use_loop or not getattr(graph, "fixed_size_loop", False):
        return ["NengoDL's own simulation loop (probe buffers of dynamic size)"]
    if not graph.node_inputs:
        return ["no input nodes (the number of steps is known only when run)"]
    return sorted(
        {
            type(_built(b)).__name__
            for b in sim.tensor_graph.op_builder.op_builds.values()
            if isinstance(_built(b), NOT_XLA)
        }
    )


#: ``"auto"`` turns XLA on for runs of at least this many simulated steps of
#: minibatches (epochs x batches per epoch x steps per sequence): below it,
#: compiling costs more than it saves
XLA_MIN_BATCH_STEPS = 5000


#: "auto" leaves XLA off for sequences longer than this when the training
#: step keeps a probe's history (`training_histories`). Measured: with the
#: hidden layer's history in the training step, XLA cut the CPU time per
#: sequence 2.7x at 49 steps (quick LMU) and halved throughput at 784 (the
#: paper size; benchmarks/results/training_throughput_paper_xla.md); without
#: it (`prune_training_probes`, as `training.fit` builds the step) XLA trained
#: 1.7x as many sequences per CPU-second as no XLA at 784 steps
#: (benchmarks/results/training_throughput_paper.md), so the length limit
#: applies only to steps that keep a history; lengths in between are not
#: measured
XLA_MAX_SEQUENCE_STEPS = 100


def training_histories(sim):
    """Probes whose history ``sim``'s training step keeps (fixed-size loop).

    Those with ``keep_history`` that `prune_training_probes` has not left
    out (every probe with history if it was not called).
    """
    graph = sim.tensor_graph
    needed = getattr(graph, "loss_probes", None)
    return [
        p
        for p in sim.model.probes
        if _keeps_history(graph, p) and (needed is None or p in needed)
    ]


def use_xla(sim, jit_compile="auto", batch_steps=None, sequence_steps=None):
    """Compile ``sim``'s training, evaluation and prediction steps with XLA.

    Parameters
    ----------
    sim : nengo_dl.Simulator
        A compiled simulator.
    jit_compile : "auto" or bool
        ``"auto"``: XLA when every operator compiles (`xla_blockers` is empty)
        and the run is long enough to repay compiling (``batch_steps`` at
        least `XLA_MIN_BATCH_STEPS`, or not given), unless the training step
        keeps a probe's history (`training_histories`; call
        `prune_training_probes` first) over sequences longer than
        `XLA_MAX_SEQUENCE_STEPS`; ``True`` forces it, ``False`` turns it off.
    batch_steps : int, optional
        Minibatch steps the run will simulate (epochs x batches x steps).
    sequence_steps : int, optional
        Steps per sequence (see ``jit_compile``).

    Returns
    -------
    bool
        Whether XLA is on.
    """
    if jit_compile == "auto":
        long_enough = batch_steps is None or batch_steps >= XLA_MIN_BATCH_STEPS
        short_sequences = (
            sequence_steps is None
            or sequence_steps <= XLA_MAX_SEQUENCE_STEPS
            or not training_histories(sim)
        )
        jit_compile = long_enough and short_sequences and not xla_blockers(sim)
    sim.keras_model.jit_compile = bool(jit_compile)
    return bool(sim.keras_model.jit_compile)


def minibatch(sim, x, y=None):
    """One minibatch as ``sim.fit`` would feed it, for a generator or `Sequence`.

    NengoDL completes array inputs itself (names, values of input nodes that
    are not fed, the ``n_steps`` entry) but passes generators through as they
    are; this does the same completion for one minibatch.

    Parameters
    ----------
    sim : nengo_dl.Simulator
    x : dict of {nengo.Node or str: array} or array
        Inputs ``(minibatch_size, n_steps, node.size_out)``.
    y : dict of {nengo.Probe or str: array} or array, optional
        Targets.

    Returns
    -------
    x : dict of {str: array}
    y : dict of {str: array} (only if ``y`` is given)
    """
    inputs = sim._generate_inputs(x)
    if y is None:
        return inputs
    return inputs, sim._standardize_data(y, sim.model.probes)
