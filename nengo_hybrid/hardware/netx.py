"""Export a `.SigmaDelta` network as a lava-dl netx HDF5 file (h5py only).

netx (``lava.lib.dl.netx``, lava-dl 0.6.0) is how a trained network reaches a
Loihi 2 system: ``netx.hdf5.Network(net_config=FILE)`` builds it as Lava
processes. This module writes that file with h5py alone (no Lava, no torch), in
the layout of lava-dl's own files (``reference/netx/`` in the shared folder):
datasets only, no HDF5 attributes::

    /layer/0/type               S10 array ["input"]
    /layer/0/shape              int64 (n_inputs,)
    /layer/0/neuron/{type, activation, vThMant}        SDNN delta encoder
    /layer/<i>/type             S10 array ["dense"] or ["dense_rec"]
    /layer/<i>/shape            int64 (n_out,)
    /layer/<i>/{inFeatures, outFeatures}               int64
    /layer/<i>/weight           float32 (n_out, n_in), integers in [-256, 254]
    /layer/<i>/weight_rec       float32 (n_out, n_out) (dense_rec only)
    /layer/<i>/bias             float32 (n_out,), integers
    /layer/<i>/neuron/{type, activation, vThMant}      "SDNN", "relu", int64
    /layer/<L>/neuron/sigma_output  True (the output node: no bias)

What exports: a chain ``Node -> ensemble -> ... -> ensemble [-> Node]`` of
`.SigmaDelta` ensembles with ``nengo.RectifiedLinear`` base types (netx's SDNN
neuron: ``act = relu(sigma + bias)``, ``cum_error=False``), each fed by the
previous layer only (dense weights: neuron or decoded connections, linear),
optionally connected to itself (``dense_rec``, with ``synapse=STEP_DELAY``, a
one-step delay as in Lava), with ``synapse=None`` on every other connection
(a netx layer has no synaptic filter). A final output `nengo.Node`
becomes a ``sigma_output`` layer. Anything else raises `NetxExportError`
naming the object: other neuron types (`.HybridSpiking` has no stock Loihi 2
neuron), synapses, functions on node connections, skip or branching
connections.

Numbers are lava-dl's fixed-point convention (slayer's ``w_scale = 2**6``):
a weight, bias or threshold ``v`` is stored as ``64 * v``, rounded. Weights
use netx's 8-bit signed mantissa: even integers in ``[-256, 254]`` (lava-dl's
``quantize_8bit``), so each layer's weights are scaled to fill that range and
rounded to the nearest even integer (an error of at most one step, ``1/64``
of the scaled weight). Biases are integers (netx reads them with
``astype(int)``) of at most 16 bits (Lava's fixed-point bias); a layer's scale
is lowered when its bias would not fit. With Nengo's default gains (hundreds)
the integer bias is coarse; trained dense layers with gains near 1 are not
affected. Recurrent weights (``weight_rec``) cannot be rescaled (the layer's
scale is the same on both sides of the loop): they are stored at scale 1, in
steps of ``1/32``, and must stay within ``[-4, 3.97]``. The scale is made
exact by the ReLU being positively homogeneous: a layer whose weights are
multiplied by ``s`` has activations, bias and threshold multiplied by ``s``
too, and the next layer divides by it.
`Export.scales` gives each layer's activation scale (the file's activation is
``scale`` times Nengo's); the output layer's scale says how the file's output
relates to the Nengo output node's value. Timing: a Lava layer adds one step
of delay, while Nengo's ``synapse=None`` connections add none.
"""

import io
from dataclasses import dataclass, field

import nengo
import numpy as np

from nengo_hybrid.io import UserError, atomic_write_bytes
from nengo_hybrid.neurons import SigmaDelta

#: lava-dl slayer's ``w_scale``: stored integer = 64 * value
FIXED_POINT_SCALE = 64
#: netx's 8-bit signed weight mantissa (even integers, lava-dl ``quantize_8bit``)
WEIGHT_MIN, WEIGHT_MAX, WEIGHT_STEP = -256, 254, 2
#: largest bias magnitude: Lava's fixed-point SigmaDelta bias has 16 bits, signed
BIAS_MAX = 2**15 - 1


class NetxExportError(UserError):
    """The network cannot be written as a netx file (the message names the object)."""


@dataclass
class Layer:
    """One netx layer before quantization (float weights, Nengo units)."""

    label: str
    kind: str  # "input", "dense", "dense_rec", "output"
    size: int
    weight: np.ndarray = None  # (size, n_in): from the previous layer's output
    weight_rec: np.ndarray = None  # (size, size)
    bias: np.ndarray = None
    threshold: float = 0.0
    gain: float = 1.0  # base amplitude: act = relu(gain * J)
    amplitude: float = 1.0  # SigmaDelta output amplitude (scales what it sends)


