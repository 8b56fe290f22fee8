"""The graded-spike (Loihi 2) mapping and check, planned from the shapes.

Every number compared here is computed by hand from the module's stated model
(`nengo_hybrid.hardware.graded`): one compartment per neuron, per input axon
its weights into the core at ``weight_bits`` rounded up to whole words, and
payload bits ``1 + ceil(log2(count + 1))`` (sign included).
"""

import copy
import json

import nengo
import numpy as np
import pytest

from nengo_hybrid import HybridSpiking
from nengo_hybrid.hardware import Graded, OneBit, Thermometer, check
from nengo_hybrid.hardware.profiles import PROFILE_DIR, ProfileError, load_profile


def graded_profile(**limits):
    """The loihi2 profile with some limits changed."""
    with open(f"{PROFILE_DIR}/loihi2.json") as fh:
        data = json.load(fh)
    data = copy.deepcopy(data)
    data["name"] = "graded-test"
    for key, value in limits.items():
        data["limits"][key] = {"value": value, "source": "test"}
    return load_profile(data)


def dense_pair(n_pre=20, n_post=300, seed=0):
    rng = np.random.RandomState(seed)
    with nengo.Network(seed=seed) as net:
        kw = dict(neuron_type=HybridSpiking(nengo.RectifiedLinear()))
        pre = nengo.Ensemble(n_pre, 1, label="pre", **kw)
        post = nengo.Ensemble(n_post, 1, label="post", **kw)
        nengo.Connection(
            pre.neurons,
            post.neurons,
            transform=rng.uniform(-1e-3, 1e-3, (n_post, n_pre)),
        )
    return net


def rows_of(report, label):
    return [row for row in report.cores if row["block"].startswith(f"{label}[")]


def test_dense_plan_equals_hand_computation():
    profile = graded_profile(compartments_per_core=100)
    report = check(dense_pair(), profile=profile)
    assert report.ok, report
    assert report.mapping == "graded" and report.to_dict()["mapping"] == "graded"
    post = rows_of(report, "post")
    # 300 neurons, 100 per core; each core: 20 axons x ceil(100 * 8 / 64) words
    assert [r["compartments"] for r in post] == [100, 100, 100]
    assert [r["synapse_bits"] for r in post] == [20 * 13 * 64] * 3
    assert [r["input_axons"] for r in post] == [20] * 3
    (pre,) = rows_of(report, "pre")
    assert pre["synapse_bits"] == 0 and pre["input_axons"] == 0
    assert pre["output_axons"] == 20 * 3  # one axon per neuron and target core

    # control: memory just under what three cores need forces a finer split
    tight = graded_profile(compartments_per_core=100, synapse_bits_per_core=16000)
    post = rows_of(check(dense_pair(), profile=tight), "post")
    # 4 cores of 75: 20 axons x ceil(75 * 8 / 64) = 10 words each = 12800 bits
    assert [r["compartments"] for r in post] == [75] * 4
    assert [r["synapse_bits"] for r in post] == [20 * 10 * 64] * 4


def test_one_to_one_and_decoded_plans_equal_hand_computation():
    with nengo.Network(seed=1) as net:
        kw = dict(neuron_type=HybridSpiking(nengo.RectifiedLinear()))
        a = nengo.Ensemble(50, 1, label="a", **kw)
        b = nengo.Ensemble(50, 1, label="b", **kw)
        c = nengo.Ensemble(40, 1, label="c", **kw)
        nengo.Connection(a.neurons, b.neurons, transform=0.5)  # one-to-one
        nengo.Connection(a, c)  # decoded: a full 40 x 50 weight matrix
    report = check(net, profile="loihi2")
    assert report.ok, report
    (b_row,) = rows_of(report, "b")
    # 50 axons, each one weight of 8 bits + ceil(log2 50) = 6 index bits: 1 word
    assert b_row["synapse_bits"] == 50 * 64 and b_row["input_axons"] == 50
    (c_row,) = rows_of(report, "c")
    # 50 axons x ceil(40 * 8 / 64) = 5 words
    assert c_row["synapse_bits"] == 50 * 5 * 64 and c_row["input_axons"] == 50
    (a_row,) = rows_of(report, "a")
    assert a_row["output_axons"] == 50 + 50  # one core of b, one core of c
    # the weights are Nengo's: the decoded ones are encoders @ decoders
    decoded = [x for x in report.connections if "Ensemble 'c'" in x["connection"]]
    assert decoded and decoded[0]["n_weights"] == 40 * 50


