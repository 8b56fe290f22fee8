"""The batched emulator against nengo-loihi's emulator, bit for bit.

Every comparison runs the network on nengo-loihi's emulator (the referee),
records the host spikes it delivers to the chip inputs, runs the batched
emulator on the same built model with those spikes, and requires every probe
output and the chip-to-host probe data (dtype, shape and bytes, every step),
the per-compartment spike counts, and the voltage, current and spike of every
compartment after every step to be identical. Each comparison has a control:
the same check on a copy of the batched emulator with one bit of one
discretised weight flipped must fail.
"""

import warnings

import nengo
import nengo_loihi
import numpy as np
import pytest
import scipy.sparse

from nengo_hybrid import HybridSpiking
from nengo_hybrid.hardware import Simulator
from nengo_hybrid.hardware.emulator import (
    BatchedEmulator,
    NengoLoihiRecorder,
    UnsupportedModel,
)
from nengo_hybrid.hardware.inputs import encode_node_inputs
from nengo_hybrid.hardware.strategies import Expand, OneBit, Substeps, Thermometer

DT = 0.001

pytestmark = [
    # nengo-loihi's emulator fills int arrays with NaN when it starts (upstream)
    pytest.mark.filterwarnings("ignore:invalid value encountered in cast"),
    pytest.mark.filterwarnings("ignore:Lost .* extra bits in weight rounding"),
    pytest.mark.filterwarnings("ignore:.*initial voltages are set to zero"),
    pytest.mark.filterwarnings("ignore:Model is precomputable"),
    pytest.mark.filterwarnings("ignore:Overflow in"),
]


# --- the referee ----------------------------------------------------------------


class Referee:
    """A run of nengo-loihi's emulator with everything needed to check the batched one.

    ``batched``: a `BatchedEmulator` made from the simulator before it ran;
    ``inputs``: the host spikes nengo-loihi delivered; ``outputs``: per
    ``LoihiProbe`` the data nengo-loihi produced (its ``sim.data`` for chip
    probes, what it sent to the host for chip-to-host probes);
    ``spike_count``: its compartments' spike counts; ``states``: the voltage,
    current and spikes of every compartment after every step.
    """

    def __init__(self, sim, n_steps):
        self.batched = BatchedEmulator(sim)
        recorder = NengoLoihiRecorder(sim)
        self.states = record_states(sim.sims["emulator"].probes, sample=None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sim.run_steps(n_steps)
        self.warnings = {str(w.message) for w in caught}
        self.n_steps = n_steps
        self.inputs = recorder.inputs(n_steps)
        self.outputs = recorder.outputs()
        self.spike_count = sim.sims["emulator"].compartment.spike_count.copy()
        self.states = {key: np.array(values) for key, values in self.states.items()}
        sim.close()

    def mismatches(self, out, sample=0, states=None):
        """What differs between this run and sample ``sample`` of batched ``out``."""
        bad = []
        for key, ref in self.states.items():
            if states is not None and not np.array_equal(states[key], ref):
                bad.append(f"compartment {key}")
        for probe, ref in self.outputs.items():
            got = out[probe][sample]
            if not bit_identical(got, ref):
                bad.append(f"{probe.key} probe of {probe.target[0]}")
        if not np.array_equal(out.spike_count[sample], self.spike_count):
            bad.append("spike counts")
        return bad

    def check(self, batched=None):
        """Run the batched emulator on the recorded inputs; return the mismatches."""
        batched = self.batched if batched is None else batched
        update = batched.probes.update
        states = record_states(batched.probes, sample=0)
        try:
            out = batched.run(self.inputs, n_steps=self.n_steps)
        finally:
            batched.probes.update = update
        states = {key: np.array(values) for key, values in states.items()}
        return self.mismatches(out, states=states)


def bit_identical(a, b):
    """Same dtype, shape and bytes (so also the sign of zeros)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def record_states(probe_state, sample):
    """Wrap ``probe_state.update`` (called after every compartment update) to
    record the voltage, current and spikes of every compartment (of ``sample``)."""
    update, states = probe_state.update, {"voltage": [], "current": [], "spiked": []}

    def recording_update(t, compartment):
        for key, values in states.items():
            x = getattr(compartment, key)
            values.append(np.array(x if sample is None else x[sample]))
        return update(t, compartment)

    probe_state.update = recording_update
    return states


def referee(net, n_steps, strategy=None, dt=DT, validate=True):
    """`Referee` of ``net`` on `nengo_hybrid.hardware.Simulator`.

    ``validate=False`` skips nengo-loihi's hardware-limit validation (the
    emulators do not need the model to fit a chip).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if validate:
            sim = Simulator(
                net,
                dt=dt,
                strategy=strategy,
                target="sim",
                allow_violations=True,  # emulators must agree even when saturating
            )
        else:
            from nengo_loihi.builder.builder import ValidationLevel

            from nengo_hybrid.hardware import loihi as hw_loihi

            dt_chip = dt / hw_loihi.substeps(strategy)
            model = hw_loihi.Model(dt=dt_chip, strategy=strategy)
            model.validation_level = ValidationLevel.NONE
            sim = nengo_loihi.Simulator(net, dt=dt_chip, model=model, target="sim")
            if model.hybrid_blocks:
                hw_loihi.set_emulator_voltages(sim)
    return Referee(sim, n_steps)


