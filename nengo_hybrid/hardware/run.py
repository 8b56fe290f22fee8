"""Deployment runs: the same network on the reference simulator and on Loihi.

`compare` runs a network in the Nengo reference simulator (which gives the same
spikes as NengoDL inference for a network frozen with
``nengo_hybrid.training.freeze``) and on the nengo-loihi emulator (or the chip,
when NxSDK is importable), on the same inputs, and reports task accuracy,
output error and spike-count agreement per layer.
"""

import time
import warnings

import nengo
import numpy as np

from nengo_hybrid.hardware.loihi import HAS_NXSDK, Simulator, substeps
from nengo_hybrid.hardware.strategies import coerce_strategy_argument
from nengo_hybrid.metrics import spike_counts


def spike_counts_from_output(output, neuron_type, dt):
    """Integer spike counts per step from probed neuron output.

    Deprecated alias of `nengo_hybrid.metrics.spike_counts` (one conversion).
    """
    return spike_counts(output, neuron_type, dt)


def check_summary(report):
    """The part of a Simulator's `.Report` a run records (JSON-serialisable)."""
    data = report.to_dict()
    return {
        "ok": data["ok"],
        "profile": data["profile"],
        "allow_violations": data["allow_violations"],
        "ran_despite_violations": data["ran_despite_violations"],
        "violations": [v["message"] for v in data["violations"]],
        "n_warnings": len(data["warnings"]),
    }


def _count_agreement(ref, emu):
    total_ref, total_emu = int(ref.sum()), int(emu.sum())
    per_neuron_ref, per_neuron_emu = ref.sum(axis=0), emu.sum(axis=0)
    if per_neuron_ref.std() > 0 and per_neuron_emu.std() > 0:
        corr = float(np.corrcoef(per_neuron_ref, per_neuron_emu)[0, 1])
    else:
        corr = float("nan")
    return {
        "total_reference": total_ref,
        "total_emulator": total_emu,
        "total_ratio": total_emu / total_ref if total_ref else float("nan"),
        "per_neuron_correlation": corr,
        "fraction_equal_step_neuron": float(np.mean(ref == emu)),
        "max_count_reference": int(ref.max()) if ref.size else 0,
        "max_count_emulator": int(emu.max()) if emu.size else 0,
    }


def _nrmse(ref, emu):
    """RMS error normalised by the RMS of the reference."""
    scale = np.sqrt(np.mean(np.square(ref))) or 1.0
    return float(np.sqrt(np.mean(np.square(np.asarray(ref) - emu))) / scale)


def window_scores(output, presentation_steps, score_steps):
    """Mean output over the last ``score_steps`` of each presentation."""
    output = np.asarray(output)
    n = output.shape[0] // presentation_steps
    out = output[: n * presentation_steps].reshape(n, presentation_steps, -1)
    return out[:, -score_steps:].mean(axis=1)


