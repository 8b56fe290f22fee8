"""Loihi 2 semantics: the batched emulator against Lava and against Nengo.

The Lava tests run the program file with Lava's fixed-point CPU models in
``.venv-lava`` (`make lava`; CI creates it) and skip without it. Each Lava run
costs a few seconds of process start-up, so one run covers several random
networks at once (disjoint sub-networks of one program).
"""

import nengo
import numpy as np
import pytest

from nengo_hybrid import HybridSpiking, SigmaDelta
from nengo_hybrid.hardware import loihi2, loihi2_mapping
from nengo_hybrid.hardware.lava import LavaError, has_lava, lava_python, run_lava
from nengo_hybrid.hardware.loihi2 import (
    Loihi2MappingError,
    Population,
    Program,
    Projection,
)
from nengo_hybrid.hardware.profiles import ProfileError, load_profile

needs_lava = pytest.mark.skipif(
    not has_lava(), reason="no Lava environment (.venv-lava): run `make lava`"
)


def random_population(rng, label, kind, n):
    if kind == "hybrid":
        frac = int(rng.integers(6, 13))
        params = {
            "bias": rng.integers(-(1 << frac), 2 << frac, n),
            "du": np.int64(rng.choice([0, 300, 2000, 4096])),
            "frac_bits": np.int64(frac),
            "max_spikes": np.int64(rng.choice([0, 3])),
            "initial_v": rng.integers(0, 1 << frac, n),
        }
    else:
        params = {
            "bias": rng.integers(-200, 400, n),
            "vth": np.int64(rng.integers(1, 60)),
            "state_exp": np.int64(rng.choice([0, 2])),
            "cum_error": np.int64(rng.integers(0, 2)),
        }
    return Population(label, kind, n, params)


def random_network(rng, prefix, kinds):
    """Populations of ``kinds`` fed by one input, with random and recurrent weights."""
    pops = [
        random_population(rng, f"{prefix}{i}", kind, int(rng.integers(3, 9)))
        for i, kind in enumerate(kinds)
    ]
    size = int(rng.integers(1, 4))
    inputs = {f"{prefix}x": size}
    projs = []
    sources = [(f"{prefix}x", size)]
    for pop in pops:
        for pre, n in sources + [(pop.label, pop.n)]:  # feed-forward and recurrent
            if pre == pop.label and rng.random() < 0.3:
                continue
            projs.append(
                Projection(
                    f"{pre}->{pop.label}",
                    pre,
                    pop.label,
                    rng.integers(-128, 128, (pop.n, n)),
                    int(rng.integers(-6, 1)),
                )
            )
        sources.append((pop.label, pop.n))
    return pops, inputs, projs


def random_program(seed, kinds_list):
    rng = np.random.default_rng(seed)
    pops, inputs, projs = [], {}, []
    for k, kinds in enumerate(kinds_list):
        p, i, j = random_network(rng, f"n{k}_", kinds)
        pops += p
        inputs.update(i)
        projs += j
    return Program(pops, inputs, projs, payload_bits=24)


def random_inputs(program, seed, n_samples=3, n_steps=30):
    rng = np.random.default_rng(seed)
    return {
        label: rng.integers(-60, 61, (n_samples, n_steps, size))
        for label, size in program.inputs.items()
    }


def perturbed(program, label):
    """The program with the lowest bit of one used weight of ``label`` flipped."""
    projs = []
    for proj in program.projections:
        mantissa = proj.mantissa.copy()
        if proj.label == label:
            mantissa[0, 0] ^= 1
        projs.append(Projection(proj.label, proj.pre, proj.post, mantissa, proj.exp))
    return Program(program.populations, program.inputs, projs, program.payload_bits)


KINDS = [
    ("hybrid", "hybrid"),
    ("sigma_delta", "sigma_delta"),
    ("hybrid", "sigma_delta", "hybrid"),
]


def test_batched_equals_sample_by_sample():
    program = random_program(1, KINDS)
    inputs = random_inputs(program, 2)
    together = loihi2.run(program, inputs)
    alone = loihi2.run(program, inputs, batch_size=1)
    for pop in program.populations:
        assert together.payloads[pop.label].dtype == np.int32
        assert np.array_equal(together.payloads[pop.label], alone.payloads[pop.label])
    # the samples differ (the comparison above is not vacuous)
    first = together.payloads[program.populations[0].label]
    assert not np.array_equal(first[0], first[1])


