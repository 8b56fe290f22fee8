"""`hardware.check` bounds what arrives at every neuron; `Simulator` enforces it.

Issue 12: ``check`` estimated spikes per step from ``max_rates`` alone, so
neuron-to-neuron input and inputs beyond the radius saturated the emulator
silently; ``hardware.Simulator`` ran what ``check`` refused; a dense
5000x5000 connection kept ``check`` splitting cores for 15 minutes.
"""

import importlib
import warnings

import nengo
import numpy as np
import pytest
from nengo.exceptions import BuildError

from nengo_hybrid import HybridSpiking
from nengo_hybrid.hardware import (
    Expand,
    HardwareCheckError,
    Simulator,
    Thermometer,
    check,
    load_profile,
)
from nengo_hybrid.hardware import loihi as hw_loihi
from nengo_hybrid.hardware.bounds import Kernel, drive_bounds, kernel, measure_counts
from nengo_hybrid.hardware.strategies import hybrid_counts

check_module = importlib.import_module("nengo_hybrid.hardware.check")
DT = 0.001

# nengo-loihi's emulator fills int arrays with NaN when it starts (upstream)
upstream_cast = pytest.mark.filterwarnings(
    "ignore:invalid value encountered in cast:RuntimeWarning"
)


def relu(p=1.0, **kwargs):
    return HybridSpiking(nengo.RectifiedLinear(), precision=p, **kwargs)


def issue_network():
    """The minimal case of issue 12: neuron-to-neuron input saturates ``post``."""
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(0.8, label="stim")
        pre = nengo.Ensemble(100, 1, neuron_type=relu(), label="pre")
        post = nengo.Ensemble(
            10,
            1,
            neuron_type=relu(),
            max_rates=nengo.dists.Uniform(100, 200),
            label="post",
        )
        nengo.Connection(stim, pre)
        nengo.Connection(
            pre.neurons, post.neurons, transform=np.full((10, 100), 0.02), synapse=0.005
        )
        probe = nengo.Probe(post.neurons)
    return net, post, probe


def reference_counts(net, probe, steps, p=1.0):
    with nengo.Simulator(net, dt=DT, progress_bar=False) as sim:
        sim.run_steps(steps)
    return np.round(sim.data[probe] * p * DT).astype(int)


# --- item 1: the bound --------------------------------------------------------


@upstream_cast
def test_neuron_to_neuron_input_is_bounded_not_estimated():
    net, post, probe = issue_network()
    ref = reference_counts(net, probe, 300)
    assert ref.max() > 100  # the reference needs hundreds of spikes per step

    report = check(net)
    assert not report.ok
    (v,) = [v for v in report.violations if v.kind == "spike_count_per_step"]
    assert v.obj == "<Ensemble 'post'>" and v.limit == 1
    assert v.value >= ref.max()  # a bound: never below what the reference does
    assert "bound on all inputs" in v.detail and "Expand(K=" in v.fix
    row = next(r for r in report.ensembles if r["ensemble"] == "<Ensemble 'post'>")
    assert row["count_is_bound"] and row["max_count"] == v.value

    # the emulator really loses them: one spike per step at most
    with pytest.warns(UserWarning, match="allow_violations=True"):
        with Simulator(net, target="sim", allow_violations=True) as sim:
            sim.run_steps(300)
    emu = np.round(sim.data[probe] * DT).astype(int)
    assert emu.max() == 1 and emu.sum() < 0.05 * ref.sum()


def test_input_beyond_the_radius_is_bounded():
    with nengo.Network(seed=1) as net:
        stim = nengo.Node(3.0, label="stim")  # three times the radius
        ens = nengo.Ensemble(
            20, 1, neuron_type=relu(), max_rates=nengo.dists.Uniform(300, 500)
        )
        nengo.Connection(stim, ens, synapse=None)
        probe = nengo.Probe(ens.neurons)
    ref = reference_counts(net, probe, 200)
    assert ref.max() > 1  # max_rates (<= 500 Hz) promised at most one per step
    report = check(net)
    (v,) = [v for v in report.violations if v.kind == "spike_count_per_step"]
    assert v.value >= ref.max()
    # a constant input is known exactly: the bound is what the reference does
    assert v.value == ref.max()
    assert check(net, strategy=Thermometer(v.value)).ok


