"""Independent samples on the batched emulator, host side included.

`nengo_hybrid.hardware.emulator.BatchedEmulator` runs the chip part of a built
nengo-loihi model for many samples at once. A deployed network also has a host
part: nengo-loihi splits it into ``host_pre`` (what feeds the chip, e.g. the
`.encode_node_inputs` encoder neurons) and ``host`` (what reads the chip, e.g.
a readout node), and runs them in Nengo's reference simulator. `SampleRunner`
does both in NumPy, batched over samples, as nengo-loihi's precomputed run
(``precompute=True``) does for one sample:

1. ``host_pre``: every host object that feeds a ``HostSendNode`` is evaluated
   for all steps (input nodes from the given values, constant and passthrough
   nodes, host neurons with their own ``step`` functions); nengo-loihi sends
   one spike per nonzero neuron output and step, which become the chip's
   ``SpikeInput`` counts.
2. the chip: `.BatchedEmulator` (bit-exact with nengo-loihi's emulator).
3. ``host``: each ``HostReceiveNode`` returns on host step ``t`` what the chip
   probed on step ``max(t - 1, 1)`` (nengo-loihi's chip-to-host latency), and
   the probed host nodes sum their inputs.

Exactness. The chip part is bit-exact (see `.emulator`). The host spikes are
too: the host neurons it accepts have one input connection whose weight rows
have one nonzero each (the encoder neurons), so ``J = bias + gain * (W x)``
adds exact zeros to one rounded product, as Nengo's reference simulator does;
the neuron update is the neuron type's own ``step`` on ``(B, n)`` arrays.
Host nodes summing several dense inputs (the readout ``W h + b``) use NumPy's
matrix products, whose rounding can differ from Nengo's ``np.dot`` in the last
bit: host probe outputs agree to about ``1e-15`` relative, not byte for byte
(``tests/test_samples.py`` measures both).

What is not covered raises `.UnsupportedModel` naming it, and
`nengo_hybrid.hardware.Simulator` then runs nengo-loihi's emulator instead: a
host that reads the chip and feeds it back within a sample (not
precomputable), filtered host connections or probes, host neurons with
recurrent or several inputs, decoded (Ensemble) host connections, nodes with
functions or processes other than the sample inputs.
"""

import nengo
import numpy as np
from nengo.builder.signal import Signal
from nengo.transforms import Dense, NoTransform

from nengo_hybrid.hardware.emulator import BatchedEmulator, UnsupportedModel


def _unsupported(what):
    return UnsupportedModel(f"batched host: {what}")


def _weights(params, conn):
    """The built weights of ``conn`` as a ``(post, pre)`` matrix, scalar or diagonal."""
    if not isinstance(conn.transform, (Dense, NoTransform)):
        raise _unsupported(f"{conn}: {type(conn.transform).__name__} transform")
    if isinstance(conn.transform, NoTransform):
        return np.asarray(1.0)
    return np.asarray(params[conn].weights, dtype=np.float64)


def _apply(weights, x):
    """``weights @ x`` for ``x`` ``(B, T, d)``, with Nengo's scalar/diagonal cases."""
    if weights.ndim < 2:
        return x * weights
    return x @ weights.T