def compare(
    network,
    n_steps,
    output_probe,
    layer_probes=(),
    labels=None,
    presentation_steps=None,
    score_steps=None,
    strategy=None,
    dt=0.001,
    target="sim",
    seed=0,
    reference=None,
    latency=0,
    profile="loihi1",
    counts=None,
    allow_violations=False,
):
    """Run ``network`` on the reference simulator and on Loihi; compare.

    Parameters
    ----------
    network : nengo.Network
    n_steps : int
        Steps to run.
    output_probe : nengo.Probe
        The network output (e.g. class scores).
    layer_probes : iterable of nengo.Probe
        Probes on ``ensemble.neurons`` whose spike counts are compared.
    labels : (n_samples,) array_like, optional
        With ``presentation_steps``, the class of each presented sample: the
        prediction is the argmax of the output averaged over the last
        ``score_steps`` of each presentation.
    strategy : Strategy or dict
        Multi-bit strategy for the Loihi build (see `.Simulator`).
    target : {"sim", "loihi"}
        ``"loihi"`` needs NxSDK (a clear error otherwise).
    reference : dict of {nengo.Probe: array}, optional
        Reference outputs already computed (otherwise `nengo.Simulator` is run).
    latency : int or dict of {nengo.Probe: int}
        Model steps by which Loihi lags the reference at each probe (e.g. 1 for
        on-chip neurons fed from host spikes, 2 for a host readout of them:
        nengo-loihi delivers host spikes to the chip one step late, and chip
        spikes to the host one step late). The Loihi run is that many steps
        longer and its probes are shifted back before comparing.
    profile : str or Profile
        The hardware profile the cores are planned for (see `.Simulator`).
    counts : dict of {Ensemble: int or array_like}, optional
        Measured spike counts for the hardware check (see `.check`).
    allow_violations : bool
        Run even if the hardware check finds violations (see `.Simulator`);
        ``hardware_check`` in the result records it.

    Returns
    -------
    dict
        JSON-serialisable results: ``accuracy_reference``,
        ``accuracy_emulator``, ``accuracy_drop_pp``, ``prediction_agreement``,
        ``output_nrmse`` (of the per-presentation scores; with labels),
        ``output_nrmse_per_step``, ``layers`` (spike-count agreement per
        probed layer), ``profile``, ``cores``, ``compartments``,
        ``emulator_seconds_per_step``, ``hardware_check`` (the Simulator's
        check: ``ok``, ``allow_violations``, ``ran_despite_violations``,
        ``violations``, ``n_warnings``).
    """
    layer_probes = list(layer_probes)
    probes = [output_probe] + layer_probes
    result = {"n_steps": int(n_steps), "target": target, "nxsdk": HAS_NXSDK}

    if reference is None:
        t0 = time.perf_counter()
        with nengo.Simulator(network, dt=dt, seed=seed, progress_bar=False) as ref:
            ref.run_steps(n_steps)
            reference = {p: ref.data[p] for p in probes}
        result["reference_seconds_per_step"] = (time.perf_counter() - t0) / n_steps

    strategy = coerce_strategy_argument(strategy)
    n_sub = substeps(strategy)
    lags = {
        p: int(latency.get(p, 0) if isinstance(latency, dict) else latency)
        for p in probes
    }
    extra = max(lags.values())
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # discretization notes are in `check`
        sim = Simulator(
            network,
            dt=dt,
            strategy=strategy,
            profile=profile,
            target=target,
            seed=seed,
            counts=counts,
            allow_violations=allow_violations,
        )
    build_s = time.perf_counter() - t0
    result["hardware_check"] = check_summary(sim.check_report)
    with sim:
        t0 = time.perf_counter()
        sim.run_steps((n_steps + extra) * n_sub)
        run_s = time.perf_counter() - t0
        # back to model steps: mean output, summed spike counts per model step
        emulated = {}
        for p in probes:
            data = np.asarray(sim.data[p])
            data = data.reshape((n_steps + extra, n_sub) + data.shape[1:])
            emulated[p] = data.mean(axis=1)[lags[p] : lags[p] + n_steps]
        result["profile"] = sim.profile.name
        result["cores"] = len(sim.model.blocks)
        result["compartments"] = int(
            sum(b.compartment.n_compartments for b in sim.model.blocks)
        )
    result["build_s"] = build_s
    result["chip_steps_per_model_step"] = n_sub
    result["emulator_seconds_per_step"] = run_s / (n_steps + extra)
    result["latency_steps"] = {str(p): lag for p, lag in lags.items()}

    ref_out, emu_out = np.asarray(reference[output_probe]), emulated[output_probe]
    result["output_nrmse_per_step"] = _nrmse(ref_out, emu_out)

    layers = {}
    for probe in layer_probes:
        neuron_type = probe.obj.ensemble.neuron_type
        ref_c = spike_counts(reference[probe], neuron_type, dt)
        emu_c = spike_counts(emulated[probe], neuron_type, dt)
        layers[str(probe.obj.ensemble.label or probe.obj.ensemble)] = _count_agreement(
            ref_c, emu_c
        )
    result["layers"] = layers

    if labels is not None and presentation_steps:
        score_steps = score_steps or presentation_steps
        ref_scores = window_scores(ref_out, presentation_steps, score_steps)
        emu_scores = window_scores(emu_out, presentation_steps, score_steps)
        result["output_nrmse"] = _nrmse(ref_scores, emu_scores)
        ref_pred, emu_pred = ref_scores.argmax(1), emu_scores.argmax(1)
        labels = np.asarray(labels)[: len(ref_pred)]
        result["n_samples"] = int(len(labels))
        result["accuracy_reference"] = float(np.mean(ref_pred == labels))
        result["accuracy_emulator"] = float(np.mean(emu_pred == labels))
        result["accuracy_drop_pp"] = 100 * (
            result["accuracy_reference"] - result["accuracy_emulator"]
        )
        result["prediction_agreement"] = float(np.mean(ref_pred == emu_pred))
    return result