def flip_one_weight_bit(batched, ref):
    """A copy of ``batched`` with the top bit of one discretised weight flipped:
    the largest weight of the spike source that spiked most."""
    routing = batched.routing
    n = batched.layout.n_compartments
    activity = ref.spike_count[routing.active_compartments]
    if len(routing.active_inputs):
        sent = np.concatenate([c.sum(axis=0) for c in ref.inputs.values()])
        activity = np.concatenate([activity, sent[routing.active_inputs - n]])
    matrix = routing.matrix.copy()
    row = int(np.argmax(activity))
    lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
    k = lo + int(np.argmax(np.abs(matrix.data[lo:hi])))
    w = int(matrix.data[k])
    msb = 1 << (abs(w).bit_length() - 1)
    matrix.data[k] = np.sign(w) * (abs(w) ^ msb)
    perturbed = BatchedEmulator.__new__(BatchedEmulator)
    perturbed.__dict__.update(batched.__dict__)
    perturbed.routing = type(routing).__new__(type(routing))
    perturbed.routing.__dict__.update(routing.__dict__)
    perturbed.routing.set_matrix(matrix)
    return perturbed


def assert_bit_exact(ref):
    """The batched run equals the referee; the one-bit-perturbed run does not."""
    assert ref.spike_count.sum() > 0, "nothing spiked: the comparison would be weak"
    assert ref.check() == []
    assert ref.check(flip_one_weight_bit(ref.batched, ref)) != [], "control passed"


# --- hand networks ----------------------------------------------------------------


def signal(n_steps, d=1, seed=0, amplitude=1.0):
    """A smooth random signal ``(n_steps, d)``."""
    rng = np.random.RandomState(seed)
    t = np.arange(n_steps)[:, None] * DT
    freqs = rng.uniform(1, 8, size=(3, d))
    phases = rng.uniform(0, 2 * np.pi, size=(3, d))
    return amplitude * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None]).mean(0)


def one_ensemble(base, precision, n=40, n_steps=200, seed=0, x=None):
    x = signal(n_steps, seed=seed) if x is None else x
    with nengo.Network(seed=seed) as net:
        u = nengo.Node(nengo.processes.PresentInput(x, DT), label="u")
        ens = nengo.Ensemble(
            n, 1, neuron_type=HybridSpiking(base, precision=precision), label="ens"
        )
        nengo.Connection(u, ens, synapse=0.005)
        nengo.Probe(ens.neurons)
        nengo.Probe(ens, synapse=0.01)
        nengo.Probe(ens.neurons, "voltage")
        nengo.Probe(ens.neurons[::3], "input")
    return net, ens


@pytest.mark.parametrize("base", [nengo.RectifiedLinear(), nengo.LIFRate()])
@pytest.mark.parametrize("precision", [0.5, 1.0, 2.5, 4.0])
def test_one_ensemble_fed_by_a_node(base, precision):
    net, _ = one_ensemble(base, precision)
    assert_bit_exact(referee(net, 200))


