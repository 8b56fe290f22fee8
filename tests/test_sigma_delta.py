"""`SigmaDelta`: Lava's sigma-delta neuron in Nengo and NengoDL."""

import nengo
import numpy as np
import pytest
from nengo.exceptions import ValidationError

from nengo_hybrid import SigmaDelta


class LavaSigmaDeltaFloat:
    """Lava 0.10.0's ``PySigmaDeltaModelFloat`` (``lava/proc/sdn/models.py``).

    Transcribed line by line (``sigma_dynamics``, ``activation_dynamics`` with
    ``ActivationMode.RELU``, ``delta_dynamics``, ``dynamics``), all state
    starting at zero as Lava's ``Var(init=0)``. ``run_spk`` receives ``a_in``
    and returns ``s_out``.
    """

    def __init__(self, n, vth, bias, cum_error):
        self.vth = vth
        self.bias = bias
        self.cum_error = cum_error
        self.sigma = np.zeros(n)
        self.act = np.zeros(n)
        self.residue = np.zeros(n)
        self.error = np.zeros(n)

    def delta_dynamics(self, act_data):
        delta = act_data - self.act + self.residue

        if self.cum_error:
            self.error += delta
            s_out = np.where(np.abs(self.error) >= self.vth, delta, 0)
            self.error *= 1 - (np.abs(s_out) > 0)
        else:
            s_out = np.where(np.abs(delta) >= self.vth, delta, 0)
        self.residue = delta - s_out
        return s_out

    def run_spk(self, a_in_data):
        self.sigma = a_in_data + self.sigma
        act = np.maximum(self.sigma + self.bias, 0)
        s_out = self.delta_dynamics(act)
        self.act = act
        return s_out


def random_currents(n_steps=200, n_neurons=16, seed=0):
    """Input currents on a 1/64 grid, so sums are exact in float64."""
    rng = np.random.RandomState(seed)
    steps = rng.randint(-40, 41, size=(n_steps, n_neurons)) / 64
    held = rng.rand(n_steps, n_neurons) < 0.4  # some inputs hold still
    steps[held] = 0
    return np.cumsum(steps, axis=0)


def lava_output(currents, bias, vth, cum_error):
    """Receiver's reconstruction (sum of s_out) of Lava's model driven by ``currents``.

    Lava's sigma dendrite integrates its input, so the input is the current's
    change each step; ``sigma + bias`` is then Nengo's ``J``.
    """
    lava = LavaSigmaDeltaFloat(currents.shape[1], vth, bias, cum_error)
    a_in = np.diff(currents, axis=0, prepend=0)
    sent = np.array([lava.run_spk(a) for a in a_in])
    return np.cumsum(sent, axis=0), sent


def nengo_output(currents, bias, neuron_type):
    n_steps, n_neurons = currents.shape
    with nengo.Network() as net:
        stim = nengo.Node(nengo.processes.PresentInput(currents, 0.001))
        ens = nengo.Ensemble(
            n_neurons, 1, gain=np.ones(n_neurons), bias=bias, neuron_type=neuron_type
        )
        nengo.Connection(stim, ens.neurons, synapse=None)
        probe = nengo.Probe(ens.neurons)
    with nengo.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(n_steps)
    return sim.data[probe]


@pytest.mark.parametrize("cum_error", [False, True])
@pytest.mark.parametrize("vth", [0.0, 0.3, 1.0])
def test_reference_simulator_equals_lava_float_model(vth, cum_error):
    currents = random_currents(seed=int(vth * 10) + cum_error)
    bias = np.linspace(-0.5, 0.5, currents.shape[1])
    expected, sent = lava_output(currents, bias, vth, cum_error)
    got = nengo_output(currents, bias, SigmaDelta(threshold=vth, cum_error=cum_error))
    np.testing.assert_array_equal(got, expected)
    if vth > 0:
        # a meaningful comparison: some changes are held back, some are sent
        assert 0 < np.count_nonzero(sent) < np.count_nonzero(np.diff(currents, axis=0))


@pytest.mark.parametrize(
    "wrong",
    [
        SigmaDelta(threshold=1.0, cum_error=False),
        SigmaDelta(threshold=1.1, cum_error=True),
    ],
    ids=["cum_error flipped", "threshold perturbed"],
)
def test_comparison_detects_a_different_model(wrong):
    """Control: Lava with cum_error=True, vth=1 differs from the wrong neurons."""
    currents = random_currents(seed=1)
    bias = np.zeros(currents.shape[1])
    expected, _ = lava_output(currents, bias, 1.0, cum_error=True)
    assert not np.array_equal(nengo_output(currents, bias, wrong), expected)


