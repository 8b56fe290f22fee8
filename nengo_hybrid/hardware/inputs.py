"""Bring host signals onto the chip as exact spike counts.

nengo-loihi sends a Node's value to on-chip neurons through its own encoder:
one on/off pair of spiking neurons per dimension (at most one spike per step,
values in ``[-1, 1]``), decoded on the chip through a 5 ms lowpass
(``Model.decode_tau``). For a signal that changes every step -- the LMU's
memory, fed to the hidden neurons with ``synapse=None`` -- that encoder keeps
only a blurred, delayed trace; on the quick LMU accuracy fell to chance even
with an otherwise faithful hidden layer
(``benchmarks/results/deploy_fidelity_lmu.md``).

`encode_node_inputs` replaces each ``Node -> on-chip Neurons`` connection by a
host ensemble of 1-bit `.HybridSpiking` encoder neurons whose spikes nengo-loihi
sends to the chip one event each (no filter): per dimension ``i``, ``levels``
"on" and ``levels`` "off" neurons receive ``+-x_i / scale_i``, start staggered at
``(k + 0.5) / levels`` and each emit at most one spike per step. By Hermite's
identity their summed count is the count of one ``levels``-bit sigma-delta
neuron: ``x_i`` is sent in steps of ``scale_i / levels`` per step, the rounding
error carried to the next step (the host runs the exact `.HybridSpiking` math,
subtractive reset included). Values beyond ``scale_i`` are not cut silently:
``max_spikes=1`` keeps the excess in the voltage and sends it on later steps;
`input_clip_fraction` measures how often that happens.

The reference simulator runs the same encoder, so its accuracy includes the
input quantization; the chip receives the spikes one step later than the
reference's neurons do (nengo-loihi's host-to-chip latency).
"""

import nengo
import numpy as np
from nengo.exceptions import ValidationError

from nengo_hybrid.neurons import HybridSpiking


def _on_chip(network, ens):
    try:
        return network.config[ens].on_chip is not False
    except Exception:  # noqa: BLE001 (nengo-loihi config not added)
        return True


def encoder_neuron_type(levels, dt=0.001):
    """The 1-bit encoder neuron: ``max(x, 0)`` sent as one spike per unit and step.

    Initial voltages staggered ``(k + 0.5) / levels`` over each group of
    ``levels`` neurons are set per ensemble by `encode_node_inputs`.
    """
    return HybridSpiking(
        nengo.RectifiedLinear(amplitude=1.0 / dt),
        precision=1.0,
        max_spikes=1,
        amplitude=dt,
    )


def encode_node_inputs(network, scales, levels=8, dt=0.001):
    """Send ``Node -> on-chip Neurons`` connections as host encoder spikes.

    Parameters
    ----------
    network : nengo.Network
        Modified in place (nengo-loihi config params are added).
    scales : dict of {nengo.Node: float or (d,) array_like}
        Full scale per dimension of each node to encode (e.g. 1.25 times the
        largest magnitude seen on training data). Nodes not in the dict are
        left to nengo-loihi's own encoder.
    levels : int
        Encoder neurons per sign and dimension: the largest count per step,
        and the resolution (``scale / levels``) of one spike.
    dt : float

    Returns
    -------
    list of dict
        One entry per replaced connection: ``node``, ``post``, ``ensemble``
        (the host encoder), ``scale``, ``levels``, ``input_axons``.
    """
    from nengo_hybrid.hardware.loihi import nengo_loihi  # TensorFlow-free import

    if int(levels) != levels or levels < 1:
        raise ValidationError(
            f"levels must be an integer >= 1, got {levels}", attr="levels"
        )
    levels = int(levels)
    nengo_loihi.add_params(network)
    replaced = []
    for conn in list(network.all_connections):
        pre, post = conn.pre_obj, conn.post_obj
        if not isinstance(pre, nengo.Node) or pre not in scales:
            continue
        if not isinstance(post, nengo.ensemble.Neurons) or not _on_chip(
            network, post.ensemble
        ):
            continue
        if conn.synapse is not None or conn.function is not None:
            raise ValidationError(
                f"{conn}: only synapse=None, function-free connections can be "
                "spike-encoded",
                attr="conn",
            )
        d = conn.size_mid
        scale = np.broadcast_to(np.asarray(scales[pre], dtype=np.float64), (d,))
        if np.any(scale <= 0):
            raise ValidationError("scales must be positive", attr="scales")
        # rows: dimension-major groups of `levels` identical neurons, on then off
        one = np.kron(np.diag(1.0 / scale), np.ones((levels, 1)))  # (d*levels, d)
        enc = np.vstack([one, -one])
        n = enc.shape[0]
        dec = np.vstack([one, -one]).T * (scale**2)[:, None] / levels  # (d, n)
        transform = conn.transform.init if hasattr(conn.transform, "init") else 1.0
        weights = np.asarray(transform, dtype=np.float64)
        weights = weights * np.eye(d) if weights.ndim < 2 else weights
        v0 = np.tile((np.arange(levels) + 0.5) / levels, 2 * d)
        owner = _owner(network, conn)
        with owner:
            nt = HybridSpiking(
                nengo.RectifiedLinear(amplitude=1.0 / dt),
                precision=1.0,
                max_spikes=1,
                amplitude=dt,
                initial_state={"voltage": v0},
            )
            ens = nengo.Ensemble(
                n,
                1,
                neuron_type=nt,
                gain=np.ones(n),
                bias=np.zeros(n),
                label=f"{pre.label or 'node'}_spikes",
            )
            nengo.Connection(
                pre[conn.pre_slice] if conn.pre_slice != slice(None) else pre,
                ens.neurons,
                transform=enc,
                synapse=None,
            )
            nengo.Connection(
                ens.neurons,
                post[conn.post_slice] if conn.post_slice != slice(None) else post,
                transform=weights @ dec,
                synapse=None,
            )
        network.config[ens].on_chip = False
        owner.connections.remove(conn)
        replaced.append(
            {
                "node": pre,
                "post": post,
                "ensemble": ens,
                "scale": scale,
                "levels": levels,
                "input_axons": n,
            }
        )
    return replaced


def _owner(network, obj):
    """The (sub)network that holds ``obj`` directly."""
    for net in [network] + network.all_networks:
        if obj in net.connections or obj in net.ensembles or obj in net.nodes:
            return net
    raise ValueError(f"{obj} is not in {network}")


def input_clip_fraction(values, scale):
    """Fraction of input values beyond the encoder's full scale (sent late, not lost)."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.mean(np.abs(values) > np.asarray(scale)))


def encoded_values(values, scale, levels):
    """NumPy reference of the encoder: the values the chip receives, per step.

    ``values`` ``(n_steps, d)``; returns the decoded spike counts
    ``(count_on - count_off) * scale / levels`` per step (before the chip's
    one-step latency).
    """
    values = np.asarray(values, dtype=np.float64) / np.asarray(scale)
    d = values.shape[1]
    v = np.tile((np.arange(levels)[:, None] + 0.5) / levels, (1, 2 * d))
    out = np.zeros_like(values)
    for t, x in enumerate(values):
        v += np.maximum(np.concatenate([x, -x]), 0)[None, :]
        c = np.minimum(np.floor(v), 1)
        v -= c
        counts = c.sum(axis=0)
        out[t] = counts[:d] - counts[d:]
    return out * np.asarray(scale) / levels