def test_sparse_plan_equals_hand_computation():
    def network():
        # post neuron i receives from pre neurons i and i + 1 (mod 10)
        i = np.arange(10)
        indices = np.concatenate([np.c_[i, i], np.c_[i, (i + 1) % 10]])
        with nengo.Network(seed=2) as net:
            kw = dict(neuron_type=HybridSpiking(nengo.RectifiedLinear()))
            pre = nengo.Ensemble(10, 1, label="pre", **kw)
            post = nengo.Ensemble(10, 1, label="post", **kw)
            nengo.Connection(
                pre.neurons,
                post.neurons,
                transform=nengo.Sparse((10, 10), indices=indices, init=np.ones(20)),
            )
        return net

    (post,) = rows_of(check(network(), profile="loihi2"), "post")
    # 10 axons, each 2 weights of 8 + ceil(log2 10) = 4 index bits: 1 word
    assert post["synapse_bits"] == 10 * 64 and post["input_axons"] == 10
    # control: 5 neurons per core; each core hears 6 axons, 1-2 weights of
    # 8 + 3 bits each: 1 word per axon
    post = rows_of(
        check(network(), profile=graded_profile(compartments_per_core=5)), "post"
    )
    assert [r["input_axons"] for r in post] == [6, 6]
    assert [r["synapse_bits"] for r in post] == [6 * 64, 6 * 64]


def test_graded_check_never_builds_with_nengo_loihi(monkeypatch):
    import importlib

    checks = importlib.import_module("nengo_hybrid.hardware.check")

    def refuse(*args, **kwargs):
        raise AssertionError("nengo-loihi build called")

    monkeypatch.setattr(checks, "build_model", refuse)
    assert check(dense_pair(), profile="loihi2").ok
    with pytest.raises(AssertionError, match="nengo-loihi build called"):
        check(dense_pair(), profile="loihi1")  # control: Loihi 1 builds


def driven(bias, precision=1.0, n=10):
    """One hybrid ensemble with no inputs: the count bound is ceil(p dt bias)."""
    with nengo.Network(seed=0) as net:
        ens = nengo.Ensemble(
            n,
            1,
            label="driven",
            neuron_type=HybridSpiking(nengo.RectifiedLinear(), precision=precision),
            gain=np.ones(n),
            bias=np.linspace(0, bias, n),
        )
    return net, ens


def test_payload_overflow_is_reported_and_just_under_fits():
    profile = graded_profile(spike_payload_bits=4, max_spikes_per_step=7)
    # control: drive 6.9 per step, counts up to 7 = 3 bits + sign: fits
    net, _ = driven(6900)
    report = check(net, profile=profile)
    assert report.ok, report
    (row,) = report.ensembles
    assert row["max_count"] == 7 and row["payload_bits_needed"] == 4
    assert row["compartments"] == 10 and row["strategy"] == "OneBit()"
    assert rows_of(report, "driven")[0]["payload_bits_needed"] == 4

    net, ens = driven(7900)  # counts up to 8: 4 bits + sign
    report = check(net, profile=profile)
    assert not report.ok
    (v,) = report.violations
    assert v.kind == "spike_payload_bits" and v.obj == str(ens)
    assert v.limit == 4 and v.value == 5
    assert "including the sign" in v.detail and "lower its precision" in v.fix
    # per core: the lower half of the neurons fits, the core holds the largest
    assert rows_of(report, "driven")[0]["payload_bits_needed"] == 5

    # the same network on the 16-bit loihi2 profile fits
    assert check(net, profile="loihi2").ok


def test_measured_counts_replace_the_bound():
    profile = graded_profile(spike_payload_bits=4, max_spikes_per_step=7)
    net, ens = driven(7900)
    report = check(net, profile=profile, counts={ens: np.full((3, 10), 2)})
    assert report.ok and report.ensembles[0]["count_source"] == "measured"
    report = check(net, profile=profile, counts={ens: np.full((3, 10), 9)})
    assert [v.kind for v in report.violations] == ["spike_payload_bits"]