def test_program_file_round_trip(tmp_path):
    program = random_program(3, KINDS[:2])
    inputs = random_inputs(program, 4)
    program.write(tmp_path / "p.npz")
    again = Program.read(tmp_path / "p.npz")
    a, b = loihi2.run(program, inputs), loihi2.run(again, inputs)
    for pop in program.populations:
        assert np.array_equal(a.payloads[pop.label], b.payloads[pop.label])
    (tmp_path / "bad.npz").write_bytes(b"not a file")
    with pytest.raises(Loihi2MappingError, match="bad.npz is unreadable"):
        Program.read(tmp_path / "bad.npz")


def test_invalid_programs_name_the_object():
    rng = np.random.default_rng(0)
    pop = random_population(rng, "p", "hybrid", 3)
    with pytest.raises(Loihi2MappingError, match="'w'.*outside the 8-bit"):
        Projection("w", "x", "p", np.full((3, 1), 200), 0)
    with pytest.raises(Loihi2MappingError, match="'w'.*expected \\(3, 2\\)"):
        Program(
            [pop], {"x": 2}, [Projection("w", "x", "p", np.ones((3, 1), int), 0)], 24
        )
    x = {"x": np.zeros((1, 5, 2), int)}
    program = Program([pop], {"x": 2}, [], 24)
    with pytest.raises(Loihi2MappingError, match="fewer than n_steps=6"):
        loihi2.run(program, x, n_steps=6)
    assert loihi2.run(program, x, n_steps=5).payloads["p"].shape == (1, 5, 3)
    with pytest.raises(Loihi2MappingError, match="'q'.*unknown neuron kind"):
        Population("q", "lif", 3, {})
    with pytest.raises(Loihi2MappingError, match="'q'.*missing \\['vth'\\]"):
        Population(
            "q",
            "sigma_delta",
            2,
            {"bias": np.zeros(2, int), "state_exp": 0, "cum_error": 0},
        )


@needs_lava
def test_lava_equals_emulator_on_random_networks():
    """Every step's payloads of every population, bit for bit, on Lava's models."""
    program = random_program(5, KINDS)
    inputs = random_inputs(program, 6)
    lava = run_lava(program, inputs)
    emu = loihi2.run(program, inputs)
    assert lava.meta["lava_version"] == "0.10.0"
    for pop in program.populations:
        assert np.array_equal(lava.payloads[pop.label], emu.payloads[pop.label]), (
            pop.label
        )
        assert np.count_nonzero(emu.payloads[pop.label]) > 0, pop.label  # not vacuous

    with pytest.raises(LavaError, match="needs lava-loihi"):
        run_lava(program, inputs, target="chip")  # no Loihi 2 system here

    # control: a one-bit change of one weight in each network is detected
    for k in range(len(KINDS)):
        proj = next(p for p in program.projections if p.post == f"n{k}_0")
        changed = loihi2.run(perturbed(program, proj.label), inputs)
        assert any(
            not np.array_equal(lava.payloads[p.label], changed.payloads[p.label])
            for p in program.populations
            if p.label.startswith(f"n{k}_")
        ), proj.label


def hybrid(precision, **kwargs):
    return HybridSpiking(nengo.RectifiedLinear(), precision=precision, **kwargs)


def feedforward_net(seed=0):
    with nengo.Network(seed=seed) as net:
        inp = nengo.Node(lambda t: [np.sin(6 * t), np.cos(9 * t)], label="inp")
        a = nengo.Ensemble(40, 2, neuron_type=hybrid(2), label="a")
        b = nengo.Ensemble(30, 1, neuron_type=hybrid(4), label="b")
        out = nengo.Node(size_in=1, label="out")
        nengo.Connection(inp, a, synapse=None)
        nengo.Connection(a, b, function=lambda x: x[0] * x[1], synapse=0.005)
        nengo.Connection(
            b.neurons, b.neurons, transform=-0.0005 * np.ones((30, 30)), synapse=0.005
        )
        nengo.Connection(b, out, synapse=0.01)
        net.probe_of = {
            "inp": nengo.Probe(inp),
            "a": nengo.Probe(a.neurons),
            "b": nengo.Probe(b.neurons),
            "out": nengo.Probe(out),
        }
    return net, inp, out


