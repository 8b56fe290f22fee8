"""Stage ``check``: the frozen network (or an untrained recipe) against a profile.

The deployment plan (`nengo_hybrid.hardware.plans`) for the model and profile,
if there is one, is applied: its placement, and its strategy per ensemble;
``--strategy`` overrides the plan's strategies. ``auto`` strategies are chosen
from the spike counts ``evaluate`` measured. Writes ``check.json``.
"""

import pathlib
import time

import numpy as np

from nengo_hybrid import report as reporting
from nengo_hybrid.pipeline.runs import PipelineUsageError, read_frozen, recipe_of


def load_profile(profile):
    """A hardware profile (name or JSON path), with a usage error."""
    from nengo_hybrid.hardware import load_profile as load

    try:
        return load(profile)
    except Exception as err:
        raise PipelineUsageError(
            str(err), hint="use --profile loihi1, --profile loihi2 or a profile .json"
        ) from err


def _profile_file(profile):
    """The absolute path of a profile given as a JSON file (else None)."""
    if isinstance(profile, (str, pathlib.Path)) and pathlib.Path(profile).is_file():
        return str(pathlib.Path(profile).resolve())
    return None


def checked_profile(checked):
    """The profile a ``check`` result used: its file if it came from one, else by name."""
    return load_profile(checked.get("profile_file") or checked["profile"])


def auto_strategy(max_count, profile=None):
    """The strategy ``auto`` picks for a layer whose largest measured count is given.

    On a profile with graded spikes (`.Profile.graded`, Loihi 2): `Graded`,
    one graded-spike neuron per neuron whatever the count (the check compares
    the count with the profile's payload bits).

    Otherwise (binary spikes, Loihi 1; also when ``profile`` is None):
    `Thermometer` with one level more than the largest count (rounding up), not
    `Expand`: Loihi 1 compartments reset to zero and clip negative voltages,
    which destroys the residual a HybridSpiking neuron carries; memoryless
    rounding levels run exactly (``benchmarks/results/deploy_fidelity_lmu.md``).
    `OneBit` when nothing was measured (the check then estimates the counts).
    """
    from nengo_hybrid.hardware.strategies import Graded, OneBit, Thermometer

    if profile is not None and profile.graded:
        return Graded()
    return OneBit() if max_count is None else Thermometer(int(max_count) + 1)


def find_plan(model, profile_name, plan=None):
    """The deployment plan: ``plan`` (a path or Plan), else the model's, else None."""
    from nengo_hybrid.hardware import plans

    try:
        if isinstance(plan, plans.Plan):
            return plan
        if plan is not None:
            return plans.Plan.read(plan)
        path = plans.find_plan(model, profile_name)
        return None if path is None else plans.Plan.read(path)
    except plans.PlanError as err:
        raise PipelineUsageError(str(err), hint=err.hint) from err


def deployable(
    net, strategy=None, plan=None, max_counts=None, frozen=None, profile=None
):
    """Place ``net`` for deployment: plan, strategies and host input encoders.

    Parameters
    ----------
    net : nengo.Network
        A classifier network (`nengo_hybrid.tasks`); modified in place.
    strategy : Strategy, optional
        Overrides every strategy (``None``: the plan's, else ``auto``).
    plan : Plan, optional
    max_counts : dict of {str: int}, optional
        Largest measured spike count per layer label (for ``auto``).
    frozen : FrozenNetwork, optional
        Its ``input_scales`` encode ``net.encoded_inputs`` as exact host
        encoder spikes (`nengo_hybrid.hardware.encode_node_inputs`), except on
        a graded-spike profile, where the host sends them as payloads.
    profile : Profile, optional
        The target: ``auto`` picks by it (`auto_strategy`); None: Loihi 1's.

    Returns
    -------
    strategies : dict of {Ensemble: Strategy}
    encoding : dict or None
        ``levels``, ``scale`` and ``input_axons`` per encoded node label.
    """
    from nengo_hybrid.neurons import HybridSpiking

    if plan is not None:
        chosen = plan.resolve(net)  # a PlanError is a usage error (exit 2)
    else:
        chosen = {
            e: None
            for e in net.all_ensembles
            if isinstance(e.neuron_type, HybridSpiking)
        }
    max_counts = max_counts or {}
    strategies = {
        ens: strategy or given or auto_strategy(max_counts.get(str(ens.label)), profile)
        for ens, given in chosen.items()
    }
    encoding = None
    scales = (frozen.meta.get("input_scales") if frozen is not None else None) or {}
    if scales and not (profile is not None and profile.graded):
        # binary spikes need encoder ensembles; graded ones carry the values
        # as payloads (`nengo_hybrid.hardware.loihi2_mapping`), no ensembles
        from nengo_hybrid.hardware import encode_node_inputs

        levels = frozen.meta.get("input_levels", 8)
        by_label = {node.label: node for node in net.encoded_inputs}
        done = encode_node_inputs(
            net, {by_label[k]: np.asarray(v) for k, v in scales.items()}, levels=levels
        )
        encoding = {
            label: {
                "levels": levels,
                "scale": list(scales[label]),
                "input_axons": sum(
                    d["input_axons"] for d in done if d["node"].label == label
                ),
            }
            for label in scales
        }
    return strategies, encoding


