"""Map a Nengo network onto a Loihi 2 `.loihi2.Program`, and run it from a frozen file.

What maps (everything else raises `.Loihi2MappingError` naming the object):

* an `~nengo.Ensemble` of `.HybridSpiking` neurons with a
  `~nengo.RectifiedLinear` base -> a ``"hybrid"`` population (one graded-spike
  neuron per Nengo neuron);
* an `~nengo.Ensemble` of `.SigmaDelta` neurons with a `~nengo.RectifiedLinear`
  base -> a ``"sigma_delta"`` population (Lava's stock ``SigmaDelta``);
* a `~nengo.Node` without input (``size_in == 0``) -> a host input, sent as
  ``input_bits``-bit signed payloads of ``value / scale`` per dimension;
* a connection between those (decoded, neuron-to-neuron, with slices and
  `~nengo.transforms.Dense` transforms, recurrent ones included) -> a
  projection. Its synapse becomes the target population's current decay:
  ``None`` or one `~nengo.Lowpass` shared by all connections into a population;
* a connection from an ensemble to a `~nengo.Node` with input -> a readout,
  decoded on the host from the population's payloads (`Loihi2Network.decode`).

Fixed point (``frac_bits`` F): a hybrid neuron's state counts ``2**-F`` spikes,
so a Nengo input current ``J`` adds ``precision * dt * base amplitude * 2**F *
J`` per step. A Lowpass synapse with ``a = exp(-dt / tau)`` is the decay ``du =
round(4096 (1 - a))`` with the weights scaled by ``du / 4096`` (unit DC gain,
as Nengo's filter). Every projection's float weights are rounded to an 8-bit
mantissa with the smallest exponent that holds the largest weight (within the
profile's ``weight_exp_min``/``weight_exp_max``).

Sigma-delta (F: `sigma_delta_frac_bits`, E: ``state_exp``, see
`_sigma_delta_params`): payloads, ``vth`` and ``bias`` count ``2**-F``
activation units, the state ``2**-(F + E)``, so an input current ``J`` adds
``amplitude * 2**(F + E) * J`` to sigma. A sigma-delta neuron sends changes and
Lava's sigma sums what arrives (the receiver's reconstruction), so a Nengo
connection from one (which carries the reconstruction) is the same weights
applied to the deltas. Every population fed by a sigma-delta one *integrates*:
sigma-delta targets, and hybrid ones, whose current then has no decay (``du =
0``). Into an integrating population, host inputs are sent as the changes of
their payloads (program input ``label + ".delta"``), hybrid sources do not map
(their counts are not changes) and the synapse must be ``None`` or ``0`` (a
one-step delay; a filter would filter deltas, not the value). A readout of a
sigma-delta population decodes the running sum of its payloads.

Timing: a projection delivers one step later in Lava (its ``Dense`` buffers),
as a Nengo synapse does (an "update" operator); a Nengo connection without a
synapse delivers on the same step. `Loihi2Network.latency` is the resulting
delay of each population against the reference simulator.
"""

import math

import nengo
import numpy as np
from nengo.transforms import Dense, NoTransform

from nengo_hybrid.hardware.loihi2 import (
    DECAY_BITS,
    MANTISSA_MAX,
    MANTISSA_MIN,
    Loihi2MappingError,
    Population,
    Program,
    Projection,
)
from nengo_hybrid.hardware.loihi2 import run as run_program
from nengo_hybrid.hardware.profiles import load_profile
from nengo_hybrid.neurons import HybridSpiking, SigmaDelta

FRAC_BITS = 16  # state resolution 2**-16 spikes: up to 127 spikes per step in 24 bits
MIN_FRAC_BITS = 6  # coarser states are refused
INPUT_BITS = 8  # host payload width (signed), per input dimension
#: sigma-delta payload resolution: the threshold spans (2**5, 2**6] payload units
SD_THRESHOLD_BITS = 6
#: sigma-delta payload fraction bits at threshold 0 (every change sent)
SD_FRAC_BITS = 8
SD_STATE_EXP_MAX = 7  # Lava's state_exp has 3 bits
SD_BIAS_BITS = 16  # Lava's fixed-point SigmaDelta bias (signed, after state_exp)
#: program input label suffix of a host input sent as deltas (to sigma inputs)
DELTA_SUFFIX = ".delta"


