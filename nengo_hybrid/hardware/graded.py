"""Mapping and check for graded-spike profiles (Loihi 2), planned from the shapes.

On a profile whose spikes carry an integer payload (``"spikes": "graded"``,
`.Profile.graded`), a `.HybridSpiking` neuron is one graded-spike neuron: its
count per step travels as one signed message. nengo-loihi's build and core
split model Loihi 1 (one-bit compartments) and hold one Python object per
(presynaptic neuron, core) pair, so this module plans the cores itself, from
the shapes of the connections and statistics of their weights, vectorised:

* one compartment per neuron (``K`` for an explicit `.Expand` /
  `.Thermometer`); each ensemble is split into equal pieces of consecutive
  neurons, as few as the compartments and synapse memory per core allow;
* synapse memory: for every input axon of a core, its weights into the
  core's neurons at ``weight_bits`` each, rounded up to whole
  ``synapse_word_bits`` words per axon; dense connections store a dense row,
  one-to-one and sparse ones add ``ceil(log2(neurons per core))`` index bits
  per weight; the shared exponent is per connection (no bits per weight);
* input axons: one per presynaptic neuron (or input dimension) with a weight
  into the core; output axons: one per presynaptic neuron and target core;
* per core, the payload the counts need, *including the sign*, against
  ``spike_payload_bits``: ``1 + ceil(log2(max count + 1))`` bits, from the
  bound on every input (`.bounds.drive_bounds`, per neuron) or measured
  counts;
* weights: the magnitude bits a connection's weight range loses in
  ``weight_magnitude_bits`` with one shared exponent; and, per ensemble, the
  state bits: the voltage holds up to ``max count + 1`` thresholds (sign and
  integer bits) plus the fraction bits that keep every incoming connection's
  largest weight at full mantissa resolution, against ``state_bits``; a
  connection whose largest weight needs an exponent above ``weight_exp_max``
  overflows.

The weights are those of Nengo's reference build (`.bounds.reference_model`,
also used for the bounds): ``gain * W`` into neurons, ``encoders @ T @
decoders`` for a decoded connection (a full weight matrix: graded messages
carry the count, not a decoded value). Pure Nengo and NumPy; nengo-loihi is
used only for its host/chip placement (`nengo_loihi.splitter.Split`), as on
Loihi 1.
"""

import math
import warnings

import nengo
import numpy as np
import scipy.sparse

from nengo_hybrid.hardware import bounds as _bounds
from nengo_hybrid.hardware.findings import Violation
from nengo_hybrid.hardware.strategies import Graded, OneBit, Substeps
from nengo_hybrid.neurons import HybridSpiking, SigmaDelta

#: weights processed at once when computing weight statistics
CHUNK_ELEMENTS = 1 << 22


def payload_bits(max_count):
    """Signed message bits that carry counts up to ``max_count`` (sign included)."""
    return 1 + math.ceil(math.log2(max_count + 1)) if max_count > 0 else 1


def largest_payload(profile):
    """The largest count one signed message of ``profile`` carries."""
    lim = profile.limits
    return min(lim["max_spikes_per_step"], 2 ** (lim["spike_payload_bits"] - 1) - 1)