def reference_counts(sim, net, label, ens):
    scale = sim.dt * ens.neuron_type.precision / ens.neuron_type.amplitude
    return np.round(sim.data[net.probe_of[label]] * scale).astype(np.int64)


def drift(emu, ref, lag):
    """Per neuron, the largest difference of the running spike counts."""
    n = len(ref) - lag
    return np.abs(np.cumsum(emu[lag:] - ref[:n], axis=0)).max(axis=0)


def quantisation_bound(mapped, sim, ens, x):
    """Per neuron, how far the running counts of an input layer (no synapse) may
    drift from Nengo's: the summed differences between the exact increments
    ``p dt (J)`` and the program's integer ones, in spikes, plus 2 spikes."""
    pop = mapped.program.by_label[ens.label]
    (proj,) = [p for p in mapped.program.projections if p.post == ens.label]
    payloads = mapped.encode({"inp": x})["inp"][0]
    frac = int(pop.params["frac_bits"])
    units = ens.neuron_type.precision * sim.dt * 2.0**frac
    exact = units * (x[0] @ sim.data[ens].scaled_encoders.T + sim.data[ens].bias)
    q = payloads @ proj.weights.T
    program = (q * 2.0**proj.exp).astype(np.int64) if proj.exp >= 0 else q >> -proj.exp
    program = program + pop.params["bias"]
    diff = np.abs(np.maximum(program, 0) - np.maximum(exact, 0))
    return diff.sum(axis=0) / 2.0**frac + 2


def test_emulator_within_quantisation_error_of_reference_simulator():
    """Input layer: the counts' running sums stay within the quantisation bound;
    output: the decoded value within 5% of its range."""
    net, inp, out = feedforward_net()
    n_steps = 300
    with nengo.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(n_steps)
    mapped = loihi2_mapping.from_network(net, input_scales={"inp": 1.0})
    assert mapped.latency == {"a": 1, "b": 1}
    x = sim.data[net.probe_of["inp"]][None]
    ens = {e.label: e for e in net.all_ensembles}
    ref = reference_counts(sim, net, "a", ens["a"])
    assert ref.sum() > 20 * ref.shape[1]  # active neurons: not vacuous
    bound = quantisation_bound(mapped, sim, ens["a"], x)

    def check(program):
        res = loihi2.run(program, mapped.encode({inp: x}))
        y = mapped.decode(res.payloads)[out][0, 1:]
        y_ref = sim.data[net.probe_of["out"]][: n_steps - 1]
        rms = np.sqrt(np.mean((y - y_ref) ** 2)) / np.abs(y_ref).max()
        return drift(res.payloads["a"][0], ref, 1), rms

    counts_drift, rms = check(mapped.program)
    assert np.all(counts_drift <= bound)
    assert rms < 0.05

    # control: the input weights one exponent step off (x2) are caught, and so
    # are the weights into the output layer
    for post in ("a", "b"):
        projs = [
            Projection(p.label, p.pre, p.post, p.mantissa, p.exp + (p.post == post))
            for p in mapped.program.projections
        ]
        wrong = Program(mapped.program.populations, mapped.program.inputs, projs, 24)
        counts_drift, rms = check(wrong)
        assert np.any(counts_drift > bound) if post == "a" else rms > 0.05


@needs_lava
def test_lava_equals_emulator_on_mapped_network():
    net, inp, _ = feedforward_net(seed=3)
    mapped = loihi2_mapping.from_network(net)
    t = np.arange(1, 41) * 0.001
    x = np.stack([np.stack([np.sin(w * t), np.cos(w * t)], axis=1) for w in (5, 20)])
    payloads = mapped.encode({inp: x})
    lava = run_lava(mapped.program, payloads)
    emu = loihi2.run(mapped.program, payloads)
    for label in ("a", "b"):
        assert np.count_nonzero(emu.payloads[label]) > 0
        assert np.array_equal(lava.payloads[label], emu.payloads[label]), label


