"""Hardware-constraint checks, run before anything is emulated.

`check` compares a network with a `.Profile` in stages, cheapest first:

1. `pre_build`: neuron types, then what the shapes alone decide (input axons
   that no split of the cores can reduce), before any weight is built;
2. the nengo-loihi build and core plan, as the deployment would place it (no
   discretisation, no simulation), then Loihi's integer ranges
   (`check_ranges`);
3. `analyze`: every core, the largest spike count per step of every hybrid
   ensemble (a bound on all its inputs, `.bounds`), weights, host placement.

Stages 2 and 3 (`check_with_nengo_loihi`) model Loihi 1's binary spikes. On a
profile with graded spikes (Loihi 2) `nengo_hybrid.hardware.graded` replaces
them: one graded-spike neuron per hybrid neuron, cores planned from the
shapes and weight statistics.

`.Simulator` runs the same stages on its own model (the third between the
core split and the discretisation) and refuses what `check` refuses. The
result is a `Report`: ``ok``, ``violations`` (it does not fit or would
silently lose information), ``warnings`` (it fits, at a stated cost in
precision), a per-core table, and ``to_dict()`` for JSON.
"""

import math
import warnings

import nengo
import numpy as np
from nengo.exceptions import BuildError

from nengo_hybrid.hardware.bounds import drive_bounds, measure_counts
from nengo_hybrid.hardware.findings import Report, Violation
from nengo_hybrid.hardware.loihi import (
    DISCRETIZATION_FIX,
    NengoLoihiVersionError,
    Split,
    _pieces_synapse_bits,
    block_owner,
    build_model,
    check_supported,
    discretization_problems,
    loihi_neuron_types,
    substeps,
    supported_bases,
)
from nengo_hybrid.hardware.profiles import load_profile
from nengo_hybrid.hardware.strategies import (
    Graded,
    Thermometer,
    coerce_strategy_argument,
)
from nengo_hybrid.neurons import HybridSpiking, SigmaDelta

#: neuron types nengo-loihi maps onto compartments (exact classes, read from
#: its builder registry when this module was imported; see `loihi_neuron_types`)
LOIHI_NEURON_TYPES = loihi_neuron_types()


def check(
    network,
    profile="loihi1",
    strategy=None,
    dt=0.001,
    counts=None,
    max_weight_bits_lost=None,
    sample=None,
):
    """Check that ``network`` fits ``profile`` before anything is emulated.

    The checks run in order of cost, and stop at the first stage that fails:
    neuron types; what the shapes alone decide (input axons no split can
    reduce), before any weight is built; nengo-loihi's build and the core
    plan (no discretisation, no emulation); Loihi's integer ranges; then
    cores, spike counts per step, weights and host placement.

    On a profile with graded spikes (``"spikes": "graded"``, Loihi 2) a
    hybrid neuron is one graded-spike neuron, and the cores are planned from
    the shapes and weight statistics instead of nengo-loihi's Loihi 1 build
    (`nengo_hybrid.hardware.graded`): per core the payload bits the counts
    need (sign included), synapse memory, axons; per ensemble the state bits.

    Parameters
    ----------
    network : nengo.Network
    profile : str, dict or Profile
        ``"loihi1"``, ``"loihi2"``, a JSON path, or a `.Profile`.
    strategy : Strategy or dict
        Multi-bit strategy for `.HybridSpiking` ensembles, or ``{ensemble:
        strategy}`` (see `.strategies`). Per-ensemble strategies can also be
        set in the network config (`.add_params`); an entry of this dict wins
        over them.
    dt : float
        Model time step (with `.Substeps`, the chip runs at ``dt / K``).
    counts : dict of {Ensemble: int or array_like}, optional
        Measured spike counts per step (e.g. from a NengoDL run, via
        ``nengo_hybrid.metrics.spike_counts``) or their maximum; they are used
        instead of the bound for these ensembles.
    max_weight_bits_lost : int, optional
        If given, connections losing more weight bits than this are errors
        (otherwise they are warnings).
    sample : int or dict of {nengo.Node: array_like}, optional
        Inputs to measure spike counts from where no bound is possible (a
        Node computing a Python function, noise, ...): values per Node shaped
        ``(n_steps, size_out)``, played one per step, or a number of steps to
        run the network as it is. The reference simulator runs them.

    Without ``counts``, the largest spike count per step of every hybrid
    ensemble is a worst-case bound on everything that reaches it
    (`nengo_hybrid.hardware.bounds`): bias, every incoming connection
    (decoded, neuron-to-neuron, recurrent) and the range of every input
    Node. Where no bound is possible and no ``sample`` is given, the report
    says so (a ``spike_count_unknown`` warning) and falls back on
    ``max_rates``, which inputs beyond the radius can exceed.

    Returns
    -------
    Report
        Also for networks that cannot be built (reported as violations).

    Raises
    ------
    NengoLoihiVersionError
        If the installed nengo-loihi is not the version nengo-hybrid supports.

    Examples
    --------
    A hybrid ensemble needing up to four spikes per step does not fit Loihi 1's
    one-bit compartments until it gets a strategy:

    >>> import nengo
    >>> import numpy as np
    >>> from nengo_hybrid.hardware import Expand, check
    >>> from nengo_hybrid.neurons import HybridSpiking
    >>> with nengo.Network(seed=0) as net:
    ...     ens = nengo.Ensemble(
    ...         20,
    ...         1,
    ...         neuron_type=HybridSpiking(nengo.RectifiedLinear()),
    ...         gain=np.ones(20),
    ...         bias=np.linspace(500, 3500, 20),
    ...     )
    >>> report = check(net, profile="loihi1")
    >>> report.ok, [v.kind for v in report.violations]
    (False, ['spike_count_per_step'])
    >>> print(report.violations[0].fix.split(" (")[0])
    use strategy Expand(K=4) for this ensemble
    >>> report = check(net, profile="loihi1", strategy=Expand(4))
    >>> report.ok, report.n_cores, report.ensembles[0]["compartments"]
    (True, 1, 80)
    """
    profile = load_profile(profile)
    strategy = coerce_strategy_argument(strategy)
    report = Report(profile, strategy)
    if not pre_build(network, report):
        return report
    if profile.graded:  # one graded-spike neuron per neuron, planned from shapes
        from nengo_hybrid.hardware.graded import check_graded

        return check_graded(
            network, report, strategy, counts, sample, dt, max_weight_bits_lost
        )

    return check_with_nengo_loihi(
        network, report, strategy, counts, sample, dt, max_weight_bits_lost
    )