def _name(obj):
    return str(obj.label) if obj.label is not None else str(obj)


def _tau(conn):
    """The synapse's time constant (``None`` without a synapse)."""
    synapse = conn.synapse
    if synapse is None:
        return None
    if type(synapse) is not nengo.Lowpass:
        raise Loihi2MappingError(
            f"{conn}: synapse {synapse} does not map onto Loihi 2",
            hint="use nengo.Lowpass(tau) or synapse=None",
        )
    return float(synapse.tau)


def _decay(tau, dt):
    """``du`` for a Lowpass of ``tau`` (4096: no memory, for ``tau`` None)."""
    if tau is None or tau <= 0:
        return 1 << DECAY_BITS
    du = round((1 << DECAY_BITS) * -math.expm1(-dt / tau))
    return max(du, 1)


def quantise_weights(weights, exp_min, exp_max, what):
    """``(mantissa, exp)`` with ``2 * mantissa * 2**exp ~= weights``.

    The smallest exponent (in the profile's range) whose mantissas fit 8 bits.
    """
    w = np.asarray(weights, dtype=np.float64)
    largest = float(np.abs(w).max(initial=0.0))
    exp = exp_min if exp_min is not None else -24
    if largest > 0:
        exp = max(exp, math.ceil(math.log2(largest / (2 * MANTISSA_MAX))))
    mantissa = np.round(w / 2.0 ** (exp + 1))
    if mantissa.size and mantissa.max() > MANTISSA_MAX:  # rounding up at the top
        exp += 1
        mantissa = np.round(w / 2.0 ** (exp + 1))
    if exp_max is not None and exp > exp_max:
        raise Loihi2MappingError(
            f"{what}: weights up to {largest:.4g} state units need weight exponent "
            f"{exp}, above the profile's weight_exp_max {exp_max}",
            hint="lower frac_bits (state resolution), or the weights",
        )
    return np.clip(mantissa, MANTISSA_MIN, MANTISSA_MAX).astype(np.int64), exp