def test_run_loihi2_decodes_outputs():
    net, inp, out = feedforward_net()
    x = np.zeros((2, 50, 2))
    x[1] = 0.5
    outputs, counts, mapped = loihi2_mapping.run_loihi2(net, {"inp": x})
    assert outputs[out].shape == (2, 50, 1)
    assert counts["a"].shape == (2, 50, 40)
    assert not np.array_equal(counts["a"][0], counts["a"][1])
    with pytest.raises(Loihi2MappingError, match="'nope' is not a host input"):
        mapped.encode({"nope": x})
    with pytest.raises(
        Loihi2MappingError, match="'loihi1' is emulated by 'nengo_loihi'"
    ):
        loihi2_mapping.run_loihi2(net, {"inp": x}, profile="loihi1")


def test_mapping_errors_name_the_object():
    with nengo.Network() as net:
        a = nengo.Ensemble(5, 1, neuron_type=nengo.LIF(), label="lif")
    with pytest.raises(Loihi2MappingError, match="lif.*does not map onto Loihi 2"):
        loihi2_mapping.from_network(net)

    with nengo.Network() as net:
        inp = nengo.Node([0.5])
        mid = nengo.Node(size_in=1, label="passthrough")
        a = nengo.Ensemble(5, 1, neuron_type=hybrid(1))
        nengo.Connection(inp, mid)
        nengo.Connection(mid, a)
    with pytest.raises(Loihi2MappingError, match="passthrough.*does not map"):
        loihi2_mapping.from_network(net)

    with nengo.Network() as net:
        inp = nengo.Node([0.5])
        a = nengo.Ensemble(5, 1, neuron_type=hybrid(1))
        b = nengo.Ensemble(5, 1, neuron_type=hybrid(1), label="b")
        nengo.Connection(inp, b, synapse=0.01)
        nengo.Connection(a, b, synapse=0.02)
    with pytest.raises(Loihi2MappingError, match="into b"):
        loihi2_mapping.from_network(net)
    with pytest.raises(Loihi2MappingError, match="'loihi1' has no graded spikes"):
        loihi2_mapping.from_network(net, profile="loihi1")


def test_profile_selects_the_semantics(tmp_path):
    assert load_profile("loihi2").emulator == "loihi2"
    assert load_profile("loihi1").emulator == "nengo_loihi"
    data = dict(load_profile("loihi2").data, emulator="loihi3")
    with pytest.raises(ProfileError, match='"emulator" must be one of'):
        load_profile(data)


def test_missing_lava_environment_says_make_lava(monkeypatch, tmp_path):
    monkeypatch.setenv("NENGO_HYBRID_LAVA_PYTHON", str(tmp_path / "python"))
    with pytest.raises(LavaError, match="not an executable file"):
        lava_python()
    monkeypatch.delenv("NENGO_HYBRID_LAVA_PYTHON")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        "nengo_hybrid.hardware.lava.__file__", str(tmp_path / "a" / "b" / "lava.py")
    )
    with pytest.raises(LavaError, match="missing") as err:
        lava_python()
    assert "make lava" in err.value.hint


@pytest.mark.parametrize("density", [0.02, 0.5])
@pytest.mark.parametrize("x_max", [3, 1 << 23])
def test_exact_product_equals_integer_product(density, x_max):
    from nengo_hybrid.hardware.exact import ExactProduct

    rng = np.random.default_rng(0)
    w = rng.integers(-256, 256, (300, 200)) * (rng.random((300, 200)) < density)
    x = rng.integers(-x_max, x_max + 1, (7, 300))
    product = ExactProduct(w)
    assert product.sparse == (density < 0.1)
    assert np.array_equal(product(x), x @ w)
    # control: a float32 product of the large values would round
    if x_max > 3:
        rounded = x.astype(np.float32) @ w.astype(np.float32)
        assert not np.array_equal(rounded.astype(np.int64), x @ w)


