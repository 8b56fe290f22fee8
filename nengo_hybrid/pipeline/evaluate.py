"""Stage ``evaluate``: the frozen network in NengoDL on the test split.

Measures test accuracy and, from the spike counts of the measured layers,
activity bits, significant bits, synaptic events and energy
(`nengo_hybrid.metrics`). Writes ``evaluate.json`` and ``raster.npz`` (one
test sample's counts of the first layer, for the report's raster).
"""

import io
import pathlib

import numpy as np

from nengo_hybrid import report as reporting
from nengo_hybrid.pipeline.runs import (
    RASTER,
    PipelineUsageError,
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
    if frozen.thresholds:
        raise PipelineUsageError(
            f"{run} has SigmaDelta layers {sorted(frozen.thresholds)}; evaluate "
            "measures the spike counts of HybridSpiking layers",
            hint="export a SigmaDelta run to Loihi 2 with `nengo-hybrid export --run "
            f"{run} --format netx FILE`; its events are counted by "
            "nengo_hybrid.metrics.sent_deltas and delta_events",
        )
    dataset = dataset_of(run, recipe)
    x, y = subset(dataset.x_test, dataset.y_test, n_test, config["batch_size"], "test")
    net = frozen.build(recipe)
    with simulator(net, config["batch_size"], config["seed"]) as sim:
        outputs = predict(sim, net.inputs(x), progress)
        dt = sim.dt
        layers = []
        for ens, probe in zip(net.layers, net.layer_probes()):
            counts = metrics.spike_counts(
                outputs[probe], ens.neuron_type, dt, precision=ens.neuron_type.precision
            )
            layers.append((ens, counts, metrics.fan_out(sim.model, ens)))
    predictions = net.predictions(outputs[net.probe])
    ens, counts, fan_out = layers[0]
    energy = metrics.energy(counts, fan_out, device="loihi1")
    result = {
        "model": recipe.name,
        "data": dataset.description,
        "seed": config["seed"],
        "n_test": len(y),
        "accuracy": float(np.mean(predictions == y)),
        "predictions": predictions.tolist(),
        "loss": cross_entropy(net.scores(outputs[net.probe]), y),
        "precision": ens.neuron_type.precision,
        "activity_bits": metrics.activity_bits(counts),
        "significant_bits": metrics.significant_bits(counts),
        "max_count": int(np.abs(counts).max()),
        "max_counts": {str(e.label): int(np.abs(c).max()) for e, c, _ in layers},
        "synaptic_events_per_sample": metrics.synaptic_events(counts, fan_out) / len(y),
        "energy_per_sample_j": energy["total"] / len(y),
        "energy_parts_per_sample_j": {
            k: v / len(y) for k, v in energy.items() if k not in ("total", "device")
        },
        "energy_device": energy["device"]["source"],
        "n_hidden": int(ens.n_neurons),
        "steps_per_sample": int(counts.shape[1]),
        "dt": dt,
    }
    buf = io.BytesIO()
    np.savez(buf, counts=counts[0].astype(np.int32), dt=dt, label=y[0])
    reporting.write_atomic(run / RASTER, buf.getvalue())
    reporting.write_stage(run, "evaluate", result)
    return result
