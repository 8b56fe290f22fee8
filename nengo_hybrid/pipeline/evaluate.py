"""Stage ``evaluate``: the frozen network in NengoDL on the test split.

Measures test accuracy and, from the spike counts of the measured
`.HybridSpiking` layers, activity bits, significant bits, synaptic events and
energy (`nengo_hybrid.metrics`); for `.SigmaDelta` layers, the messages
(nonzero deltas) per sample and layer and their payload bits instead
(`sigma_delta_metrics`). Writes ``evaluate.json`` and ``raster.npz`` (one test
sample's counts of the first layer, or the signs of its messages, for the
report's raster).
"""

import io
import pathlib

import numpy as np

from nengo_hybrid import report as reporting
from nengo_hybrid.neurons import SigmaDelta
from nengo_hybrid.pipeline.runs import (
    RASTER,
    read_frozen,
    recipe_of,
    train_config,
)


def predict(sim, inputs, progress):
    """``sim.predict_on_batch`` batch by batch with a progress bar; concatenated."""
    from tqdm.auto import tqdm

    n = len(next(iter(inputs.values())))
    batch = sim.minibatch_size
    parts = []
    for start in tqdm(
        range(0, n, batch), desc="evaluating", unit="batch", disable=not progress
    ):
        chunk = {k: v[start : start + batch] for k, v in inputs.items()}
        parts.append(sim.predict_on_batch(chunk))
    return {p: np.concatenate([part[p] for part in parts]) for p in parts[0]}


