"""Tests of nengo_hybrid.hardware with the real nengo-loihi builder and emulator."""

import json
import warnings

import nengo
import nengo_loihi
import numpy as np
import pytest
from nengo.exceptions import BuildError, ValidationError
from nengo_loihi.block import (
    MAX_COMPARTMENTS,
    MAX_IN_AXONS,
    MAX_OUT_AXONS,
    MAX_SYNAPSE_BITS,
)

from nengo_hybrid import HybridSpiking
from nengo_hybrid.hardware import (
    Expand,
    Simulator,
    check,
    compare,
    expanded_counts,
    hybrid_counts,
    load_profile,
)
from nengo_hybrid.hardware import loihi as hw_loihi
from nengo_hybrid.hardware.profiles import available_profiles

DT = 0.001


def relu(p=1.0, **kwargs):
    return HybridSpiking(nengo.RectifiedLinear(), precision=p, **kwargs)


@pytest.fixture
def no_emulation(monkeypatch):
    """Fail if anything tries to emulate (checks must run before emulation)."""

    def refuse(*args, **kwargs):
        raise AssertionError("check() started the emulator")

    monkeypatch.setattr(nengo_loihi.simulator.EmulatorInterface, "__init__", refuse)


def bias_network(n, bias, p=1.0, seed=0):
    """One ensemble driven by its bias only: its spike counts are predictable."""
    with nengo.Network(seed=seed) as net:
        ens = nengo.Ensemble(
            n, 1, neuron_type=relu(p), gain=np.ones(n), bias=bias, label="biased"
        )
        probe = nengo.Probe(ens.neurons)
    return net, ens, probe


# --- profiles ---------------------------------------------------------------


def test_profiles_are_data_with_sources():
    assert {"loihi1", "loihi2"} <= set(available_profiles())
    for name in ("loihi1", "loihi2"):
        profile = load_profile(name)
        assert set(profile.limits) == set(profile.sources)
        assert all(profile.sources.values())
    loihi1 = load_profile("loihi1")
    # Loihi 1 numbers are exactly those nengo-loihi enforces
    assert loihi1["compartments_per_core"] == MAX_COMPARTMENTS
    assert loihi1["input_axons_per_core"] == MAX_IN_AXONS
    assert loihi1["output_axons_per_core"] == MAX_OUT_AXONS
    assert loihi1["synapse_bits_per_core"] == MAX_SYNAPSE_BITS
    assert loihi1["max_spikes_per_step"] == 1 and not loihi1.subtractive_reset
    assert load_profile("loihi2")["spike_payload_bits"] > 0


def test_unknown_profile_is_clear():
    with pytest.raises(ValidationError, match="loihi1"):
        load_profile("truenorth")
    with pytest.raises(ValidationError, match="source"):
        load_profile(
            {
                "name": "x",
                "limits": {
                    k: {"value": 1, "source": ""} for k in load_profile("loihi1").limits
                },
            }
        )


# --- checks -----------------------------------------------------------------


def big_network(force_one_core):
    with nengo.Network(seed=0) as net:
        nengo_loihi.add_params(net)
        big = nengo.Ensemble(1500, 1, neuron_type=relu(), label="big")
        if force_one_core:
            net.config[big].block_shape = nengo_loihi.BlockShape((1500,), (1500,))
    return net


def test_compartment_violation_names_ensemble(no_emulation):
    report = check(big_network(force_one_core=True))
    assert not report.ok
    (v,) = [v for v in report.violations if v.kind == "compartments"]
    assert "big" in v.obj and v.limit == 1024 and v.value == 1500
    assert "BlockShape((1024,), (1500,))" in v.fix

    # without the forced shape the plan splits it over two cores and it fits
    report = check(big_network(force_one_core=False))
    assert report.ok, report
    assert report.n_cores == 2


def test_input_axon_violation(no_emulation):
    with nengo.Network(seed=0) as net:
        pre = nengo.Ensemble(4200, 1, neuron_type=relu(), label="wide")
        post = nengo.Ensemble(4, 1, neuron_type=relu(), label="narrow")
        nengo.Connection(pre.neurons, post.neurons, transform=np.full((4, 4200), 1e-3))
    report = check(net)
    found = [v for v in report.violations if v.kind == "input_axons"]
    assert found and not report.ok
    for v in found:  # one per core of the target
        assert "narrow" in v.obj and v.value == 4200 and v.limit == 4096
        assert "presynaptic" in v.fix