def test_unknown_input_warns_and_a_sample_measures():
    with nengo.Network(seed=0) as net:
        wave = nengo.Node(lambda t: np.sin(20 * t), label="wave")
        ens = nengo.Ensemble(10, 1, neuron_type=relu(), label="ens")
        nengo.Connection(wave, ens)
    report = check(net)
    assert report.ok  # a warning: the check cannot know
    (w,) = [w for w in report.warnings if w.kind == "spike_count_unknown"]
    assert w.obj == "<Ensemble 'ens'>" and "<Node 'wave'>" in w.detail
    assert "Python function" in w.detail and "sample=" in w.fix

    sample = {wave: 3 * np.sin(np.linspace(0, 10, 400))[:, None]}  # beyond radius
    report = check(net, sample=sample)
    assert not [w for w in report.warnings if w.kind == "spike_count_unknown"]
    (row,) = report.ensembles
    assert row["count_source"].startswith("measured on the sample (400 steps")
    assert not row["count_is_bound"]
    measured, n = measure_counts(net, sample)
    assert n == 400 and row["max_count"] == measured[ens] > 1
    assert not report.ok  # three times the radius needs more than one spike
    # the node's own output is restored
    assert callable(wave.output)
    with pytest.raises(ValueError, match=r"sample for <Node 'wave'> must be shaped"):
        measure_counts(net, {wave: np.zeros((5, 2))})


def positive_feedback(max_spikes=None):
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(0.5)
        ens = nengo.Ensemble(
            5, 1, neuron_type=relu(max_spikes=max_spikes), label="loop"
        )
        nengo.Connection(stim, ens)
        nengo.Connection(
            ens.neurons, ens.neurons, transform=np.full((5, 5), 0.01), synapse=0.01
        )
    return net, ens


def test_recurrent_loops():
    net, ens = positive_feedback()
    bounds = drive_bounds(net)
    assert bounds[ens].max_count is None and "recurrent loop" in bounds[ens].reason
    (w,) = [w for w in check(net).warnings if w.kind == "spike_count_unknown"]
    assert "keeps growing" in w.detail

    # max_spikes caps the loop: a bound again
    net, ens = positive_feedback(max_spikes=2)
    report = check(net, strategy=Expand(2))
    assert report.ok, report
    assert report.ensembles[0]["max_count"] == 2

    # a loop with gain < 1 converges: bounded, and above what the reference does
    with nengo.Network(seed=2) as net:
        stim = nengo.Node(0.8)
        ens = nengo.Ensemble(30, 1, neuron_type=relu(), label="integrator")
        nengo.Connection(stim, ens, transform=0.5)
        nengo.Connection(ens, ens, transform=0.7, synapse=0.05)
        probe = nengo.Probe(ens.neurons)
    bound = drive_bounds(net)[ens]
    assert bound.max_count is not None and bound.reason is None
    assert bound.max_count >= reference_counts(net, probe, 1000).max()


@pytest.mark.parametrize("tau", [None, 0.002, 0.005, 0.05])
def test_filtered_spike_train_bound(tau):
    """Sigma-delta spikes through a synapse never exceed the window bound."""
    rng = np.random.RandomState(0)
    kern = kernel(None if tau is None else nengo.Lowpass(tau), DT)
    n, steps = 50, 2000
    d = rng.uniform(0.05, 3.0, n)  # largest drive per neuron
    inc = rng.uniform(0, 1, (steps, n)) ** 0.3 * d  # drives up to d
    counts = hybrid_counts(inc, rng.uniform(0, 1, n))
    if tau is None:
        filtered = counts.astype(float)
    else:
        filtered = nengo.Lowpass(tau).filt(counts.astype(float), dt=DT, y0=0)
    c = np.ceil(d)
    upper = np.minimum(kern.counts_upper(d, c), kern.values(np.zeros(n), c)[1])
    assert np.all(filtered.max(axis=0) <= upper + 1e-9)
    if tau is not None:  # tighter than one count per step everywhere
        assert np.all(upper < c)
    assert isinstance(
        Kernel([1.0]).counts_upper(np.array([0.5]), np.ones(1)), np.ndarray
    )


# --- item 2: the Simulator runs the same checks ---------------------------------


def test_simulator_refuses_what_check_refuses():
    net, _, _ = issue_network()
    expected = [v.message for v in check(net).violations]
    with pytest.raises(HardwareCheckError) as info:
        Simulator(net, target="sim")
    err = info.value
    assert isinstance(err, BuildError)
    assert "does not fit the 'loihi1' profile: 1 violation(s)" in str(err)
    assert [v.message for v in err.report.violations] == expected
    for message in expected:
        assert message in str(err)
    assert "Fix:" in str(err) and "allow_violations=True" in str(err)