def cross_entropy(logits, y):
    logits = logits - logits.max(axis=-1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    return float(-np.mean(log_p[np.arange(len(y)), y]))


def evaluate(run, n_test=None, progress=True):
    """Evaluate a run's frozen network in NengoDL; write ``evaluate.json``.

    Parameters
    ----------
    run : str or pathlib.Path
        Run folder with ``frozen.npz`` (written by ``train``).
    n_test : int, optional
        First N test examples (default all, cut to a multiple of the batch).

    Returns
    -------
    dict
        The content of ``evaluate.json``.
    """
    from nengo_hybrid import metrics
    from nengo_hybrid.pipeline.runs import dataset_of
    from nengo_hybrid.pipeline.train import simulator, subset

    run = pathlib.Path(run)
    config = train_config(run)
    recipe = recipe_of(run)
    frozen = read_frozen(run)
    dataset = dataset_of(run, recipe)
    x, y = subset(dataset.x_test, dataset.y_test, n_test, config["batch_size"], "test")
    net = frozen.build(recipe)
    with simulator(net, config["batch_size"], config["seed"]) as sim:
        outputs = predict(sim, net.inputs(x), progress)
        dt = sim.dt
        probed = [
            (ens, outputs[probe], metrics.fan_out(sim.model, ens))
            for ens, probe in zip(net.layers, net.layer_probes())
        ]
    predictions = net.predictions(outputs[net.probe])
    result = {
        "model": recipe.name,
        "data": dataset.description,
        "seed": config["seed"],
        "n_test": len(y),
        "accuracy": float(np.mean(predictions == y)),
        "predictions": predictions.tolist(),
        "loss": cross_entropy(net.scores(outputs[net.probe]), y),
    }
    if isinstance(probed[0][0].neuron_type, SigmaDelta):
        result.update(sigma_delta_metrics(probed, len(y)))
        raster = np.sign(result.pop("_deltas")[0])
    else:
        result.update(spike_metrics(probed, dt, len(y)))
        raster = result.pop("_counts")[0]
    result["dt"] = dt
    buf = io.BytesIO()
    np.savez(buf, counts=raster.astype(np.int32), dt=dt, label=y[0])
    reporting.write_atomic(run / RASTER, buf.getvalue())
    reporting.write_stage(run, "evaluate", result)
    return result


def spike_metrics(probed, dt, n):
    """Metrics of `.HybridSpiking` layers: bits, events and energy of the spikes.

    ``probed``: ``[(ensemble, probed output, fan_out)]``, the first layer's
    counts are measured (and returned as ``_counts``); ``n``: samples.
    """
    from nengo_hybrid import metrics

    layers = [
        (ens, metrics.spike_counts(out, ens.neuron_type, dt, ens.neuron_type.precision))
        for ens, out, _ in probed
    ]
    (ens, counts), fan_out = layers[0], probed[0][2]
    energy = metrics.energy(counts, fan_out, device="loihi1")
    return {
        "precision": ens.neuron_type.precision,
        "activity_bits": metrics.activity_bits(counts),
        "significant_bits": metrics.significant_bits(counts),
        "max_count": int(np.abs(counts).max()),
        "max_counts": {str(e.label): int(np.abs(c).max()) for e, c in layers},
        "synaptic_events_per_sample": metrics.synaptic_events(counts, fan_out) / n,
        "energy_per_sample_j": energy["total"] / n,
        "energy_parts_per_sample_j": {
            k: v / n for k, v in energy.items() if k not in ("total", "device")
        },
        "energy_device": energy["device"]["source"],
        "n_hidden": int(ens.n_neurons),
        "steps_per_sample": int(counts.shape[1]),
        "_counts": counts,
    }


def sigma_delta_metrics(probed, n):
    """Metrics of `.SigmaDelta` layers: messages (nonzero deltas) and payload bits.

    Per layer (``layers``): ``messages_per_sample`` (`.metrics.delta_events`),
    against ``updates_per_sample`` (steps times neurons: what sending every
    step would cost), and ``payload_bits`` (`.metrics.payload_bits`, sign
    included) of the deltas in the fixed point the Loihi 2 mapping sends them
    in (``payload_resolution``: one payload unit, in units of the activation;
    `nengo_hybrid.hardware.loihi2_mapping.sigma_delta_frac_bits`). The totals
    (``messages_per_sample``, ``synaptic_events_per_sample``: messages times
    fan-out) and the widest ``payload_bits`` are over all layers;
    ``max_payloads``: the largest payload (integer) per layer, which ``check``
    compares with the profile's message bits. The first layer's deltas are
    returned as ``_deltas``.
    """
    from nengo_hybrid import metrics
    from nengo_hybrid.hardware.loihi2_mapping import sigma_delta_frac_bits

    layers, first, payloads = {}, None, {}
    messages = events = 0
    for ens, out, fan_out in probed:
        nt = ens.neuron_type
        deltas = metrics.sent_deltas(out, nt)
        first = deltas if first is None else first
        resolution = 2.0 ** -sigma_delta_frac_bits(nt.threshold)
        sent = deltas != 0
        layers[str(ens.label)] = {
            "neuron_type": f"SigmaDelta({type(nt.base_type).__name__}, "
            f"threshold={nt.threshold:g})",
            "threshold": float(nt.threshold),
            "n_neurons": int(ens.n_neurons),
            "messages_per_sample": metrics.delta_events(deltas) / n,
            "updates_per_sample": int(deltas.shape[1] * deltas.shape[2]),
            "payload_resolution": resolution,
            "payload_bits": metrics.payload_bits(deltas, resolution),
            "max_abs_delta": float(np.abs(deltas).max(initial=0.0)),
        }
        payloads[str(ens.label)] = int(np.round(np.abs(deltas) / resolution).max())
        messages += metrics.delta_events(deltas)
        events += metrics.synaptic_events(sent.astype(np.int64), fan_out)
    head = layers[str(probed[0][0].label)]
    return {
        "neuron": "sigma_delta",
        "threshold": head["threshold"],
        "messages_per_sample": messages / n,
        "message_fraction": head["messages_per_sample"] / head["updates_per_sample"],
        "payload_bits": max(layer["payload_bits"] for layer in layers.values()),
        "synaptic_events_per_sample": events / n,
        "max_counts": {},
        "max_payloads": payloads,
        "layers": layers,
        "n_hidden": head["n_neurons"],
        "steps_per_sample": int(first.shape[1]),
        "_deltas": first,
    }