def strategy_argument(strategies):
    """What `hardware.check` / `hardware.Simulator` take for ``strategies``.

    `Substeps` changes the time step of the whole network, so it is passed as
    the one strategy for all ensembles; anything else per ensemble.
    """
    from nengo_hybrid.hardware.strategies import Substeps

    substeps = {s for s in strategies.values() if isinstance(s, Substeps)}
    if not substeps:
        return strategies
    if len(substeps) > 1 or len(substeps) != len(set(strategies.values())):
        raise PipelineUsageError(
            "Substeps(K) runs the whole network at dt/K: it cannot be mixed with "
            f"other strategies ({', '.join(sorted(map(repr, strategies.values())))})",
            hint="use --strategy substeps:K for every ensemble, or no Substeps",
        )
    return substeps.pop()


def measured_counts(run):
    """``{layer label: largest count}`` measured by ``evaluate`` (or None)."""
    evaluated = reporting.read_stage(run, "evaluate", required=False)
    if not evaluated or evaluated.get("error"):
        return None
    return evaluated.get("max_counts")


def measured_payloads(run, net):
    """``{ensemble: largest payload}`` of `.SigmaDelta` layers measured by ``evaluate``."""
    evaluated = reporting.read_stage(run, "evaluate", required=False)
    if not evaluated or evaluated.get("error"):
        return {}
    payloads = evaluated.get("max_payloads") or {}
    return {
        ens: payloads[str(ens.label)]
        for ens in net.all_ensembles
        if str(ens.label) in payloads
    }


def check(run=None, recipe=None, profile=None, strategy=None, plan=None):
    """Check a trained run (or an untrained recipe) against a hardware profile.

    With ``run``, the frozen network is checked with the spike counts
    ``evaluate`` measured, and ``check.json`` is written to the run folder.

    Parameters
    ----------
    run : str or pathlib.Path, optional
        Run folder (trained).
    recipe : nengo_hybrid.zoo.Recipe, optional
        Checked untrained when ``run`` is not given.
    profile : str or Profile, optional
        Default: the plan's, else ``"loihi1"``.
    strategy : Strategy, optional
        For every hybrid ensemble on the chip (default: the plan's, else auto).
    plan : str or Plan, optional
        Default: ``deploy/MODEL_PROFILE.json`` if there is one.

    Returns
    -------
    dict
        ``Report.to_dict()`` plus ``table``, ``model``, ``data``, ``seed``,
        ``strategies`` (by label), ``plan`` and ``input_encoding``.
    """
    from nengo_hybrid import hardware
    from nengo_hybrid.pipeline.specs import strategy_spec

    frozen = None
    if run is not None:
        recipe = recipe_of(run)
        frozen = read_frozen(run)
        net = frozen.build(recipe)
        info = frozen.meta
    else:
        net = recipe.build()
        info = {"model": recipe.name, "data": None, "seed": recipe.get("seed")}
    if isinstance(plan, (str, pathlib.Path)) or plan is None:
        name = None if profile is None else load_profile(profile).name
        plan = find_plan(recipe.name, name or "loihi1", plan)
    prof = load_profile(profile or (plan.profile if plan else "loihi1"))
    if plan is not None and load_profile(plan.profile).name != prof.name:
        raise PipelineUsageError(
            f"deployment plan {plan.path} is for profile {plan.profile!r}, not "
            f"{prof.name!r}",
            hint="drop --profile to use the plan's, or give a plan for that profile",
        )
    max_counts = measured_counts(run) if run is not None else None
    strategies, encoding = deployable(
        net, strategy, plan, max_counts, frozen, profile=prof
    )
    counts = {
        ens: max_counts[str(ens.label)]
        for ens in strategies
        if max_counts and str(ens.label) in max_counts
    }
    counts.update(measured_payloads(run, net) if run is not None else {})
    tic = time.perf_counter()
    report = hardware.check(
        net, profile=prof, strategy=strategy_argument(strategies), counts=counts or None
    )
    result = report.to_dict()
    result.update(
        table=str(report),
        model=recipe.name,
        data=info.get("data"),
        seed=info.get("seed"),
        strategies={str(e.label): strategy_spec(s) for e, s in strategies.items()},
        strategy_override=None if strategy is None else strategy_spec(strategy),
        counts_source="measured by evaluate" if counts else "estimated",
        limits=dict(prof.limits),
        plan=None if plan is None else plan.to_dict(),
        input_encoding=encoding,
        seconds=time.perf_counter() - tic,
        profile_file=_profile_file(profile),
    )
    if run is not None:
        reporting.write_stage(run, "check", result)
    return result