def dense_network(force_one_core):
    with nengo.Network(seed=0) as net:
        nengo_loihi.add_params(net)
        pre = nengo.Ensemble(200, 1, neuron_type=relu(), label="pre")
        post = nengo.Ensemble(1000, 1, neuron_type=relu(), label="post")
        rng = np.random.RandomState(0)
        nengo.Connection(
            pre.neurons, post.neurons, transform=rng.uniform(-1e-3, 1e-3, (1000, 200))
        )
        if force_one_core:
            net.config[post].block_shape = nengo_loihi.BlockShape((1000,), (1000,))
    return net


def test_synapse_bits_violation_and_word_rounding(no_emulation):
    report = check(dense_network(force_one_core=True))
    (v,) = [v for v in report.violations if v.kind == "synapse_bits"]
    assert "post" in v.obj and v.value > MAX_SYNAPSE_BITS
    assert "BlockShape" in v.fix

    # the planned split counts 64-bit word rounding per core, so every core fits
    # (the spike counts do not: the reference reaches 4 spikes per step in post)
    report = check(dense_network(force_one_core=False))
    assert {v.kind for v in report.violations} == {"spike_count_per_step"}, report
    assert all(row["synapse_bits"] <= MAX_SYNAPSE_BITS for row in report.cores)


def test_weight_overflow_flagged_with_bits_lost(no_emulation):
    w = np.zeros((3, 3))
    w[0, 0], w[1, 1], w[2, 2] = 1.0, 2.0**-6, 2.0**-12  # 13 magnitude bits
    with nengo.Network(seed=0) as net:
        a = nengo.Ensemble(3, 1, neuron_type=relu(), label="a")
        b = nengo.Ensemble(3, 1, neuron_type=relu(), label="b")
        nengo.Connection(a.neurons, b.neurons, transform=w * 1e-3)
    report = check(net)
    assert report.ok  # a warning by default
    (v,) = [v for v in report.warnings if v.kind == "weight_bits"]
    assert "Neurons of <Ensemble 'a'>" in v.obj and "6 bits lost" in v.detail
    (row,) = report.connections
    assert row["bits_lost"] == 6 and row["fraction_rounded_to_zero"] == pytest.approx(
        1 / 3
    )

    strict = check(net, max_weight_bits_lost=2)
    assert not strict.ok
    assert [v.kind for v in strict.violations] == ["weight_bits"]


def test_multibit_needs_a_strategy(no_emulation):
    n = 10
    bias = np.linspace(500, 3500, n)  # up to 3.5 spikes per step at p=1
    net, ens, _ = bias_network(n, bias)
    report = check(net)
    (v,) = [v for v in report.violations if v.kind == "spike_count_per_step"]
    assert "biased" in v.obj and v.value == 4 and v.limit == 1
    assert "Expand(K=4)" in v.fix

    report = check(net, strategy=Expand(4))
    assert report.ok, report
    (row,) = report.ensembles
    assert row["compartments"] == 4 * n and row["spike_bits_needed"] == 3
    assert not row["exact"]  # Loihi 1 resets to zero
    assert any(w.kind == "reset_to_zero" for w in report.warnings)

    # measured counts override the estimate
    report = check(net, counts={ens: np.ones((5, n))})
    assert report.ok

    # graded spikes on Loihi 2 carry the count in one compartment
    report = check(net, profile="loihi2")
    assert report.ok and report.ensembles[0]["exact"]


def test_unsupported_neuron_types_are_clear_errors(no_emulation):
    with nengo.Network(seed=0) as net:
        nengo.Ensemble(5, 1, neuron_type=HybridSpiking(nengo.Tanh()), label="tanh")
        nengo.Ensemble(5, 1, neuron_type=nengo.Sigmoid(), label="sigmoid")
    report = check(net)
    kinds = {(v.kind, v.obj) for v in report.violations}
    assert ("neuron_type", "<Ensemble 'tanh'>") in kinds
    assert ("neuron_type", "<Ensemble 'sigmoid'>") in kinds

    with pytest.raises(BuildError, match="Tanh cannot run on Loihi"):
        Simulator(net)