def test_amplitude_scales_output_and_threshold_zero_is_the_rate():
    currents = random_currents(n_steps=50)
    bias = np.zeros(currents.shape[1])
    exact = nengo_output(currents, bias, SigmaDelta(threshold=0, amplitude=0.5))
    np.testing.assert_array_equal(exact, 0.5 * np.maximum(currents, 0))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"threshold": -1}, "threshold"),
        ({"threshold": float("nan")}, "finite"),
        ({"threshold": float("inf")}, "finite"),
        ({"amplitude": 0}, "amplitude"),
        ({"base_type": nengo.LIF()}, "rate"),
        ({"base_type": nengo.Direct()}, "Direct"),
    ],
)
def test_invalid_parameters_are_rejected(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        SigmaDelta(**kwargs)


def test_metrics_count_events_and_payload_bits():
    from nengo_hybrid import metrics

    currents = random_currents(seed=3)
    bias = np.zeros(currents.shape[1])
    neuron_type = SigmaDelta(threshold=0.5, amplitude=0.25)
    output = nengo_output(currents, bias, neuron_type)
    _, sent = lava_output(currents, bias, 0.5, cum_error=False)
    deltas = metrics.sent_deltas(output, neuron_type)
    np.testing.assert_allclose(deltas, sent, atol=1e-12)
    assert metrics.delta_events(deltas) == np.count_nonzero(sent) > 0
    # control: the rate network (threshold 0) sends more messages
    exact = SigmaDelta(threshold=0.0, amplitude=0.25)
    exact_deltas = metrics.sent_deltas(nengo_output(currents, bias, exact), exact)
    assert metrics.delta_events(exact_deltas) > metrics.delta_events(deltas)

    # widths: sign + bit length of round(|v| / resolution)
    values = np.array([[0.0, 1.0, -1.0], [3.0, -4.0, 0.26]])
    assert metrics.message_bits(values).tolist() == [2, 2, 3, 4, 1]
    assert metrics.message_bits(values, resolution=0.25).tolist() == [4, 4, 5, 6, 2]
    assert metrics.payload_bits(values) == 4
    assert metrics.payload_bits(np.zeros((3, 2))) == 0
    with pytest.raises(ValidationError, match="resolution"):
        metrics.payload_bits(values, resolution=0)
    with pytest.raises(ValidationError, match="sent_deltas is for"):
        metrics.sent_deltas(output, nengo.RectifiedLinear())


# ------------------------------------------------------------------ NengoDL

nengo_dl = pytest.importorskip("nengo_dl")
tf = pytest.importorskip("tensorflow")
from test_dl import fit_losses, hybrid_net, input_gradient  # noqa: E402


def dl_net(neuron_type):
    """A 30-neuron ensemble driven by a sine, its neuron probe (from test_dl)."""
    return hybrid_net(neuron_type)


@pytest.mark.parametrize(
    "neuron_type",
    [
        SigmaDelta(threshold=5.0),
        SigmaDelta(threshold=5.0, cum_error=True, amplitude=0.1),
        SigmaDelta(nengo.LIFRate(), threshold=8.0),
    ],
    ids=repr,
)
def test_nengo_dl_equals_reference_simulator(neuron_type):
    net, ens, probe = dl_net(neuron_type)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run(0.3)
    # pytest.ini turns NengoDL's "falling back to Python" warning into an error
    with nengo_dl.Simulator(net, progress_bar=False) as sim:
        sim.run(0.3)
    messages = np.count_nonzero(np.diff(ref.data[probe], axis=0))
    assert messages > 100
    np.testing.assert_allclose(sim.data[probe], ref.data[probe], rtol=1e-9, atol=1e-9)


def test_nengo_dl_comparison_detects_another_threshold():
    """Control: a 10% larger threshold gives visibly different output."""
    net, _, probe = dl_net(SigmaDelta(threshold=5.0))
    other, _, other_probe = dl_net(SigmaDelta(threshold=5.5))
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run(0.3)
    with nengo_dl.Simulator(other, progress_bar=False) as sim:
        sim.run(0.3)
    assert not np.allclose(sim.data[other_probe], ref.data[probe], atol=1e-3)


def test_training_gradient_is_the_base_rate_gradient():
    sd_grad, sd_out = input_gradient(SigmaDelta(threshold=20.0))
    rate_grad, rate_out = input_gradient(nengo.RectifiedLinear())
    assert not np.allclose(sd_out, rate_out)  # forward: held-back changes
    assert np.count_nonzero(rate_grad) > 0
    np.testing.assert_allclose(sd_grad, rate_grad, rtol=1e-10, atol=1e-12)


def test_threshold_changes_between_fit_batches_without_rebuild():
    from nengo_hybrid.dl import set_threshold

    neuron_type = SigmaDelta(threshold=0.0)
    (fixed_1, fixed_2), fixed_traces, fixed_vth = fit_losses(neuron_type)
    assert fixed_1 == fixed_2 and fixed_vth == 0.0  # control: nothing changes
    (loss_1, loss_2), traces, vth = fit_losses(
        neuron_type, change=lambda sim: set_threshold(sim, 30.0)
    )
    assert loss_1 == fixed_1 and loss_2 != loss_1
    assert vth == 30.0 and traces == fixed_traces


def test_set_threshold_rejects_invalid_and_other_kinds():
    from nengo_hybrid import HybridSpiking
    from nengo_hybrid.dl import get_annealed, set_annealed, set_precision, set_threshold

    net, ens, _ = dl_net(SigmaDelta(threshold=1.0))
    with net:
        hybrid = nengo.Ensemble(5, 1, neuron_type=HybridSpiking(nengo.LIFRate()))
    with nengo_dl.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(ValidationError, match="finite and >= 0"):
            set_threshold(sim, -1.0)
        with pytest.raises(ValidationError, match="not a HybridSpiking"):
            set_precision(sim, {ens: 2.0})
        set_threshold(sim, 0.0)  # exact: allowed
        set_annealed(sim, {ens: 3.0, hybrid: 7.0})
        assert get_annealed(sim) == {ens: 3.0, hybrid: 7.0}


def sigma_delta_classifier(seed=0):
    with nengo.Network(seed=seed) as net:
        inp = nengo.Node(np.zeros(2))
        ens = nengo.Ensemble(
            16,
            1,
            neuron_type=SigmaDelta(threshold=0.0),
            max_rates=nengo.dists.Uniform(50, 100),
            label="sd",
        )
        nengo.Connection(inp, ens.neurons, transform=np.ones((16, 2)) * 0.5)
        out = nengo.Node(size_in=1)
        conn = nengo.Connection(ens.neurons, out, transform=np.full((1, 16), 1e-2))
        probe = nengo.Probe(out)
    return net, ens, conn, probe


def test_fit_anneals_the_threshold_and_freeze_keeps_it():
    from nengo_hybrid import dl, training
    from nengo_hybrid.schedules import Linear

    net, ens, conn, probe = sigma_delta_classifier()
    rng = np.random.RandomState(0)
    x = rng.rand(8, 5, 2)
    y = x.sum(axis=-1, keepdims=True)
    with net:
        nengo_dl.configure_settings(stateful=False)
    with nengo_dl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(1e-2), loss="mse")
        before = sim.data[conn].weights.copy()
        history = training.fit(
            sim,
            {net.all_nodes[0]: x},
            {probe: y},
            schedule=Linear(0, 6),
            epochs=2,
            progress=False,
        )
        after = sim.data[conn].weights
        thresholds = [r["precision"]["sd"] for r in history.batches]
        assert dl.get_threshold(sim)[ens] == 6.0
        training.freeze(sim, net)
    assert thresholds == [0.0, 2.0, 4.0, 6.0]  # from exact to deployment
    assert not np.allclose(before, after)  # gradient reached the weights
    assert isinstance(ens.neuron_type, SigmaDelta)
    assert ens.neuron_type.threshold == 6.0


