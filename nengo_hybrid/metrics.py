"""What a hybrid-spiking network costs: bits, synaptic events and energy.

These definitions are ours. *A Spike in Performance* (arXiv:2002.03553) reports
"bits per activity" and "significant bits per weight multiply" without giving
formulas, so the numbers below are comparable with each other, not necessarily
with the paper's.

All functions take integer spike ``counts`` shaped ``(..., n_steps, n_neurons)``:
the number of spikes each neuron emits on each step (signed for signed bases).
Leading axes (e.g. examples in a batch) are pooled with the steps.
"""

from dataclasses import asdict, dataclass

import nengo
import numpy as np
from nengo.exceptions import ValidationError

from nengo_hybrid.neurons import HybridSpiking


def _as_counts(counts):
    counts = np.asarray(counts)
    if counts.ndim < 2:
        raise ValidationError(
            f"counts must have shape (..., n_steps, n_neurons), got {counts.shape}",
            attr="counts",
        )
    if not np.issubdtype(counts.dtype, np.integer):
        if not np.all(np.isfinite(counts)):
            raise ValidationError("counts contain NaN or infinity", attr="counts")
        rounded = np.round(counts)
        if not np.allclose(counts, rounded, atol=1e-6):
            raise ValidationError(
                "counts must be integers (spikes per step); convert simulator "
                "output with nengo_hybrid.metrics.spike_counts first",
                attr="counts",
            )
        counts = rounded.astype(np.int64)
    return counts.reshape(-1, counts.shape[-1])


def spike_counts(output, neuron_type, dt=0.001, precision=None):
    """Convert probed neuron output into integer spike counts per step.

    Parameters
    ----------
    output : array_like (..., n_steps, n_neurons)
        Probed ``ensemble.neurons`` output.
    neuron_type : HybridSpiking or nengo.RegularSpiking or spiking NeuronType
        The ensemble's neuron type; gives the output per spike.
    dt : float
        Simulator time step.
    precision : float, optional
        Override ``neuron_type.precision`` (e.g. after `.dl.set_precision`).

    Returns
    -------
    counts : int64 array, same shape as ``output``
    """
    output = np.asarray(output, dtype=np.float64)
    if isinstance(neuron_type, HybridSpiking):
        p = neuron_type.precision if precision is None else precision
        per_spike = neuron_type.amplitude / (p * dt)
    elif getattr(neuron_type, "spiking", False):
        per_spike = getattr(neuron_type, "amplitude", 1.0) / dt
    else:
        raise ValidationError(
            f"{type(neuron_type).__name__} is not spiking; spike counts are only "
            "defined for spiking and HybridSpiking neurons",
            attr="neuron_type",
        )
    return np.round(output / per_spike).astype(np.int64)


def activity_bits(counts, signed=None):
    """Mean bits each neuron needs to send its spike count on one step.

    ``mean_i log2(1 + max_t |n[i, t]|)``, plus one sign bit if signed. A neuron
    that never exceeds one spike per step costs 1 bit; a silent neuron 0.

    Parameters
    ----------
    counts : int array_like (..., n_steps, n_neurons)
    signed : bool, optional
        Add a sign bit. Default: True if any count is negative.

    Returns
    -------
    float
    """
    counts = _as_counts(counts)
    if signed is None:
        signed = bool(np.any(counts < 0))
    peak = np.abs(counts).max(axis=0)
    return float(np.mean(np.log2(1.0 + peak)) + (1.0 if signed else 0.0))


def _bit_length(values):
    """Position of the most significant set bit (1 for 1, 2 for 2-3, ...)."""
    return np.frexp(values.astype(np.float64))[1]


def significant_bits(counts):
    """Mean MSB-to-LSB span of ``|n|`` over all nonzero events.

    The shift-and-add cost of multiplying a weight by the count: 1 for 1, 2, 4,
    8, ...; 2 for 3, 6, 12; 3 for 5, 7; and so on. Returns 0.0 with no events.
    """
    magnitudes = np.abs(_as_counts(counts))
    magnitudes = magnitudes[magnitudes != 0]
    if magnitudes.size == 0:
        return 0.0
    lowest_bit = magnitudes & -magnitudes
    span = _bit_length(magnitudes) - _bit_length(lowest_bit) + 1
    return float(np.mean(span))