def test_single_neuron_too_big_for_a_core_is_a_violation():
    # 20 axons x one word each = 1280 bits per neuron > 1000
    report = check(dense_pair(), profile=graded_profile(synapse_bits_per_core=1000))
    assert [v.kind for v in report.violations] == ["synapse_bits"]
    assert "single neuron" in report.violations[0].fix
    # control: one word per axon fits
    assert check(dense_pair(), profile=graded_profile(synapse_bits_per_core=1280)).ok


def test_state_bits_warn_when_weights_are_tiny_for_the_threshold():
    def network(scale):
        with nengo.Network(seed=0) as net:
            kw = dict(neuron_type=HybridSpiking(nengo.RectifiedLinear()))
            pre = nengo.Ensemble(5, 1, label="pre", **kw)
            post = nengo.Ensemble(
                5, 1, label="post", gain=np.ones(5), bias=np.zeros(5), **kw
            )
            nengo.Connection(
                pre.neurons,
                post.neurons,
                transform=np.full((5, 5), scale),
                synapse=None,
            )
        return net

    profile = graded_profile(state_bits=16)
    # control: a weight of 1e-2 thresholds per count needs ceil(log2(127 / 1e-2))
    # = 14 fraction bits, + 2 for the sign and counts up to 1: 16 fit
    report = check(network(1e-2), profile=profile)
    assert not [w for w in report.warnings if w.kind == "state_bits"], report
    row = next(r for r in report.ensembles if r["ensemble"] == "<Ensemble 'post'>")
    assert row["max_count"] == 1 and row["state_bits_needed"] == 16
    report = check(network(1e-5), profile=profile)
    (w,) = [w for w in report.warnings if w.kind == "state_bits"]
    assert w.obj == "<Ensemble 'post'>" and "lose" in w.detail


def test_graded_strategy_needs_a_graded_profile():
    net, ens = driven(500)
    report = check(net, profile="loihi1", strategy=Graded())
    assert [v.kind for v in report.violations] == ["strategy"]
    assert 'spikes": "graded"' in report.violations[0].fix
    assert check(net, profile="loihi1", strategy=OneBit()).ok  # control
    assert check(net, profile="loihi2", strategy=Graded()).ok


def test_auto_chooses_by_profile():
    from nengo_hybrid.pipeline.check import auto_strategy

    loihi1, loihi2 = load_profile("loihi1"), load_profile("loihi2")
    assert auto_strategy(17, loihi2) == Graded()
    assert auto_strategy(None, loihi2) == Graded()
    assert auto_strategy(17, loihi1) == Thermometer(18)  # control: Loihi 1
    assert auto_strategy(17) == Thermometer(18)
    assert auto_strategy(None, loihi1) == OneBit()


def test_untrained_recipe_check_is_graded_on_loihi2():
    from nengo_hybrid import zoo
    from nengo_hybrid.pipeline.check import check as check_stage

    recipe = zoo.read("lmu_quick")
    result = check_stage(recipe=recipe, profile="loihi2")
    assert result["ok"] and result["mapping"] == "graded"
    assert result["strategies"] == {"hidden": "graded"}
    (row,) = result["ensembles"]
    assert row["compartments"] == 64 and row["n_neurons"] == 64
    result = check_stage(recipe=recipe, profile="loihi1")  # control
    assert result["mapping"] == "nengo-loihi" and result["strategies"] == {
        "hidden": "onebit"
    }


@pytest.mark.slow
def test_trained_run_check_is_graded_on_loihi2(tmp_path):
    """A trained quick LMU: 64 graded neurons on loihi2, Thermometer on loihi1."""
    from nengo_hybrid import cli
    from nengo_hybrid.pipeline.check import check as check_stage

    run = tmp_path / "lmu_quick"
    args = ["--model", "lmu_quick", "--out", str(run), "--epochs", "1"]
    assert cli.main(["train", *args, "--n-train", "500"]) == 0
    assert cli.main(["evaluate", "--run", str(run), "--n-test", "100"]) == 0
    loihi2 = check_stage(run=run, profile="loihi2")
    (row,) = loihi2["ensembles"]
    assert loihi2["strategies"] == {"hidden": "graded"}
    assert row["compartments"] == 64 and row["max_count"] > 1
    assert row["payload_bits_needed"] <= row["payload_bits"] == 16
    loihi1 = check_stage(run=run, profile="loihi1")  # control
    (row1,) = loihi1["ensembles"]
    assert loihi1["strategies"]["hidden"].startswith("thermometer:")
    assert row1["compartments"] == 64 * (row1["max_count"] + 1)