def words(bits, word):
    """``bits`` rounded up to whole words of ``word`` bits (elementwise)."""
    return -word * (-np.asarray(bits, dtype=np.int64) // word)


class Projection:
    """One connection into an on-chip ensemble, as axons and target compartments.

    Parameters
    ----------
    contribution : bounds._Contribution
        The connection's weights from Nengo's build (``kind``, ``matrix``,
        ``rows``, ``index``).
    n_axons : int
        Presynaptic neurons (or input dimensions) it uses.
    k_pre, k_post : int
        Compartments per presynaptic / postsynaptic neuron.

    Attributes
    ----------
    dense : bool
        Every axon reaches the same target compartments (``targets``);
        otherwise ``pairs`` lists ``(axon, target compartment)``.
    """

    def __init__(self, contribution, n_axons, k_pre=1, k_post=1):
        self.c = contribution
        self.n_axons = n_axons * k_pre
        index = np.asarray(contribution.index, dtype=np.int64)
        comps = (index[:, None] * k_post + np.arange(k_post)).ravel()
        self.dense = contribution.kind == "dense"
        if self.dense:
            self.targets = comps
            return
        if contribution.kind == "sparse":
            coo = contribution.matrix.tocoo()
            rows, cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
        else:  # one-to-one (scalar or diagonal)
            rows = cols = np.arange(len(index), dtype=np.int64)
        pre = (cols[:, None] * k_pre + np.arange(k_pre)).ravel()
        post = np.repeat(index[rows], k_pre)
        post = (post[:, None] * k_post + np.arange(k_post)).ravel()
        self.pairs = (np.repeat(pre, k_post), post)

    def per_piece(self, size, n_pieces):
        """``(weights per axon and piece as (axon, piece, count), axons per piece)``.

        For dense projections ``counts`` is per piece (every axon the same).
        """
        if self.dense:
            counts = np.bincount(self.targets // size, minlength=n_pieces)
            return counts, np.where(counts > 0, self.n_axons, 0)
        axon, comp = self.pairs
        key = axon * n_pieces + comp // size
        uniq, counts = np.unique(key, return_counts=True)
        piece = uniq % n_pieces
        return (uniq // n_pieces, piece, counts), np.bincount(piece, minlength=n_pieces)

    def n_weights(self):
        """Weights stored (dense: every axon into every target compartment)."""
        if self.dense:
            return self.n_axons * self.targets.size
        return self.pairs[0].size

    def synapse_bits(self, size, n_pieces, weight_bits, word):
        """Synapse memory bits of each ``size``-compartment piece."""
        per, _ = self.per_piece(size, n_pieces)
        if self.dense:
            return self.n_axons * words(per * weight_bits, word)
        _, piece, counts = per
        idx_bits = max(1, math.ceil(math.log2(size))) if size > 1 else 1
        bits = words(counts * (weight_bits + idx_bits), word)
        return np.bincount(piece, weights=bits, minlength=n_pieces).astype(np.int64)

    def weight_chunks(self):
        """The effective weights (``gain * W`` or ``E T D``), a block of rows at a time.

        Re-iterable (each pass recomputes the blocks: never all at once).
        """
        return _Reiterable(self._chunks)

    def _chunks(self):
        c = self.c
        if c.kind in ("scalar", "diag"):
            w = np.broadcast_to(np.asarray(c.matrix, dtype=np.float64), (len(c.index),))
            yield w if c.rows is None else w * np.asarray(c.rows, dtype=np.float64)
            return
        m = c.matrix
        step = max(1, CHUNK_ELEMENTS // max(1, m.shape[1]))
        for i0 in range(0, m.shape[0], step):
            block = m[i0 : i0 + step]
            if scipy.sparse.issparse(block):
                block = block.data if c.rows is None else (
                    scipy.sparse.diags(np.asarray(c.rows[i0 : i0 + step])) @ block
                ).data  # fmt: skip
                yield np.asarray(block, dtype=np.float64)
                continue
            block = np.asarray(block, dtype=np.float64)
            if c.rows is not None:
                block = block * np.asarray(c.rows[i0 : i0 + step], np.float64)[:, None]
            yield block


class _Reiterable:
    """An iterable whose every ``iter()`` calls ``make()`` anew."""

    def __init__(self, make):
        self.make = make

    def __iter__(self):
        return self.make()


class Placement:
    """The plan of one on-chip ensemble: pieces, per-core resources, counts."""

    def __init__(self, ens, strategy, n_sub):
        self.ens = ens
        self.strategy = strategy
        self.k = strategy.compartments
        self.n_sub = n_sub
        self.n = ens.n_neurons * self.k
        self.incoming = []  # Projection
        self.outgoing = []  # (Projection, target Placement)
        self.size = self.n  # compartments per core (the last core may hold fewer)


def _strategy_of(ens, strategy, configured):
    if isinstance(strategy, dict):
        if ens in strategy:
            return strategy[ens]
        return configured.get(ens, OneBit())
    return configured.get(ens, strategy if strategy is not None else OneBit())


def _split(placement, lim):
    """Choose the piece size: fewest cores whose compartments and synapses fit."""
    n = placement.n
    if n == 0:
        placement.size = 1
        return
    max_bits = lim["synapse_bits_per_core"]

    def piece_bits(size):
        n_pieces = -(-n // size)
        total = np.zeros(n_pieces, dtype=np.int64)
        for proj in placement.incoming:
            total += proj.synapse_bits(
                size, n_pieces, lim["weight_bits"], lim["synapse_word_bits"]
            )
        return total

    n_split = -(-n // lim["compartments_per_core"])
    # a lower bound: the weights alone, without word rounding or index bits
    least = sum(proj.n_weights() for proj in placement.incoming) * lim["weight_bits"]
    n_split = max(n_split, -(-least // max_bits))
    while n_split < n:
        size = -(-n // n_split)
        if np.all(piece_bits(size) <= max_bits):
            break
        n_split = -(-n // (size - 1))  # the next piece size down
    placement.size = -(-n // min(n_split, n))


def plan(network, report, strategy, split, model, found, dt):
    """Place and split the on-chip ensembles; fill ``report.cores``.

    Returns ``{ensemble: Placement}``.
    """
    from nengo_hybrid.hardware.config import config_strategies

    lim = report.profile.limits
    configured = config_strategies(network)
    n_sub = strategy.K if isinstance(strategy, Substeps) else 1
    placements = {}
    for ens in network.all_ensembles:
        if not split.on_chip(ens) or isinstance(ens.neuron_type, nengo.Direct):
            continue
        chosen = (
            _strategy_of(ens, strategy, configured)
            if isinstance(ens.neuron_type, HybridSpiking)
            else OneBit()
        )
        if isinstance(chosen, Substeps):
            chosen = OneBit()
        placements[ens] = Placement(ens, chosen, n_sub)

    skipped = []
    for c in _bounds._contributions(model, network, dt):
        post = placements.get(c.target)
        if post is None:
            continue
        if c.reason is not None or c.kind is None:
            skipped.append(f"{c.conn} ({c.reason})")
            continue
        pre_obj = _bounds._base(c.conn.pre_obj)
        pre = placements.get(pre_obj)
        n_axons = (
            pre_obj.n_neurons
            if isinstance(c.pre_index, slice)
            else len(np.asarray(c.pre_index))
        )
        proj = Projection(c, n_axons, 1 if pre is None else pre.k, post.k)
        proj.from_chip = pre is not None
        post.incoming.append(proj)
        if pre is not None:
            pre.outgoing.append((proj, post))
    if skipped:
        report.notes.append(
            "Not planned (weights unknown before running): " + "; ".join(skipped)
        )

    for placement in placements.values():
        _split(placement, lim)
    _core_rows(placements, report, lim, found)
    return placements


def _pre_indices(proj):
    """Presynaptic neuron index of each axon of a projection from the chip."""
    c = proj.c
    base = _bounds._base(c.conn.pre_obj)
    pre_index = (
        np.arange(base.n_neurons)
        if isinstance(c.pre_index, slice)
        else np.asarray(c.pre_index, dtype=np.int64)
    )
    k = proj.n_axons // max(1, len(pre_index))
    return (pre_index[:, None] * k + np.arange(k)).ravel()


def _core_rows(placements, report, lim, found):
    core = 0
    for ens, pl in placements.items():
        n_pieces = -(-pl.n // pl.size) if pl.n else 0
        axons_in = np.zeros(n_pieces, dtype=np.int64)
        bits = np.zeros(n_pieces, dtype=np.int64)
        for proj in pl.incoming:
            _, axons = proj.per_piece(pl.size, n_pieces)
            axons_in += axons
            bits += proj.synapse_bits(
                pl.size, n_pieces, lim["weight_bits"], lim["synapse_word_bits"]
            )
        axons_out = np.zeros(n_pieces, dtype=np.int64)
        for proj, post in pl.outgoing:
            n_post_pieces = -(-post.n // post.size)
            sources = _pre_indices(proj)  # compartment of pl sending each axon
            if proj.dense:
                reached = np.unique(proj.targets // post.size).size
                axons_out += reached * np.bincount(
                    sources // pl.size, minlength=n_pieces
                )
            else:
                (axon, _piece, _), _ = proj.per_piece(post.size, n_post_pieces)
                axons_out += np.bincount(sources[axon] // pl.size, minlength=n_pieces)
        counts = found.get(ens)
        per_neuron = _per_neuron_counts(counts, ens)
        for i in range(n_pieces):
            lo, hi = i * pl.size, min(pl.n, (i + 1) * pl.size)
            row = {
                "core": core,
                "block": f"{ens.label or ens}[{lo}:{hi}]",
                "ensemble": str(ens),
                "compartments": hi - lo,
                "input_axons": int(axons_in[i]),
                "output_axons": int(axons_out[i]),
                "synapse_bits": int(bits[i]),
            }
            if per_neuron is not None:
                m = int(per_neuron[lo // pl.k : -(-hi // pl.k)].max(initial=0))
                row["max_count"] = m
                row["payload_bits_needed"] = payload_bits(m)
                row["payload_bits"] = lim["spike_payload_bits"]
            report.cores.append(row)
            core += 1


def _per_neuron_counts(count, ens):
    """Largest |count| per neuron of ``ens`` (a `Count` with ``per_neuron``), or None."""
    if count is None:
        return None
    per = getattr(count, "per_neuron", None)
    if per is None or np.size(per) != ens.n_neurons:
        return np.full(ens.n_neurons, count.max_count, dtype=np.int64)
    return np.asarray(per, dtype=np.int64)


def check_cores(report, lim):
    """Per-core limits: violations for cores over a limit (after the split)."""
    checks = (
        ("compartments", "compartments_per_core"),
        ("input_axons", "input_axons_per_core"),
        ("output_axons", "output_axons_per_core"),
        ("synapse_bits", "synapse_bits_per_core"),
    )
    for key, limit_key in checks:
        limit = lim[limit_key]
        over = [row for row in report.cores if limit is not None and row[key] > limit]
        if not over:
            continue
        worst = max(over, key=lambda row: row[key])
        report.add(
            Violation(
                key,
                worst["ensemble"],
                limit,
                worst[key],
                _fix(key),
                detail=f"{len(over)} of {len(report.cores)} cores over the limit, "
                f"e.g. core {worst['core']} ({worst['block']}); planned for graded "
                "spikes, one neuron per core at the finest split",
            )
        )


def _fix(key):
    if key == "synapse_bits":
        return (
            "a single neuron's synapses do not fit a core: use fewer or sparser "
            "inputs per neuron (Sparse transforms), or fewer presynaptic neurons"
        )
    if key == "input_axons":
        return (
            "a core can receive from at most this many presynaptic neurons; "
            "reduce the presynaptic ensembles or use sparse connections"
        )
    return (
        "each presynaptic neuron sends one axon per target core: use fewer target "
        "cores (smaller ensembles) or fewer outgoing connections"
    )


def check_payload(placements, report, profile, found, dt):
    """Payload bits (sign included) per hybrid ensemble, and the ensembles table."""
    lim = profile.limits
    per_message = largest_payload(profile)
    for ens, pl in placements.items():
        nt = ens.neuron_type
        if not isinstance(nt, HybridSpiking) or ens not in found:
            continue
        count = found[ens]
        max_count = count.max_count
        representable = per_message * pl.k * pl.n_sub
        needed = payload_bits(-(-max_count // (pl.k * pl.n_sub)))
        n_cores = -(-pl.n // pl.size) if pl.n else 0
        report.ensembles.append(
            {
                "ensemble": str(ens),
                "neuron_type": f"HybridSpiking({type(nt.base_type).__name__}, "
                f"precision={nt.precision:g})",
                "n_neurons": ens.n_neurons,
                "strategy": repr(pl.strategy),
                "mapping": "graded spikes",
                "compartments": pl.n,
                "cores": n_cores,
                "chip_steps_per_model_step": pl.n_sub,
                "max_count": max_count,
                "count_source": count.source,
                "count_is_bound": count.bounded,
                "spike_bits_needed": needed,
                "spike_bits_available": lim["spike_payload_bits"],
                "payload_bits_needed": needed,
                "payload_bits": lim["spike_payload_bits"],
                "max_representable": representable,
                "exact": bool(
                    isinstance(pl.strategy, (Graded, OneBit)) and pl.n_sub == 1
                ),
            }
        )
        if max_count <= representable:
            continue
        max_rate = max_count / (nt.precision * dt)
        over = sum(
            1
            for row in report.cores
            if row["ensemble"] == str(ens) and row.get("max_count", 0) > per_message
        )
        report.add(
            Violation(
                "spike_payload_bits",
                ens,
                lim["spike_payload_bits"],
                needed,
                f"lower its precision to <= {per_message / (dt * max_rate):.3g} or "
                f"its rates, or set max_spikes={per_message} on its neuron type and "
                "retrain, or use a profile with wider messages",
                detail=f"counts up to {max_count} per step ({count.source}) need "
                f"{needed} payload bits including the sign; {profile.name} messages "
                f"carry {lim['spike_payload_bits']} (at most {per_message}), so "
                f"{over} of {n_cores} cores would saturate",
            )
        )


def sigma_delta_payloads(chip, counts):
    """`Count` of the largest payload per on-chip `.SigmaDelta` ensemble in ``counts``.

    ``counts[ens]``: the largest payload (an integer in the fixed point the
    Loihi 2 mapping sends deltas in, `.loihi2_mapping.sigma_delta_frac_bits`),
    or the payloads themselves; ``evaluate`` measures it (``max_payloads``).
    """
    from nengo_hybrid.hardware.check import _measured

    found = {}
    for ens in chip:
        if isinstance(ens.neuron_type, SigmaDelta) and ens in counts:
            count = _measured(counts[ens])
            count.source = "measured sigma-delta payloads"
            found[ens] = count
    return found


def check_sigma_delta_payload(placements, report, profile, deltas):
    """Payload bits (sign included) per `.SigmaDelta` ensemble, and its table row.

    A sigma-delta neuron sends its delta as one graded message in units of
    ``2**-F`` activation units (`.loihi2_mapping.sigma_delta_frac_bits`);
    without a measured payload (``deltas``, from ``evaluate``) a warning says
    the payload bits are not checked.
    """
    from nengo_hybrid.hardware.loihi2_mapping import sigma_delta_frac_bits

    lim = profile.limits
    for ens, pl in placements.items():
        nt = ens.neuron_type
        if not isinstance(nt, SigmaDelta):
            continue
        frac = sigma_delta_frac_bits(nt.threshold)
        row = {
            "ensemble": str(ens),
            "neuron_type": f"SigmaDelta({type(nt.base_type).__name__}, "
            f"threshold={nt.threshold:g})",
            "n_neurons": ens.n_neurons,
            "strategy": "sigma-delta",
            "mapping": "Lava SigmaDelta (graded deltas)",
            "compartments": pl.n,
            "cores": -(-pl.n // pl.size) if pl.n else 0,
            "chip_steps_per_model_step": 1,
            "payload_resolution": 2.0**-frac,
            "payload_bits": lim["spike_payload_bits"],
            "exact": True,
        }
        report.ensembles.append(row)
        count = deltas.get(ens)
        if count is None:
            report.add(
                Violation(
                    "payload_unknown",
                    ens,
                    "a measured payload",
                    "unknown",
                    "run `nengo-hybrid evaluate` first: it measures the deltas",
                    severity="warning",
                    detail="the payload bits of a sigma-delta ensemble depend on "
                    "how fast its activity changes; not checked",
                )
            )
            continue
        needed = payload_bits(count.max_count)
        row.update(
            max_payload=count.max_count,
            count_source=count.source,
            payload_bits_needed=needed,
            spike_bits_needed=needed,
            spike_bits_available=lim["spike_payload_bits"],
        )
        if needed > lim["spike_payload_bits"]:
            report.add(
                Violation(
                    "spike_payload_bits",
                    ens,
                    lim["spike_payload_bits"],
                    needed,
                    "raise its threshold (a coarser payload unit) or lower the "
                    "changes of its activity, or use a profile with wider messages",
                    detail=f"deltas up to {count.max_count} payload units of "
                    f"2**-{frac} need {needed} bits including the sign",
                )
            )


def check_weights(placements, report, profile, found, dt, max_weight_bits_lost):
    """Weight bits lost per connection; state bits and exponents per ensemble."""
    from nengo_hybrid.hardware.check import check_connection_weights

    lim = profile.limits
    for ens, pl in placements.items():
        scales = []  # (connection, largest weight in threshold units per count)
        for proj in pl.incoming:
            name = str(proj.c.conn)
            w_max = check_connection_weights(
                name, proj.weight_chunks(), report, lim, max_weight_bits_lost
            )
            unit = _threshold_units_per_count(proj, ens, dt)
            if w_max is not None and unit is not None:
                scales.append((name, w_max * unit))
        if scales and lim.get("state_bits") and ens in found:
            _check_state(ens, found[ens], scales, report, profile)


def _threshold_units_per_count(proj, ens, dt):
    """Post threshold units one presynaptic spike adds on arrival (None: unknown).

    A hybrid spike of ``pre`` is ``amplitude / (precision * dt)``; the post
    neuron integrates ``precision * dt * J`` thresholds per step; the synapse's
    first tap is the fraction that arrives on the first step.
    """
    post_nt = ens.neuron_type
    pre = _bounds._base(proj.c.conn.pre_obj)
    if not isinstance(post_nt, HybridSpiking) or not isinstance(pre, nengo.Ensemble):
        return None
    kern = _bounds.kernel(proj.c.conn.synapse, dt)
    if isinstance(kern, str):
        return None
    pre_nt = pre.neuron_type
    if isinstance(pre_nt, HybridSpiking):
        per_count = pre_nt.amplitude / pre_nt.precision
    elif isinstance(pre_nt, (nengo.SpikingRectifiedLinear, nengo.RegularSpiking)):
        per_count = getattr(pre_nt, "amplitude", 1.0)
    else:
        return None
    return per_count * post_nt.precision * abs(float(kern.taps[0]))


def _check_state(ens, count, scales, report, profile):
    """State bits: sign + count + fraction bits for full-resolution weights."""
    lim = profile.limits
    mag = lim["weight_magnitude_bits"]
    int_bits = payload_bits(count.max_count)  # sign and integer thresholds
    # fraction bits so that each connection's largest weight has a full mantissa
    smallest = (
        min(s for _, s in scales if s > 0) if any(s > 0 for _, s in scales) else 0
    )
    if smallest <= 0:
        return
    frac_needed = max(0, math.ceil(math.log2((2**mag - 1) / smallest)))
    frac = min(frac_needed, lim["state_bits"] - int_bits)
    needed = int_bits + frac_needed
    for row in report.ensembles:
        if row["ensemble"] == str(ens):
            row["state_bits_needed"] = needed
            row["state_bits"] = lim["state_bits"]
    if frac < 0:
        report.add(
            Violation(
                "state_bits",
                ens,
                lim["state_bits"],
                int_bits,
                "lower its precision or rates (fewer spikes per step), or set "
                "max_spikes on its neuron type and retrain",
                detail=f"the voltage must hold up to {count.max_count + 1} thresholds "
                f"with a sign: {int_bits} bits before any fraction of a threshold",
            )
        )
        return
    if frac < frac_needed:
        lost = frac_needed - frac
        name = min(scales, key=lambda x: x[1])[0]
        report.add(
            Violation(
                "state_bits",
                ens,
                lim["state_bits"],
                needed,
                "make the smallest incoming weights larger relative to the threshold "
                "(regularise the weight range, or lower the precision of this "
                "ensemble), or drop that connection's smallest weights",
                severity="warning",
                detail=f"{int_bits} bits hold the sign and up to "
                f"{count.max_count + 1} thresholds; the largest weight of {name} "
                f"needs {frac_needed} fraction bits for a {mag}-bit mantissa, "
                f"{lost} more than the state keeps, so its weights lose {lost} bits",
            )
        )
    exp_max = lim.get("weight_exp_max")
    if exp_max is None:
        return
    for name, s in scales:
        if s <= 0:
            continue
        exp = math.ceil(math.log2(s * 2**frac / (2**mag - 1)) - 1e-12)
        if exp > exp_max:
            report.add(
                Violation(
                    "weight_exponent",
                    name,
                    exp_max,
                    exp,
                    "scale this connection's weights down (or the others into the "
                    "same ensemble up), e.g. by retraining with a weight penalty",
                    detail=f"with {frac} fraction bits of the threshold of {ens}, its "
                    f"largest weight needs exponent {exp}: it would saturate",
                )
            )


def host_rows(network, split, placements, report):
    """What runs on the host instead of the chip, and why."""
    for obj in network.all_nodes + network.all_ensembles:
        if obj in placements:
            continue
        if isinstance(obj, nengo.Node):
            if obj in split.passthrough.to_remove:
                continue
            reason = (
                "Nodes run on the host (their values reach the chip as graded "
                "messages; outputs are read from the chip's spikes)"
            )
        elif isinstance(obj.neuron_type, nengo.Direct):
            reason = "Direct mode runs on the host"
        elif not split.on_chip(obj):
            reason = "marked off-chip (config on_chip=False), or it only feeds the host"
        else:
            continue
        report.host.append({"object": str(obj), "reason": reason})


def check_graded(network, report, strategy, counts, sample, dt, max_weight_bits_lost):  # noqa: D401
    """`check` on a graded-spike profile: plan from the shapes, then the checks.

    Fills ``report`` (as `nengo_hybrid.hardware.check.check` does for Loihi 1)
    and returns it.
    """
    from nengo_hybrid.hardware.check import (
        _check_spiking_relu,
        largest_counts,
    )
    from nengo_hybrid.hardware.loihi import Split

    report.mapping = "graded"
    profile = report.profile
    split = Split(network, precompute=None, remove_passthrough=True)
    try:
        model = _bounds.reference_model(network, dt)
    except Exception as err:  # noqa: BLE001 (reported as a violation)
        report.add(
            Violation("build", network, "-", "-", "see the error", detail=str(err))
        )
        return report
    chip = {
        ens
        for ens in network.all_ensembles
        if split.on_chip(ens) and not isinstance(ens.neuron_type, nengo.Direct)
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = largest_counts(
            model, network, report, counts or {}, sample, dt, chip=chip, reference=model
        )
    deltas = sigma_delta_payloads(chip, counts or {})
    placements = plan(network, report, strategy, split, model, {**found, **deltas}, dt)
    check_cores(report, profile.limits)
    check_payload(placements, report, profile, found, dt)
    check_sigma_delta_payload(placements, report, profile, deltas)
    _check_spiking_relu(placements, report, found)
    check_weights(placements, report, profile, found, dt, max_weight_bits_lost)
    host_rows(network, split, placements, report)
    cores_per_chip = profile.limits["cores_per_chip"]
    if report.n_cores > cores_per_chip:
        report.add(
            Violation(
                "cores",
                network,
                cores_per_chip,
                report.n_cores,
                "use a multi-chip board, or fewer/smaller ensembles",
                severity="warning",
                detail=f"needs {math.ceil(report.n_cores / cores_per_chip)} chips",
            )
        )
    report.notes.append(
        f"Planned for graded spikes ({profile.name}): one neuron per hybrid neuron, "
        "cores from the shapes and weight statistics (nengo_hybrid.hardware.graded); "
        "decoded connections as full weight matrices"
    )
    return report
