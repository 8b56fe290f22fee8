import nengo
import numpy as np
import pytest
from nengo.exceptions import ValidationError

from nengo_hybrid import HybridSpiking, metrics


def test_activity_bits_hand_computed():
    # neuron peaks: 1, 3, 0, 7 -> log2(2), log2(4), log2(1), log2(8) = 1, 2, 0, 3
    counts = np.array([[1, 0, 0, 7], [0, 3, 0, 2], [1, 1, 0, 0]])
    assert metrics.activity_bits(counts) == pytest.approx(1.5)
    # a batch axis is pooled with time
    batched = np.stack([counts, np.zeros_like(counts)])
    assert metrics.activity_bits(batched) == pytest.approx(1.5)


def test_activity_bits_signed_adds_sign_bit():
    counts = np.array([[1, -3], [0, 1]])  # peaks 1, 3 -> 1, 2 bits, +1 sign
    assert metrics.activity_bits(counts) == pytest.approx(2.5)
    assert metrics.activity_bits(counts, signed=False) == pytest.approx(1.5)
    assert metrics.activity_bits(np.abs(counts), signed=True) == pytest.approx(2.5)


def test_significant_bits_hand_computed():
    # 1,2,4,8 -> 1; 3,6,12 -> 2; 5 -> 3 (101); 7 -> 3 (111); 10 -> 3 (1010)
    assert metrics.significant_bits([[1, 2, 4, 8]]) == 1.0
    assert metrics.significant_bits([[3, 6, 12, 0]]) == 2.0  # zeros are not events
    assert metrics.significant_bits([[5, -7], [10, 0]]) == 3.0
    assert metrics.significant_bits([[1, 3]]) == 1.5
    assert metrics.significant_bits(np.zeros((3, 2), dtype=int)) == 0.0


def test_counts_validation():
    with pytest.raises(ValidationError, match="shape"):
        metrics.activity_bits([1, 2, 3])
    with pytest.raises(ValidationError, match="NaN"):
        metrics.activity_bits([[1.0, np.nan]])
    with pytest.raises(ValidationError, match="integers"):
        metrics.significant_bits([[0.5, 1.0]])


def test_spike_counts_from_output():
    neuron = HybridSpiking(nengo.RectifiedLinear(), precision=4.0, amplitude=0.5)
    counts = np.array([[0, 1, 3], [2, 0, -1]])
    output = counts * 0.5 / (4.0 * 0.001)
    np.testing.assert_array_equal(
        metrics.spike_counts(output, neuron, dt=0.001), counts
    )
    np.testing.assert_array_equal(
        metrics.spike_counts(output * 4 / 8, neuron, dt=0.001, precision=8.0), counts
    )
    with pytest.raises(ValidationError, match="not spiking"):
        metrics.spike_counts(output, nengo.RectifiedLinear())


def test_synaptic_events_and_energy():
    counts = np.array([[1, 0, -2], [3, 1, 0]])  # |n| per neuron: 4, 1, 2
    fan_out = np.array([10, 0, 5])
    assert metrics.synaptic_events(counts, fan_out) == 4 * 10 + 0 + 2 * 5
    assert metrics.spike_messages(counts) == 4  # graded: one per nonzero count
    assert metrics.one_bit_spikes(counts) == 7  # 1-bit: |n| spikes each
    e = metrics.energy(counts, fan_out, device="loihi1")
    expected = (50 * 23.6 + 7 * 3.5 + 2 * 3 * 81.0) * 1e-12
    assert e["total"] == pytest.approx(expected)
    assert e["spike_routing"] == pytest.approx(7 * 3.5e-12)
    with pytest.raises(ValidationError, match="fan_out must have shape"):
        metrics.synaptic_events(counts, [1, 2])
    with pytest.raises(ValidationError, match="hardware profile 'tpu'"):
        metrics.energy(counts, fan_out, device="tpu")
    with pytest.raises(ValidationError, match="'loihi2' has no energy costs"):
        metrics.energy(counts, fan_out, device="loihi2")


def test_energy_costs_come_from_the_profile(tmp_path):
    """One source of truth: the profile's energy block (a changed copy changes it)."""
    import json

    from nengo_hybrid.hardware.profiles import PROFILE_DIR, load_profile

    block = load_profile("loihi1").data["energy"]
    costs = metrics.DEVICES["loihi1"]
    assert costs.synaptic_op == block["synaptic_op_pj"]["value"]
    assert costs.spike_message == block["spike_message_pj"]["value"]
    assert costs.neuron_update == block["neuron_update_pj"]["value"]
    data = json.loads(open(f"{PROFILE_DIR}/loihi1.json").read())
    data["name"] = "cheap"
    data["energy"]["neuron_update_pj"]["value"] = 1.0
    path = tmp_path / "cheap.json"
    path.write_text(json.dumps(data))
    assert metrics.device_costs(str(path)).neuron_update == 1.0


def test_fan_out_from_built_model():
    with nengo.Network(seed=0) as net:
        a = nengo.Ensemble(6, 1)
        b = nengo.Ensemble(4, 1)
        c = nengo.Ensemble(3, 1)
        out = nengo.Node(size_in=2)
        nengo.Connection(a, b)  # decoded: every neuron of a reaches all 4 of b
        nengo.Connection(
            a.neurons, c.neurons, transform=np.eye(3, 6)
        )  # a0..a2 -> 1 each
        nengo.Connection(a, out, function=lambda x: [x[0], x[0] ** 2])  # 2 dims
        nengo.Connection(a.neurons[4:], c.neurons[:2], transform=0.5)  # a4, a5 -> 1
    with nengo.Simulator(net, progress_bar=False) as sim:
        fan = metrics.fan_out(sim.model, a)
    np.testing.assert_array_equal(fan, [4 + 1 + 2] * 3 + [4 + 2] + [4 + 2 + 1] * 2)