def test_plain_nengo_loihi_refuses_unscaled_precision():
    net, _, _ = bias_network(4, np.full(4, 100.0), p=4.0)
    with pytest.raises(BuildError, match="nengo_hybrid.hardware.Simulator"):
        nengo_loihi.Simulator(net, target="sim")


def test_builder_registered_explicitly():
    from nengo_loihi.builder import Builder

    assert Builder.builders[HybridSpiking] is hw_loihi.build_hybrid_spiking


def test_chip_target_without_nxsdk_is_clear():
    if hw_loihi.HAS_NXSDK:  # pragma: no cover
        pytest.skip("NxSDK is installed")
    net, _, _ = bias_network(4, np.full(4, 100.0))
    with pytest.raises(BuildError, match="NxSDK"):
        Simulator(net, target="loihi")


def test_report_table_and_json(no_emulation):
    with nengo.Network(seed=0) as net:
        stim = nengo.Node([0.5], label="stim")
        a = nengo.Ensemble(20, 1, neuron_type=relu(), label="a")
        nengo.Connection(stim, a)
    report = check(net)
    text = str(report)
    assert "compart." in text and "<Ensemble 'a'>" in text and "stim" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True and data["profile"] == "loihi1"
    assert data["host"][0]["object"].startswith('<Node "stim"') or "stim" in str(
        data["host"]
    )
    assert {row["ensemble"] for row in data["cores"]} >= {"<Ensemble 'a'>"}


# --- emulation --------------------------------------------------------------


def test_hermite_expansion_is_exact_with_subtractive_reset():
    rng = np.random.RandomState(0)
    for K in (1, 2, 3, 5):
        inc = rng.uniform(0, K, size=(300, 40))
        v0 = rng.uniform(0, 1, size=40)
        assert np.array_equal(expanded_counts(inc, v0, K), hybrid_counts(inc, v0))
    # reset to zero loses the residual: fewer spikes, never more
    inc = rng.uniform(0, 3, size=(300, 40))
    zero = expanded_counts(inc, v0, 3, reset="zero")
    assert zero.sum() < hybrid_counts(inc, v0).sum()


# nengo-loihi's emulator fills int arrays with NaN when it starts (upstream)
upstream_cast = pytest.mark.filterwarnings(
    "ignore:invalid value encountered in cast:RuntimeWarning"
)


@upstream_cast
@pytest.mark.parametrize("p, K, n", [(1.0, 1, 16), (2.0, 3, 16), (1.0, 4, 300)])
def test_emulator_spikes_match_reference_within_reset_difference(p, K, n):
    # n=300, K=4: 1200 compartments, split over two cores
    steps = 200
    rng = np.random.RandomState(1)
    max_inc = 0.9 * K  # per step, in units of the multi-bit threshold
    bias = rng.uniform(0.05, max_inc, n) / (p * DT)
    net, ens, probe = bias_network(n, bias, p=p)
    with nengo.Simulator(net, dt=DT, progress_bar=False) as ref:
        ref.run_steps(steps)
    with Simulator(net, dt=DT, strategy=K, target="sim") as emu:
        emu.run_steps(steps)
        v0 = hw_loihi.reference_initial_voltages(emu.model, ens)
        assert len(emu.model.blocks) == (2 if n * K > 1024 else 1)
    ref_counts = np.round(ref.data[probe] * p * DT).astype(int)
    emu_counts = np.round(emu.data[probe] * p * DT).astype(int)
    inc = np.tile(p * DT * bias, (steps, 1))

    # the reference is the multi-bit neuron; with subtractive reset the K one-bit
    # compartments reproduce it exactly (Hermite's identity) ...
    assert np.array_equal(ref_counts, expanded_counts(inc, v0, K))
    # ... and the emulator is exactly the documented reset-to-zero behaviour
    assert np.array_equal(emu_counts, expanded_counts(inc, v0, K, reset="zero"))
    # the difference is bounded by the reset-to-zero rate of each compartment
    x = inc[0] / K
    rate_zero = K / (np.floor(1 / x) + 1)
    expected = rate_zero * steps
    assert np.all(np.abs(emu_counts.sum(0) - expected) <= K + 1)
    assert np.all(emu_counts.sum(0) <= ref_counts.sum(0) + K)