def test_latency_counts_connections_without_synapse():
    with nengo.Network(seed=0) as net:
        inp = nengo.Node([0.5], label="inp")
        a, b, c = (
            nengo.Ensemble(4, 1, neuron_type=hybrid(1), label=label) for label in "abc"
        )
        nengo.Connection(inp, a, synapse=0.01)  # a Nengo synapse: as Lava
        nengo.Connection(a, b, synapse=None)  # same step in Nengo: Lava one later
        nengo.Connection(b, b, synapse=nengo.Lowpass(0))  # same decay as None
        nengo.Connection(a, c, synapse=None)
        nengo.Connection(b, c, synapse=None)  # c: two ways, two lags
    mapped = loihi2_mapping.from_network(net)
    assert mapped.latency == {"a": 0, "b": 1, "c": None}
    du = {p.label: int(p.params["du"]) for p in mapped.program.populations}
    assert du["b"] == du["c"] == 4096 and du["a"] < 4096


# ------------------------------------------------------------------ sigma-delta


def sigma_delta(threshold, **kwargs):
    return SigmaDelta(nengo.RectifiedLinear(), threshold=threshold, **kwargs)


def quantised_wave(n_steps, n_samples=1, seed=0):
    """Inputs on the 8-bit grid of a host input of scale 1 (exactly representable)."""
    t = np.arange(1, n_steps + 1) * 0.001
    rng = np.random.default_rng(seed)
    w = rng.uniform(3, 12, (n_samples, 2))
    x = np.stack([np.sin(w[:, :1] * t), np.cos(w[:, 1:] * t)], axis=-1)
    return np.round(x * 127) / 127


def sigma_delta_net(x, thresholds=(0.05, 0.1), seed=0):
    """Input -> a (no synapse) -> b (delayed, recurrent) -> out, sigma-delta layers."""
    with nengo.Network(seed=seed) as net:
        inp = nengo.Node(
            lambda t: x[min(int(round(t / 0.001)), len(x)) - 1], label="inp"
        )
        ens = dict(gain=nengo.dists.Uniform(0.5, 2), bias=nengo.dists.Uniform(-0.5, 1))
        a = nengo.Ensemble(
            40, 2, neuron_type=sigma_delta(thresholds[0]), label="a", **ens
        )
        b = nengo.Ensemble(
            30, 1, neuron_type=sigma_delta(thresholds[1]), label="b", **ens
        )
        out = nengo.Node(size_in=1, label="out")
        nengo.Connection(inp, a, synapse=None)
        nengo.Connection(a, b, function=lambda v: v[0] * v[1], synapse=0)
        nengo.Connection(
            b.neurons, b.neurons, transform=-0.01 * np.ones((30, 30)), synapse=0
        )
        nengo.Connection(b, out, synapse=None)
        net.probe_of = {
            "a": nengo.Probe(a.neurons),
            "b": nengo.Probe(b.neurons),
            "out": nengo.Probe(out),
        }
    return net, inp, out


