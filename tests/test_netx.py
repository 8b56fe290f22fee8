"""netx export: lava-dl's HDF5 layout, read back, and what does not export."""

import pathlib

import h5py
import nengo
import numpy as np
import pytest

from nengo_hybrid import HybridSpiking, SigmaDelta
from nengo_hybrid.hardware import netx

#: lava-dl's own files (BSD-3, see README.md there); ../shared beside the repo
REFERENCE = pathlib.Path(__file__).resolve().parent / "data" / "netx"  # lava-dl's file


def chain(seed=0, recurrent=True, neuron_type=None, synapse=None):
    rng = np.random.RandomState(seed)
    with nengo.Network(seed=seed) as net:
        inp = nengo.Node(np.zeros(6), label="x")
        # gains near 1 (as a trained dense layer's): netx biases are integers in
        # the layer's fixed point, coarse for Nengo's default gains of hundreds
        a = nengo.Ensemble(
            8,
            1,
            neuron_type=neuron_type or SigmaDelta(threshold=0.5),
            gain=rng.uniform(0.5, 2, 8),
            bias=rng.uniform(-1, 1, 8),
            label="a",
        )
        b = nengo.Ensemble(
            5,
            2,
            neuron_type=SigmaDelta(
                nengo.RectifiedLinear(amplitude=2), threshold=0.2, amplitude=0.5
            ),
            gain=rng.uniform(0.5, 2, 5),
            bias=rng.uniform(-1, 1, 5),
            label="b",
        )
        out = nengo.Node(size_in=3, label="out")
        nengo.Connection(inp, a.neurons, transform=rng.randn(8, 6), synapse=synapse)
        nengo.Connection(a.neurons, b.neurons, transform=rng.randn(5, 8) * 0.01)
        if recurrent:
            nengo.Connection(b, b, synapse=netx.STEP_DELAY, transform=0.1)
        nengo.Connection(b.neurons, out, transform=rng.randn(3, 5), synapse=None)
    for conn in net.all_connections:
        if conn.pre_obj is not conn.post_obj:
            conn.synapse = synapse if conn.pre_obj is inp else None
    return net


def layout(path):
    """``{layer index: {dataset: (dtype, ndim)}}`` and the attribute count."""
    found, n_attrs = {}, 0
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            nonlocal n_attrs
            n_attrs += len(obj.attrs)
            if isinstance(obj, h5py.Dataset):
                _, index, rest = name.split("/", 2)
                dtype = obj.dtype.str  # e.g. "<f4", "|S10", "|O" (variable length)
                found.setdefault(int(index), {})[rest] = (dtype, obj.ndim)

        f.visititems(visit)
        n_attrs += len(f.attrs)
    return found, n_attrs


def same_layout(ours, reference):
    """Datasets of ``ours`` missing from or typed unlike ``reference``'s."""
    return {
        name: (kind, reference.get(name))
        for name, kind in ours.items()
        if reference.get(name) != kind
    }


@pytest.fixture(scope="module")
def reference():
    path = REFERENCE / "pilotnet_sdnn.net"
    if not path.exists():
        pytest.skip(f"lava-dl reference files not found at {REFERENCE}")
    found, n_attrs = layout(path)
    assert n_attrs == 0
    # input layer, a dense SDNN layer, the sigma output layer
    return {"input": found[0], "dense": found[6], "output": found[9]}


def test_export_has_the_reference_layout(tmp_path, reference):
    path = tmp_path / "net.net"
    result = netx.export(chain(recurrent=False), path)
    ours, n_attrs = layout(path)
    assert n_attrs == 0
    assert result.kinds == ["input", "dense", "dense", "output"]
    assert same_layout(ours[0], reference["input"]) == {}
    assert same_layout(ours[1], reference["dense"]) == {}
    assert set(ours[1]) == set(reference["dense"])  # nothing left out
    assert same_layout(ours[3], reference["output"]) == {}
    assert "bias" not in ours[3]  # a sigma_output layer has no bias
    assert not any("messageBits" in name for layer in ours.values() for name in layer)