def check_with_nengo_loihi(
    network,
    report,
    strategy,
    counts=None,
    sample=None,
    dt=0.001,
    max_weight_bits_lost=None,
):
    """The stages after `pre_build` for binary spikes (Loihi 1), into ``report``.

    nengo-loihi's build and core plan (no discretisation, no emulation), its
    integer ranges (`check_ranges`), then `analyze`. `check` runs it on
    binary-spike profiles; graded-spike profiles are planned from the shapes
    instead (`nengo_hybrid.hardware.graded`). ``benchmarks/check_scaling.py``
    runs it on ``loihi2`` as the baseline.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_model(
                network,
                dt=dt,
                strategy=strategy,
                profile=report.profile,
                validate=False,
                discretize=False,
            )
    except NengoLoihiVersionError:
        raise
    except BuildError as e:
        report.add(
            Violation("build", network, "-", "-", "see the error", detail=str(e))
        )
        return report
    if not check_ranges(model, report):
        return report
    analyze(
        model,
        network,
        report,
        counts=counts,
        sample=sample,
        dt=dt,
        max_weight_bits_lost=max_weight_bits_lost,
    )
    return report


def pre_build(network, report):
    """The checks that need no build: neuron types, then shapes.

    Adds what it finds to ``report``; returns False when building is
    pointless (unsupported neuron types, or violations no split can fix).
    """
    if not _check_neuron_types(network, report):
        report.notes.append("Build skipped: fix the neuron types first.")
        return False
    if not _check_strategies(network, report):
        report.notes.append("Build skipped: fix the strategies first.")
        return False
    if not _check_shapes(network, report):
        report.notes.append(
            "Build skipped: these violations follow from the shapes alone and no "
            "split of the cores fixes them; fix them first (the other checks run "
            "once they are fixed)."
        )
        return False
    return True


def check_ranges(model, report):
    """Loihi's integer ranges (nengo-loihi's discretisation), before it runs.

    Adds one ``discretization`` violation per ensemble that cannot be
    discretized; returns False if there is any.
    """
    found = {}
    for obj, reason in discretization_problems(model):
        found.setdefault(str(obj), (obj, reason))
    for obj, reason in found.values():
        report.add(
            Violation(
                "discretization",
                obj,
                "Loihi integer ranges",
                "out of range",
                DISCRETIZATION_FIX,
                detail=reason,
            )
        )
    return not found


def analyze(
    model,
    network,
    report,
    counts=None,
    sample=None,
    dt=0.001,
    max_weight_bits_lost=None,
):
    """The checks on a built (split, not yet discretized) model, into ``report``.

    `check` runs them on a model it builds; `.Simulator` runs them on its
    own model, between the core split and the discretisation.
    """
    profile = report.profile
    lim = profile.limits
    n_sub = substeps(report.strategy)
    _check_cores(model, report, lim)
    found = largest_counts(model, network, report, counts or {}, sample, dt)
    _check_hybrid(model, report, profile, found, dt, n_sub)
    _check_spiking_relu(set(block_owner(model).values()), report, found)
    _check_weights(model, report, lim, max_weight_bits_lost)
    _host_objects(model, network, report, found)
    _node_inputs(model, network, report)
    n_chips = math.ceil(len(model.blocks) / lim["cores_per_chip"])
    if n_chips > 1:
        report.add(
            Violation(
                "cores",
                network,
                lim["cores_per_chip"],
                len(model.blocks),
                "use a multi-chip board, or fewer/smaller ensembles",
                severity="warning",
                detail=f"needs {n_chips} chips",
            )
        )
    return report


def _check_neuron_types(network, report):
    """One clear violation per ensemble whose neuron type cannot run on a core."""
    supported = True
    for ens in network.all_ensembles:
        if not _on_chip(network, ens):
            continue
        nt = ens.neuron_type
        if isinstance(nt, HybridSpiking):
            try:
                check_supported(ens)
            except BuildError as e:
                supported = False
                report.add(
                    Violation(
                        "neuron_type",
                        ens,
                        "bases " + ", ".join(b.__name__ for b in supported_bases()),
                        type(nt.base_type).__name__,
                        "use a "
                        + " or ".join(b.__name__ for b in supported_bases())
                        + " base, or set net.config[ens].on_chip = False",
                        detail=str(e),
                    )
                )
        elif isinstance(nt, SigmaDelta) and report.profile.graded:
            supported &= _check_sigma_delta(ens, report)
        elif type(nt) not in loihi_neuron_types():
            supported = False
            names = [cls.__name__ for cls in loihi_neuron_types() + (HybridSpiking,)]
            report.add(
                Violation(
                    "neuron_type",
                    ens,
                    ", ".join(names),
                    type(nt).__name__,
                    "use a spiking type nengo-loihi supports, or set "
                    "net.config[ens].on_chip = False",
                    detail="nengo-loihi cannot simulate this neuron type on a core",
                )
            )
    return supported


def _check_sigma_delta(ens, report):
    """Lava's stock sigma-delta neuron is a ReLU: a violation for other bases."""
    base = type(ens.neuron_type.base_type)
    if base is nengo.RectifiedLinear:
        return True
    report.add(
        Violation(
            "neuron_type",
            ens,
            "SigmaDelta(RectifiedLinear)",
            f"SigmaDelta({base.__name__})",
            "use SigmaDelta(nengo.RectifiedLinear()), or set net.config[ens]."
            "on_chip = False",
            detail="Lava's sigma-delta neuron computes relu(sigma + bias)",
        )
    )
    return False