def wilson_interval(successes, n, z=1.959964):
    """The 95% Wilson score interval of a binomial proportion (``z``: normal quantile)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (float(centre - half), float(centre + half))


def _align(data, n_steps, n_sub, lag):
    """``(B, (n_steps + extra) * n_sub, d)`` emulator data -> ``(B, n_steps, d)`` model steps."""
    data = np.asarray(data)
    n_samples, total = data.shape[:2]
    model_steps = data.reshape((n_samples, total // n_sub, n_sub) + data.shape[2:])
    return model_steps.mean(axis=2)[:, lag : lag + n_steps]


def _scores(output, score_steps):
    """Mean output over the last ``score_steps`` steps of each sample: ``(B, d)``."""
    return np.asarray(output)[:, -score_steps:].mean(axis=1)


def reference_samples(network, inputs, probes, n_steps, dt=0.001, seed=0):
    """Each sample on Nengo's reference simulator, from its initial state.

    One simulator is built; the input nodes read the current sample, and
    ``sim.reset()`` starts every sample from the same state.

    Returns
    -------
    dict of {nengo.Probe: ndarray}
        ``(B, n_steps, size)``.
    """
    current = {}

    def reader(node):
        def output(t):
            step = int(round(t / dt)) - 1
            values = current[node]
            return values[step] if step < len(values) else np.zeros(values.shape[1])

        return output

    saved = {node: (node.output, node.size_out) for node in inputs}
    try:
        for node, values in inputs.items():
            node.output, node.size_out = reader(node), np.shape(values)[2]
        n_samples = len(next(iter(inputs.values())))
        outputs = {p: [] for p in probes}
        with nengo.Simulator(network, dt=dt, seed=seed, progress_bar=False) as sim:
            for i in range(n_samples):
                current.update({node: np.asarray(x[i]) for node, x in inputs.items()})
                if i:
                    sim.reset()
                sim.run_steps(n_steps)
                for p in probes:
                    outputs[p].append(np.array(sim.data[p]))
    finally:
        for node, (output, size_out) in saved.items():
            node.output, node.size_out = output, size_out
    return {p: np.stack(data) for p, data in outputs.items()}


def compare_samples(network, inputs, labels, output_probe, layer_probes=(),
                    score_steps=1, strategy=None, dt=0.001, target="sim", seed=0,
                    latency=0, profile="loihi1", counts=None, allow_violations=False,
                    emulator="batched", n_reference=200, chunk=256, progress=True):  # fmt: skip
    """Classify independent samples on the emulator; compare with the reference.

    Every sample starts from the initial state (as NengoDL evaluates them).
    All of them run on the emulator (`.Simulator.run_samples`, batched by
    default); the first ``n_reference`` also run on Nengo's reference
    simulator, for the agreement of predictions, outputs and spike counts.

    Parameters
    ----------
    network : nengo.Network
    inputs : dict of {nengo.Node: array_like}
        ``(N, n_steps, d)`` values of the input nodes per sample.
    labels : (N,) array_like
    output_probe : nengo.Probe
        The class scores; a sample's prediction is the argmax of their mean
        over its last ``score_steps`` steps.
    layer_probes : iterable of nengo.Probe
        Probes on ``ensemble.neurons`` whose spike counts are compared (on the
        reference samples).
    latency : int or dict of {nengo.Probe: int}
        Model steps by which the emulator lags the reference at each probe
        (see `compare`); each sample runs that many steps longer.
    emulator : {"batched", "nengo-loihi"}
        See `.Simulator`.
    n_reference : int
        Samples also run on the reference simulator.
    chunk : int
        Samples per emulator call (bounds the memory of the outputs).
    progress : bool

    Returns
    -------
    dict
        JSON-serialisable: ``n_samples``, ``accuracy_emulator`` and its 95%
        Wilson ``accuracy_interval95``, ``predictions_emulator``,
        ``n_reference_samples``, ``accuracy_reference``, ``accuracy_emulator_on_reference_samples``,
        ``prediction_agreement``, ``output_nrmse``, ``layers``, ``emulator``
        (the engine that ran), ``emulator_fallback``, ``emulator_seconds``
        (``per_sample``, ``per_step``, ``total``), ``build_s``, ``cores``,
        ``compartments``, ``hardware_check``, ``latency_steps``.
    """
    from tqdm.auto import tqdm

    layer_probes = list(layer_probes)
    probes = [output_probe] + layer_probes
    inputs = {node: np.asarray(x) for node, x in inputs.items()}
    labels = np.asarray(labels)
    n_samples, n_steps = next(iter(inputs.values())).shape[:2]
    strategy = coerce_strategy_argument(strategy)
    n_sub = substeps(strategy)
    lags = {
        p: int(latency.get(p, 0) if isinstance(latency, dict) else latency)
        for p in probes
    }
    host_steps = (n_steps + max(lags.values())) * n_sub
    result = {"target": target, "n_samples": int(n_samples), "n_steps": int(n_steps)}

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Lost .* extra bits")
        warnings.filterwarnings("ignore", message=".*initial voltages are set")
        sim = Simulator(
            network, dt=dt, strategy=strategy, profile=profile, target=target,
            seed=seed, counts=counts, allow_violations=allow_violations,
            emulator=emulator,
        )  # fmt: skip
    result["build_s"] = time.perf_counter() - t0
    result["hardware_check"] = check_summary(sim.check_report)
    result["cores"] = len(sim.model.blocks)
    result["compartments"] = int(
        sum(b.compartment.n_compartments for b in sim.model.blocks)
    )
    n_ref = min(int(n_reference), n_samples)

    def emulate(start, stop, wanted):
        chunk_in = {
            node: np.repeat(x[start:stop], n_sub, axis=1) for node, x in inputs.items()
        }
        out = sim.run_samples(chunk_in, host_steps, probes=wanted, progress=bar)
        return {p: _align(out[p], n_steps, n_sub, lags[p]) for p in wanted}

    scores, ref_layers = [], {}
    t0 = time.perf_counter()
    with sim, tqdm(
        total=n_samples, desc=f"emulator ({sim.emulator})", unit="sample",
        disable=not progress,
    ) as bar:  # fmt: skip
        for start in range(0, n_samples, chunk):
            stop = min(start + chunk, n_samples)
            # layer probes only where the reference runs too
            wanted = probes if start < n_ref else [output_probe]
            out = emulate(start, stop, wanted)
            scores.append(_scores(out[output_probe], score_steps))
            for p in layer_probes:
                if p in out:
                    ref_layers.setdefault(p, []).append(out[p][: max(0, n_ref - start)])
            correct = np.concatenate(scores).argmax(1) == labels[:stop]
            bar.set_postfix(accuracy=f"{correct.mean():.3f}")
    total_s = time.perf_counter() - t0
    result["emulator"] = sim.emulator
    result["emulator_fallback"] = sim.emulator_fallback
    # one name for the emulator's speed (progress display included)
    result["emulator_seconds"] = {
        "total": total_s,
        "per_sample": total_s / n_samples,
        "per_step": total_s / (n_samples * host_steps),
    }
    emu_scores = np.concatenate(scores)
    emu_pred = emu_scores.argmax(1)
    correct = int(np.sum(emu_pred == labels))
    result["accuracy_emulator"] = correct / n_samples
    result["accuracy_interval95"] = list(wilson_interval(correct, n_samples))
    result["predictions_emulator"] = emu_pred.tolist()
    result["latency_steps"] = {str(p): lag for p, lag in lags.items()}

    result["n_reference_samples"] = n_ref
    if n_ref:
        ref = reference_samples(
            network, {node: x[:n_ref] for node, x in inputs.items()}, probes,
            n_steps, dt=dt, seed=seed,
        )  # fmt: skip
        ref_scores = _scores(ref[output_probe], score_steps)
        ref_pred = ref_scores.argmax(1)
        result["accuracy_reference"] = float(np.mean(ref_pred == labels[:n_ref]))
        result["accuracy_emulator_on_reference_samples"] = float(
            np.mean(emu_pred[:n_ref] == labels[:n_ref])
        )
        result["prediction_agreement"] = float(np.mean(ref_pred == emu_pred[:n_ref]))
        result["output_nrmse"] = _nrmse(ref_scores, emu_scores[:n_ref])
        layers = {}
        for p in layer_probes:
            neuron_type = p.obj.ensemble.neuron_type
            emu_c = spike_counts(np.concatenate(ref_layers[p]), neuron_type, dt)
            ref_c = spike_counts(ref[p], neuron_type, dt)
            label = str(p.obj.ensemble.label or p.obj.ensemble)
            layers[label] = _count_agreement(
                ref_c.reshape(-1, ref_c.shape[-1]), emu_c.reshape(-1, emu_c.shape[-1])
            )
        result["layers"] = layers
    return result