# --------------------------------------------------------------- profiles


@pytest.fixture
def loihi2_data():
    with open(f"{PROFILE_DIR}/loihi2.json") as fh:
        return json.load(fh)


def test_built_in_spikes_modes(loihi2_data):
    assert load_profile("loihi2").graded and load_profile("loihi2").spikes == "graded"
    assert not load_profile("loihi1").graded
    # every Loihi 2 number cites a source, the payload says why it is 16
    profile = load_profile("loihi2")
    assert all(profile.sources[k] for k in profile.limits)
    assert "conservative" in profile.sources["spike_payload_bits"]
    assert (
        profile["max_spikes_per_step"] == 2 ** (profile["spike_payload_bits"] - 1) - 1
    )
    # without "spikes", the payload bits decide (older user profiles)
    del loihi2_data["spikes"]
    assert load_profile(loihi2_data).graded


@pytest.mark.parametrize(
    "spikes, payload, match",
    [
        (
            {"value": "analog", "source": "x"},
            16,
            r"must be one of \['binary', 'graded'",
        ),
        ("graded", 16, r'"spikes" must be \{"value"'),
        ({"value": "graded"}, 16, r"cite where it comes from"),
        ({"value": "graded", "source": "x"}, 0, r"spike_payload_bits is 0"),
        ({"value": "binary", "source": "x"}, 16, r"set spike_payload_bits to 0"),
    ],
)
def test_bad_spikes_field_names_file_and_fix(
    tmp_path, loihi2_data, spikes, payload, match
):
    loihi2_data["spikes"] = spikes
    loihi2_data["limits"]["spike_payload_bits"]["value"] = payload
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(loihi2_data))
    with pytest.raises(ProfileError, match=match) as info:
        load_profile(path)
    assert str(info.value).startswith(f"hardware profile file {path}")
    # control: the unmodified file loads
    loihi2_data["spikes"] = {"value": "graded", "source": "x"}
    loihi2_data["limits"]["spike_payload_bits"]["value"] = 16
    path.write_text(json.dumps(loihi2_data))
    assert load_profile(path).graded


def test_sigma_delta_payload_bits_are_checked():
    """A SigmaDelta(ReLU) ensemble is placed on Loihi 2; its measured largest
    payload is compared with the message bits (16): 32767 fits, 32768 does not.
    Without a measurement a warning says it is not checked; on Loihi 1, and
    with another base type, it is a neuron_type violation."""
    from nengo_hybrid import SigmaDelta

    def net_with(base):
        with nengo.Network(seed=0) as net:
            inp = nengo.Node([0.5], label="inp")
            sd = nengo.Ensemble(
                10, 1, neuron_type=SigmaDelta(base, threshold=0.1), label="sd"
            )
            nengo.Connection(inp, sd, synapse=None)
        return net, sd

    net, sd = net_with(nengo.RectifiedLinear())
    report = check(net, profile="loihi2", counts={sd: (1 << 15) - 1})
    (row,) = report.ensembles
    assert report.ok and row["payload_bits_needed"] == 16 and row["cores"] == 1
    assert row["payload_resolution"] == 2.0**-9  # threshold 0.1: 51 payload units
    assert "Sigma-delta ensembles:" in str(report)
    report = check(net, profile="loihi2", counts={sd: 1 << 15})
    assert [v.kind for v in report.violations] == ["spike_payload_bits"]
    assert "raise its threshold" in report.violations[0].fix
    report = check(net, profile="loihi2")
    assert report.ok and [w.kind for w in report.warnings] == ["payload_unknown"]
    assert not check(net, profile="loihi1").ok
    net, _ = net_with(nengo.LIFRate())
    report = check(net, profile="loihi2")
    assert [v.kind for v in report.violations] == ["neuron_type"]
    assert "SigmaDelta(LIFRate)" in report.violations[0].message