def _check_strategies(network, report):
    """`.Graded` needs a profile with graded spikes; returns False if misused."""
    from nengo_hybrid.hardware.config import config_strategies

    if report.profile.graded:
        return True
    given = report.strategy
    chosen = dict(config_strategies(network))
    if isinstance(given, dict):
        chosen.update(given)
    else:
        chosen["default"] = given
    graded = [obj for obj, s in chosen.items() if isinstance(s, Graded)]
    for obj in graded:
        report.add(
            Violation(
                "strategy",
                "the default strategy" if obj == "default" else obj,
                "a strategy for binary spikes",
                "Graded()",
                "use auto, Thermometer(K), Expand(K) or OneBit() on this profile, or "
                'a profile with "spikes": "graded" (loihi2)',
                detail=f"{report.profile.name} spikes are binary (at most one per "
                "compartment and step): a graded spike's payload cannot be sent",
            )
        )
    return not graded


def _check_shapes(network, report):
    """Input axons per core that no split can reduce, from the shapes alone.

    Every core holding part of an ensemble receives one input axon per
    presynaptic neuron of each dense connection into it (and a decoded
    connection's decode neurons one per neuron of its ensemble), however the
    ensemble is split. Counted from nengo-loihi's host/chip placement
    (`nengo_loihi.splitter.Split`, which builds no weights), before anything
    is built. Returns False if a core would overflow.
    """
    limit = report.profile.limits["input_axons_per_core"]
    if limit is None:
        return True
    try:
        split = Split(network, precompute=None, remove_passthrough=True)
    except Exception:  # noqa: BLE001 (the build reports it, with its own message)
        return True
    conns = [
        c for c in network.all_connections if c not in split.passthrough.to_remove
    ] + list(split.passthrough.to_add)
    axons = {}  # receiver -> [(count, connection)]
    for conn in conns:
        pre, post = conn.pre_obj, conn.post_obj
        target = post.ensemble if isinstance(post, nengo.ensemble.Neurons) else post
        if not isinstance(target, nengo.Ensemble) or not split.on_chip(target):
            continue
        if type(conn.transform).__name__ not in ("Dense", "NoTransform"):
            continue  # sparse or convolutional: a split can reduce the axons
        if isinstance(pre, nengo.ensemble.Neurons) and isinstance(
            post, nengo.ensemble.Neurons
        ):
            axons.setdefault(target, []).append((conn.size_in, conn))
        elif (
            isinstance(pre, nengo.Ensemble)
            and split.on_chip(pre)
            and not isinstance(pre.neuron_type, nengo.Direct)
        ):
            if conn.solver.weights:
                axons.setdefault(target, []).append((pre.n_neurons, conn))
            else:  # decode neurons: their own block, one axon per neuron of pre
                axons.setdefault(f"decode neurons of {conn}", []).append(
                    (pre.n_neurons, conn)
                )
    fits = True
    for receiver, sources in axons.items():
        total = sum(n for n, _ in sources)
        if total <= limit:
            continue
        fits = False
        listed = ", ".join(f"{n} from {conn.pre_obj}" for n, conn in sources[:4])
        if len(sources) > 4:
            listed += f", ... ({len(sources)} connections)"
        report.add(
            Violation(
                "input_axons",
                receiver,
                limit,
                total,
                _core_fix("input_axons", {}, limit),
                detail=f"known from the shapes: every core of it receives one axon "
                f"per presynaptic neuron ({listed}), however it is split",
            )
        )
    return fits