@dataclass
class Export:
    """What `export` wrote: the layers' labels and activation scales.

    ``scales[i]`` is how much larger layer ``i``'s activations (and its bias
    and threshold) are in the file than in Nengo; for the output layer, the
    file's output divided by ``scales[-1]`` is the Nengo output node's value.
    """

    path: str
    labels: list
    kinds: list
    scales: list = field(default_factory=list)

    def to_dict(self):
        return {
            "path": str(self.path),
            "format": "netx",
            "layers": [
                {"label": lab, "type": kind, "scale": float(scale)}
                for lab, kind, scale in zip(self.labels, self.kinds, self.scales)
            ],
        }


def _fail(message, hint=None):
    raise NetxExportError(message, hint=hint)


def _check_neurons(ens):
    neuron_type = ens.neuron_type
    fix = (
        "build the network with nengo_hybrid.SigmaDelta(nengo.RectifiedLinear(), "
        "threshold=...) neurons to export it to netx"
    )
    if not isinstance(neuron_type, SigmaDelta):
        extra = (
            " (HybridSpiking has no stock Loihi 2 neuron: it needs a custom one, "
            "see the Lava bridge)"
            if type(neuron_type).__name__ == "HybridSpiking"
            else ""
        )
        _fail(
            f"ensemble {ens} has {type(neuron_type).__name__} neurons; netx exports "
            f"sigma-delta (SDNN) networks only{extra}",
            hint=fix,
        )
    if not isinstance(neuron_type.base_type, nengo.RectifiedLinear):
        _fail(
            f"ensemble {ens} has SigmaDelta({type(neuron_type.base_type).__name__}) "
            "neurons; netx's SDNN neuron computes relu(sigma + bias)",
            hint=fix,
        )
    if neuron_type.cum_error:
        _fail(
            f"ensemble {ens} uses cum_error=True, which netx files cannot express "
            "(netx builds SigmaDelta with cum_error=False)",
            hint="train and deploy it with cum_error=False",
        )


def _target(obj):
    """The ensemble or node a connection end belongs to."""
    return obj.ensemble if isinstance(obj, nengo.ensemble.Neurons) else obj


#: the synapse of a recurrent connection: a one-step delay, as a Lava recurrent
#: connection has (Nengo needs a synapse on every cycle)
STEP_DELAY = nengo.LinearFilter([1], [1, 0], analog=False)


def _check_connection(conn):
    recurrent = _target(conn.pre_obj) is _target(conn.post_obj)
    if recurrent and conn.synapse != STEP_DELAY:
        _fail(
            f"recurrent connection {conn} has synapse {conn.synapse}; a netx "
            "dense_rec layer delays its recurrence by one step",
            hint="use synapse=nengo_hybrid.hardware.netx.STEP_DELAY on it",
        )
    if not recurrent and conn.synapse is not None:
        _fail(
            f"connection {conn} has synapse {conn.synapse}; netx layers have no "
            "synaptic filter",
            hint="build the network with synapse=None on every connection to export it",
        )
    if conn.pre_slice != slice(None) or conn.post_slice != slice(None):
        _fail(
            f"connection {conn} is sliced; netx layers connect whole layers",
            hint="connect whole ensembles (put the slicing into the transform)",
        )
    if isinstance(conn.pre_obj, nengo.Node) and conn.function is not None:
        _fail(
            f"connection {conn} applies a function to a node's output; a netx "
            "layer's input is linear",
            hint="compute the function in the node itself",
        )