def test_layout_comparison_detects_a_wrong_dtype(tmp_path, reference):
    """Control: float64 weights or a variable-length layer type are caught."""
    path = tmp_path / "bad.net"
    with h5py.File(path, "w") as f:
        f.create_dataset("layer/0/type", data="dense")
        f.create_dataset("layer/0/weight", data=np.zeros((2, 2)))
    ours, _ = layout(path)
    assert set(same_layout(ours[0], reference["dense"])) == {"type", "weight"}


def test_reads_back_the_weights_and_thresholds(tmp_path):
    net = chain()
    path = tmp_path / "net.net"
    result = netx.export(net, path)
    layers = netx.read(path)
    float_layers = netx.layers(net)
    assert [layer["type"] for layer in layers] == [
        "input",
        "dense",
        "dense_rec",
        "dense",
    ]
    assert layers[-1]["neuron"]["sigma_output"]
    scales, pre_scale, pre_amplitude = result.scales, 1.0, 1.0
    for i, (read, layer) in enumerate(zip(layers, float_layers)):
        assert read["shape"].tolist() == [layer.size]
        if i == 0:
            continue
        w = read["weight"]
        assert w.dtype == np.float32 and np.all(w == np.round(w))
        assert np.all(w % 2 == 0) and w.min() >= -256 and w.max() <= 254
        assert np.abs(w).max() >= 252  # the scale fills the 8-bit range
        # undo the documented scaling: 64 * scale / pre_scale * gain * pre_amplitude
        factor = 64 * scales[i] / pre_scale * layer.gain * pre_amplitude
        np.testing.assert_allclose(w / factor, layer.weight, atol=1.0 / factor)
        if layer.kind != "output":
            vth = read["neuron"]["vThMant"] / (64 * scales[i])
            assert vth == pytest.approx(layer.threshold, abs=0.5 / (64 * scales[i]))
            bias = read["bias"] / (64 * scales[i] * layer.gain)
            np.testing.assert_allclose(bias, layer.bias, atol=0.5 / (64 * scales[i]))
        pre_scale, pre_amplitude = scales[i], layer.amplitude
    rec = layers[2]["weight_rec"] / (64 * 2 * 0.5)  # gain 2, amplitude 0.5
    np.testing.assert_allclose(rec, float_layers[2].weight_rec, atol=1 / 64)
    assert np.any(rec != 0)


def test_reads_lava_dl_files(reference):
    """`read` understands lava-dl's own file (so it can check ours the same way)."""
    layers = netx.read(REFERENCE / "pilotnet_sdnn.net")
    assert layers[6]["type"] == "dense" and layers[6]["neuron"]["type"] == "SDNN"
    assert layers[6]["weight"].shape == (100, 2560)


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: chain(neuron_type=HybridSpiking(nengo.RectifiedLinear())),
            "ensemble <Ensemble 'a'> has HybridSpiking.*no stock Loihi 2",
        ),
        (
            lambda: chain(neuron_type=SigmaDelta(nengo.LIFRate())),
            "SigmaDelta\\(LIFRate\\).*relu",
        ),
        (
            lambda: chain(neuron_type=SigmaDelta(cum_error=True)),
            "cum_error=True",
        ),
        (lambda: chain(synapse=0.005), "has synapse Lowpass.*no synaptic filter"),
    ],
)
def test_networks_that_do_not_export_give_a_clear_error(tmp_path, make, match):
    path = tmp_path / "net.net"
    with pytest.raises(netx.NetxExportError, match=match) as info:
        netx.export(make(), path)
    assert info.value.hint
    assert not path.exists() and not list(tmp_path.iterdir())  # nothing written


