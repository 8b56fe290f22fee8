import nengo
import numpy as np
import pytest
from nengo.exceptions import ValidationError

from nengo_hybrid import HybridSpiking

BASES = [
    nengo.RectifiedLinear(),
    nengo.LIFRate(),
    nengo.Tanh(),
    nengo.Sigmoid(),
]


def run_step(neuron_type, rates, dt=0.001, voltage=None, rng=None):
    """Drive ``neuron_type.step`` with given base rates (n_steps, n_neurons)."""
    rng = np.random.RandomState(0) if rng is None else rng
    n_steps, n_neurons = rates.shape
    v = rng.uniform(0, 1, n_neurons) if voltage is None else voltage.copy()
    v0 = v.copy()
    out = np.zeros_like(rates)
    for t in range(n_steps):
        neuron_type.step(dt, rates[t], out[t], v)
    return out, v0, v


def probe_spikes(neuron_type, base_seed=3, t=0.2):
    with nengo.Network(seed=base_seed) as net:
        stim = nengo.Node(lambda t: np.sin(20 * t))
        ens = nengo.Ensemble(
            40, 1, neuron_type=neuron_type, max_rates=nengo.dists.Uniform(100, 350)
        )
        nengo.Connection(stim, ens)
        probe = nengo.Probe(ens.neurons)
    with nengo.Simulator(net, progress_bar=False) as sim:
        sim.run(t)
    return sim.data[probe]


@pytest.mark.parametrize("base", [nengo.RectifiedLinear(), nengo.LIFRate()])
def test_precision_one_is_regular_spiking(base):
    hybrid = probe_spikes(HybridSpiking(base, precision=1.0))
    regular = probe_spikes(nengo.RegularSpiking(base))
    assert np.count_nonzero(regular) > 0
    np.testing.assert_array_equal(hybrid, regular)


def test_precision_above_one_differs_from_regular_spiking():
    # control for the test above: the comparison does see a difference
    hybrid = probe_spikes(HybridSpiking(nengo.RectifiedLinear(), precision=2.0))
    regular = probe_spikes(nengo.RegularSpiking(nengo.RectifiedLinear()))
    assert not np.array_equal(hybrid, regular)


@pytest.mark.parametrize("precision", [0.3, 1.0, 7.0, 250.0])
@pytest.mark.parametrize("signed", [False, True])
def test_error_below_one_quantum(precision, signed):
    dt, amplitude = 0.001, 0.5
    rng = np.random.RandomState(1)
    rates = rng.uniform(-400 if signed else 0, 900, size=(500, 30))
    neuron = HybridSpiking(
        nengo.RectifiedLinear(), precision=precision, amplitude=amplitude
    )
    out, v0, v_end = run_step(neuron, rates, dt=dt)

    quantum = amplitude / (precision * dt)
    step_error = out - amplitude * rates
    assert np.all(np.abs(step_error) < quantum)
    # the error is diffused, not lost: the integral is off by less than one quantum
    cumulative = np.cumsum(step_error, axis=0) * dt
    assert np.all(np.abs(cumulative) < quantum * dt)
    np.testing.assert_allclose(cumulative[-1], (v0 - v_end) * quantum * dt, atol=1e-9)


def test_large_precision_approaches_rate():
    rates = np.random.RandomState(2).uniform(0, 300, size=(200, 50))
    errors = []
    for precision in [1, 10, 100, 1000]:
        out, _, _ = run_step(
            HybridSpiking(nengo.RectifiedLinear(), precision=precision), rates
        )
        errors.append(np.abs(out - rates).mean())
    assert all(b < a / 5 for a, b in zip(errors, errors[1:]))


def test_max_spikes_caps_count_and_carries_residual():
    dt, precision = 0.001, 10.0
    # 3.5 spikes per step wanted for 4 steps, then silence: cap 2 per step
    rates = np.zeros((12, 1))
    rates[:4] = 3.5 / (precision * dt)
    neuron = HybridSpiking(nengo.RectifiedLinear(), precision=precision, max_spikes=2)
    out, _, v_end = run_step(neuron, rates, dt=dt, voltage=np.zeros(1))
    counts = np.round(out[:, 0] * precision * dt).astype(int)
    assert counts.max() == 2
    assert counts.sum() == 14  # everything is emitted eventually
    assert 0 <= v_end[0] < 1
    np.testing.assert_array_equal(counts, [2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0])