@upstream_cast
def test_compare_reports_layers_and_accuracy():
    rng = np.random.RandomState(0)
    images = rng.uniform(0, 1, (4, 8))
    labels = images[:, :3].argmax(axis=1)
    with nengo.Network(seed=0) as net:
        nengo_loihi.add_params(net)
        inp = nengo.Node(nengo.processes.PresentInput(images, 0.02))
        layer0 = nengo.Ensemble(
            8,
            1,
            neuron_type=relu(amplitude=0.01),
            gain=np.ones(8),
            bias=np.zeros(8),
            label="input",
        )
        layer1 = nengo.Ensemble(
            3,
            1,
            neuron_type=relu(amplitude=0.01),
            gain=np.ones(3),
            bias=np.zeros(3),
            label="hidden",
        )
        out = nengo.Node(size_in=3)
        nengo.Connection(inp, layer0.neurons, transform=300, synapse=None)
        nengo.Connection(layer0.neurons[:3], layer1.neurons, synapse=None)
        nengo.Connection(layer1.neurons, out, synapse=None)
        p_out = nengo.Probe(out)
        p_hidden = nengo.Probe(layer1.neurons)
        net.config[layer0].on_chip = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compare(
            net,
            80,
            p_out,
            [p_hidden],
            labels=labels,
            presentation_steps=20,
            score_steps=10,
        )
    json.dumps(result)
    assert result["n_samples"] == 4 and result["cores"] >= 1
    assert result["emulator_seconds_per_step"] > 0
    hidden = result["layers"]["hidden"]
    assert hidden["total_reference"] > 0
    # 1-bit drive <= 0.3 per step: reset-to-zero loses at most ~30% of spikes
    assert 0.6 < hidden["total_ratio"] <= 1.05


def test_max_spikes_bounds_the_needed_count(no_emulation):
    n = 4
    with nengo.Network(seed=0) as net:
        nengo.Ensemble(
            n,
            1,
            neuron_type=relu(max_spikes=1),
            gain=np.ones(n),
            bias=np.full(n, 3000.0),
            label="clipped",
        )
    report = check(net)
    assert report.ok, report
    assert report.ensembles[0]["max_count"] == 1


@upstream_cast
@pytest.mark.filterwarnings("ignore:Lost .* extra bits in weight rounding")
def test_negative_input_resynchronises_expanded_compartments():
    """Documents the Loihi 1 limit of Expand: voltages clip at zero on inhibition."""

    def count_histogram(w):
        with nengo.Network(seed=0) as net:
            a = nengo.Ensemble(1, 1, neuron_type=relu(), gain=[1.0], bias=[100.0])
            b = nengo.Ensemble(
                20,
                1,
                neuron_type=relu(),
                gain=np.ones(20),
                bias=np.linspace(1500, 3500, 20),
            )
            nengo.Connection(
                a.neurons, b.neurons, transform=np.full((20, 1), w), synapse=None
            )
            probe = nengo.Probe(b.neurons)
        with Simulator(net, strategy={b: Expand(4)}, target="sim") as sim:
            sim.run_steps(300)
        counts = np.round(sim.data[probe] * DT).astype(int)
        return np.bincount(counts.ravel(), minlength=5)

    # staggered compartments never fire all together at drives <= 3.5 per step
    assert count_histogram(0.0)[4] == 0
    # after an inhibitory spike all four voltages are zero: they fire in sync
    assert count_histogram(-5.0)[4] > 0.2 * 20 * 300