def test_fit_rejects_a_threshold_schedule_for_hybrid_neurons():
    from nengo_hybrid import HybridSpiking, training
    from nengo_hybrid.schedules import Geometric, Linear

    net, ens, _, probe = sigma_delta_classifier()
    ens.neuron_type = HybridSpiking(nengo.RectifiedLinear())
    x, y = np.zeros((4, 5, 2)), np.zeros((4, 5, 1))
    with nengo_dl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.SGD(0.0), loss="mse")
        with pytest.raises(ValidationError, match="cannot drive HybridSpiking"):
            training.fit(sim, x, {probe: y}, schedule=Linear(0, 6), progress=False)
        # control: a precision schedule trains
        training.fit(sim, x, {probe: y}, schedule=Geometric(8, 2), progress=False)


def test_frozen_network_rebuilds_sigma_delta(tmp_path):
    from nengo_hybrid.frozen import FrozenNetwork

    def build():
        net, ens, conn, probe = sigma_delta_classifier()
        with nengo.Simulator(net, progress_bar=False) as sim:  # trained params
            ens.gain, ens.bias = sim.data[ens].gain, sim.data[ens].bias
            ens.encoders = sim.data[ens].encoders
        return net, ens

    net, ens = build()
    ens.neuron_type = SigmaDelta(threshold=2.5, cum_error=True)
    FrozenNetwork.from_network(net, {"recipe": {}}).write(tmp_path / "f.npz")
    loaded = FrozenNetwork.read(tmp_path / "f.npz")
    assert loaded.thresholds == {"sd": 2.5} and loaded.precisions == {}

    other, other_ens = build()  # the recipe's network, at its own threshold
    assert other_ens.neuron_type.threshold == 0.0
    loaded.apply(other)
    assert other_ens.neuron_type == SigmaDelta(threshold=2.5, cum_error=True)