class HostGraph:
    """Batched NumPy values of the objects in one nengo-loihi host model.

    Parameters
    ----------
    builder_model : nengo.builder.Model
        ``model.host_pre`` or ``model.host`` of a nengo-loihi model.
    dt : float
    sources : dict of {nengo.Node: callable}
        Nodes whose values are given: ``sources[node](n_samples, n_steps)``
        returns ``(B, T, size_out)``.
    """

    def __init__(self, builder_model, dt, sources):
        self.params = builder_model.params
        self.sig = builder_model.sig
        self.dt = dt
        self.sources = sources
        self.incoming = {}
        for obj in self.params:
            if isinstance(obj, nengo.Connection):
                self.incoming.setdefault(obj.post_obj, []).append(obj)
        self.values = {}

    def value(self, obj, n_samples, n_steps):
        """``(B, T, size_out)`` output of ``obj`` on every host step (memoised)."""
        key = id(obj)
        if key not in self.values:
            self.values[key] = self._evaluate(obj, n_samples, n_steps)
        return self.values[key]

    def _evaluate(self, obj, n_samples, n_steps):
        if obj in self.sources:
            return self.sources[obj](n_samples, n_steps)
        if isinstance(obj, nengo.ensemble.Neurons):
            return self._neurons(obj, n_samples, n_steps)
        if isinstance(obj, nengo.Node):
            if obj.output is None:  # passthrough: the sum of its inputs
                return self._inputs(obj, obj.size_in, n_samples, n_steps)
            if isinstance(obj.output, np.ndarray) or np.isscalar(obj.output):
                const = np.asarray(obj.output, dtype=np.float64).reshape(-1)
                return np.broadcast_to(const, (n_samples, n_steps, const.size))
            raise _unsupported(f"{obj}: a node with a function or process output")
        raise _unsupported(f"{obj} on the host")

    def _inputs(self, post, size, n_samples, n_steps):
        total = np.zeros((n_samples, n_steps, size))
        for conn in self.incoming.get(post, []):
            total[..., conn.post_slice] += self._contribution(conn, n_samples, n_steps)
        return total

    def _contribution(self, conn, n_samples, n_steps):
        if conn.synapse is not None:
            raise _unsupported(f"{conn}: a filtered host connection ({conn.synapse})")
        if isinstance(conn.pre_obj, nengo.Ensemble) or conn.function is not None:
            raise _unsupported(f"{conn}: a decoded host connection")
        x = self.value(conn.pre_obj, n_samples, n_steps)[..., conn.pre_slice]
        return _apply(_weights(self.params, conn), x)

    def _neurons(self, neurons, n_samples, n_steps):
        ens = neurons.ensemble
        conns = self.incoming.get(neurons, [])
        if self.incoming.get(ens):
            raise _unsupported(f"{ens}: decoded input to host neurons")
        if len(conns) > 1:
            raise _unsupported(f"{ens}: host neurons with {len(conns)} inputs")
        built = self.params[ens]
        J = np.broadcast_to(built.bias, (n_samples, n_steps, ens.n_neurons))
        if conns:
            (conn,) = conns
            w = _weights(self.params, conn)
            if w.ndim == 2 and np.any((w != 0).sum(axis=1) > 1):
                raise _unsupported(
                    f"{conn}: host neurons with dense input weights (Nengo's "
                    "summation order is not reproduced)"
                )
            drive = np.zeros((n_samples, n_steps, ens.n_neurons))
            drive[..., conn.post_slice] = self._contribution(conn, n_samples, n_steps)
            J = J + built.gain * drive
        return self._step_neurons(neurons, np.ascontiguousarray(J))

    def _step_neurons(self, neurons, J):
        nt = neurons.ensemble.neuron_type
        n_samples, n_steps, n = J.shape
        state = {}
        for key, sig in self.sig[neurons].items():
            if key in ("in", "out", "bias", "rate_out") or not isinstance(sig, Signal):
                continue
            init = sig.initial_value
            if not isinstance(init, np.ndarray):
                raise _unsupported(f"{neurons}: random neuron state {key!r}")
            state[key] = np.repeat(np.asarray(init)[None], n_samples, axis=0)
        base = getattr(nt, "base_type", None)
        rate = np.empty((n_samples, n))
        out = np.empty((n_samples, n_steps, n))
        for t in range(n_steps):
            if base is not None:  # RatesToSpikesNeuronType: rates first, as Nengo
                base.step(self.dt, J[:, t], rate)
                nt.step(self.dt, rate, out[:, t], **state)
            else:
                nt.step(self.dt, J[:, t], out[:, t], **state)
        return out