@upstream_cast
def test_substeps_strategy():
    from nengo_hybrid.hardware import Substeps

    n, steps, K = 10, 100, 4
    bias = np.linspace(500, 3500, n)  # up to 3.5 spikes per model step
    net, ens, probe = bias_network(n, bias)
    assert not check(net).ok
    report = check(net, strategy="substeps:4")
    assert report.ok, report
    row = report.ensembles[0]
    assert row["compartments"] == n and row["chip_steps_per_model_step"] == K

    with pytest.raises(BuildError, match="whole network"):
        Simulator(net, strategy={ens: Substeps(K)})

    with nengo.Simulator(net, dt=DT, progress_bar=False) as ref:
        ref.run_steps(steps)
    with Simulator(net, dt=DT, strategy=Substeps(K), target="sim") as emu:
        assert emu.dt == DT / K
        emu.run_steps(steps * K)
    ref_counts = np.round(ref.data[probe] * DT).sum(0)
    emu_counts = np.round(emu.data[probe] * DT / K).sum(0)
    # one compartment, drive <= 3.5/4 per chip step: reset to zero loses residuals
    v0 = hw_loihi.reference_initial_voltages(emu.model, ens)
    predicted = expanded_counts(np.tile(DT / K * bias, (steps * K, 1)), v0, 1, "zero")
    assert np.array_equal(emu_counts, predicted.sum(0))
    assert np.all(emu_counts <= ref_counts + 1)


@upstream_cast
@pytest.mark.parametrize("p", [1.0, 2.0])
def test_lifrate_base_is_rate_equivalent(p):
    n, steps = 10, 1000
    with nengo.Network(seed=0) as net:
        ens = nengo.Ensemble(
            n,
            1,
            neuron_type=HybridSpiking(nengo.LIFRate(), precision=p),
            gain=np.ones(n),
            bias=np.linspace(1.2, 4, n),
        )
        probe = nengo.Probe(ens.neurons)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LIF discretization notes
        with Simulator(net, target="sim") as emu:
            emu.run_steps(steps)
    ref_counts = np.round(ref.data[probe] * DT * p).sum(0)
    emu_counts = np.round(emu.data[probe] * DT * p).sum(0)
    # LIF compartments fire with integer periods and reset to zero: never faster,
    # at most ~20% slower (Loihi's rate aliasing) at these rates
    ratio = emu_counts / ref_counts
    assert np.all(ratio <= 1.02) and np.all(ratio >= 0.8), ratio
    assert not check(net).ensembles[0]["exact"]


# --- Thermometer strategy and host input encoding ----------------------------