def test_sigma_delta_emulator_within_quantisation_error_of_reference_simulator():
    """Layer a: the emulator's reconstruction stays within the (fixed-point)
    threshold plus the fixed point's error of the rate network's activity;
    the decoded output within 5% of its range of Nengo's SigmaDelta network."""
    n_steps = 300
    x = quantised_wave(n_steps)[0]
    net, inp, out = sigma_delta_net(x)
    with nengo.Simulator(net, progress_bar=False) as sim:  # the SigmaDelta network
        sim.run_steps(n_steps)
    rate_net, _, _ = sigma_delta_net(x, thresholds=(0, 0))
    with nengo.Simulator(rate_net, progress_bar=False) as rate_sim:
        rate_sim.run_steps(n_steps)
    exact = rate_sim.data[rate_net.probe_of["a"]]  # threshold 0: the ReLU activity
    mapped = loihi2_mapping.from_network(net, input_scales={"inp": 1.0})
    assert mapped.latency == {"a": 1, "b": 1}
    assert mapped.program.inputs == {"inp.delta": 2}  # sent as changes
    pops = mapped.program.by_label
    assert pops["a"].kind == pops["b"].kind == "sigma_delta"
    payloads = mapped.encode({inp: x[None]})
    assert np.array_equal(np.cumsum(payloads["inp.delta"][0], 0), np.round(x * 127))

    def bound(program):
        """Per neuron of a: threshold in the fixed point, plus one payload unit
        per message (the ``>> state_exp`` of Lava's model), plus the largest
        error of the program's activation (weights and bias rounded)."""
        pop = program.by_label["a"]
        (proj,) = [p for p in program.projections if p.post == "a"]
        frac_exp = int(pop.params["state_exp"])
        q = np.round(x * 127).astype(np.int64)
        assert proj.exp >= 0  # no flooring: sigma is exactly (W q) << exp
        sigma = (q @ proj.weights.T) << proj.exp
        act = np.maximum(sigma + (pop.params["bias"] << frac_exp), 0)
        act_error = np.abs(act * 2.0**-frac_exp * pop.scale - exact).max(0)
        return pop.params["vth"] * pop.scale, pop.scale, act_error

    def check(program, scale=None):
        res = loihi2.run(program, payloads)
        pop = program.by_label["a"]
        recon = np.cumsum(res.payloads["a"][0], 0) * (scale or pop.scale)
        vth, unit, act_error = bound(mapped.program)  # as mapped
        messages = np.count_nonzero(res.payloads["a"][0], axis=0)
        error = np.abs(recon[1:] - exact[:-1]).max(0)  # emulator lags 1 step
        within = np.all(error <= vth + messages * unit + act_error)
        y = mapped.decode(res.payloads)[out][0, 1:]
        y_ref = sim.data[net.probe_of["out"]][:-1]
        rms = np.sqrt(np.mean((y - y_ref) ** 2)) / np.abs(y_ref).max()
        return within, rms, messages

    within, rms, messages = check(mapped.program)
    assert within and rms < 0.05
    assert 10 * messages.sum() < n_steps * 40  # not vacuous: sends, but rarely
    vth, unit, act_error = bound(mapped.program)
    assert act_error.max() < vth / 2  # 8-bit weights: finer than the threshold

    # controls: a threshold 4x too large, and payloads read at twice their scale
    # (or weights into b one exponent step off) are caught
    def changed(label, **params):
        pops = [
            Population(p.label, p.kind, p.n, {**p.params, **params}, p.scale)
            if p.label == label
            else p
            for p in mapped.program.populations
        ]
        return Program(pops, mapped.program.inputs, mapped.program.projections, 24)

    vth_a = int(mapped.program.by_label["a"].params["vth"])
    assert not check(changed("a", vth=np.int64(4 * vth_a)))[0]
    assert not check(mapped.program, scale=2 * mapped.program.by_label["a"].scale)[0]
    projs = [
        Projection(p.label, p.pre, p.post, p.mantissa, p.exp + (p.post == "b"))
        for p in mapped.program.projections
    ]
    wrong = Program(mapped.program.populations, mapped.program.inputs, projs, 24)
    assert check(wrong)[1] > 0.05


def mixed_net(seed):
    """Random hybrid and sigma-delta ensembles as the mapping allows them to mix:
    hybrid with a filtered recurrence, sigma-delta with a delayed recurrence (one
    with Lava's error accumulator), and a hybrid ensemble fed by sigma-delta."""
    rng = np.random.default_rng(seed)

    def ens(neuron_type, n, label):
        return nengo.Ensemble(
            n, 2, neuron_type=neuron_type, label=f"s{seed}_{label}",
            gain=nengo.dists.Uniform(0.5, 3), bias=nengo.dists.Uniform(-1, 1.5),
        )  # fmt: skip

    with nengo.Network(seed=seed) as net:
        inp = nengo.Node(np.zeros(2), label=f"s{seed}_x")
        h = ens(hybrid(rng.uniform(200, 600)), int(rng.integers(4, 9)), "h")
        s = ens(sigma_delta(rng.uniform(0, 0.3)), int(rng.integers(4, 9)), "s")
        c = ens(sigma_delta(rng.uniform(0, 0.3), cum_error=True), 5, "c")
        g = ens(hybrid(rng.uniform(200, 600)), int(rng.integers(4, 9)), "g")
        nengo.Connection(inp, h, synapse=0.005)
        nengo.Connection(h.neurons, h.neurons, synapse=0.005,
                         transform=rng.normal(0, 0.1, (h.n_neurons,) * 2))  # fmt: skip
        nengo.Connection(inp, s, synapse=None)
        nengo.Connection(s.neurons, s.neurons, synapse=0,
                         transform=rng.normal(0, 0.3, (s.n_neurons,) * 2))  # fmt: skip
        nengo.Connection(inp, c, synapse=None)
        nengo.Connection(s, c, synapse=0)
        nengo.Connection(s, g, synapse=0)
        nengo.Connection(c, g, synapse=0)
    return net