class SampleRunner:
    """Run independent samples of a nengo-loihi simulator's model, batched.

    Parameters
    ----------
    sim : nengo_hybrid.hardware.Simulator
        Built with ``target="sim"``, not yet run: its emulator's state is the
        initial state of every sample.
    network : nengo.Network, optional
        The network ``sim`` was built from: values for its nodes that the
        split left unused (e.g. an input only the removed objects read) are
        then accepted and ignored.

    Raises
    ------
    UnsupportedModel
        Naming what neither `.BatchedEmulator` nor the batched host covers.
    """

    def __init__(self, sim, network=None):
        model = sim.model
        if not sim.precompute:
            raise _unsupported(
                "the host feeds the chip from chip output within a sample "
                "(a chip -> host -> chip loop; nengo-loihi cannot precompute it)"
            )
        self.model = model
        self.dt = model.dt
        self.emulator = BatchedEmulator(sim)
        self.input_nodes = self._input_nodes()
        self.unused_nodes = set(network.all_nodes) - self.input_nodes if network else ()
        self.senders = self._senders()
        self.host_probes = [p for p in model.host.probes] if model.host else []
        for probe in self.host_probes:
            if probe.synapse is not None or probe.sample_every is not None:
                raise _unsupported(f"{probe}: a filtered or subsampled host probe")
            if probe.attr not in ("output", "decoded_output"):
                raise _unsupported(f"{probe}: probe attribute {probe.attr!r}")
        self.chip_probes = [p for p in model.nengo_probes]
        self.receivers = {
            receiver: probe for probe, receiver in model.chip2host_receivers.items()
        }

    def _input_nodes(self):
        nodes = set()
        for host in (self.model.host_pre, self.model.host):
            if host is not None:
                nodes.update(o for o in host.params if isinstance(o, nengo.Node))
        return nodes

    def _senders(self):
        """``[(SpikeInput, connection into the HostSendNode)]``."""
        host_pre = self.model.host_pre
        into = {
            obj.post_obj: obj
            for obj in (host_pre.params if host_pre is not None else {})
            if isinstance(obj, nengo.Connection)
        }
        senders = []
        for send, receive in self.model.host2chip_senders.items():
            if send not in into:
                raise _unsupported(f"{send}: a host-to-chip sender outside host_pre")
            senders.append((self.model.spike_targets[receive], into[send]))
        return senders

    def _sources(self, inputs):
        def given(values):
            return lambda n_samples, n_steps: fit_steps(values, n_steps)

        return {node: given(values) for node, values in inputs.items()}

    def validate(self, inputs):
        """``{node: (B, T, d) float64}`` from ``inputs``, with clear errors."""
        if not isinstance(inputs, dict) or not inputs:
            raise ValueError("inputs must be a non-empty dict {nengo.Node: values}")
        arrays, n_samples = {}, None
        for node, values in inputs.items():
            if node in self.unused_nodes:
                continue
            if node not in self.input_nodes:
                raise KeyError(f"{node}: not a host node of this model")
            values = np.asarray(values, dtype=np.float64)
            if values.ndim != 3 or values.shape[2] != node.size_out:
                raise ValueError(
                    f"values for {node} must be (n_samples, n_steps, "
                    f"{node.size_out}), got {values.shape}"
                )
            if not np.all(np.isfinite(values)):
                raise ValueError(f"values for {node} contain NaN or infinity")
            if n_samples not in (None, values.shape[0]):
                raise ValueError("all inputs must have the same number of samples")
            n_samples = values.shape[0]
            arrays[node] = values
        return arrays, n_samples

    def chip_inputs(self, inputs, n_samples, n_steps):
        """``{SpikeInput: (B, T, n) int32}``: the spikes ``host_pre`` sends."""
        graph = HostGraph(self.model.host_pre, self.dt, self._sources(inputs))
        counts = {}
        for spike_input, conn in self.senders:
            x = graph.value(conn.pre_obj, n_samples, n_steps)[..., conn.pre_slice]
            spikes = (x != 0).astype(np.int32)
            counts[spike_input] = spikes + counts.get(spike_input, 0)
        return counts

    def run(self, inputs, n_steps, probes=None, batch_size=256):
        """Every sample from the initial state for ``n_steps`` host steps.

        Parameters
        ----------
        inputs : dict of {nengo.Node: array_like}
            ``(B, T, size_out)`` values of host nodes, as a
            ``PresentInput(values[i], dt)`` output would give them on steps
            ``1 .. T`` of sample ``i`` (zeros after ``T``).
        n_steps : int
        probes : list of nengo.Probe, optional
            Default: every probe of the network.
        batch_size : int
            Samples the chip emulator simulates together.

        Returns
        -------
        dict of {nengo.Probe: ndarray}
            ``(B, n_steps, size)``: what ``sim.data[probe]`` would hold after
            ``sim.run_steps(n_steps)`` on a fresh simulator fed sample ``i``.
        """
        inputs, n_samples = self.validate(inputs)
        counts = self.chip_inputs(inputs, n_samples, n_steps)
        wanted = list(probes) if probes is not None else None
        chip = [p for p in self.chip_probes if wanted is None or p in wanted]
        host = [p for p in self.host_probes if wanted is None or p in wanted]
        chip_needed = chip + [
            p for p in self.chip_probes if p in self.model.chip2host_params and host
        ]
        out = self.emulator.run(
            counts or None,
            n_steps=n_steps,
            n_samples=n_samples,
            batch_size=batch_size,
            probes=list(dict.fromkeys(chip_needed)),
        )
        results = {p: out[p] for p in chip if p not in self.model.chip2host_params}
        if host:
            graph = HostGraph(self.model.host, self.dt, self._sources(inputs))
            for receiver, probe in self.receivers.items():
                graph.values[id(receiver)] = _received(out[probe])
            for probe in host:
                results[probe] = graph.value(probe.target, n_samples, n_steps)
        return results


def fit_steps(values, n_steps):
    """``(B, T, d)`` values cut or zero-padded to ``(B, n_steps, d)``: a sample
    gives nothing after its last step."""
    values = np.asarray(values)
    out = np.zeros(values.shape[:1] + (n_steps,) + values.shape[2:])
    m = min(n_steps, values.shape[1])
    out[:, :m] = values[:, :m]
    return out


def _received(chip_data):
    """What a ``HostReceiveNode`` returns per host step: chip step ``max(t - 1, 1)``."""
    received = np.empty_like(chip_data)
    received[:, :1] = chip_data[:, :1]
    received[:, 1:] = chip_data[:, :-1]
    return received
