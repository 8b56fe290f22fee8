"""Stage ``deploy`` on a graded-spike (Loihi 2) profile: the emulator, Lava, or a chip.

The frozen network is mapped one graded-spike neuron per neuron
(`nengo_hybrid.hardware.loihi2_mapping`); host inputs are sent as integer
payloads at the full scale recorded at freezing. Where it runs:

* ``target="emulator"``: the project's Loihi 2 semantics
  (`nengo_hybrid.hardware.loihi2.run`, every sample at once), on the whole
  test split by default;
* ``target="lava"``: Lava's own fixed-point CPU models
  (``Loihi2SimCfg(select_tag="fixed_pt")``, through
  `nengo_hybrid.hardware.lava.run_lava`), on `LAVA_SAMPLES` samples by
  default; the emulator runs the same samples and ``deploy.json`` says whether
  every payload of every step was identical;
* ``target="chip"``: Lava on a Loihi 2 system (``Loihi2HwCfg``, needs
  lava-loihi), compared in the same way.

The host readout is evaluated in NumPy (`nengo_hybrid.hardware.samples.HostGraph`),
the first ``n_reference`` samples also run on Nengo's reference simulator, and
the predictions are compared with ``evaluate``'s NengoDL ones.
"""

import time

import numpy as np

from nengo_hybrid import report as reporting
from nengo_hybrid.pipeline.runs import PipelineUsageError, read_frozen, recipe_of

#: test samples run on Lava by default (its CPU models run ~1 sample per second)
LAVA_SAMPLES = 200
#: targets of a graded-spike profile, and the Lava run configuration of each
LAVA_TARGETS = {"lava": "sim", "chip": "chip"}
#: steps run after each sample, room for the chip's latency (checked)
EXTRA_STEPS = 4


def _host_outputs(mapped, decoded, values, n_steps, probe):
    """The probe's host node from the decoded chip readouts (a NumPy host side)."""
    from nengo_hybrid.hardware.samples import HostGraph, fit_steps

    n_samples = len(next(iter(values.values())))

    def given(x):
        return lambda n_samples, n_steps: fit_steps(x, n_steps)

    sources = {node: given(x) for node, x in {**values, **decoded}.items()}
    graph = HostGraph(mapped.model, mapped.dt, sources)
    return graph.value(probe.target, n_samples, n_steps)


def _readout_lag(mapped, name):
    """Steps the readouts lag the reference simulator (one number, or an error)."""
    lags = {mapped.latency[r["pre"]] for r in mapped.readouts}
    if None in lags or len(lags) != 1 or max(lags) > EXTRA_STEPS:
        raise PipelineUsageError(
            f"{name}: the Loihi 2 readouts do not lag the reference by one fixed "
            f"number of steps ({mapped.latency})",
            hint="deploy it on Loihi 1 (--profile loihi1)",
        )
    return lags.pop()


def _layers(payloads, bits_available, program):
    """Per population: kind (``hybrid`` or ``sigma_delta``: counts or deltas),
    neurons, largest payload, bits it needs (sign included), events."""
    layers = {}
    for label, counts in payloads.items():
        peak = int(np.abs(counts).max()) if counts.size else 0
        layers[label] = {
            "kind": program.by_label[label].kind,
            "neurons": int(counts.shape[-1]),
            "max_payload": peak,
            "payload_bits_needed": peak.bit_length() + 1,
            "payload_bits_available": bits_available,
            "events_per_sample": float(np.count_nonzero(counts) / len(counts)),
        }
    return layers


def _first_mismatch(a, b):
    """``{"population", "sample", "step", "neuron"}`` of the first differing payload."""
    for label in a:
        diff = np.argwhere(a[label] != b[label])
        if len(diff):
            sample, step, neuron = (int(i) for i in diff[0])
            return {"population": label, "sample": sample, "step": step,
                    "neuron": neuron}  # fmt: skip
    return None


def _on_lava(mapped, payload_in, target, progress):
    """Lava's payloads and a summary of its run."""
    from tqdm.auto import tqdm

    from nengo_hybrid.hardware.lava import run_lava

    n = len(next(iter(payload_in.values())))
    tic = time.perf_counter()
    with tqdm(total=n, desc=f"Lava ({target})", unit="sample",
              disable=not progress) as bar:  # fmt: skip
        out = run_lava(mapped.program, payload_in, target=LAVA_TARGETS[target],
                       progress=bar)  # fmt: skip
    wall = time.perf_counter() - tic
    summary = {
        "config": "Loihi2HwCfg" if target == "chip" else "Loihi2SimCfg(fixed_pt)",
        "version": out.meta.get("lava_version"),
        "runs": out.meta.get("runs"),
        "seconds": {
            "total": wall,
            "per_sample": wall / n,
            "lava_own": out.meta.get("seconds"),
        },
    }
    return out.payloads, summary