def signed_input_network(p=2.0, levels=4, scale=1.0, bias=0.1, n=6, steps=120):
    """Hybrid neurons driven by a signed host signal through the spike encoder."""
    from nengo_hybrid.hardware.inputs import encode_node_inputs

    t = np.arange(steps)
    signal = np.stack([np.sin(2 * np.pi * t / 17), np.cos(2 * np.pi * t / 23)], axis=1)
    signal = 0.9 * scale * signal
    w = np.zeros((n, 2))
    w[: n // 2, 0], w[n // 2 :, 1] = 3.0, 3.0  # drives up to p * 3 * (0.9 + bias)
    with nengo.Network(seed=0) as net:
        node = nengo.Node(nengo.processes.PresentInput(signal, DT), label="signal")
        # output max(J, 0) in quanta of 1/p (as nengo_hybrid.networks.hybrid_relu)
        neuron_type = HybridSpiking(
            nengo.RectifiedLinear(amplitude=1 / DT), precision=p, amplitude=DT
        )
        ens = nengo.Ensemble(
            n,
            1,
            neuron_type=neuron_type,
            gain=np.ones(n),
            bias=np.full(n, bias),
            label="hidden",
        )
        nengo.Connection(node, ens.neurons, transform=w, synapse=None)
        probe = nengo.Probe(ens.neurons)
    (enc,) = encode_node_inputs(net, {node: scale}, levels=levels)
    return net, ens, probe, signal, w, enc


def test_thermometer_counts_round_the_drive():
    from nengo_hybrid.hardware.strategies import (
        Thermometer,
        as_strategy,
        thermometer_counts,
    )

    drive = np.array([[-1.0, 0.2, 0.6, 1.4, 2.6, 9.0]])
    assert thermometer_counts(drive, 3).tolist() == [[0, 0, 1, 1, 3, 3]]
    assert as_strategy("thermometer:3") == Thermometer(3) != Expand(3)
    assert Thermometer(3).max_count == 3 and not Thermometer(3).exact(
        load_profile("loihi2")
    )


def test_input_encoder_sends_exact_sigma_delta_counts():
    from nengo_hybrid.hardware.inputs import encoded_values

    levels, scale = 4, 1.0
    net, ens, probe, signal, w, enc = signed_input_network(levels=levels, scale=scale)
    assert enc["input_axons"] == 2 * 2 * levels
    with net:
        p_enc = nengo.Probe(enc["ensemble"].neurons)
    with nengo.Simulator(net, dt=DT, progress_bar=False) as ref:
        ref.run_steps(len(signal))
    counts = np.round(ref.data[p_enc]).astype(int)  # precision 1, amplitude dt: n
    assert counts.min() >= 0 and counts.max() <= 1  # one event per host neuron
    d = signal.shape[1]
    sums = counts.reshape(len(signal), 2, d, levels).sum(axis=-1)
    sent = (sums[:, 0] - sums[:, 1]) * scale / levels
    assert np.allclose(sent, encoded_values(signal, scale, levels))
    # error diffusion: the running sum never drifts more than one step of scale/levels
    assert np.abs(np.cumsum(sent - signal, axis=0)).max() <= scale / levels + 1e-9


@upstream_cast
@pytest.mark.filterwarnings("ignore:Lost .* extra bits in weight rounding")
def test_thermometer_on_emulator_is_exact_for_signed_inputs():
    from nengo_hybrid.hardware.inputs import encoded_values
    from nengo_hybrid.hardware.strategies import Thermometer, thermometer_counts

    p, levels, K = 2.0, 4, 8
    net, ens, probe, signal, w, enc = signed_input_network(p=p, levels=levels)
    steps = len(signal)
    with Simulator(net, dt=DT, strategy={ens: Thermometer(K)}, target="sim") as emu:
        emu.run_steps(steps + 1)
    emu_counts = np.round(emu.data[probe] * p).astype(int)  # output n / p
    # the chip gets host spikes one step late
    J = encoded_values(signal, 1.0, levels) @ w.T + 0.1
    expected = thermometer_counts(p * J, K)
    assert expected.max() > 1 and (J < 0).any()  # multi-bit counts, negative inputs
    assert np.array_equal(emu_counts[1:], expected)
    # Expand on the same input: reset to zero and clipping at zero lose the residual
    with Simulator(net, dt=DT, strategy={ens: Expand(K)}, target="sim") as emu:
        emu.run_steps(steps + 1)
    with nengo.Simulator(net, dt=DT, progress_bar=False) as ref:
        ref.run_steps(steps)
    expand_total = np.round(emu.data[probe] * p).sum()
    ref_total = np.round(ref.data[probe] * p).sum()
    assert expand_total < 0.9 * ref_total


def test_thermometer_needs_relu_base():
    from nengo_hybrid.hardware.strategies import Thermometer

    with nengo.Network() as net:
        ens = nengo.Ensemble(
            4, 1, neuron_type=HybridSpiking(nengo.LIFRate(), precision=2)
        )
    with pytest.raises(
        BuildError, match="Thermometer strategy needs a RectifiedLinear"
    ):
        hw_loihi.build_model(net, strategy={ens: Thermometer(2)})


def test_check_flags_node_inputs_and_strategy_semantics(no_emulation):
    from nengo_hybrid.hardware.inputs import encode_node_inputs
    from nengo_hybrid.hardware.strategies import Thermometer

    def network():
        with nengo.Network(seed=0) as net:
            node = nengo.Node(np.zeros(3), label="memory")
            ens = nengo.Ensemble(
                8,
                1,
                neuron_type=relu(2.0),
                gain=np.ones(8),
                bias=np.zeros(8),
                label="hidden",
            )
            nengo.Connection(node, ens.neurons, transform=np.ones((8, 3)), synapse=None)
        return net, node, ens

    net, node, ens = network()
    report = check(net, strategy=Expand(4), counts={ens: 4})
    kinds = {w.kind for w in report.warnings}
    assert {"node_input_encoding", "signed_integration", "reset_to_zero"} <= kinds
    net, node, ens = network()
    encode_node_inputs(net, {node: 1.0}, levels=2)
    report = check(net, strategy=Thermometer(5), counts={ens: 4})
    kinds = {w.kind for w in report.warnings}
    assert report.ok and "quantizer" in kinds
    assert not kinds & {"node_input_encoding", "signed_integration", "reset_to_zero"}
    assert any("memory_spikes" in h["object"] for h in report.host)