def fan_out(model, ensemble):
    """Synapses each neuron of ``ensemble`` drives, from a built Nengo model.

    Counts the nonzero entries of each column of the full neuron-to-neuron
    weight matrix of every outgoing connection (decoded connections into an
    ensemble are expanded through the post encoders; connections into nodes
    count their output dimensions).

    Parameters
    ----------
    model : nengo.builder.Model
        E.g. ``sim.model`` of a reference or NengoDL simulator.
    ensemble : nengo.Ensemble

    Returns
    -------
    (n_neurons,) int64 array
    """
    total = np.zeros(ensemble.n_neurons, dtype=np.int64)
    for conn in model.toplevel.all_connections:
        from_neurons = (
            isinstance(conn.pre_obj, nengo.ensemble.Neurons)
            and conn.pre_obj.ensemble is ensemble
        )
        if conn.pre_obj is not ensemble and not from_neurons:
            continue
        weights = np.asarray(model.params[conn].weights)
        if from_neurons:
            weights = _neuron_columns(weights, conn, ensemble.n_neurons)
        elif not conn.solver.weights and isinstance(conn.post_obj, nengo.Ensemble):
            weights = model.params[conn.post_obj].scaled_encoders @ weights
        total += np.count_nonzero(weights, axis=0)
    return total


def _neuron_columns(weights, conn, n_neurons):
    """Expand a neuron connection's weights to one column per pre neuron."""
    pre_index = np.arange(n_neurons)[conn.pre_slice]
    if weights.ndim < 2:  # elementwise (scalar or vector) transform
        weights = np.diag(np.broadcast_to(weights, pre_index.shape))
    full = np.zeros((weights.shape[0], n_neurons), dtype=weights.dtype)
    full[:, pre_index] = weights
    return full


def synaptic_events(counts, fan_out):
    """Total synaptic events: ``sum |n[i, t]| * fan_out[i]``.

    A count of ``n`` spikes is ``|n|`` events on a 1-bit core (or one graded
    event carrying ``n``; use `spike_messages` for that view).
    """
    counts = _as_counts(counts)
    fan_out = np.asarray(fan_out)
    if fan_out.shape != (counts.shape[-1],):
        raise ValidationError(
            f"fan_out must have shape ({counts.shape[-1]},) to match counts, got "
            f"{fan_out.shape}",
            attr="fan_out",
        )
    return int(np.sum(np.abs(counts).sum(axis=0) * fan_out))


def spike_messages(counts):
    """Number of (neuron, step) pairs with a nonzero count."""
    return int(np.count_nonzero(_as_counts(counts)))


@dataclass(frozen=True)
class DeviceCosts:
    """Published per-operation energy costs of a device, in picojoules.

    Parameters
    ----------
    name : str
    synaptic_op : float
        Energy per synaptic event (one spike arriving at one synapse).
    spike_message : float
        Energy to route one spike message between cores (one hop).
    neuron_update : float
        Energy per neuron (compartment) update per time step.
    source : str
        Where the numbers come from.
    """

    name: str
    synaptic_op: float
    spike_message: float
    neuron_update: float
    source: str


DEVICES = {
    # Davies et al. 2018, "Loihi: A Neuromorphic Manycore Processor with On-Chip
    # Learning", IEEE Micro 38(1), Table 1: min. synaptic spike op 23.6 pJ,
    # across-tile spike energy 3.5 pJ/hop, active neuron update 81 pJ.
    "loihi1": DeviceCosts(
        name="loihi1",
        synaptic_op=23.6,
        spike_message=3.5,
        neuron_update=81.0,
        source="Davies et al. 2018, IEEE Micro 38(1), Table 1",
    ),
}


def energy(counts, fan_out, device="loihi1", n_compartments=None):
    """Estimate the energy of a run from spike counts, in joules.

    ``synaptic_op * events + spike_message * |n| + neuron_update * neurons * steps``.
    A multi-bit count ``n`` is costed as ``|n|`` one-bit spikes, as on Loihi 1.

    Parameters
    ----------
    counts : int array_like (..., n_steps, n_neurons)
    fan_out : (n_neurons,) array_like
        Synapses per neuron, e.g. from `fan_out`.
    device : str or DeviceCosts
        A key of `DEVICES` or custom costs.
    n_compartments : int, optional
        Compartments updated per step (default ``n_neurons``; larger when a
        multi-bit neuron is expanded into several 1-bit compartments).

    Returns
    -------
    dict
        ``total`` and the three parts in joules, plus the device costs used.
    """
    if isinstance(device, str):
        if device not in DEVICES:
            raise ValidationError(
                f"unknown device {device!r}; choose one of {sorted(DEVICES)} or pass "
                "a DeviceCosts",
                attr="device",
            )
        device = DEVICES[device]
    costs = device
    flat = _as_counts(counts)
    n_updates = flat.shape[0] * (
        flat.shape[1] if n_compartments is None else n_compartments
    )
    parts = {
        "synaptic_ops": synaptic_events(counts, fan_out) * costs.synaptic_op,
        "spike_messages": int(np.abs(flat).sum()) * costs.spike_message,
        "neuron_updates": n_updates * costs.neuron_update,
    }
    joules = {k: v * 1e-12 for k, v in parts.items()}
    joules["total"] = sum(joules.values())
    joules["device"] = asdict(costs)
    return joules
