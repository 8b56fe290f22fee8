"""NengoDL integration: the TensorFlow builder for `.HybridSpiking`.

Importing this module registers the builder with NengoDL; `nengo_hybrid.builder`
imports it the first time a `nengo_dl.Simulator` builds `.HybridSpiking`
neurons. This is the only module that reaches into NengoDL's builder internals.

The precision of every `.HybridSpiking` population lives in a non-trainable
``tf.Variable`` (one entry per neuron), so it can be changed between batches of
``sim.fit`` without rebuilding or retracing the graph; see `set_precision`.
"""

import sys

import numpy as np
import tensorflow as tf
from nengo.exceptions import ValidationError
from nengo_dl.neuron_builders import SimNeuronsBuilder, TFNeuronBuilder

from nengo_hybrid.neurons import HybridSpiking


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
        sizes = [op.J.shape[0] for op in self.ops]
        self.slices = {}
        start = 0
        for op, size in zip(self.ops, sizes):
            self.slices[op] = slice(start, start + size)
            start += size

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


SimNeuronsBuilder.TF_NEURON_IMPL[HybridSpiking] = HybridSpikingBuilder

# nengo-loihi imported before TensorFlow (by nengo_hybrid.hardware) has its own
# NengoDL builders switched off; NengoDL is here now, so switch them back on
if "nengo_hybrid.hardware.loihi" in sys.modules:
    sys.modules["nengo_hybrid.hardware.loihi"].enable_nengo_dl_builders()


def _hybrid_builders(sim):
    for op_build in sim.tensor_graph.op_builder.op_builds.values():
        built = getattr(op_build, "built_neurons", None)
        if isinstance(built, HybridSpikingBuilder) and built.precision is not None:
            yield built


def precision_slices(sim):
    """Map each `.HybridSpiking` ensemble in ``sim`` to its precision storage.

    Parameters
    ----------
    sim : nengo_dl.Simulator
        A built NengoDL simulator.

    Returns
    -------
    dict of {nengo.Ensemble: (tf.Variable, slice)}
        The variable holding the per-neuron precision and the slice of it that
        belongs to the ensemble.
    """
    out_to_ensemble = {
        sim.model.sig[ens.neurons]["out"]: ens
        for ens in sim.model.toplevel.all_ensembles
        if isinstance(ens.neuron_type, HybridSpiking)
    }
    return {
        out_to_ensemble[op.output]: (builder.precision, sl)
        for builder in _hybrid_builders(sim)
        for op, sl in builder.slices.items()
        if op.output in out_to_ensemble
    }


def get_precision(sim):
    """Return ``{ensemble: precision}`` as currently used by the simulator."""
    result = {}
    for ens, (var, sl) in precision_slices(sim).items():
        values = var.numpy()[sl]
        result[ens] = float(values[0]) if np.all(values == values[0]) else values
    return result


def set_precision(sim, precision, ensembles=None):
    """Change the precision of `.HybridSpiking` ensembles without rebuilding.

    Takes effect on the next call that runs the simulator (the next batch when
    called from a Keras callback during ``sim.fit``).

    Parameters
    ----------
    sim : nengo_dl.Simulator
        A built NengoDL simulator.
    precision : float or dict of {nengo.Ensemble: float}
        The new precision (``> 0``, finite), for all ensembles or per ensemble.
    ensembles : iterable of nengo.Ensemble, optional
        With a scalar ``precision``, restrict the change to these ensembles.
    """
    slices = precision_slices(sim)
    if not slices:
        raise ValidationError(
            "The simulator has no HybridSpiking ensembles whose precision could be "
            "set; was the network built with nengo_hybrid.HybridSpiking neurons?",
            attr="sim",
        )
    if isinstance(precision, dict):
        targets = precision
    else:
        chosen = slices if ensembles is None else ensembles
        targets = {ens: precision for ens in chosen}

    updates = {}
    for ens, value in targets.items():
        value = float(value)
        if not np.isfinite(value) or value <= 0:
            raise ValidationError(
                f"precision must be finite and > 0, got {value}", attr="precision"
            )
        if ens not in slices:
            raise ValidationError(
                f"{ens} is not a HybridSpiking ensemble in this simulator",
                attr="ensembles",
            )
        var, sl = slices[ens]
        if var.ref() not in updates:
            updates[var.ref()] = var.numpy()
        updates[var.ref()][sl] = value
    # one assignment per variable: sliced assigns cost ~ms each in eager mode
    for ref, values in updates.items():
        ref.deref().assign(values)


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