def test_skip_connection_and_bad_recurrence_are_refused(tmp_path):
    net = chain(recurrent=False)
    with net:
        a, b = net.all_ensembles
        skip = nengo.Connection(net.all_nodes[0], b.neurons, transform=np.zeros((5, 6)))
        skip.synapse = None
    with pytest.raises(netx.NetxExportError, match="feeds only the next"):
        netx.export(net, tmp_path / "skip.net")
    with chain(recurrent=False) as net:
        b = net.all_ensembles[1]
        nengo.Connection(b, b, synapse=0.1)
    with pytest.raises(netx.NetxExportError, match="delays its recurrence") as info:
        netx.export(net, tmp_path / "rec.net")
    assert "STEP_DELAY" in info.value.hint


def test_export_replaces_a_file_atomically(tmp_path):
    path = tmp_path / "net.net"
    path.write_text("old")
    netx.export(chain(), path)
    assert netx.read(path)[0]["type"] == "input"
    assert [p.name for p in tmp_path.iterdir()] == ["net.net"]


# ------------------------------------------------------------------ CLI

DENSE_RECIPE = '''\
"""A tiny dense MNIST recipe for the export tests."""
import nengo  # noqa: F401

RECIPE = dict(
    task="mnist_static",
    data=dict(n_train=200, n_val=100),
    network=dict(n_hidden=[12, 6], presentation_steps=4, score_steps=2),
    train_precision=1000.0,
    precision=1.0,
    input_precision=1.0,
    epochs=1,
    minibatch_size=50,
    learning_rate=1e-3,
    seed=0,
    n_samples=5,
    {extra}
)
'''


def train_dense(folder, name, extra=""):
    from nengo_hybrid import cli

    recipe = folder / f"{name}.py"
    recipe.write_text(DENSE_RECIPE.format(extra=extra))
    run = folder / name
    args = ["train", "--model", recipe, "--out", run, "--n-train", 100]
    assert cli.main([str(a) for a in args]) == 0
    return run


@pytest.fixture(scope="module")
def sigma_delta_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    extra = 'neuron="sigma_delta", threshold=0.05, input_threshold=0.02,'
    return train_dense(folder, "sd", extra)


def test_cli_exports_a_trained_sigma_delta_run(sigma_delta_run, capsys):
    import json

    from nengo_hybrid import cli
    from nengo_hybrid.frozen import FrozenNetwork

    run = sigma_delta_run
    path = run / "network.net"
    code = cli.main(["export", "--run", str(run), "--format", "netx", str(path)])
    assert code == 0
    assert "wrote" in capsys.readouterr().err
    layers = netx.read(path)
    assert [layer["type"] for layer in layers] == ["input"] + ["dense"] * 4
    assert [layer["shape"][0] for layer in layers] == [784, 784, 12, 6, 10]
    summary = json.loads((run / "export.json").read_text())
    scales = [layer["scale"] for layer in summary["layers"]]
    # the deployment thresholds of the recipe, in the file's fixed point
    frozen = FrozenNetwork.read(run / "frozen.npz")
    assert frozen.thresholds == {"input": 0.02, "hidden1": 0.05, "hidden2": 0.05}
    for layer, scale, vth in zip(layers[1:4], scales[1:4], [0.02, 0.05, 0.05]):
        assert layer["neuron"]["vThMant"] == round(vth * 64 * scale)


