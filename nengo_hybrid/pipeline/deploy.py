"""Stage ``deploy``: the frozen network on an emulator (or a chip), compared.

The network is placed as ``check`` decided (``check.json``: plan, strategies,
input encoders; ``check`` runs again when it is missing, failed, or for
another profile or strategy). Test samples are played back to back; the class
of each is read on its last step. The same network runs in the Nengo reference
simulator on the same samples, and ``evaluate``'s NengoDL predictions are
compared too. Writes ``deploy.json``.
"""

import pathlib
import time

import numpy as np

from nengo_hybrid import report as reporting
from nengo_hybrid.pipeline.runs import PipelineUsageError, read_frozen, recipe_of

#: model steps by which the nengo-loihi emulator lags the reference simulator:
#: host spikes reach the chip one step late, chip spikes reach the host one step late
CHIP_LATENCY = 1
HOST_LATENCY = 2
DEFAULT_SAMPLES = 200


def present(net, x):
    """Make the network's input nodes play sequences ``x`` one after another.

    Returns the number of steps.
    """
    import nengo

    total = 0
    for node, values in net.inputs(x).items():
        values = np.asarray(values)
        flat = values.reshape(values.shape[0] * values.shape[1], -1)
        node.output = nengo.processes.PresentInput(flat, presentation_time=0.001)
        node.size_out = flat.shape[1]
        total = len(flat)
    return total


def compare_in_chunks(
    net, x, y, strategy, layer_probes=(), target="sim", seed=0, chunk=25,
    progress=True, latency=0, profile="loihi1", counts=None, allow_violations=False,
):  # fmt: skip
    """`nengo_hybrid.hardware.compare` over ``x`` in chunks, with a progress bar.

    Returns
    -------
    dict
        Sample-weighted ``accuracy_emulator``, ``accuracy_reference``,
        ``prediction_agreement``; ``emulator_seconds_per_step``, ``cores``,
        ``compartments``; ``layers``; and ``chunks`` (each `compare` result).
    """
    from tqdm.auto import tqdm

    from nengo_hybrid import hardware

    results = []
    with tqdm(
        total=len(y), desc=f"emulator ({target})", unit="sample", disable=not progress
    ) as bar:
        for start in range(0, len(y), chunk):
            xs, ys = x[start : start + chunk], y[start : start + chunk]
            n_steps = present(net, xs)
            results.append(
                hardware.compare(
                    net,
                    n_steps,
                    net.probe,
                    layer_probes=layer_probes,
                    labels=ys,
                    presentation_steps=n_steps // len(ys),
                    score_steps=net.score_steps,
                    strategy=strategy,
                    target=target,
                    seed=seed,
                    latency=latency,
                    profile=profile,
                    counts=counts,
                    allow_violations=allow_violations,
                )  # fmt: skip
            )
            bar.update(len(ys))
            bar.set_postfix(accuracy=f"{_weighted(results, 'accuracy_emulator'):.3f}")
    steps = sum(r["n_steps"] for r in results)
    return {
        "n_samples": int(len(y)),
        "accuracy_emulator": _weighted(results, "accuracy_emulator"),
        "accuracy_reference": _weighted(results, "accuracy_reference"),
        "prediction_agreement": _weighted(results, "prediction_agreement"),
        "emulator_seconds_per_step": sum(
            r["emulator_seconds_per_step"] * r["n_steps"] for r in results
        )
        / steps,
        "layers": _merge_layers(results),
        "cores": results[0].get("cores"),
        "compartments": results[0].get("compartments"),
        "hardware_check": results[0].get("hardware_check"),
        "chunks": results,
    }


def _merge_layers(results):
    """Per-layer spike agreement over all chunks (totals summed, fractions weighted)."""
    merged = {}
    for label in results[0].get("layers", {}):
        parts = [(r["n_steps"], r["layers"][label]) for r in results]
        ref = sum(p["total_reference"] for _, p in parts)
        emu = sum(p["total_emulator"] for _, p in parts)
        steps = sum(n for n, _ in parts)
        merged[label] = {
            "total_reference": ref,
            "total_emulator": emu,
            "total_ratio": emu / ref if ref else None,
            "fraction_equal_step_neuron": sum(
                n * p["fraction_equal_step_neuron"] for n, p in parts
            )
            / steps,
            "max_count_reference": max(p["max_count_reference"] for _, p in parts),
            "max_count_emulator": max(p["max_count_emulator"] for _, p in parts),
        }
    return merged


def _weighted(results, key):
    total = sum(r["n_samples"] for r in results)
    return sum(r[key] * r["n_samples"] for r in results) / total


def resolve_target(target, plan):
    """``emulator`` or ``chip`` from ``--target`` and the plan's target."""
    from nengo_hybrid import hardware

    wanted = target or (plan or {}).get("target") or "emulator"
    if wanted == "check-only":
        source = (plan or {}).get("path", "the deployment plan")
        raise PipelineUsageError(
            f"{source} is check-only: there is no emulator for its profile "
            f"{(plan or {}).get('profile')!r}",
            hint="run `nengo-hybrid check` with it, or deploy with --profile loihi1",
        )
    if wanted == "auto":
        wanted = "chip" if hardware.HAS_NXSDK else "emulator"
    if wanted not in ("emulator", "chip"):
        raise PipelineUsageError(
            f"unknown target {wanted!r}", hint="use emulator or chip"
        )
    if wanted == "chip" and not hardware.HAS_NXSDK:
        raise PipelineUsageError(
            "--target chip needs Intel's NxSDK, which is not importable here",
            hint="run on the emulator (--target emulator), or on a machine with a "
            "Loihi board and NxSDK installed",
        )
    return wanted


