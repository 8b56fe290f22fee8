"""What a hybrid-spiking network costs: bits, synaptic events and energy.

These definitions are ours. *A Spike in Performance* (arXiv:2002.03553) reports
"bits per activity" and "significant bits per weight multiply" without giving
formulas, so the numbers below are comparable with each other, not necessarily
with the paper's.

Most functions take integer spike ``counts`` shaped ``(..., n_steps, n_neurons)``:
the number of spikes each neuron emits on each step (signed for signed bases).
Leading axes (e.g. examples in a batch) are pooled with the steps.

`.SigmaDelta` neurons send real-valued changes instead of counts: `sent_deltas`
recovers them from the probed output, `delta_events` counts them and
`payload_bits` gives the message width they need (as it does for counts).
"""

from dataclasses import asdict, dataclass

import nengo
import numpy as np
from nengo.exceptions import ValidationError

from nengo_hybrid.neurons import HybridSpiking, SigmaDelta


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
    """Graded spike messages: (neuron, step) pairs with a nonzero count.

    On Loihi 2 a count ``n`` travels as one message carrying ``n``.
    """
    return int(np.count_nonzero(_as_counts(counts)))


def sent_deltas(output, neuron_type):
    """The deltas a `.SigmaDelta` population sent, from its probed output.

    The output is ``amplitude`` times the receiver's reconstruction (the running
    sum of sent deltas, starting at zero), so the deltas are its step-to-step
    differences. A step without a message gives exactly 0.

    Parameters
    ----------
    output : array_like (..., n_steps, n_neurons)
        Probed ``ensemble.neurons`` output, from the first step on.
    neuron_type : SigmaDelta

    Returns
    -------
    deltas : float64 array, same shape as ``output``
    """
    if not isinstance(neuron_type, SigmaDelta):
        raise ValidationError(
            f"{type(neuron_type).__name__} does not send deltas; sent_deltas is for "
            "nengo_hybrid.SigmaDelta neurons (use spike_counts for spiking neurons)",
            attr="neuron_type",
        )
    output = np.asarray(output, dtype=np.float64)
    if output.ndim < 2:
        raise ValidationError(
            f"output must have shape (..., n_steps, n_neurons), got {output.shape}",
            attr="output",
        )
    return np.diff(output / neuron_type.amplitude, axis=-2, prepend=0.0)


def delta_events(deltas):
    """Messages a `.SigmaDelta` population sent: the nonzero deltas."""
    return int(np.count_nonzero(np.asarray(deltas)))


def message_bits(values, resolution=1.0):
    """Bits each nonzero message needs, including the sign bit.

    A message ``v`` travels as the integer ``round(|v| / resolution)`` plus a
    sign: ``1 + bit_length`` bits (2 bits for +-1, 3 for +-2 or +-3, ...).
    Spike counts have ``resolution=1``; a `.SigmaDelta` delta has the
    resolution of the fixed-point activation it is sent in.

    Parameters
    ----------
    values : array_like
        Spike counts or sent deltas; zeros (no message) are skipped.
    resolution : float
        The value of one unit of the integer payload (``> 0``).

    Returns
    -------
    int64 array
        One width per nonzero message (flattened).
    """
    resolution = float(resolution)
    if not np.isfinite(resolution) or resolution <= 0:
        raise ValidationError(
            f"resolution must be finite and > 0, got {resolution}", attr="resolution"
        )
    values = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(values)):
        raise ValidationError("values contain NaN or infinity", attr="values")
    units = np.round(np.abs(values[values != 0]) / resolution)
    return 1 + _bit_length(units).astype(np.int64)


def payload_bits(values, resolution=1.0):
    """Bits the widest message needs, including sign (0 with no messages).

    The payload width a graded-spike message must have to carry every count or
    delta in ``values``; compare it with a profile's message bits. See
    `message_bits` for ``resolution``.
    """
    widths = message_bits(values, resolution)
    return int(widths.max()) if widths.size else 0


def one_bit_spikes(counts):
    """One-bit spikes: ``sum |n|``, what a count ``n`` costs on Loihi 1."""
    return int(np.abs(_as_counts(counts)).sum())


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


def device_costs(profile="loihi1"):
    """The energy costs of a hardware profile's ``energy`` block.

    Parameters
    ----------
    profile : str or Profile
        A built-in profile name, a profile JSON path, or a `.Profile`.

    Returns
    -------
    DeviceCosts
    """
    from nengo_hybrid.hardware.profiles import load_profile

    profile = load_profile(profile)
    block = profile.data.get("energy") or {}
    keys = ("synaptic_op_pj", "spike_message_pj", "neuron_update_pj")
    missing = [k for k in keys if k not in block]
    if missing:
        raise ValidationError(
            f"hardware profile {profile.name!r} has no energy costs {missing}; "
            "use a profile that publishes them (loihi1), or pass a DeviceCosts",
            attr="device",
        )
    return DeviceCosts(
        name=profile.name,
        synaptic_op=float(block["synaptic_op_pj"]["value"]),
        spike_message=float(block["spike_message_pj"]["value"]),
        neuron_update=float(block["neuron_update_pj"]["value"]),
        source="; ".join(sorted({block[k]["source"] for k in keys})),
    )


class _Devices(dict):
    """``DEVICES["loihi1"]``: the costs of a profile, read from it on first use."""

    def __missing__(self, name):
        self[name] = device_costs(name)
        return self[name]

    def __contains__(self, name):
        try:
            self[name]
        except Exception:  # noqa: BLE001 (unknown profile, or no energy block)
            return False
        return True


#: per-device costs, read from the hardware profiles (one source of truth)
DEVICES = _Devices()


def energy(counts, fan_out, device="loihi1", n_compartments=None):
    """Estimate the energy of a run from spike counts, in joules.

    ``synaptic_op * events + spike_message * |n| + neuron_update * neurons * steps``
    (parts ``synaptic_ops``, ``spike_routing``, ``neuron_updates``). A multi-bit
    count ``n`` is costed as ``|n|`` one-bit spikes (`one_bit_spikes`), as on
    Loihi 1.

    Parameters
    ----------
    counts : int array_like (..., n_steps, n_neurons)
    fan_out : (n_neurons,) array_like
        Synapses per neuron, e.g. from `fan_out`.
    device : str or DeviceCosts
        A hardware profile with an ``energy`` block (`device_costs`), or
        custom costs.
    n_compartments : int, optional
        Compartments updated per step (default ``n_neurons``; larger when a
        multi-bit neuron is expanded into several 1-bit compartments).

    Returns
    -------
    dict
        ``total`` and the three parts in joules, plus the device costs used.
    """
    costs = device if isinstance(device, DeviceCosts) else device_costs(device)
    flat = _as_counts(counts)
    n_updates = flat.shape[0] * (
        flat.shape[1] if n_compartments is None else n_compartments
    )
    parts = {
        "synaptic_ops": synaptic_events(counts, fan_out) * costs.synaptic_op,
        "spike_routing": one_bit_spikes(flat) * costs.spike_message,
        "neuron_updates": n_updates * costs.neuron_update,
    }
    joules = {k: v * 1e-12 for k, v in parts.items()}
    joules["total"] = sum(joules.values())
    joules["device"] = asdict(costs)
    return joules