def test_hybrid_ensemble_with_recurrence_and_readout():
    """Neuron-to-neuron recurrence, decoded output to a host node (chip-to-host)."""
    rng = np.random.RandomState(3)
    with nengo.Network(seed=3) as net:
        u = nengo.Node(nengo.processes.PresentInput(signal(150, 2), DT))
        a = nengo.Ensemble(
            30, 2, neuron_type=HybridSpiking(nengo.RectifiedLinear(), precision=2)
        )
        b = nengo.Ensemble(20, 1, neuron_type=HybridSpiking(nengo.LIFRate(), 1.5))
        nengo.Connection(u, a)
        nengo.Connection(a.neurons, a.neurons, transform=0.05 * rng.randn(30, 30))
        nengo.Connection(a, b, function=lambda x: x[0] * x[1])
        out = nengo.Node(size_in=1)
        nengo.Connection(b, out, synapse=None)
        nengo.Probe(out)
        nengo.Probe(b.neurons, "input")
        nengo.Probe(a, synapse=nengo.Alpha(0.005))  # a filter with two states
    ref = referee(net, 150)
    assert any(
        p in ref.batched.model.chip2host_params for p in ref.batched.nengo_probes
    )
    assert_bit_exact(ref)


def encoded_input_network(precision=2.0, levels=4, n=6, n_steps=120, seed=0):
    """Hybrid neurons driven through `encode_node_inputs` (host encoder spikes)."""
    x = 0.9 * signal(n_steps, 2, seed=seed)
    w = np.zeros((n, 2))
    w[: n // 2, 0], w[n // 2 :, 1] = 3.0, 3.0
    with nengo.Network(seed=seed) as net:
        node = nengo.Node(nengo.processes.PresentInput(x, DT), label="signal")
        neuron_type = HybridSpiking(
            nengo.RectifiedLinear(amplitude=1 / DT), precision=precision, amplitude=DT
        )
        ens = nengo.Ensemble(
            n, 1, neuron_type=neuron_type, gain=np.ones(n), bias=np.full(n, 0.1)
        )
        nengo.Connection(node, ens.neurons, transform=w, synapse=None)
        nengo.Connection(ens.neurons, ens.neurons, transform=0.3 * np.eye(n), synapse=0)
        readout = nengo.Node(size_in=n)
        nengo.Connection(ens.neurons, readout, synapse=None)
        nengo.Probe(ens.neurons)
        nengo.Probe(readout)
    encode_node_inputs(net, {node: 1.0}, levels=levels)
    return net, ens


@pytest.mark.parametrize(
    "strategy", [OneBit(), Expand(2), Expand(3), Thermometer(3), Thermometer(8)]
)
def test_strategies_with_host_encoder_spikes(strategy):
    net, ens = encoded_input_network()
    ref = referee(net, 121, strategy={ens: strategy})
    assert_bit_exact(ref)


@pytest.mark.parametrize("K", [2, 3])
def test_substeps(K):
    net, _ = one_ensemble(nengo.RectifiedLinear(), 3.0, n=20, n_steps=100)
    ref = referee(net, 100 * K, strategy=Substeps(K))
    assert ref.batched.dt == pytest.approx(DT / K)
    assert_bit_exact(ref)


def test_split_blocks_and_expand():
    """1200 compartments (Expand(2) of 600 neurons) split over two cores."""
    net, ens = one_ensemble(nengo.RectifiedLinear(), 3.0, n=600, n_steps=60)
    for probe in list(net.probes):
        if probe.attr != "output" or probe.target is not ens.neurons:
            net.probes.remove(probe)
    ref = referee(net, 60, strategy={ens: Expand(2)})
    assert len(ref.batched.model.blocks) > 1
    assert_bit_exact(ref)


def test_population_axons_conv():
    """Convolutional connections: population (pop16/pop32) axons with bases and maps."""
    rng = np.random.RandomState(0)
    image = rng.uniform(0, 1, size=(6, 6, 1))
    neuron_type = nengo_loihi.neurons.LoihiSpikingRectifiedLinear(amplitude=0.01)
    with nengo.Network(seed=0) as net:
        nengo_loihi.add_params(net)
        net.config[nengo.Ensemble].neuron_type = neuron_type
        net.config[nengo.Ensemble].max_rates = nengo.dists.Choice([100])
        net.config[nengo.Ensemble].intercepts = nengo.dists.Choice([0])
        u = nengo.Node(image.ravel())
        layer0 = nengo.Ensemble(image.size, 1)
        nengo.Connection(u, layer0.neurons, synapse=None)
        net.config[layer0].on_chip = False
        shape = nengo.transforms.ChannelShape(image.shape)
        prev, probes = layer0.neurons, []
        for pop_type, n_filters in ((32, 4), (16, 4)):
            conv = nengo.Convolution(
                n_filters,
                shape,
                kernel_size=(3, 3),
                init=rng.uniform(-0.5, 1, (3, 3, shape.n_channels, n_filters)),
            )
            layer = nengo.Ensemble(conv.output_shape.size, 1)
            conn = nengo.Connection(prev, layer.neurons, transform=conv, synapse=0.002)
            net.config[conn].pop_type = pop_type
            probes.append(nengo.Probe(layer.neurons))
            prev, shape = layer.neurons, conv.output_shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = nengo_loihi.Simulator(net, target="sim")
    synapses = [s for b in sim.model.blocks for s in b.synapses]
    assert {s.pop_type for s in synapses} >= {16, 32}
    assert any(s.axon_compartment_bases is not None for s in synapses)
    assert_bit_exact(Referee(sim, 100))


def test_plain_nengo_loihi_neurons_with_negative_voltages():
    """nengo-loihi's own LIF (min_voltage < 0: signed voltages) and ReLU neurons."""
    with nengo.Network(seed=4) as net:
        u = nengo.Node(nengo.processes.PresentInput(signal(150, 1, seed=4), DT))
        a = nengo.Ensemble(30, 1, neuron_type=nengo.LIF(min_voltage=-1))
        b = nengo.Ensemble(20, 1, neuron_type=nengo.SpikingRectifiedLinear())
        nengo.Connection(u, a)
        nengo.Connection(a, b, function=lambda x: -x)
        nengo.Connection(b.neurons, a.neurons, transform=-0.02 * np.ones((30, 20)))
        nengo.Probe(a.neurons, "voltage")
        nengo.Probe(b.neurons)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = nengo_loihi.Simulator(net, target="sim")
    ref = Referee(sim, 150)
    assert ref.batched.compartment.vmin.min() < 0
    assert ref.states["voltage"].min() < 0
    assert_bit_exact(ref)


# --- batching ----------------------------------------------------------------------


def test_batch_equals_separate_runs():
    """B different samples in one batched call equal B separate nengo-loihi runs."""
    n_steps, B = 120, 5
    refs = []
    for i in range(B):
        net, ens = encoded_input_network(n_steps=n_steps, seed=i)
        refs.append(referee(net, n_steps + 1, strategy={ens: Thermometer(4)}))
    batched = refs[0].batched
    # same weights (same network seed), different input signals
    for ref in refs[1:]:
        assert (ref.batched.routing.matrix != batched.routing.matrix).nnz == 0
    inputs = {
        inp: np.stack([list(ref.inputs.values())[k] for ref in refs])
        for k, inp in enumerate(batched.inputs)
    }
    assert not np.array_equal(*list(inputs.values())[0][:2])
    out = batched.run(inputs, batch_size=2)  # three chunks: 2 + 2 + 1
    for i, ref in enumerate(refs):
        ref_outputs = dict(zip(batched.nengo_probes.values(), ref.outputs.values()))
        ref.outputs = ref_outputs  # keyed by this model's probes
        assert ref.mismatches(out, sample=i) == [], i
    assert refs[0].mismatches(out, sample=1) != []  # control: samples differ

    # only some probes: the same values
    (probe, loihi_probe), *_ = batched.nengo_probes.items()
    some = batched.run(inputs, batch_size=2, probes=[probe])
    assert list(some.probes) == [loihi_probe]
    assert np.array_equal(some[probe], out[probe])


# --- random networks -----------------------------------------------------------------


def random_network(seed, min_neurons=10, max_neurons=1500, n_steps=100):
    """A random network of 1-3 hybrid ensembles fed by a Node.

    Returns ``(net, strategy)``. Sizes are log-uniform in
    ``min_neurons..max_neurons``;
    bases RectifiedLinear or LIFRate; precisions in ``0.5..4``; decoded and
    neuron-to-neuron connections (recurrent ones too) with weight scales
    spanning ``1e-3..1`` (several weight exponents).
    """
    rng = np.random.RandomState(seed)
    n_ens = rng.randint(1, 4)
    strategy = {}
    with nengo.Network(seed=seed) as net:
        d = rng.randint(1, 3)
        u = nengo.Node(
            nengo.processes.PresentInput(signal(n_steps, d, seed=seed), DT), label="u"
        )
        ensembles = []
        for i in range(n_ens):
            n = int(np.exp(rng.uniform(np.log(min_neurons), np.log(max_neurons))))
            relu = rng.rand() < 0.6
            base = nengo.RectifiedLinear() if relu else nengo.LIFRate()
            precision = float(np.round(rng.uniform(0.5, 4), 2))
            ens = nengo.Ensemble(
                n,
                d,
                neuron_type=HybridSpiking(base, precision=precision),
                max_rates=nengo.dists.Uniform(50, 250),
                label=f"e{i}",
            )
            ensembles.append(ens)
            kind = rng.choice(["onebit", "expand", "thermometer"], p=[0.6, 0.2, 0.2])
            if kind == "expand" and n <= 400:
                strategy[ens] = Expand(int(rng.randint(2, 4)))
            elif kind == "thermometer" and relu and n <= 400:
                strategy[ens] = Thermometer(int(rng.randint(2, 6)))
        nengo.Connection(u, ensembles[0], synapse=float(rng.choice([0.002, 0.01])))
        for i, pre in enumerate(ensembles):
            for j, post in enumerate(ensembles):
                if i != j and rng.rand() < 0.5 or i == j and rng.rand() < 0.4:
                    if rng.rand() < 0.5:  # decoded
                        nengo.Connection(
                            pre,
                            post,
                            transform=rng.uniform(-1, 1, (d, d)),
                            synapse=float(rng.uniform(0.002, 0.05)),
                        )
                    else:  # neuron to neuron, sparse, weights spanning exponents
                        w = rng.randn(post.n_neurons, pre.n_neurons)
                        w *= rng.rand(*w.shape) < min(1.0, 20 / pre.n_neurons)
                        w *= 10 ** rng.uniform(-3, 0, size=w.shape)
                        w *= 0.1 * 10 ** rng.uniform(-2, 0)
                        nengo.Connection(
                            pre.neurons,
                            post.neurons,
                            transform=w,
                            synapse=float(rng.choice([0, 0.005, 0.02])),
                        )
        for ens in ensembles:
            sl = slice(None) if rng.rand() < 0.7 else slice(1, None, 2)
            nengo.Probe(ens.neurons[sl])
            if rng.rand() < 0.5:
                nengo.Probe(ens, synapse=float(rng.choice([0.005, 0.02])))
            if ens not in strategy and rng.rand() < 0.3:
                nengo.Probe(ens.neurons, rng.choice(["voltage", "input"]))
    return net, strategy


def check_random_network(seed, n_steps, min_neurons=10, max_neurons=1500):
    net, strategy = random_network(seed, min_neurons, max_neurons, n_steps=n_steps)
    try:
        ref = referee(net, n_steps, strategy=strategy)
    except nengo.exceptions.BuildError as err:
        if "appropriate weight exponent" in str(err):
            pytest.skip(f"nengo-loihi cannot discretise seed {seed}: {err}")
        if "exceeded max" not in str(err):
            raise
        # does not fit Loihi's limits (e.g. output axons): emulate it anyway
        net, strategy = random_network(seed, min_neurons, max_neurons, n_steps)
        ref = referee(net, n_steps, strategy=strategy, validate=False)
    assert ref.check() == [], f"seed {seed}"
    if ref.spike_count.sum() > 0:
        assert ref.check(flip_one_weight_bit(ref.batched, ref)) != [], "control passed"
    return ref


def test_random_networks():
    """20 fixed-seed random networks (18 of 10-150 neurons per ensemble, 2 of
    300-1500), bit-exact; every control fails."""
    n_large = 0
    for seed in range(20):
        large = seed % 10 == 9
        sizes = (300, 1500) if large else (10, 150)
        ref = check_random_network(seed, 100, *sizes)
        assert ref.spike_count.sum() > 0
        n_large += large and ref.batched.layout.n_compartments > 1000
    assert n_large >= 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 160))
