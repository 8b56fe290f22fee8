"""Stage ``deploy``: the frozen network on an emulator (or a chip), compared.

The network is placed as ``check`` decided (``check.json``: plan, strategies,
input encoders; ``check`` runs again when it is missing, failed, or for
another profile or strategy). Every test sample (the whole split by default)
runs from the initial state, as NengoDL evaluates it, on the batched emulator
(`nengo_hybrid.hardware.Simulator.run_samples`; ``emulator="nengo-loihi"`` for
nengo-loihi's own). The accuracy comes with its 95% interval and is compared
with ``evaluate``'s NengoDL predictions on the same samples; the first
``n_reference`` samples also run on Nengo's reference simulator (same frozen
network, input encoders included). Writes ``deploy.json``.

On a graded-spike (Loihi 2) profile the Loihi 2 semantics run instead, or
Lava's own models (`nengo_hybrid.pipeline.deploy_loihi2`).
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
#: test samples also run on Nengo's reference simulator
REFERENCE_SAMPLES = 200


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


class Placement:
    """A run's frozen network placed as ``check`` decided, with its test inputs.

    What `deploy` runs (benchmarks use it too): ``net`` (the deploy-mode
    network, host encoders added), ``strategies`` (the `.Simulator` argument),
    ``profile``, ``counts`` (measured spike counts for the Simulator's check),
    ``values`` (``{node: (N, T, d)}`` inputs of the first ``n_samples`` test
    samples; default the recipe's ``n_samples``, else the whole split),
    ``labels``, ``layer_probes``, ``latency`` (model steps each probe lags),
    ``encoding`` (host encoders, with the fraction of inputs beyond full scale),
    ``recipe``, ``dataset``, ``seed``.
    """

    def __init__(self, run, checked, n_samples=None):
        from nengo_hybrid.hardware.inputs import input_clip_fraction
        from nengo_hybrid.hardware.strategies import Substeps
        from nengo_hybrid.pipeline.check import (
            checked_profile,
            deployable,
            find_plan,
            measured_counts,
            strategy_argument,
        )
        from nengo_hybrid.pipeline.runs import dataset_of
        from nengo_hybrid.pipeline.specs import parse_strategy

        self.recipe = recipe_of(run)
        frozen = read_frozen(run)
        self.seed = frozen.meta["seed"]
        self.net = net = frozen.build(self.recipe)
        self.profile = checked_profile(checked)
        plan_info = checked.get("plan")
        plan = (
            find_plan(self.recipe.name, self.profile.name, plan_info["path"])
            if plan_info
            else None
        )
        strategies, self.encoding = deployable(net, plan=plan, frozen=frozen)
        by_label = {str(e.label): e for e in strategies}
        strategies = {
            by_label[label]: parse_strategy(spec)
            for label, spec in checked["strategies"].items()
        }
        # the Simulator checks again (same checks, same measured counts as `check`)
        max_counts = measured_counts(run) or {}
        self.counts = {
            e: max_counts[str(e.label)]
            for e in strategies
            if str(e.label) in max_counts
        } or None
        self.dataset = dataset_of(run, self.recipe)
        n = int(n_samples or self.recipe.get("n_samples") or len(self.dataset.y_test))
        x, self.labels = self.dataset.x_test[:n], self.dataset.y_test[:n]
        self.layer_probes = net.layer_probes()
        self.strategies = strategy_argument(strategies)
        # Substeps runs host and chip at dt/K: the one-step latencies are sub-steps
        self.latency = (
            {}
            if isinstance(self.strategies, Substeps)
            else {
                net.probe: HOST_LATENCY,
                **{p: CHIP_LATENCY for p in self.layer_probes},
            }
        )
        self.values = net.inputs(x)
        for node in net.encoded_inputs if self.encoding else ():
            info = self.encoding[node.label]
            info["clip_fraction"] = input_clip_fraction(
                self.values[node], np.asarray(info["scale"])
            )


def _graded(checked, profile=None):
    """Whether the profile (the one given, else the one ``check`` used) is Loihi 2's."""
    from nengo_hybrid.pipeline.check import checked_profile, load_profile

    found = checked_profile(checked) if profile is None else load_profile(profile)
    return found.emulator == "loihi2"


def _compare_nengo_dl(run, result, y):
    """Add NengoDL's accuracy on the same samples (``evaluate.json``) and the drop."""
    evaluated = reporting.read_stage(run, "evaluate", required=False) or {}
    dl_pred = evaluated.get("predictions")
    if dl_pred is None or len(dl_pred) < len(y):
        return
    dl_pred = np.asarray(dl_pred[: len(y)])
    result["accuracy_nengo_dl_same_samples"] = float(np.mean(dl_pred == y))
    result["accuracy_drop_pp"] = 100 * (
        result["accuracy_nengo_dl_same_samples"] - result["accuracy"]
    )
    result["prediction_agreement_nengo_dl"] = float(
        np.mean(dl_pred == np.asarray(result["predictions"]))
    )


def resolve_target(target, plan, graded=False):
    """The target to run on, from ``--target`` and the plan's target.

    Loihi 1 profiles: ``emulator`` or ``chip`` (NxSDK). Graded-spike (Loihi 2)
    profiles: ``emulator``, ``lava`` (Lava's CPU models) or ``chip`` (Lava on a
    Loihi 2 system).
    """
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
        wanted = "chip" if hardware.HAS_NXSDK and not graded else "emulator"
    targets = ("emulator", "lava", "chip") if graded else ("emulator", "chip")
    if wanted not in targets:
        hint = f"use one of {', '.join(targets)}"
        if wanted == "lava":
            hint = "Lava runs Loihi 2: deploy with --profile loihi2, or " + hint
        raise PipelineUsageError(f"unknown target {wanted!r} here", hint=hint)
    if wanted == "chip" and not graded and not hardware.HAS_NXSDK:
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
           check_result=None, progress=True, emulator="batched",
           n_reference=REFERENCE_SAMPLES):  # fmt: skip
    """Run a trained run's frozen network on the emulator (or a chip).

    Parameters
    ----------
    run : str or pathlib.Path
        Trained (and evaluated) run folder.
    target : {"emulator", "lava", "chip", None}
        Default: the plan's target, else the emulator. On Loihi 1 ``"chip"``
        needs NxSDK; on a graded-spike (Loihi 2) profile ``"lava"`` runs
        Lava's CPU models and ``"chip"`` Lava on a Loihi 2 system
        (`nengo_hybrid.pipeline.deploy_loihi2`).
    profile : str or Profile, optional
        Default: the one ``check`` used.
    n_samples : int, optional
        Test examples (default: the recipe's ``n_samples``, else the whole
        test split; on Lava at most ``deploy_loihi2.LAVA_SAMPLES``).
    strategy : Strategy, optional
        Overrides the strategies (default: the ones ``check`` chose).
    plan : str or Plan, optional
        Deployment plan (default: the one ``check`` used).
    check_result : dict, optional
        The ``check`` result; read from ``check.json`` when not given. If the
        check failed nothing runs and ``check_ok`` is False.
    progress : bool
        Show a progress bar.
    emulator : {"batched", "nengo-loihi"}
        The emulator (see `nengo_hybrid.hardware.Simulator`); deploy.json
        records the one that ran (``emulator``, ``emulator_fallback``).
    n_reference : int
        Samples also run on Nengo's reference simulator.

    Returns
    -------
    dict
        The content of ``deploy.json``.
    """
    from nengo_hybrid import hardware
    from nengo_hybrid.pipeline.check import check

    run = pathlib.Path(run)
    checked = check_result or reporting.read_stage(run, "check", required=False)
    if check_result is None and (
        plan is not None or _stale(checked, profile, strategy)
    ):
        checked = check(run=run, profile=profile, strategy=strategy, plan=plan)
    graded = _graded(checked, profile)  # a profile file is read from its path
    target = resolve_target(target, checked.get("plan"), graded)
    if not checked["ok"]:
        return {"check_ok": False, "check": checked}

    if graded:
        from nengo_hybrid.pipeline.deploy_loihi2 import deploy_graded

        return deploy_graded(run, checked, target, n_samples, n_reference, progress)
    placed = Placement(run, checked, n_samples)
    net, layer_probes, latency = placed.net, placed.layer_probes, placed.latency
    y = placed.labels
    tic = time.perf_counter()
    compared = hardware.compare_samples(
        net, placed.values, y, net.probe, layer_probes=layer_probes,
        score_steps=net.score_steps, strategy=placed.strategies,
        target="sim" if target == "emulator" else "loihi", seed=placed.seed,
        latency=latency, profile=placed.profile, counts=placed.counts,
        emulator=emulator, n_reference=n_reference, progress=progress,
    )  # fmt: skip
    recipe, dataset, encoding = placed.recipe, placed.dataset, placed.encoding
    result = {
        "model": recipe.name,
        "data": dataset.description,
        "seed": placed.seed,
        "target": target,
        "profile": placed.profile.name,
        "strategies": checked["strategies"],
        "n_samples": int(len(y)),
        "steps_per_sample": int(compared["n_steps"]),
        "accuracy": compared["accuracy_emulator"],
        "accuracy_interval95": compared["accuracy_interval95"],
        "emulator": compared["emulator"],
        "emulator_fallback": compared["emulator_fallback"],
        # one name for the emulator's speed: seconds per sample and per step
        "emulator_seconds": compared["emulator_seconds"],
        "samples_independent": True,
        "n_reference_samples": compared["n_reference_samples"],
        "accuracy_reference": compared.get("accuracy_reference"),
        "accuracy_reference_source": "Nengo reference simulator, same frozen network "
        "(input encoders included), each sample from the initial state, on the "
        "first n_reference_samples samples",
        "accuracy_on_reference_samples": compared.get(
            "accuracy_emulator_on_reference_samples"
        ),
        "prediction_agreement": compared.get("prediction_agreement"),
        "output_nrmse": compared.get("output_nrmse"),
        "input_encoding": encoding,
        # the Simulator's own hardware check (allow_violations is recorded here)
        "hardware_check": compared["hardware_check"],
        "cores": compared["cores"],
        "compartments": compared["compartments"],
        "latency_steps": {
            "output": latency.get(net.probe, 0),
            "layers": latency.get(layer_probes[0], 0),
        },  # fmt: skip
        "layers": compared.get("layers", {}),
        "seconds": time.perf_counter() - tic,
        "predictions": compared["predictions_emulator"],
    }
    _compare_nengo_dl(run, result, y)
    reporting.write_stage(run, "deploy", result)
    return result