def _chain(network):
    """``(input node, [ensembles in order], output node or None)``; checked."""
    ensembles = network.all_ensembles
    if not ensembles:
        _fail(f"{network} has no ensembles: nothing to export")
    for ens in ensembles:
        _check_neurons(ens)
    connections = network.all_connections
    for conn in connections:
        _check_connection(conn)

    sources = [n for n in network.all_nodes if n.output is not None and n.size_out]
    if len(sources) != 1:
        _fail(
            f"{network} has {len(sources)} input nodes {sources}; netx networks have "
            "exactly one input layer",
            hint="feed the network from one nengo.Node",
        )

    def feeds(obj):  # connections leaving obj for another object
        return [
            c
            for c in connections
            if _target(c.pre_obj) is obj and _target(c.post_obj) is not obj
        ]

    why = (
        "; netx exports a chain in which every layer feeds only the next (dense "
        "feed-forward, dense_rec for self-recurrence)"
    )
    hint = "remove skip, branching or extra input connections"
    order, pre = [], sources[0]
    while len(order) < len(ensembles):
        fed = feeds(pre)
        if len(fed) != 1 or not isinstance(_target(fed[0].post_obj), nengo.Ensemble):
            _fail(f"{pre} feeds {[str(c.post_obj) for c in fed]}{why}", hint=hint)
        ens = _target(fed[0].post_obj)
        extra = [
            c
            for c in connections
            if _target(c.post_obj) is ens and _target(c.pre_obj) not in (pre, ens)
        ]
        if extra or ens in order:
            _fail(f"ensemble {ens} has inputs besides {pre}: {extra}{why}", hint=hint)
        order.append(ens)
        pre = ens
    outputs = feeds(pre)
    if len(outputs) > 1 or (
        outputs and not isinstance(outputs[0].post_obj, nengo.Node)
    ):
        _fail(
            f"the last ensemble {pre} feeds {[str(c.post_obj) for c in outputs]}; "
            "netx ends in at most one output node",
            hint="read the network's output from one nengo.Node",
        )
    output = outputs[0].post_obj if outputs else None
    if output is not None and (output.output is not None or feeds(output)):
        _fail(
            f"output node {output} computes or sends an output of its own; netx's "
            "sigma output layer only sums its input",
            hint="use a passthrough node, nengo.Node(size_in=...), at the end",
        )
    return sources[0], order, output


def _neuron_weights(model, conn, n_pre):
    """The connection's weights onto the post neurons' current, from pre outputs."""
    weights = model.params[conn].weights
    # no transform (nengo.transforms.NoTransform): the identity
    weights = np.asarray(1.0 if weights is None else weights, dtype=np.float64)
    if weights.ndim < 2:  # elementwise transform
        weights = np.diag(np.broadcast_to(weights, (n_pre,)))
    if isinstance(conn.post_obj, nengo.Ensemble):  # decoded: through encoders
        weights = model.params[conn.post_obj].scaled_encoders @ weights
    elif isinstance(conn.post_obj, nengo.ensemble.Neurons):  # Nengo applies the gain
        weights = model.params[conn.post_obj.ensemble].gain[:, None] * weights
    return weights


def layers(network, dt=0.001):
    """The network as netx layers with float weights (checked, not quantized).

    Raises `NetxExportError` naming the object when the network does not
    export (see the module docstring).
    """
    node, order, output = _chain(network)
    model = nengo.builder.Model(dt=dt)
    model.build(network)
    result = [Layer(label=str(node.label or "input"), kind="input", size=node.size_out)]
    pre_size = node.size_out
    pre = node
    for ens in order:
        into = [c for c in network.all_connections if _target(c.post_obj) is ens]
        forward = next(c for c in into if _target(c.pre_obj) is pre)
        recurrent = [c for c in into if _target(c.pre_obj) is ens]
        neuron_type = ens.neuron_type
        layer = Layer(
            label=str(ens.label or f"layer{len(result)}"),
            kind="dense_rec" if recurrent else "dense",
            size=ens.n_neurons,
            weight=_neuron_weights(model, forward, pre_size),
            bias=np.asarray(model.params[ens].bias, dtype=np.float64),
            threshold=float(neuron_type.threshold),
            gain=float(neuron_type.base_type.amplitude),
            amplitude=float(neuron_type.amplitude),
        )
        if recurrent:
            layer.weight_rec = sum(
                _neuron_weights(model, c, ens.n_neurons) for c in recurrent
            )
        result.append(layer)
        pre, pre_size = ens, ens.n_neurons
    if output is not None:
        conn = next(c for c in network.all_connections if c.post_obj is output)
        result.append(
            Layer(
                label=str(output.label or "output"),
                kind="output",
                size=output.size_in,
                weight=_neuron_weights(model, conn, pre_size),
            )
        )
    return result


def _quantize(weight, scale):
    """``weight * 64 * scale`` as even integers in [-256, 254]."""
    scaled = weight * (FIXED_POINT_SCALE * scale)
    return np.clip(
        WEIGHT_STEP * np.round(scaled / WEIGHT_STEP), WEIGHT_MIN, WEIGHT_MAX
    ).astype(np.float32)


def _fill_scale(real):
    """The factor that makes the largest ``64 * |real|`` hit the weight range."""
    peak = np.max(np.abs(real)) if real.size else 0.0
    return 1.0 if peak == 0 else WEIGHT_MAX / (FIXED_POINT_SCALE * peak)