def test_signed_base_gives_signed_counts():
    out = probe_spikes(HybridSpiking(nengo.Tanh(), precision=3.0))
    assert out.min() < 0 < out.max()


@pytest.mark.parametrize("base", BASES, ids=lambda b: type(b).__name__)
def test_tuning_methods_follow_base(base):
    neuron = HybridSpiking(base, precision=5.0, amplitude=0.3)
    max_rates = np.array([250.0, 300.0, 350.0])
    intercepts = np.array([-0.5, 0.0, 0.4])
    gain, bias = neuron.gain_bias(max_rates, intercepts)
    base_gain, base_bias = base.gain_bias(max_rates, intercepts)
    np.testing.assert_allclose(gain, base_gain)
    np.testing.assert_allclose(bias, base_bias)
    np.testing.assert_allclose(
        neuron.max_rates_intercepts(gain, bias), base.max_rates_intercepts(gain, bias)
    )
    x = np.linspace(-1, 1, 11)
    np.testing.assert_allclose(neuron.rates(x, gain, bias), base.rates(x, gain, bias))


@pytest.mark.parametrize("base", BASES, ids=lambda b: type(b).__name__)
def test_runs_in_reference_simulator(base):
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(0.5)
        ens = nengo.Ensemble(20, 1, neuron_type=HybridSpiking(base, precision=4.0))
        nengo.Connection(stim, ens)
        out = nengo.Probe(ens, synapse=0.01)
        voltage = nengo.Probe(ens.neurons, "voltage")
    with nengo.Simulator(net, progress_bar=False) as sim:
        sim.run(0.3)
    assert np.all(np.isfinite(sim.data[out]))
    assert sim.data[voltage].shape == (300, 20)
    assert abs(sim.data[out][-50:].mean() - 0.5) < 0.2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(precision=0), "precision.*greater than 0"),
        (dict(precision=-2), "precision.*greater than 0"),
        (dict(precision=float("nan")), "precision.*finite"),
        (dict(precision=float("inf")), "precision.*finite"),
        (dict(max_spikes=0), "max_spikes.*greater than or equal to 1"),
        (dict(amplitude=0), "amplitude.*greater than 0"),
        # NumPy scalars and 0-d arrays are checked too (not only Python floats)
        (dict(precision=np.float32("inf")), "precision.*finite"),
        (dict(precision=np.float32("nan")), "precision.*finite"),
        (dict(precision=np.array(np.inf)), "precision.*finite"),
        (dict(amplitude=float("nan")), "amplitude.*finite"),
        (dict(amplitude=float("inf")), "amplitude.*finite"),
        (dict(amplitude=np.float32("nan")), "amplitude.*finite"),
        (dict(amplitude=np.float64("-inf")), "amplitude.*finite"),
        (dict(amplitude=np.float32(-1)), "amplitude.*greater than 0"),
    ],
)
def test_invalid_parameters(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        HybridSpiking(nengo.RectifiedLinear(), **kwargs)


def test_numpy_scalar_parameters_accepted():
    # control for test_invalid_parameters: finite NumPy scalars are fine
    neuron = HybridSpiking(
        nengo.RectifiedLinear(), precision=np.float32(4.0), amplitude=np.float64(0.5)
    )
    assert (neuron.precision, neuron.amplitude) == (4.0, 0.5)
    assert neuron.quantum == 0.125


@pytest.mark.parametrize(
    "base, match",
    [
        (nengo.LIF(), "rate .*non-spiking.*LIFRate"),
        (nengo.RegularSpiking(nengo.LIFRate()), "rate .*non-spiking"),
        (nengo.Direct(), "Direct"),
        ("relu", "NeuronType"),
    ],
)
def test_invalid_base_type(base, match):
    with pytest.raises(ValidationError, match=match):
        HybridSpiking(base)