def _stale(checked, profile, strategy):
    from nengo_hybrid.pipeline.check import load_profile
    from nengo_hybrid.pipeline.specs import strategy_spec

    return (
        checked is None
        or checked.get("error")
        or (
            profile is not None and checked.get("profile") != load_profile(profile).name
        )
        or (
            strategy is not None
            and checked.get("strategy_override") != strategy_spec(strategy)
        )
    )


def deploy(run, target=None, profile=None, n_samples=None, strategy=None, plan=None,
           check_result=None, progress=True):  # fmt: skip
    """Run a trained run's frozen network on the emulator (or a chip).

    Parameters
    ----------
    run : str or pathlib.Path
        Trained (and evaluated) run folder.
    target : {"emulator", "chip", None}
        Default: the plan's target, else the emulator. ``"chip"`` needs NxSDK.
    profile : str or Profile, optional
        Default: the one ``check`` used.
    n_samples : int, optional
        Test examples (default: the recipe's ``n_samples``, else 200).
    strategy : Strategy, optional
        Overrides the strategies (default: the ones ``check`` chose).
    plan : str or Plan, optional
        Deployment plan (default: the one ``check`` used).
    check_result : dict, optional
        The ``check`` result; read from ``check.json`` when not given. If the
        check failed nothing runs and ``check_ok`` is False.

    Returns
    -------
    dict
        The content of ``deploy.json``.
    """
    from nengo_hybrid.hardware.inputs import input_clip_fraction
    from nengo_hybrid.hardware.strategies import Substeps
    from nengo_hybrid.pipeline.check import (
        check,
        deployable,
        find_plan,
        load_profile,
        measured_counts,
        strategy_argument,
    )
    from nengo_hybrid.pipeline.runs import dataset_of
    from nengo_hybrid.pipeline.specs import parse_strategy

    run = pathlib.Path(run)
    checked = check_result or reporting.read_stage(run, "check", required=False)
    if check_result is None and (
        plan is not None or _stale(checked, profile, strategy)
    ):
        checked = check(run=run, profile=profile, strategy=strategy, plan=plan)
    target = resolve_target(target, checked.get("plan"))
    if not checked["ok"]:
        return {"check_ok": False, "check": checked}

    recipe = recipe_of(run)
    frozen = read_frozen(run)
    net = frozen.build(recipe)
    prof = load_profile(checked["profile"])
    plan_info = checked.get("plan")
    plan = find_plan(recipe.name, prof.name, plan_info["path"]) if plan_info else None
    strategies, encoding = deployable(net, plan=plan, frozen=frozen)
    by_label = {str(e.label): e for e in strategies}
    strategies = {
        by_label[label]: parse_strategy(spec)
        for label, spec in checked["strategies"].items()
    }
    # the Simulator checks again (same checks, same measured counts as `check`)
    max_counts = measured_counts(run) or {}
    counts = {
        e: max_counts[str(e.label)] for e in strategies if str(e.label) in max_counts
    }
    dataset = dataset_of(run, recipe)
    n = int(n_samples or recipe.get("n_samples", DEFAULT_SAMPLES))
    x, y = dataset.x_test[:n], dataset.y_test[:n]
    layer_probes = net.layer_probes()
    strategies = strategy_argument(strategies)
    # Substeps runs host and chip at dt/K: the one-step latencies are sub-steps
    substeps = isinstance(strategies, Substeps)
    latency = (
        {}
        if substeps
        else {net.probe: HOST_LATENCY, **{p: CHIP_LATENCY for p in layer_probes}}
    )
    if encoding:
        values = net.inputs(x)
        for node in net.encoded_inputs:
            info = encoding[node.label]
            info["clip_fraction"] = input_clip_fraction(
                values[node], np.asarray(info["scale"])
            )
    tic = time.perf_counter()
    compared = compare_in_chunks(
        net, x, y, strategy=strategies, layer_probes=layer_probes,
        target="sim" if target == "emulator" else "loihi", seed=frozen.meta["seed"],
        latency=latency, profile=prof, progress=progress, counts=counts or None,
    )  # fmt: skip
    evaluated = reporting.read_stage(run, "evaluate", required=False) or {}
    dl_pred = evaluated.get("predictions")
    result = {
        "model": recipe.name,
        "data": dataset.description,
        "seed": frozen.meta["seed"],
        "target": target,
        "profile": prof.name,
        "strategies": checked["strategies"],
        "n_samples": int(len(y)),
        "steps_per_sample": int(next(iter(net.inputs(x[:1]).values())).shape[1]),
        "accuracy": compared["accuracy_emulator"],
        "accuracy_reference": compared["accuracy_reference"],
        "accuracy_reference_source": "Nengo reference simulator, same frozen network "
        "and samples played back to back",
        "prediction_agreement": compared.get("prediction_agreement"),
        "input_encoding": encoding,
        # the Simulator's own hardware check (allow_violations is recorded here)
        "hardware_check": compared["hardware_check"],
        "latency_steps": {
            "output": latency.get(net.probe, 0),
            "layers": latency.get(layer_probes[0], 0),
        },  # fmt: skip
        # one name for the emulator's speed: seconds of wall time per model step
        "emulator_seconds_per_step": compared["emulator_seconds_per_step"],
        "emulator_seconds_per_sample": compared["emulator_seconds_per_step"]
        * compared["chunks"][0]["n_steps"]
        / max(1, compared["chunks"][0]["n_samples"]),
        "layers": compared["layers"],
        "seconds": time.perf_counter() - tic,
        "compare": compared,
    }
    if dl_pred is not None and len(dl_pred) >= len(y):
        same = np.asarray(dl_pred[: len(y)]) == y
        result["accuracy_nengo_dl_same_samples"] = float(np.mean(same))
    reporting.write_stage(run, "deploy", result)
    return result