@upstream_cast
def test_allow_violations_is_recorded():
    net, _, _ = issue_network()
    with pytest.warns(UserWarning, match="running despite 1 hardware check"):
        sim = Simulator(net, target="sim", allow_violations=True)
    with sim:
        sim.step()
    report = sim.check_report
    assert report.allow_violations and not report.ok
    data = report.to_dict()
    assert data["allow_violations"] and data["ran_despite_violations"]
    assert "RUN ANYWAY (allow_violations=True)" in str(report)
    assert any("allow_violations=True" in note for note in report.notes)

    # a network that fits: the same report, no override
    with nengo.Network(seed=0) as ok_net:
        nengo.Ensemble(4, 1, neuron_type=relu(), gain=np.ones(4), bias=np.ones(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        with Simulator(ok_net, target="sim") as sim:
            sim.step()
    data = sim.check_report.to_dict()
    assert data["ok"] and not data["ran_despite_violations"]


def test_simulator_refuses_shape_violations_before_building(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("built although the shapes decide")

    monkeypatch.setattr(hw_loihi.nengo_loihi.Simulator, "__init__", refuse)
    net, profile = wide_network(n_pre=200, limit=100)
    with pytest.raises(HardwareCheckError, match="input_axons = 200 .limit: 100."):
        Simulator(net, target="sim", profile=profile)


def test_discretization_overflow_is_refused_whatever_the_override():
    with nengo.Network(seed=0) as net:
        kw = dict(neuron_type=relu(), gain=np.ones(4))
        a = nengo.Ensemble(4, 1, bias=np.full(4, 100.0), label="a", **kw)
        b = nengo.Ensemble(4, 1, bias=np.zeros(4), label="b", **kw)
        nengo.Connection(a.neurons, b.neurons, transform=np.full((4, 4), 1e4))
    for allow in (False, True):
        with pytest.raises(hw_loihi.DiscretizationError, match="<Ensemble 'b'>"):
            Simulator(net, target="sim", allow_violations=allow)


# --- item 3: shapes first, and a split that answers -----------------------------


def wide_network(n_pre, n_post=8, limit=None):
    with nengo.Network(seed=0) as net:
        pre = nengo.Ensemble(n_pre, 1, neuron_type=relu(), label="wide")
        post = nengo.Ensemble(n_post, 1, neuron_type=relu(), label="narrow")
        nengo.Connection(
            pre.neurons, post.neurons, transform=np.full((n_post, n_pre), 1e-5)
        )
    if limit is None:
        return net, "loihi1"
    data = load_profile("loihi1").data
    limits = dict(data["limits"], input_axons_per_core={"value": limit, "source": "t"})
    return net, dict(data, name="few-axons", limits=limits)


def test_shapes_decide_before_any_build(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("check built the network although the shapes decide")

    monkeypatch.setattr(check_module, "build_model", refuse)
    monkeypatch.setattr(check_module, "drive_bounds", refuse)
    net, profile = wide_network(n_pre=200, limit=100)
    report = check(net, profile=profile)
    (v,) = report.violations
    assert v.kind == "input_axons" and v.obj == "<Ensemble 'narrow'>"
    assert (v.limit, v.value) == (100, 200)
    assert "known from the shapes" in v.detail and "200 from <Neurons" in v.detail
    assert "splitting the target does not help" in v.fix
    assert report.notes[-1].startswith("Build skipped")


def test_dense_5000_by_5000_answers_from_the_shapes(monkeypatch):
    """The issue's case: 25 million weights, input axons decide it at once."""

    def refuse(*args, **kwargs):
        raise AssertionError("check built the network although the shapes decide")

    monkeypatch.setattr(check_module, "build_model", refuse)
    n = 5000
    with nengo.Network(seed=0) as net:
        a = nengo.Ensemble(n, 1, neuron_type=relu(), label="a")
        b = nengo.Ensemble(n, 1, neuron_type=relu(), label="b")
        nengo.Connection(a.neurons, b.neurons, transform=np.zeros((n, n), np.float32))
    report = check(net)
    assert [(v.kind, v.obj, v.value) for v in report.violations] == [
        ("input_axons", "<Ensemble 'b'>", 5000)
    ]


def split_network(kind):
    rng = np.random.RandomState(0)
    n, m = 300, 600
    with nengo.Network(seed=0) as net:
        a = nengo.Ensemble(n, 1, neuron_type=relu(), label="a")
        b = nengo.Ensemble(m, 1, neuron_type=relu(), label="b")
        if kind == "sparse":
            idx = np.stack([rng.randint(m, size=2000), rng.randint(n, size=2000)], 1)
            transform = nengo.Sparse(
                (m, n), indices=idx, init=rng.uniform(-1e-3, 1e-3, 2000)
            )
        elif kind == "constant":  # identical rows: nengo-loihi shares their memory
            transform = np.full((m, n), 1e-4)
        else:
            transform = rng.uniform(-1e-3, 1e-3, (m, n))
        nengo.Connection(a.neurons, b.neurons, transform=transform)
        nengo.Connection(a, b)  # decoded: decode neurons and encoders
        nengo.Probe(b.neurons)
    return net


@pytest.mark.parametrize("kind", ["dense", "constant", "sparse"])
@pytest.mark.parametrize("strategy", [None, Expand(2)])
def test_vectorised_split_equals_nengo_loihis(monkeypatch, kind, strategy):
    net = split_network(kind)

    def build():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return hw_loihi.build_model(net, strategy=strategy, validate=False)

    ours = build()
    monkeypatch.setattr(hw_loihi, "split_synapse", hw_loihi.loihi_split.split_synapse)
    theirs = build()
    assert len(ours.blocks) == len(theirs.blocks) > 2
    for x, y in zip(ours.blocks, theirs.blocks):
        assert x.label == y.label and x.utilization() == y.utilization()
        assert len(x.synapses) == len(y.synapses)
        for s, t in zip(x.synapses, y.synapses):
            assert (s.label, s.n_axons, s.pop_type) == (t.label, t.n_axons, t.pop_type)
            assert vars(s.synapse_cfg) == vars(t.synapse_cfg)
            for mine, theirs_ in [(s.weights, t.weights), (s.indices, t.indices)]:
                assert len(mine) == len(theirs_)
                for u, v in zip(mine, theirs_):
                    assert u.dtype == v.dtype and np.array_equal(u, v)
            for attr in ("axon_to_weight_map", "axon_compartment_bases"):
                u, v = getattr(s, attr), getattr(t, attr)
                assert (u is None) == (v is None)
                if u is not None:
                    assert u.dtype == v.dtype and np.array_equal(u, v)
        for a, b in zip(x.axons, y.axons):
            assert a.n_axons == b.n_axons
            assert np.array_equal(a.compartment_map, b.compartment_map)


def test_presynaptic_cores_are_split_for_their_output_axons():
    """A dense 1000x1000 connection: 10 target cores need 10 axons per neuron."""
    rng = np.random.RandomState(0)
    with nengo.Network(seed=0) as net:
        a = nengo.Ensemble(1000, 1, neuron_type=relu(), label="a")
        b = nengo.Ensemble(1000, 1, neuron_type=relu(), label="b")
        w = rng.uniform(-1e-5, 1e-5, (1000, 1000))
        nengo.Connection(a.neurons, b.neurons, transform=w)
    report = check(net)
    assert report.ok, report
    assert all(row["output_axons"] <= 4096 for row in report.cores)
    cores_of = [row["ensemble"] for row in report.cores]
    assert cores_of.count("<Ensemble 'a'>") > 1  # split for its output axons
    # nengo-loihi's own validation agrees (it raises on any overflow)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = hw_loihi.build_model(net, validate=True)
    assert len(model.blocks) == report.n_cores


def test_passthrough_nodes_and_direct_mode():
    with nengo.Network(seed=0) as net:
        stim = nengo.Node([0.3, -0.2])
        direct = nengo.Ensemble(1, 2, neuron_type=nengo.Direct())
        nengo.Connection(stim, direct)
        through = nengo.Node(size_in=2)  # passthrough: its input is its range
        nengo.Connection(stim, through, transform=10)
        a = nengo.Ensemble(10, 2, neuron_type=relu(), label="a")
        nengo.Connection(through, a, synapse=None)
        b = nengo.Ensemble(10, 1, neuron_type=relu(), label="b")
        nengo.Connection(direct, b, function=lambda x: x[0])
        probe = nengo.Probe(a.neurons)
    bounds = drive_bounds(net)
    assert bounds[a].max_count == reference_counts(net, probe, 50).max() > 1
    assert bounds[b].max_count is None and "Direct-mode" in bounds[b].reason