def _on_chip(network, ens):
    try:
        return network.config[ens].on_chip is not False
    except Exception:  # config params not added (nengo_loihi.add_params not called)
        return True


def _check_cores(model, report, lim):
    owner = block_owner(model)
    # nengo-loihi's own auto-split, for comparison (it ignores word rounding)
    for old_block, summary in model.pre_split.items():
        n = summary["compartments"]
        max_bits = lim["synapse_bits_per_core"]
        naive = max(
            -(-n // lim["compartments_per_core"]),
            -(-summary["synapse_bits"] // max_bits),
        )
        planned = model.split_plan.get(old_block, 1)
        if planned > naive and np.any(
            _pieces_synapse_bits(old_block, -(-n // naive)) > max_bits
        ):
            report.notes.append(
                f"{old_block.label}: planned on {planned} cores; nengo-loihi's "
                f"auto-split would use {naive}, overflowing synapse memory after "
                "64-bit word rounding"
            )

    checks = (
        ("compartments", "compartments_per_core"),
        ("input_axons", "input_axons_per_core"),
        ("output_axons", "output_axons_per_core"),
        ("synapse_bits", "synapse_bits_per_core"),
    )
    for i, block in enumerate(model.blocks):
        util = block.utilization()
        row = {
            "core": i,
            "block": str(block.label),
            "ensemble": str(owner.get(block, "")),
            "compartments": util["compartments"][0],
            "input_axons": util["in-axons"][0],
            "output_axons": util["out-axons"][0],
            "synapse_bits": util["synapses"][0],
        }
        report.cores.append(row)
        for key, limit_key in checks:
            limit = lim[limit_key]
            if limit is None or row[key] <= limit:
                continue
            report.add(
                Violation(key, block.label, limit, row[key], _core_fix(key, row, limit))
            )


def _core_fix(key, row, limit):
    n = row.get("compartments")
    if key == "compartments":
        return (
            f"split the ensemble: net.config[ens].block_shape = "
            f"nengo_loihi.BlockShape(({limit},), ({n},)) (or remove a user "
            "block_shape that is too large)"
        )
    if key == "synapse_bits":
        per = max(1, int(n * limit / row["synapse_bits"]) - 1)
        return (
            f"put fewer compartments per core, e.g. net.config[ens].block_shape = "
            f"nengo_loihi.BlockShape(({per},), ({n},)), or use sparser / lower-bit "
            "weights"
        )
    if key == "input_axons":
        return (
            "a core can receive from at most this many presynaptic neurons; "
            "splitting the target does not help: reduce the presynaptic ensembles, "
            "use sparse or convolutional (population) connections, or route "
            "through fewer neurons"
        )
    return (
        "each outgoing connection uses one axon per presynaptic compartment: "
        "merge outgoing connections or split the presynaptic ensemble with a "
        "smaller BlockShape"
    )


class Count:
    """The largest spike count per step of one ensemble, and where it comes from.

    Attributes
    ----------
    max_count : int
    drive : float
        Largest drive per step (``precision * dt * r(J)``), or the largest
        mean count of one neuron when measured.
    source : str
        ``"bound ..."``, ``"measured"``, ``"measured on the sample ..."`` or
        ``"estimated from max_rates ..."``.
    bounded : bool
        Whether ``max_count`` is a guarantee (a bound on every input).
    """

    def __init__(self, max_count, drive, source, bounded=False, per_neuron=None):
        self.max_count = int(max_count)
        self.drive = float(drive)
        self.source = source
        self.bounded = bounded
        #: largest |count| per neuron, where known (else None)
        self.per_neuron = per_neuron


COUNTED_TYPES = (nengo.SpikingRectifiedLinear, nengo.RegularSpiking)


def _counted(neuron_type):
    return isinstance(neuron_type, HybridSpiking) or type(neuron_type) in COUNTED_TYPES


def largest_counts(
    model, network, report, counts, sample=None, dt=0.001, chip=None, reference=None
):
    """`Count` per spiking ensemble whose counts the hardware must carry.

    On-chip `.HybridSpiking` (and nengo ``SpikingRectifiedLinear``)
    ensembles and host `.HybridSpiking` ensembles: measured ``counts`` if
    given, else the bound on all inputs (`.bounds.drive_bounds`), else
    measured on ``sample``, else estimated from ``max_rates`` with a
    ``spike_count_unknown`` warning in ``report``.

    ``chip``: the on-chip ensembles (default: those of the nengo-loihi
    ``model``'s blocks; ``model`` may then be Nengo's reference build).
    ``reference``: ``network`` already built by Nengo's builder, for the bounds.
    """
    if chip is None:
        chip = set(block_owner(model).values())
    wanted = [
        ens
        for ens in network.all_ensembles
        if (ens in chip and _counted(ens.neuron_type))
        or (ens not in chip and isinstance(ens.neuron_type, HybridSpiking))
    ]
    found = {ens: _measured(counts[ens]) for ens in wanted if ens in counts}
    missing = [ens for ens in wanted if ens not in found]
    if not missing:
        return found
    bounds = drive_bounds(network, dt, model=reference)
    report.notes.extend(bounds.notes)
    unknown = []
    for ens in missing:
        bound = bounds[ens]
        if bound.max_count is None:
            unknown.append(ens)
            continue
        drive = bound.max_drive
        out = bound.output
        found[ens] = Count(
            bound.max_count,
            bound.max_count if drive is None else drive,
            "bound on all inputs",
            bounded=True,
            per_neuron=np.maximum(np.abs(out.lo), np.abs(out.hi)),
        )
    if unknown and sample is not None:
        measured, n_steps = measure_counts(network, sample, dt, unknown)
        for ens in unknown:
            found[ens] = Count(
                measured[ens],
                measured[ens],
                f"measured on the sample ({n_steps} steps; no bound: "
                f"{bounds[ens].reason})",
            )
        return found
    for ens in unknown:
        count, drive = _estimate(model, ens, dt)
        found[ens] = Count(count, drive, "estimated from max_rates, not a bound")
        report.add(
            Violation(
                "spike_count_unknown",
                ens,
                "a bound on every input",
                "unknown",
                "pass check(..., sample={node: inputs}) to measure the counts on "
                "representative inputs (the reference simulator runs them), or "
                "counts={ensemble: measured counts}, or set max_spikes on its "
                "neuron type to cap them",
                severity="warning",
                detail=f"no bound on its spikes per step: {bounds[ens].reason}; "
                f"{count} per step is only an estimate from max_rates, which inputs "
                "beyond the radius or from other neurons can exceed, and counts "
                "above the strategy's budget would saturate silently",
            )
        )
    return found


def _measured(c):
    c = np.asarray(c)
    m = int(np.abs(c).max()) if c.size else 0
    # drive: the largest mean count per step of one neuron
    drive = float(np.abs(c).reshape(-1, c.shape[-1]).mean(0).max()) if c.ndim else m
    per_neuron = (
        np.abs(c).reshape(-1, c.shape[-1]).max(0) if c.ndim and c.size else None
    )
    return Count(m, drive, "measured", per_neuron=per_neuron)


def _estimate(model, ens, dt):
    """The old estimate: ``precision * dt * max(max_rates)``."""
    nt = ens.neuron_type
    built = model.params.get(ens) or model.host.params.get(ens)
    max_rates = getattr(built, "max_rates", None)
    base = getattr(nt, "base_type", nengo.RectifiedLinear())
    if max_rates is None:
        max_rates = base.rates(1.0, built.gain, built.bias)
    drive = getattr(nt, "precision", 1.0) * dt * float(np.max(max_rates))
    count = int(math.ceil(drive - 1e-9))
    if getattr(nt, "max_spikes", None) is not None:
        count = min(count, nt.max_spikes)
    return count, drive


def _check_hybrid(model, report, profile, found, dt, n_sub=1):
    lim = profile.limits
    graded = lim["spike_payload_bits"] > 0
    for _block, info in model.hybrid_blocks.items():
        ens, nt, strategy = info
        K = strategy.compartments
        p = nt.precision
        count = found[ens]
        max_count, drive, source = count.max_count, count.drive, count.source
        bits_needed = math.ceil(math.log2(1 + max_count)) if max_count > 0 else 0
        if graded:
            representable = lim["max_spikes_per_step"] * K * n_sub
        else:
            representable = strategy.max_count
        exact = strategy.exact(profile) and type(nt.base_type) is nengo.RectifiedLinear
        report.ensembles.append(
            {
                "ensemble": str(ens),
                "neuron_type": f"HybridSpiking({type(nt.base_type).__name__}, "
                f"precision={p:g})",
                "n_neurons": ens.n_neurons,
                "strategy": repr(strategy),
                "compartments": ens.n_neurons * K,
                "chip_steps_per_model_step": n_sub,
                "max_count": max_count,
                "count_source": source,
                "count_is_bound": count.bounded,
                "spike_bits_needed": bits_needed,
                "spike_bits_available": lim["spike_payload_bits"] if graded else 1,
                "max_representable": representable,
                "exact": bool(exact),
            }
        )
        if max_count > representable:
            max_rate = max_count / (p * dt)
            report.add(
                Violation(
                    "spike_count_per_step",
                    ens,
                    representable,
                    max_count,
                    f"use strategy Expand(K={max_count}) for this ensemble "
                    f"({ens.n_neurons * max_count} compartments), or lower its "
                    f"precision to <= {1.0 / (dt * max_rate):.3g} (1-bit spikes), "
                    f"or set max_spikes={representable} and retrain",
                    detail=f"{bits_needed} spike bits needed ({source}); "
                    f"{repr(strategy)} on {profile.name} emits at most "
                    f"{representable} per step, more would saturate at "
                    f"{representable}/dt",
                )
            )
        if isinstance(strategy, Thermometer):
            report.add(
                Violation(
                    "quantizer",
                    ens,
                    "reference quantizer (error carried to the next step)",
                    "rounded per step (no carry)",
                    "measure the accuracy on the emulator (nengo-hybrid deploy); "
                    "Expand reproduces the reference exactly only with a "
                    "subtractive reset",
                    severity="warning",
                    detail=f"{repr(strategy)} runs exactly on {profile.name} "
                    "(thresholds at 0.5, 1.5, ... quanta, no voltage memory, so reset "
                    "to zero and clipping at zero change nothing), but each step's "
                    "count is the drive rounded, not the reference's error-diffused "
                    "count",
                )
            )
        elif (
            not profile.subtractive_reset
            and max_count > 1
            and type(nt.base_type) is nengo.RectifiedLinear
        ):
            report.add(
                Violation(
                    "signed_integration",
                    ens,
                    "integrate max(J, 0)",
                    "integrate J, clip at 0",
                    f"use Thermometer(K={max_count + 1}) (memoryless levels, exact on "
                    f"{profile.name}) and measure, or train with max_spikes=1 and a "
                    "low precision",
                    severity="warning",
                    detail=f"{profile.name} compartments integrate the signed input "
                    "and clip the voltage at zero, so a negative input erases the "
                    "residual the reference keeps (and re-synchronises Expand's "
                    "compartments); with multi-spike counts in a recurrent network "
                    "this can cost all accuracy (measured: "
                    "benchmarks/results/deploy_fidelity_lmu.md)",
                )
            )
        if (
            not profile.subtractive_reset
            and max_count > 0
            and not isinstance(strategy, Thermometer)
        ):
            x = min(drive, representable) / (K * n_sub)
            # reset to zero, strict threshold, constant drive x < 1 per step:
            # rate 1/(floor(1/x) + 1) instead of x; on average ~x/(1 + x/2)
            typical = x / (2 + x)
            worst = 1 - (1.0 / (math.floor(1.0 / x) + 1)) / x if x > 0 else 0.0
            report.add(
                Violation(
                    "reset_to_zero",
                    ens,
                    "subtractive reset",
                    "reset to zero",
                    "lower the drive: lower precision or rates, or more compartments "
                    f"per neuron (Expand(K={2 * max(K, max_count)}) halves it; but on "
                    "Loihi 1 a negative input clips all K voltages to zero and "
                    "re-synchronises the compartments, so measure: on mnist_dense "
                    "K=2 kept NengoDL's accuracy, K=4 and K=8 lost 4 and 20 points)",
                    severity="warning",
                    detail=f"{profile.name} compartments drop the residual voltage on "
                    f"each spike; at the largest drive ({x:.2f} of the threshold per "
                    f"step and compartment) the rate is ~{100 * typical:.0f}% low "
                    f"(up to {100 * max(worst, typical):.0f}% for unlucky drives); "
                    "smaller drives lose proportionally less",
                )
            )


def _chunks(arrays, size=1 << 22):
    """The arrays' values, about ``size`` at a time (bounded temporary memory)."""
    batch, n = [], 0
    for a in arrays:
        batch.append(np.ravel(a))
        n += batch[-1].size
        if n >= size:
            yield np.concatenate(batch)
            batch, n = [], 0
    if batch:
        yield np.concatenate(batch)


def _weight_stats(weights, mag_bits):
    """``(n, max |w|, min nonzero |w|, fraction rounded to 0, relative RMS error)``.

    Of rounding the nonzero weights to ``mag_bits`` magnitude bits with one
    shared scale; None if all are zero. Two passes over the weights in chunks.
    """
    n, w_max, w_min = 0, 0.0, np.inf
    for chunk in _chunks(weights):
        n += chunk.size
        nz = np.abs(chunk[chunk != 0])
        if nz.size:
            w_max, w_min = max(w_max, float(nz.max())), min(w_min, float(nz.min()))
    if w_max == 0:
        return None
    scale = (2**mag_bits - 1) / w_max
    n_nz = n_zero = 0
    err2 = norm2 = 0.0
    for chunk in _chunks(weights):
        nz = np.abs(chunk[chunk != 0]).astype(np.float64)
        q = np.round(nz * scale) / scale
        n_nz += nz.size
        n_zero += int(np.count_nonzero(q == 0))
        err2 += float(np.sum(np.square(q - nz)))
        norm2 += float(np.sum(np.square(nz)))
    return n, w_max, w_min, n_zero / n_nz, math.sqrt(err2 / norm2)


def _check_weights(model, report, lim, max_weight_bits_lost):
    for synapse, weights in model.float_weights.items():
        conn = model.synapse_conn.get(synapse)
        name = str(conn) if conn is not None else str(synapse.label)
        check_connection_weights(name, weights, report, lim, max_weight_bits_lost)
    if model.discretize_warnings:
        report.notes.extend(f"nengo-loihi: {m}" for m in set(model.discretize_warnings))


def check_connection_weights(name, weights, report, lim, max_weight_bits_lost):
    """One connection's row in ``report.connections``, and its lost weight bits.

    ``weights``: an iterable of arrays, iterated twice (`_weight_stats`).
    Returns the largest ``|w|``, or None if all weights are zero.
    """
    mag_bits = lim["weight_magnitude_bits"]
    stats = _weight_stats(weights, mag_bits)
    if stats is None:
        return None
    n_weights, w_max, w_min, zeroed, rel_err = stats
    range_bits = int(math.ceil(math.log2(w_max / w_min) + 1e-9)) + 1
    bits_lost = max(0, range_bits - mag_bits)
    report.connections.append(
        {
            "connection": name,
            "n_weights": n_weights,
            "max_abs_weight": float(w_max),
            "min_abs_nonzero_weight": float(w_min),
            "range_bits": range_bits,
            "bits_lost": bits_lost,
            "fraction_rounded_to_zero": zeroed,
            "relative_rms_error": rel_err,
        }
    )
    if bits_lost > 0:
        report.add(
            weight_bits_violation(
                name, lim, w_max, range_bits, bits_lost, zeroed, rel_err,
                max_weight_bits_lost,
            )
        )  # fmt: skip
    return w_max


def weight_bits_violation(
    name, lim, w_max, range_bits, bits_lost, zeroed, rel_err, max_weight_bits_lost
):
    """The ``weight_bits`` finding of a connection losing ``bits_lost`` bits."""
    mag_bits = lim["weight_magnitude_bits"]
    severity = (
        "error"
        if max_weight_bits_lost is not None and bits_lost > max_weight_bits_lost
        else "warning"
    )
    return Violation(
        "weight_bits",
        name,
        mag_bits + 1,
        range_bits + 1,
        f"weights below {w_max / 2 ** (mag_bits + 1):.3g} (max/"
        f"{2 ** (mag_bits + 1)}) cannot be represented: prune them, "
        "regularize the weight range in training, or split the "
        "connection by magnitude",
        severity=severity,
        detail=f"{bits_lost} bits lost: the weights span {range_bits} "
        f"magnitude bits but a synapse keeps {mag_bits} (+ sign) with "
        f"one shared exponent; {100 * zeroed:.1f}% of nonzero weights "
        f"round to zero, relative RMS weight error {rel_err:.3f}",
    )


def _check_host_hybrid(model, ens, report, found):
    """Host->chip spikes are single events: a host hybrid ensemble must be 1-bit."""
    nt = ens.neuron_type
    if not isinstance(nt, HybridSpiking):
        return
    feeds_chip = any(
        getattr(obj, "neuron_type", None) is nt
        for obj in model.objs
        if type(obj).__name__ == "ChipReceiveNeurons"
    )
    if not feeds_chip or ens not in found:
        return
    count = found[ens]
    if count.max_count > 1:
        report.add(
            Violation(
                "host_spike_count_per_step",
                ens,
                1,
                count.max_count,
                f"lower its precision to <= {nt.precision / count.drive:.3g} or its "
                "rates, or run it on the chip with a multi-bit strategy",
                detail="nengo-loihi sends host-to-chip spikes as single events, so "
                f"counts above 1 would be silently cut to 1 ({count.source})",
            )
        )


def _check_spiking_relu(chip, report, found):
    """nengo's SpikingRectifiedLinear on a core (``chip``): one spike per step at most."""
    for ens in chip:
        if type(ens.neuron_type) not in COUNTED_TYPES or ens not in found:
            continue
        count = found[ens]
        if count.max_count <= 1:
            continue
        report.add(
            Violation(
                "spike_count_per_step",
                ens,
                1,
                count.max_count,
                "use HybridSpiking(nengo.RectifiedLinear()) with a multi-bit "
                f"strategy, e.g. Expand(K={count.max_count}), or lower its rates "
                "below 1/dt",
                detail=f"{type(ens.neuron_type).__name__} emits several spikes in a "
                "step when its rate exceeds 1/dt; a Loihi compartment emits one, "
                f"so the rest would be lost silently ({count.source})",
            )
        )


def _node_inputs(model, network, report):
    """Flag per-step Node signals that nengo-loihi encodes with 1-bit, filtered spikes."""
    host = model.split.hostchip.host_objs
    for conn in network.all_connections:
        pre, post = conn.pre_obj, conn.post_obj
        if (
            isinstance(pre, nengo.Node)
            and pre in host
            and pre not in model.split.passthrough.to_remove
            and isinstance(post, nengo.ensemble.Neurons)
            and post.ensemble not in host
        ):
            report.add(
                Violation(
                    "node_input_encoding",
                    conn,
                    "the signal on every step",
                    f"1 on/off spike pair per dimension, {model.decode_tau * 1000:g} ms "
                    "filter",
                    "send it as spikes of host encoder neurons: "
                    "nengo_hybrid.hardware.inputs.encode_node_inputs (exact counts, "
                    "no filter)",
                    severity="warning",
                    detail="nengo-loihi encodes a host Node's value with one on/off "
                    "pair of neurons per dimension (at most one spike per step) and "
                    f"lowpass-filters it on the chip (tau {model.decode_tau:g} s): a "
                    "signal that changes every step arrives blurred and late "
                    "(measured: benchmarks/results/deploy_fidelity_lmu.md)",
                )
            )


def _host_objects(model, network, report, found):
    host = model.split.hostchip.host_objs
    for obj in network.all_nodes + network.all_ensembles:
        if obj not in host:
            continue
        if isinstance(obj, nengo.Node):
            if obj in model.split.passthrough.to_remove:
                continue
            reason = (
                "Nodes run on the host (inputs reach the chip as spikes of on/off "
                "encoder compartments; outputs are computed from probed chip spikes)"
            )
        elif not _on_chip(network, obj):
            reason = "marked off-chip (config on_chip=False)"
            _check_host_hybrid(model, obj, report, found)
        else:
            reason = "placed on the host by nengo-loihi (e.g. it only feeds the host)"
        report.host.append({"object": str(obj), "reason": reason})