def test_mixed_networks_map():
    net = mixed_net(0)
    mapped = loihi2_mapping.from_network(net)
    kinds = {p.label: p.kind for p in mapped.program.populations}
    assert kinds == {"s0_h": "hybrid", "s0_s": "sigma_delta", "s0_c": "sigma_delta",
                     "s0_g": "hybrid"}  # fmt: skip
    du = {p.label: int(p.params["du"]) for p in mapped.program.populations
          if p.kind == "hybrid"}  # fmt: skip
    assert du["s0_g"] == 0 and 0 < du["s0_h"] < 4096  # g sums the deltas it gets
    assert set(mapped.program.inputs) == {"s0_x", "s0_x.delta"}
    assert int(mapped.program.by_label["s0_c"].params["cum_error"]) == 1


@needs_lava
def test_lava_equals_emulator_on_mapped_sigma_delta_networks():
    """Random mapped networks of both neuron kinds (recurrent connections
    included), every payload bit for bit; a one-bit change is caught."""
    with nengo.Network() as net:
        for seed in range(3):
            mixed_net(seed)  # added to net: disjoint sub-networks
    mapped = loihi2_mapping.from_network(net)
    rng = np.random.default_rng(7)
    values = {
        node: rng.uniform(-1, 1, (2, 1, 2)) + np.cumsum(
            rng.normal(0, 0.2, (2, 40, 2)), axis=1)
        for node in net.all_nodes
    }  # fmt: skip
    payloads = mapped.encode(values)
    lava = run_lava(mapped.program, payloads)
    emu = loihi2.run(mapped.program, payloads)
    for pop in mapped.program.populations:
        assert np.array_equal(lava.payloads[pop.label], emu.payloads[pop.label]), (
            pop.label
        )
        assert np.count_nonzero(emu.payloads[pop.label]) > 0, pop.label

    # control: a one-bit change of one weight into a sigma-delta population
    proj = next(p for p in mapped.program.projections if p.post == "s0_s")
    changed = loihi2.run(perturbed(mapped.program, proj.label), payloads)
    assert not np.array_equal(lava.payloads["s0_s"], changed.payloads["s0_s"])


def test_sigma_delta_mapping_errors_name_the_ensemble():
    def net_with(post_type, pre_type=None, synapse=None, **kwargs):
        kwargs = {"gain": [1.0] * 5, "bias": [0.5] * 5, **kwargs}
        with nengo.Network() as net:
            inp = nengo.Node([0.5], label="inp")
            pre = nengo.Ensemble(5, 1, neuron_type=pre_type or sigma_delta(0.1),
                                 label="pre", gain=[1.0] * 5, bias=[0.5] * 5)  # fmt: skip
            post = nengo.Ensemble(5, 1, neuron_type=post_type, label="post", **kwargs)
            nengo.Connection(inp, pre, synapse=None)
            nengo.Connection(pre, post, synapse=synapse)
        return net

    cases = [
        (net_with(SigmaDelta(nengo.LIFRate())), "post.*SigmaDelta\\(LIFRate\\)"),
        (net_with(sigma_delta(0.1), synapse=0.01), "into post does not map"),
        (net_with(sigma_delta(0.1), pre_type=hybrid(2)), "HybridSpiking ensemble pre"),
        (
            net_with(
                sigma_delta(0.1, initial_state={"residue": nengo.dists.Choice([1])})
            ),
            "'post'>: SigmaDelta initial_state",
        ),
        (
            net_with(sigma_delta(0.1), gain=[1] * 5, bias=[1e4] * 5),
            "'post'>: its biases need",
        ),
    ]
    for net, match in cases:
        with pytest.raises(Loihi2MappingError, match=match):
            loihi2_mapping.from_network(net)
    # control: the same network with a mappable post maps
    loihi2_mapping.from_network(net_with(sigma_delta(0.1)))