def test_random_networks_large(seed):
    check_random_network(seed, n_steps=200)


# --- arithmetic edge cases -------------------------------------------------------------


def raw_emulator_run(model, inputs, n_steps, voltage):
    """nengo-loihi's EmulatorInterface on ``model``, spikes given per step directly."""
    from nengo_loihi.emulator import EmulatorInterface

    emu = EmulatorInterface(model, seed=0)
    emu.compartment.voltage[:] = voltage
    for inp, counts in inputs.items():
        for j, row in enumerate(counts):
            idxs = np.repeat(np.arange(len(row)), row)
            if len(idxs):
                inp.add_spikes(j + 1, idxs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emu.run_steps(n_steps)
    outputs = {p: emu.collect_probe_output(p) for p in model.probes}
    return outputs, emu.compartment.spike_count.copy(), {str(w.message) for w in caught}


def test_overflow_wrapping_matches():
    """Many spikes on one input axon: q, current and u2 wrap as on nengo-loihi."""
    net, _ = one_ensemble(nengo.RectifiedLinear(), 1.0, n=10, n_steps=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = Simulator(net, target="sim", allow_violations=True)
    model = sim.model
    batched = BatchedEmulator(sim)
    sim.close()
    (inp,) = model.inputs
    rng = np.random.RandomState(0)
    counts = rng.randint(0, 3, size=(50, inp.n_neurons))
    counts[10:30, 0] = 2000  # far beyond 2**21 in q
    voltage = batched.compartment.initial["voltage"]
    ref, spike_count, messages = raw_emulator_run(model, {inp: counts}, 50, voltage)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = batched.run({inp: counts})
    assert {"Overflow in q0", "Overflow in current"} <= messages
    assert {str(w.message) for w in caught} == messages & {
        "Overflow in q0",
        "Overflow in current",
        "Overflow in u2",
    }
    for probe, data in ref.items():
        assert bit_identical(out[probe][0], data), probe.key
    assert np.array_equal(out.spike_count[0], spike_count)

    # nengo-loihi's strict mode raises instead of warning
    from nengo_loihi.emulator import EmulatorInterface

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(EmulatorInterface, "strict", True)
        with pytest.raises(nengo.exceptions.SimulationError, match="Overflow in"):
            batched.run({inp: counts})


def test_spikes_stored_in_inputs_at_build_time():
    """Permanent spikes in a SpikeInput (as DVS files add) reach every sample."""
    net, _ = one_ensemble(nengo.RectifiedLinear(), 2.0, n=12, n_steps=40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = Simulator(net, target="sim", allow_violations=True)
    model = sim.model
    sim.close()
    (inp,) = model.inputs
    rng = np.random.RandomState(1)
    for ti in range(1, 40, 3):
        inp.add_spikes(ti, rng.randint(0, inp.n_neurons, size=3), permanent=True)
    batched = BatchedEmulator(model)
    voltage = batched.compartment.initial["voltage"]
    ref, spike_count, _ = raw_emulator_run(model, {}, 40, voltage)
    out = batched.run(n_steps=40, n_samples=2)
    assert spike_count.sum() > 0
    for i in range(2):
        for probe, data in ref.items():
            assert bit_identical(out[probe][i], data), probe.key
        assert np.array_equal(out.spike_count[i], spike_count)
    batched.stored_spikes = [{}]  # control: without them the run differs
    out = batched.run(n_steps=40, n_samples=1)
    assert not all(bit_identical(out[p][0], data) for p, data in ref.items())


def test_exact_for_every_matmul_dtype_dense_or_sparse(monkeypatch):
    """float32, float64 and int64 products, dense or sparse, give the same result."""
    from nengo_hybrid.hardware import emulator

    net, ens = encoded_input_network(n_steps=60)
    ref = referee(net, 61, strategy={ens: Thermometer(4)})
    routing = ref.batched.routing
    n_in = sum(inp.n_neurons for inp in routing.inputs)
    assert routing.dtype_for(np.ones(n_in)) is np.float32
    assert routing.dtype_for(np.full(n_in, 2**16)) is np.float64
    assert routing.dtype_for(np.full(n_in, 2**40)) is np.int64
    for density in (0.0, 1.01):  # always dense, always sparse
        monkeypatch.setattr(emulator, "SPARSE_DENSITY", density)
        for dtype in (np.float32, np.float64, np.int64):
            monkeypatch.setattr(routing, "dtype_for", lambda counts, dtype=dtype: dtype)
            routing.set_matrix(routing.matrix)  # clear the cached products
            assert ref.check() == [], (density, dtype)
            sparse = scipy.sparse.issparse(routing.weights(dtype))
            assert sparse == (density > 1), density


def test_initial_voltages_from_model_equal_simulator():
    """Made from the model alone, hybrid blocks start at set_emulator_voltages'."""
    net, ens = encoded_input_network(n=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = Simulator(
            net, target="sim", strategy={ens: Expand(2)}, allow_violations=True
        )
    from_sim = BatchedEmulator(sim).compartment.initial["voltage"]
    from_model = BatchedEmulator(sim.model).compartment.initial["voltage"]
    sim.close()
    assert np.any(from_sim != 0)
    assert np.array_equal(from_sim, from_model)


def test_scalar_probe_weights_equal_numpy_dot():
    from nengo_hybrid.hardware.emulator import scalar_dot

    rng = np.random.RandomState(0)
    for x in (rng.rand(50, 7) < 0.3, rng.randint(-(2**23), 2**23, (50, 7), np.int32)):
        for w in (-500.0, 500.0, 1 / 3, -1.3e-6, 0.0, -0.0, np.float32(-0.1)):
            w = np.asarray(w)
            assert bit_identical(scalar_dot(x, w), x.dot(w)), (x.dtype, w)


# --- what is not emulated ---------------------------------------------------------------


def test_noise_is_unsupported():
    from nengo_loihi.decode_neurons import NoisyDecodeNeurons

    with nengo.Network(seed=0) as net:
        u = nengo.Node(0.5)
        a = nengo.Ensemble(10, 1)
        b = nengo.Ensemble(10, 1)
        nengo.Connection(u, a)
        nengo.Connection(a, b)
    model = nengo_loihi.builder.Model()
    model.decode_neurons = NoisyDecodeNeurons(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with nengo_loihi.Simulator(net, model=model, target="sim") as sim:
            with pytest.raises(UnsupportedModel, match="noise"):
                BatchedEmulator(sim)


def test_learning_is_unsupported():
    with nengo.Network(seed=0) as net:
        u = nengo.Node(0.5)
        a = nengo.Ensemble(10, 1)
        b = nengo.Node(size_in=1)
        nengo.Connection(u, a)
        conn = nengo.Connection(a, b, learning_rule_type=nengo.PES())
        nengo.Connection(b, conn.learning_rule)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with nengo_loihi.Simulator(net, target="sim") as sim:
            with pytest.raises(NotImplementedError, match="learning"):
                BatchedEmulator(sim)


def test_simreal_is_unsupported():
    with nengo.Network(seed=0) as net:
        a = nengo.Ensemble(10, 1)
        nengo.Probe(a.neurons)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with nengo_loihi.Simulator(net, target="simreal") as sim:
            with pytest.raises(UnsupportedModel, match="non-discretised"):
                BatchedEmulator(sim)


def test_made_after_running_is_an_error():
    net, _ = one_ensemble(nengo.RectifiedLinear(), 1.0, n=10, n_steps=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Simulator(net, target="sim", allow_violations=True) as sim:
            sim.run_steps(5)
            with pytest.raises(ValueError, match="before running"):
                BatchedEmulator(sim)