def test_cli_export_refuses_a_hybrid_run_clearly(tmp_path, capsys):
    from nengo_hybrid import cli

    run = train_dense(tmp_path, "hybrid")
    capsys.readouterr()
    path = tmp_path / "network.net"
    code = cli.main(["export", "--run", str(run), str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "ensemble <Ensemble 'input'> has HybridSpiking neurons" in err
    assert "fix:" in err and "SigmaDelta" in err
    assert not path.exists()


def test_connection_without_transform_is_the_gain(tmp_path):
    with nengo.Network() as net:
        inp = nengo.Node(np.zeros(3))
        ens = nengo.Ensemble(
            3, 1, neuron_type=SigmaDelta(threshold=0.1), gain=[1, 2, 3], bias=[0] * 3
        )
        nengo.Connection(inp, ens.neurons, synapse=None)  # NoTransform
    layer = netx.layers(net)[1]
    # Nengo applies the ensemble's gain to connections into its neurons
    np.testing.assert_array_equal(layer.weight, np.diag([1.0, 2, 3]))


def run_netx_float(layers, x):
    """lava-dl netx's float semantics of a file's ``layers`` on inputs ``x``.

    Lava's processes: the input layer is a ``Delta`` encoder of ``x``; each
    dense layer a ``SigmaDelta`` (sigma += weight @ input, act = relu(sigma +
    bias), delta encoding with ``vth``); the ``sigma_output`` layer only sums.
    Every layer receives what the previous one sent on the step before (and a
    ``dense_rec`` layer its own messages of the step before). Values are the
    file's divided by 64 (lava-dl's fixed point).
    """
    n_steps = x.shape[0]
    state = [
        {k: np.zeros(layer["shape"][0]) for k in ("act", "residue", "sigma", "sent")}
        for layer in layers
    ]
    out = []
    for t in range(n_steps):
        previous = [s["sent"] for s in state]
        for i, layer in enumerate(layers):
            s = state[i]
            neuron = layer["neuron"]
            if layer["type"] == "input":
                act = x[t]
            else:
                s["sigma"] = s["sigma"] + layer["weight"] / 64 @ previous[i - 1]
                if "weight_rec" in layer:
                    s["sigma"] = s["sigma"] + layer["weight_rec"] / 64 @ previous[i]
                if neuron.get("sigma_output"):
                    continue
                act = np.maximum(s["sigma"] + layer["bias"] / 64, 0)
            delta = act - s["act"] + s["residue"]
            sent = np.where(np.abs(delta) >= neuron["vThMant"] / 64, delta, 0)
            s.update(act=act, residue=delta - sent, sent=sent)
        out.append(state[-1]["sigma"])
    return np.array(out)


@pytest.mark.parametrize("recurrent", [False, True])
def test_exported_file_computes_the_nengo_network(tmp_path, recurrent):
    """The file, run with netx's float semantics, gives Nengo's output.

    At threshold 0 (every change sent) only the 8-bit weights differ, so the
    outputs agree to within the quantization; Lava's layers add one step each.
    """
    net = chain(recurrent=recurrent)
    for ens in net.all_ensembles:
        ens.neuron_type = ens.neuron_type.with_threshold(0.0)
    rng = np.random.RandomState(1)
    x = np.repeat(rng.rand(8, 6), 5, axis=0)  # 8 inputs held for 5 steps each
    with net:
        net.all_nodes[0].output = nengo.processes.PresentInput(x, 0.001)
        probe = nengo.Probe(net.all_nodes[-1], synapse=None)
    with nengo.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(len(x))
    expected = sim.data[probe]
    result = netx.export(net, tmp_path / "net.net")
    layers = netx.read(tmp_path / "net.net")
    got = run_netx_float(layers, x) / result.scales[-1]
    delay = len(layers) - 1
    error = np.abs(got[delay:] - expected[:-delay]).max()
    # 8-bit weights; recurrent weights (not rescaled) in steps of 1/32
    assert error < (0.02 if recurrent else 0.005) * np.abs(expected).max()

    # controls: a layer whose scale is off by 10%, or the wrong latency, is seen
    assert np.abs(got[delay - 1 :] - expected[: 1 - delay]).max() > 5 * error
    layers[-1]["weight"] = layers[-1]["weight"] * 1.1
    wrong = run_netx_float(layers, x) / result.scales[-1]
    assert np.abs(wrong[delay:] - expected[:-delay]).max() > 5 * error


def test_evaluate_measures_a_sigma_delta_run(sigma_delta_run, capsys):
    """A SigmaDelta run evaluates: messages and payload bits per layer, not spikes."""
    import json

    from nengo_hybrid import cli

    code = cli.main(["evaluate", "--run", str(sigma_delta_run)])
    assert code == 0, capsys.readouterr().err
    result = json.loads((sigma_delta_run / "evaluate.json").read_text())
    assert result["messages_per_sample"] > 0 and result["payload_bits"] >= 2
    assert set(result["layers"]) >= {"hidden1"}
    assert "activity_bits" not in result  # sigma-delta layers send deltas