class Loihi2Network:
    """A network mapped onto Loihi 2: the chip `.loihi2.Program` plus its host side.

    Attributes
    ----------
    program : Program
    inputs : dict of {str: (Node, ndarray)}
        Host input label -> (node, full scale per dimension).
    input_bits : int
    readouts : list of dict
        ``node``, ``pre`` (population label), ``weights`` (float, ``(size_out,
        n)``, per payload unit), ``synapse``, ``cumulative`` (sigma-delta
        source: decode the running sum of the payloads).
    latency : dict of {str: int}
        Steps each population lags the reference simulator.
    labels : dict of {Ensemble: str}
    dt : float
    model : nengo.builder.Model, optional
        The built Nengo model the program was mapped from (the host side
        evaluates the readout nodes from it).
    """

    def __init__(
        self, program, inputs, input_bits, readouts, latency, labels, dt, model=None
    ):
        self.model = model
        self.program = program
        self.inputs = inputs
        self.input_bits = input_bits
        self.readouts = readouts
        self.latency = latency
        self.labels = labels
        self.dt = dt

    def encode(self, values):
        """Host values ``{Node or label: (B, n_steps, size)}`` -> integer payloads.

        An input that feeds integrating populations (`from_network`) is also
        sent as the step-to-step differences of its payloads, as program input
        ``label + ".delta"``: their running sum there is the quantised value.
        """
        by_node = {node: label for label, (node, _) in self.inputs.items()}
        qmax = (1 << (self.input_bits - 1)) - 1
        out = {}
        for key, x in values.items():
            label = by_node.get(key, key)
            if label not in self.inputs:
                raise Loihi2MappingError(
                    f"{key!r} is not a host input of the mapped network",
                    hint=f"its inputs are {sorted(self.inputs)}",
                )
            scale = self.inputs[label][1]
            q = np.round(np.asarray(x, dtype=np.float64) / scale * qmax)
            q = np.clip(q, -qmax, qmax).astype(np.int64)
            if label in self.program.inputs:
                out[label] = q
            if label + DELTA_SUFFIX in self.program.inputs:  # into sigma neurons
                out[label + DELTA_SUFFIX] = np.diff(q, axis=-2, prepend=0)
        return out

    def decode(self, payloads):
        """``{Node: (B, n_steps, size_in)}`` host outputs from the payloads.

        A hybrid population's payloads are counts per step (the value is the
        count times the population's ``scale``); a sigma-delta population's are
        deltas, and the value is their running sum (the receiver's sigma)
        times ``scale``. As the reference simulator's node input: the readout's synapse is an
        update operator (one step later) and no synapse delivers on the same
        step; the chip's `latency` is not removed.
        """
        out = {}
        for r in self.readouts:
            x = payloads[r["pre"]].astype(np.float64)
            if r["cumulative"]:  # sigma-delta payloads: the running sum is the value
                x = np.cumsum(x, axis=1)
            x = x @ r["weights"].T
            if r["synapse"] is not None:
                x = r["synapse"].filt(x, axis=1, dt=self.dt, y0=0)
                x = np.concatenate([np.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
            node = r["node"]
            out[node] = out[node] + x if node in out else x
        return out


def _labels(ensembles):
    labels, seen = {}, set()
    for i, ens in enumerate(ensembles):
        label = _name(ens)
        if label in seen:
            label = f"{label}[{i}]"
        seen.add(label)
        labels[ens] = label
    return labels


def sigma_delta_frac_bits(threshold, default=SD_FRAC_BITS):
    """Payload fraction bits ``F`` of a `.SigmaDelta` population at ``threshold``.

    One payload unit is ``2**-F`` activation units: the threshold spans
    ``(2**5, 2**6]`` payload units (``F = 6 - ceil(log2(threshold))``, negative
    for thresholds above 64), so the fixed point resolves it to better than 3%
    whatever its scale; ``default`` at threshold 0.
    """
    threshold = float(threshold)
    if threshold <= 0:
        return int(default)
    return SD_THRESHOLD_BITS - math.ceil(math.log2(threshold))


def _neuron_units(ens, dt):
    """``(kind, state units per J at 2**0, payload scale)`` of a mappable ensemble.

    For ``"sigma_delta"`` the state units are those of the activation at
    ``2**0`` and the payload scale is that of one payload unit, ``2**-F``
    (`sigma_delta_frac_bits`).
    """
    neuron_type = ens.neuron_type
    if isinstance(neuron_type, SigmaDelta):
        _check_sigma_delta(ens)
        frac = sigma_delta_frac_bits(neuron_type.threshold)
        amplitude = neuron_type.base_type.amplitude
        return "sigma_delta", amplitude, neuron_type.amplitude * 2.0**-frac
    if (
        not isinstance(neuron_type, HybridSpiking)
        or type(neuron_type.base_type) is not nengo.RectifiedLinear
    ):
        raise Loihi2MappingError(
            f"{ens}: neuron type {neuron_type} does not map onto Loihi 2",
            hint="Loihi 2 mapping supports HybridSpiking(nengo.RectifiedLinear()) "
            "and SigmaDelta(nengo.RectifiedLinear())",
        )
    units = neuron_type.precision * dt * neuron_type.base_type.amplitude
    return "hybrid", units, neuron_type.amplitude / (neuron_type.precision * dt)


def _check_sigma_delta(ens):
    """A `Loihi2MappingError` unless ``ens`` is Lava's stock sigma-delta neuron."""
    neuron_type = ens.neuron_type
    if type(neuron_type.base_type) is not nengo.RectifiedLinear:
        raise Loihi2MappingError(
            f"{ens}: SigmaDelta({type(neuron_type.base_type).__name__}) does not map "
            "onto Loihi 2: Lava's sigma-delta neuron computes relu(sigma + bias)",
            hint="use SigmaDelta(nengo.RectifiedLinear())",
        )
    if neuron_type.base_type.amplitude <= 0:
        raise Loihi2MappingError(
            f"{ens}: SigmaDelta's RectifiedLinear amplitude "
            f"{neuron_type.base_type.amplitude} must be > 0 to map onto relu(sigma "
            "+ bias)"
        )
    if neuron_type.initial_state:
        raise Loihi2MappingError(
            f"{ens}: SigmaDelta initial_state {sorted(neuron_type.initial_state)} "
            "does not map: Lava's sigma-delta state starts at zero",
            hint="leave initial_state unset",
        )


def _population_params(ens, model, units, frac_bits, du):
    """Fixed-point parameters of a ``"hybrid"`` population."""
    voltage = np.asarray(model.sig[ens.neurons]["voltage"].initial_value)
    return {
        "bias": np.round(units * 2.0**frac_bits * model.params[ens].bias).astype(
            np.int64
        ),
        "du": np.int64(du),
        "frac_bits": np.int64(frac_bits),
        "max_spikes": np.int64(ens.neuron_type.max_spikes or 0),
        "initial_v": np.floor(voltage * 2.0**frac_bits).astype(np.int64),
    }


def _sigma_delta_params(ens, model, units, into, exp_min, exp_max):
    """``(params, state fraction bits)`` of a ``"sigma_delta"`` population.

    ``into``: its input weights (one array per projection) at state units of
    ``2**-F`` activation units (F: `sigma_delta_frac_bits`). Payloads,
    ``vth`` and ``bias`` are in those units; the state has ``state_exp`` (E)
    more fraction bits, as many as fit: at most 7 (Lava's 3-bit field),
    within the 16-bit bias and ``weight_exp_max``. A fine state matters:
    weights from other sigma-delta neurons do not grow with F (payloads and
    state scale alike), only with E; and sigma sums its input over time, so
    the floor of a negative weight exponent (``>>``) adds up to one state unit
    per projection and step, ``2**-(F + E)`` activation units. A message
    drops the E low bits of its delta (``s >> state_exp`` in Lava), which the
    residue does not carry: each message loses less than one payload unit (a
    threshold / 32 at most).
    """
    nt = ens.neuron_type
    frac = sigma_delta_frac_bits(nt.threshold)
    bias = np.round(units * 2.0**frac * model.params[ens].bias).astype(np.int64)
    bias_bits = int(np.abs(bias).max(initial=0)).bit_length() + 1
    room = SD_BIAS_BITS - bias_bits
    if room < 0:
        raise Loihi2MappingError(
            f"{ens}: its biases need {bias_bits} bits at the payload resolution "
            f"2**-{frac} (threshold {nt.threshold:g}), more than Lava's "
            f"{SD_BIAS_BITS}-bit sigma-delta bias",
            hint="raise its threshold (a coarser resolution) or lower its biases",
        )
    largest = max((float(np.abs(w).max(initial=0.0)) for w in into), default=0.0)
    if largest > 0 and exp_max is not None:
        top = 2 * MANTISSA_MAX * 2.0**exp_max / largest
        room = min(room, math.floor(math.log2(top)))
    exp = max(0, min(room, SD_STATE_EXP_MAX))
    params = {
        "bias": bias,
        "vth": np.int64(round(nt.threshold * 2.0**frac)),
        "state_exp": np.int64(exp),
        "cum_error": np.int64(bool(nt.cum_error)),
    }
    return params, frac + exp


def _frac_bits(weights, frac_bits, exp_max):
    """The largest fraction bits (<= ``frac_bits``) whose weights fit ``exp_max``.

    ``weights``: float weights into one population at ``2**frac_bits`` units.
    """
    if exp_max is None:
        return frac_bits
    largest = max((float(np.abs(w).max(initial=0.0)) for w in weights), default=0.0)
    if largest == 0:
        return frac_bits
    need = math.ceil(math.log2(largest / (2 * MANTISSA_MAX)))
    return frac_bits - max(0, need - exp_max)


def _slice_matrix(sl, size):
    """``(len(idx), size)`` selection matrix of a Nengo slice."""
    idx = np.arange(size)[sl]
    m = np.zeros((len(np.atleast_1d(idx)), size))
    m[np.arange(m.shape[0]), np.atleast_1d(idx)] = 1
    return m


def _connection_matrix(conn, built, model):
    """Float matrix from the source's output (all of it) to the target neurons' J.

    For a target `~nengo.Node`: to the node's input.
    """
    if not isinstance(conn.transform, (Dense, NoTransform)):
        raise Loihi2MappingError(
            f"{conn}: transform {type(conn.transform).__name__} does not map",
            hint="use a Dense transform (a matrix)",
        )
    if conn.learning_rule is not None:
        raise Loihi2MappingError(f"{conn}: learning rules do not map onto Loihi 2")
    pre, post = conn.pre_obj, conn.post_obj
    decoded = isinstance(pre, nengo.Ensemble)
    if isinstance(pre, nengo.Node) and conn.function is not None:
        raise Loihi2MappingError(
            f"{conn}: a function on a host input connection does not map",
            hint="compute it in the node's output",
        )
    size_mid = conn.size_out
    src_size = pre.n_neurons if decoded else pre.size_out
    if built.weights is None:  # NoTransform: the identity
        w = np.eye(size_mid)
    else:
        w = np.asarray(built.weights, dtype=np.float64)
    if w.ndim == 0:
        w = w * np.eye(size_mid)
    elif w.ndim == 1:
        w = np.diag(w)
    pre_matrix = w if decoded else w @ _slice_matrix(conn.pre_slice, src_size)
    solver_weights = getattr(conn.solver, "weights", False) and decoded
    if isinstance(post, nengo.Node):
        return _slice_matrix(conn.post_slice, post.size_in).T @ pre_matrix
    if solver_weights:
        return pre_matrix  # nengo folded the post encoders in (n_post, n_pre)
    target = post if isinstance(post, nengo.Ensemble) else post.ensemble
    sel = _slice_matrix(conn.post_slice, post.size_in).T  # (post size_in, size_mid)
    if isinstance(post, nengo.Ensemble):
        sel = model.params[target].scaled_encoders @ sel
    else:  # Nengo applies the gains to connections into neurons
        sel = model.params[target].gain[:, None] * sel
    return sel @ pre_matrix


def from_network(
    network,
    profile="loihi2",
    dt=0.001,
    frac_bits=FRAC_BITS,
    input_bits=INPUT_BITS,
    input_scales=None,
    seed=None,
):
    """Map ``network`` onto a Loihi 2 program (see the module docstring).

    Parameters
    ----------
    network : nengo.Network
    profile : str or Profile
        Its ``spike_payload_bits`` (> 0: graded spikes) and weight exponents.
    dt : float
    frac_bits : int
        State resolution of hybrid neurons (``2**-frac_bits`` spikes).
    input_bits : int
        Width of host input payloads (signed).
    input_scales : dict of {str: float or array}, optional
        Full scale per host input node label (default 1); values beyond it clip.
    seed : int, optional
        Build seed (as ``nengo.Simulator(seed=...)``).

    Returns
    -------
    Loihi2Network
    """
    profile = load_profile(profile)
    payload_bits = profile["spike_payload_bits"]
    if payload_bits < 2:
        raise Loihi2MappingError(
            f"profile {profile.name!r} has no graded spikes (spike_payload_bits "
            f"{payload_bits})",
            hint="map onto a Loihi 2 profile, e.g. 'loihi2'",
        )
    if not 2 <= input_bits <= payload_bits:
        raise Loihi2MappingError(
            f"input_bits={input_bits} must be in [2, {payload_bits}] (the profile's "
            "spike_payload_bits)"
        )
    model = nengo.builder.Model(dt=dt)
    if seed is not None:
        model.seeds[network] = seed
    model.build(network)

    labels = _labels(network.all_ensembles)
    kinds, units, scales = {}, {}, {}
    for ens, label in labels.items():
        kinds[label], units[label], scales[label] = _neuron_units(ens, dt)
    input_scales = input_scales or {}
    inputs = {}
    for node in network.all_nodes:
        if node.size_in == 0:
            label = _name(node)
            scale = np.broadcast_to(
                np.asarray(input_scales.get(label, 1.0), dtype=np.float64),
                (node.size_out,),
            )
            inputs[label] = (node, scale)
    node_label = {node: label for label, (node, _) in inputs.items()}
    qmax = (1 << (input_bits - 1)) - 1

    def endpoint(obj):
        if isinstance(obj, nengo.ensemble.Neurons):
            obj = obj.ensemble
        if isinstance(obj, nengo.Ensemble):
            return labels[obj], "chip"
        if obj in node_label:
            return node_label[obj], "input"
        return obj, "host"

    conns = []
    for i, conn in enumerate(network.all_connections):
        (pre, pre_kind), (post, post_kind) = (
            endpoint(conn.pre_obj),
            endpoint(conn.post_obj),
        )
        if pre_kind != "chip" and post_kind != "chip":
            continue  # host to host
        if post_kind == "chip" and pre_kind == "host":
            raise Loihi2MappingError(
                f"{conn}: {conn.pre_obj} is a host node with an input (e.g. a "
                "passthrough node) feeding chip neurons, which does not map",
                hint="connect the ensembles directly, or make it a host input",
            )
        conns.append((i, conn, pre, pre_kind, post, post_kind))
    integrating = _integrating(conns, kinds)

    edges, readouts, dus, same_step = [], [], {}, {}
    for i, conn, pre, pre_kind, post, post_kind in conns:
        matrix = _connection_matrix(conn, model.params[conn], model)
        if post_kind == "host":
            readouts.append(
                {
                    "node": conn.post_obj,
                    "pre": pre,
                    "weights": matrix * scales[pre],
                    "synapse": conn.synapse,
                    "cumulative": kinds[pre] == "sigma_delta",
                }
            )
            continue
        du = _decay(_tau(conn), dt)
        if post in integrating:
            pre = _check_integrating(conn, pre, pre_kind, post, kinds, du)
            du = 0  # the current (a hybrid neuron's) or sigma sums what arrives
        if dus.setdefault(post, du) != du:
            raise Loihi2MappingError(
                f"{conn}: synapse {conn.synapse} differs from another connection into "
                f"{post} (one current per Loihi 2 neuron: one synapse per target)",
                hint="give all connections into an ensemble the same synapse",
            )
        if conn.synapse is None:  # Nengo delivers on the same step
            same_step[(pre, post)] = 1
        if pre_kind == "chip":
            src_scale = scales[pre]
        else:
            src_scale = inputs[pre.removesuffix(DELTA_SUFFIX)][1][None, :] / qmax
        gain = 1.0 if du == 0 else du / (1 << DECAY_BITS)  # unit DC gain
        label = _name(conn) if conn.label is not None else f"conn{i}:{pre}->{post}"
        edges.append((conn, label, pre, post, units[post] * gain * matrix * src_scale))

    exp_min = profile.limits.get("weight_exp_min")
    exp_max = profile.limits.get("weight_exp_max")
    populations, fracs = [], {}
    for ens, label in labels.items():
        if kinds[label] == "sigma_delta":
            frac = sigma_delta_frac_bits(ens.neuron_type.threshold)
            into = [w * 2.0**frac for _, _, _, post, w in edges if post == label]
            params, fracs[label] = _sigma_delta_params(
                ens, model, units[label], into, exp_min, exp_max
            )
        else:
            into = [w * 2.0**frac_bits for _, _, _, post, w in edges if post == label]
            fracs[label] = _frac_bits(into, frac_bits, exp_max)
            if fracs[label] < MIN_FRAC_BITS:
                raise Loihi2MappingError(
                    f"{ens}: its input weights need a state resolution of "
                    f"2**-{fracs[label]} spikes, coarser than 2**-{MIN_FRAC_BITS}",
                    hint="lower the weights into it (or the precision of its neurons)",
                )
            du = dus.get(label, 1 << DECAY_BITS)
            params = _population_params(ens, model, units[label], fracs[label], du)
        populations.append(
            Population(label, kinds[label], ens.n_neurons, params, scales[label])
        )
    projections = []
    for conn, label, pre, post, weights in edges:
        mantissa, exp = quantise_weights(
            weights * 2.0 ** fracs[post], exp_min, exp_max, f"connection {conn}"
        )
        projections.append(Projection(label, pre, post, mantissa, exp))
    program_inputs = {}
    for label, (node, _) in inputs.items():
        for name in (label, label + DELTA_SUFFIX):
            if any(pre == name for _, _, pre, _, _ in edges):
                program_inputs[name] = node.size_out
    program = Program(
        populations,
        program_inputs,
        projections,
        payload_bits,
        meta={"dt": dt, "profile": profile.name},
    )
    latency = _latency(program, same_step)
    return Loihi2Network(
        program, inputs, input_bits, readouts, latency, labels, dt, model
    )


def _integrating(conns, kinds):
    """Populations that sum what arrives: sigma-delta, and hybrid fed by sigma-delta.

    Lava's sigma sums its input over time (sigma decoding), so sigma-delta
    neurons send changes and their targets must sum them: a hybrid population
    fed by one takes ``du = 0`` (its current sums the deltas).
    """
    found = {label for label, kind in kinds.items() if kind == "sigma_delta"}
    for _, _, pre, pre_kind, post, post_kind in conns:
        if post_kind == "chip" and pre_kind == "chip" and kinds[pre] == "sigma_delta":
            found.add(post)
    return found


def _check_integrating(conn, pre, pre_kind, post, kinds, du):
    """The source label of a connection into an integrating population (checked).

    Host inputs are sent as deltas (``label + ".delta"``); sigma-delta sources
    send deltas; a hybrid source sends counts, which a sum over time would turn
    into their running total, so it does not map. The synapse must be none or
    ``Lowpass(0)`` (a one-step delay): the sum is the reconstruction itself,
    there is no current to filter it.
    """
    if du != 1 << DECAY_BITS:
        raise Loihi2MappingError(
            f"{conn}: synapse {conn.synapse} into {post} does not map: {post} sums "
            "deltas (Lava's sigma decoding), so it cannot also filter them",
            hint="use synapse=None or synapse=0 on connections into or between "
            "sigma-delta ensembles",
        )
    if pre_kind == "input":
        return pre + DELTA_SUFFIX
    if kinds[pre] != "sigma_delta":
        raise Loihi2MappingError(
            f"{conn}: the HybridSpiking ensemble {pre} feeds {post}, which sums its "
            "input over time (sigma-delta neurons, or hybrid ones fed by them); "
            "hybrid spikes are counts per step, not changes, and do not map there",
            hint="make both ensembles the same neuron kind, or feed the hybrid "
            "ensemble only from other hybrid ensembles and host inputs",
        )
    return pre


def _latency(program, same_step):
    """Steps each population lags the reference simulator (None: not one shift).

    Every Lava projection delivers a step later; so does a Nengo synapse (an
    update operator), but a Nengo connection without one (``same_step``)
    delivers on the same step: one step of lag per such connection on the way
    from the inputs. All the ways into a population must agree.
    """
    lag = {label: 0 for label in program.inputs}
    into = {}
    for proj in program.projections:
        if proj.pre != proj.post:
            into.setdefault(proj.post, []).append(proj.pre)
    pending = {p.label for p in program.populations}
    while pending:
        ready = [x for x in sorted(pending) if all(s in lag for s in into.get(x, []))]
        if not ready:  # a loop through other populations
            lag.update({label: None for label in pending})
            break
        for label in ready:
            arrivals = {
                None if lag[s] is None else lag[s] + same_step.get((s, label), 0)
                for s in into.get(label, [])
            }
            lag[label] = arrivals.pop() if len(arrivals) == 1 else None
            if not into.get(label):
                lag[label] = 0
            pending.discard(label)
    return {p.label: lag[p.label] for p in program.populations}


def run_loihi2(frozen, inputs, profile="loihi2", batch_size=256, **kwargs):
    """Run a frozen network's chip part with Loihi 2 semantics.

    What the deploy stage calls: the frozen network is rebuilt
    (`~nengo_hybrid.frozen.FrozenNetwork.build`), mapped (`from_network`, with
    the file's ``input_scales``), its host inputs encoded as payloads, run
    batched (`.loihi2.run`) and its readouts decoded on the host.

    Parameters
    ----------
    frozen : FrozenNetwork or nengo.Network
    inputs : dict of {Node or str: array}
        ``(B, n_steps, size)`` host values per input node.
    profile : str or Profile
    batch_size : int
    **kwargs
        Passed to `from_network` (``dt``, ``frac_bits``, ``input_bits``).

    Returns
    -------
    outputs : dict of {Node: ndarray}
        Host outputs ``(B, n_steps, size)`` (`Loihi2Network.decode`).
    counts : dict of {str: ndarray}
        Payloads ``(B, n_steps, n)`` per population.
    mapped : Loihi2Network
    """
    profile = load_profile(profile)
    if profile.emulator != "loihi2":
        raise Loihi2MappingError(
            f"profile {profile.name!r} is emulated by {profile.emulator!r}, not by "
            "the Loihi 2 semantics",
            hint="run it with nengo_hybrid.hardware.Simulator, or pick a profile "
            'with "emulator": "loihi2"',
        )
    if isinstance(frozen, nengo.Network):
        network, scales = frozen, {}
    else:
        network, scales = frozen.build(), frozen.meta.get("input_scales") or {}
    kwargs.setdefault("input_scales", scales)
    mapped = from_network(network, profile, **kwargs)
    result = run_program(mapped.program, mapped.encode(inputs), batch_size=batch_size)
    return mapped.decode(result.payloads), result.payloads, mapped
