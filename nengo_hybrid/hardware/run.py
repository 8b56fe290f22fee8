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