def _predict(mapped, net, payloads, padded, n_steps, lag):
    """Predicted classes from the chip's payloads (host readout, latency removed)."""
    from nengo_hybrid.hardware.run import _align, _scores

    outputs = _host_outputs(
        mapped, mapped.decode(payloads), padded, n_steps + EXTRA_STEPS, net.probe
    )
    return _scores(_align(outputs, n_steps, 1, lag), net.score_steps).argmax(axis=1)


def _no_host_ensembles(checked, name):
    """Refuse a placement that keeps ensembles on the host (the mapping puts all on chip)."""
    host = [row["object"] for row in checked.get("host") or []
            if str(row.get("object", "")).startswith("<Ensemble")]  # fmt: skip
    if host:
        raise PipelineUsageError(
            f"{name}: the Loihi 2 deployment maps every ensemble onto the chip, but "
            f"the check placed {', '.join(host)} on the host",
            hint="use a plan without host ensembles for the Loihi 2 profile",
        )


def deploy_graded(run, checked, target, n_samples, n_reference, progress):
    """`~nengo_hybrid.pipeline.deploy.deploy` on a graded-spike profile (module docstring).

    ``n_samples`` defaults to the recipe's, else the whole test split on the
    emulator and `LAVA_SAMPLES` on Lava. Returns the content of ``deploy.json``.
    """
    from nengo_hybrid.hardware import loihi2
    from nengo_hybrid.hardware.loihi2_mapping import from_network
    from nengo_hybrid.hardware.run import _scores, reference_samples, wilson_interval
    from nengo_hybrid.hardware.samples import fit_steps
    from nengo_hybrid.pipeline.check import checked_profile
    from nengo_hybrid.pipeline.deploy import _compare_nengo_dl
    from nengo_hybrid.pipeline.runs import dataset_of

    recipe, frozen = recipe_of(run), read_frozen(run)
    _no_host_ensembles(checked, recipe.name)
    net = frozen.build(recipe)
    profile = checked_profile(checked)
    dataset = dataset_of(run, recipe)
    default = recipe.get("n_samples") or len(dataset.y_test)
    if target in LAVA_TARGETS:
        default = min(default, LAVA_SAMPLES)
    n = min(int(n_samples or default), len(dataset.y_test))
    x, y = dataset.x_test[:n], dataset.y_test[:n]
    values = net.inputs(x)
    n_steps = next(iter(values.values())).shape[1]
    padded = {node: fit_steps(v, n_steps + EXTRA_STEPS) for node, v in values.items()}
    scales = frozen.meta.get("input_scales") or {}
    mapped = from_network(net, profile, input_scales=scales)
    lag = _readout_lag(mapped, recipe.name)
    payload_in = mapped.encode(padded)

    tic = time.perf_counter()
    emulated = loihi2.run(mapped.program, payload_in).payloads
    emulator_s = time.perf_counter() - tic
    pred = _predict(mapped, net, emulated, padded, n_steps, lag)
    result = {
        "model": recipe.name,
        "data": dataset.description,
        "seed": frozen.meta["seed"],
        "target": target,
        "profile": profile.name,
        "strategies": checked["strategies"],
        "n_samples": int(n),
        "steps_per_sample": int(n_steps),
        "emulator": "loihi2",
        "emulator_fallback": None,
        "emulator_seconds": {
            "total": emulator_s,
            "per_sample": emulator_s / n,
            "per_step": emulator_s / (n * (n_steps + EXTRA_STEPS)),
        },
        "samples_independent": True,
        "latency_steps": {"output": lag},
    }
    payloads = emulated
    if target in LAVA_TARGETS:
        payloads, result["lava"] = _on_lava(mapped, payload_in, target, progress)
        mismatch = _first_mismatch(payloads, emulated)
        result["lava"]["payloads_equal_emulator"] = mismatch is None
        result["lava"]["first_mismatch"] = mismatch
        result["accuracy_emulator"] = float(np.mean(pred == y))
        if mismatch is not None:
            pred = _predict(mapped, net, payloads, padded, n_steps, lag)
    correct = int(np.sum(pred == y))
    result["accuracy"] = correct / n
    result["accuracy_interval95"] = list(wilson_interval(correct, n))
    result["layers"] = _layers(
        payloads, int(profile["spike_payload_bits"]), mapped.program
    )
    result["predictions"] = pred.tolist()
    n_ref = min(int(n_reference), n)
    result["n_reference_samples"] = n_ref
    if n_ref:
        ref = reference_samples(
            net, {k: v[:n_ref] for k, v in values.items()}, [net.probe], n_steps,
            dt=mapped.dt, seed=frozen.meta["seed"],
        )[net.probe]  # fmt: skip
        ref_pred = _scores(ref, net.score_steps).argmax(axis=1)
        result["accuracy_reference"] = float(np.mean(ref_pred == y[:n_ref]))
        result["prediction_agreement"] = float(np.mean(ref_pred == pred[:n_ref]))
    _compare_nengo_dl(run, result, y)
    reporting.write_stage(run, "deploy", result)
    return result