def quantized(layer_list):
    """``[(layer, datasets, scale)]``: the netx datasets of every layer."""
    out, pre_scale, pre_amplitude = [], 1.0, 1.0
    for layer in layer_list:
        if layer.kind == "input":
            out.append((layer, {"neuron": _sdnn(0)}, 1.0))
            continue
        # the real weight acting on the previous layer's file activations
        real = layer.weight * (layer.gain * pre_amplitude / pre_scale)
        scale = _fill_scale(real)
        if layer.bias is not None and np.any(layer.bias):
            # lower the scale (coarser weights) if the bias would not fit
            peak = np.max(np.abs(layer.bias)) * layer.gain * FIXED_POINT_SCALE
            scale = min(scale, BIAS_MAX / peak)
        data = {
            "weight": _quantize(real, scale),
            "inFeatures": np.int64(real.shape[1]),
            "outFeatures": np.int64(layer.size),
        }
        if layer.kind == "output":
            data["neuron"] = {**_sdnn(0), "sigma_output": np.bool_(True)}
        else:
            data["bias"] = np.round(
                layer.bias * (layer.gain * FIXED_POINT_SCALE * scale)
            ).astype(np.float32)
            vth = int(round(layer.threshold * FIXED_POINT_SCALE * scale))
            data["neuron"] = _sdnn(vth)
            if layer.weight_rec is not None:
                rec = layer.weight_rec * (layer.gain * layer.amplitude)
                if np.max(np.abs(rec)) * FIXED_POINT_SCALE > WEIGHT_MAX:
                    _fail(
                        f"the recurrent weights of {layer.label} reach "
                        f"{np.max(np.abs(rec)):.3g}; netx's 8-bit weights hold at "
                        f"most {WEIGHT_MAX / FIXED_POINT_SCALE:.3g} for a "
                        "recurrent layer (its scale cannot change across steps)",
                        hint="constrain the recurrent weights in training",
                    )
                data["weight_rec"] = _quantize(rec, 1.0)
        out.append((layer, data, scale))
        pre_scale, pre_amplitude = scale, layer.amplitude
    return out


def _sdnn(vth):
    return {"type": "SDNN", "activation": "relu", "vThMant": np.int64(vth)}


def _write_group(group, data):
    for name, value in data.items():
        if isinstance(value, dict):
            _write_group(group.require_group(name), value)
        else:
            group.create_dataset(name, data=value)


def to_bytes(quantized_layers):
    """The netx HDF5 file of `quantized` layers, as bytes (datasets only)."""
    import h5py  # only the export needs it

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for i, (layer, data, _) in enumerate(quantized_layers):
            group = f.create_group(f"layer/{i}")
            kind = "dense" if layer.kind == "output" else layer.kind
            group.create_dataset("type", (1,), "S10", [kind.encode("ascii")])
            group.create_dataset("shape", data=np.array([layer.size], dtype=np.int64))
            _write_group(group, data)
    return buffer.getvalue()


def export(network, path, dt=0.001):
    """Write ``network`` as a lava-dl netx HDF5 file, atomically.

    Everything is checked and computed before the file is written; a network
    that does not export raises `NetxExportError` naming the object and what
    to do (see the module docstring for what exports and how weights are
    quantized).

    Parameters
    ----------
    network : nengo.Network
        A chain of `.SigmaDelta` ensembles (see the module docstring).
    path : str or pathlib.Path
        The file to write (lava-dl uses the suffix ``.net``).
    dt : float
        Step of the Nengo model built to read the weights.

    Returns
    -------
    Export
    """
    layer_list = quantized(layers(network, dt=dt))
    atomic_write_bytes(path, to_bytes(layer_list))
    return Export(
        path=str(path),
        labels=[layer.label for layer, _, _ in layer_list],
        kinds=[layer.kind for layer, _, _ in layer_list],
        scales=[scale for _, _, scale in layer_list],
    )


def read(path):
    """The layers of a netx file as a list of dicts of arrays (h5py only).

    Strings are decoded; ``type`` is the layer type (``"input"``, ``"dense"``,
    ...), and the ``neuron`` entry is a dict. Reads lava-dl's files too.
    """
    import h5py

    def load(group):
        out = {}
        for name, item in group.items():
            if isinstance(item, h5py.Group):
                out[name] = load(item)
                continue
            value = item[()]
            if isinstance(value, bytes):
                value = value.decode("ascii")
            elif name == "type":
                value = value[0].decode("ascii")
            out[name] = value
        return out

    with h5py.File(path, "r") as f:
        layer_group = f["layer"]
        return [load(layer_group[str(i)]) for i in range(len(layer_group))]
