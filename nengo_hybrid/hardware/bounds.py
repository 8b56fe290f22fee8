"""Worst-case bounds on what reaches each neuron, and what it can emit per step.

`drive_bounds` bounds the input current ``J`` of every neuron of a network
from *everything* that arrives: the bias, every incoming connection (decoded
or neuron-to-neuron, recurrent ones included) through its weights, gains,
encoders and synapse, and the range of every input Node. From ``J`` follows
the largest spike count per step of each spiking neuron. This is what
`nengo_hybrid.hardware.check` compares with the spike budget of a strategy;
``max_rates`` alone says nothing about inputs beyond the radius or
neuron-to-neuron input.

How the bound works (reference-simulator semantics, as `nengo.Simulator` runs
the network):

* Every signal is an interval per component, ``[lo, hi]``; a weight matrix
  ``W`` maps a box to ``[W+ lo + W- hi, W+ hi + W- lo]`` (``W+``/``W-`` its
  positive/negative parts): exact for independent inputs.
* A `.HybridSpiking` neuron (and nengo's ``SpikingRectifiedLinear`` and
  ``RegularSpiking``) is a first-order sigma-delta quantizer with voltage in
  ``[0, 1)``: with drive ``d = precision * dt * r(J)``, the count of a step is
  at most ``ceil(d)`` (at least ``floor(d)``), and the counts of any ``T``
  consecutive steps sum to at most ``T * d + 1``. Through a synapse with a
  non-negative impulse response ``h`` the filtered spike train is at most
  ``sum_T (g_T - g_{T+1}) * min(T d + 1, T ceil(d))`` with ``g`` the smallest
  non-increasing envelope of ``h`` (summation by parts).
* Rate neurons output ``r(J)``, in ``[r(J_lo), r(J_hi)]`` (rate functions are
  non-decreasing); LIF-like spiking neurons at most one spike per step.
* Recurrent connections: the bounds are iterated to a fixed point and the
  result is verified (one more pass must stay inside it); a loop that keeps
  growing (positive feedback) is unbounded unless ``max_spikes`` caps it.

Where no bound exists (a Node computing a Python function, noise, a
learning rule, Poisson neurons, ...) the ensembles downstream are reported as
unknown, with the reason: measure them instead (`measure_counts`).

Pure Nengo and NumPy (no nengo-loihi). The weights and decoders come from
Nengo's own builder (``nengo.builder.Model``), so the bound is for the
network the reference simulator runs.
"""

import math
import warnings

import nengo
import numpy as np
import scipy.sparse
from nengo.builder import Model as NengoModel
from nengo.cache import NoDecoderCache
from nengo.ensemble import Neurons

from nengo_hybrid.neurons import HybridSpiking

#: tolerance on the drive per step before rounding it to a count (float noise)
EPS = 1e-9
#: rows of a weight matrix processed at once (bounds the temporary memory)
CHUNK_ELEMENTS = 1 << 22
#: longest impulse response followed (steps); slower synapses are "unknown"
MAX_KERNEL_STEPS = 200_000
#: passes over the network before a recurrent loop is called unbounded
MAX_PASSES = 200


class Kernel:
    """The impulse response of a synapse at ``dt``, and bounds through it.

    Parameters
    ----------
    taps : (L,) array
        Impulse response, leading zeros (pure delay) removed.
    """

    def __init__(self, taps):
        taps = np.asarray(taps, dtype=np.float64)
        self.taps = taps
        self.single = taps.size == 1
        self.nonneg = bool(np.all(taps >= 0))
        self.pos = float(taps[taps > 0].sum())
        self.neg = float(taps[taps < 0].sum())
        if self.nonneg:
            env = np.maximum.accumulate(taps[::-1])[::-1]
            dif = env - np.append(env[1:], 0.0)
            T = np.arange(1, taps.size + 1, dtype=np.float64)
            self._p1 = np.cumsum(dif * T)  # sum_{T' <= T} dif * T'
            self._p0 = np.cumsum(dif)

    def values(self, lo, hi):
        """Bounds of the filtered signal for per-step values in ``[lo, hi]``."""
        if not self.single:  # zero initial state: early outputs see zeros
            lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
        return (
            _mul(self.pos, lo) + _mul(self.neg, hi),
            _mul(self.pos, hi) + _mul(self.neg, lo),
        )

    def counts_upper(self, d, c):
        """Upper bound for sigma-delta counts: per step <= ``c``, windows <= T d + 1.

        ``d`` and ``c`` are arrays (per neuron), ``c >= 0``.
        """
        with np.errstate(invalid="ignore", over="ignore"):
            total1, total0 = self._p1[-1], self._p0[-1]
            out = _mul(total1, c)
            better = np.isfinite(d) & (c > d)
            if np.any(better):
                dd, cc = d[better], c[better]
                k = np.minimum(
                    np.floor(1.0 / np.maximum(cc - dd, 1e-300)), self.taps.size
                )
                k = k.astype(np.int64)
                a1 = np.where(k > 0, self._p1[np.maximum(k - 1, 0)], 0.0)
                a0 = np.where(k > 0, self._p0[np.maximum(k - 1, 0)], 0.0)
                out[better] = cc * a1 + dd * (total1 - a1) + (total0 - a0)
        return out


def _mul(scalar, x):
    """``scalar * x`` with ``0 * inf = 0``."""
    if scalar == 0:
        return np.zeros_like(np.asarray(x, dtype=np.float64))
    return scalar * np.asarray(x, dtype=np.float64)


_KERNELS = {}


def kernel(synapse, dt):
    """The `Kernel` of ``synapse`` (None: no filter), or a reason string."""
    if synapse is None:
        return Kernel([1.0])
    key = (synapse, dt)
    if key in _KERNELS:
        return _KERNELS[key]
    if not isinstance(synapse, nengo.synapses.LinearFilter):
        return f"synapse {synapse!r} is not a linear filter"
    try:
        state = synapse.make_state((1,), (1,), dt)
        step = synapse.make_step((1,), (1,), dt, None, state)
        taps = []
        x = np.ones(1)
        total = 0.0
        for k in range(MAX_KERNEL_STEPS):
            y = float(np.asarray(step(k * dt, x))[0])
            x = np.zeros(1)
            taps.append(y)
            total += abs(y)
            if k >= 10 and total > 0 and sum(map(abs, taps[-10:])) < 1e-13 * total:
                break
        else:
            _KERNELS[key] = f"synapse {synapse!r} decays too slowly to bound"
            return _KERNELS[key]
    except Exception as err:  # noqa: BLE001 (any synapse nengo cannot step)
        return f"synapse {synapse!r} could not be evaluated ({err})"
    taps = np.asarray(taps)
    nonzero = np.flatnonzero(taps)
    taps = taps[nonzero[0] :] if nonzero.size else np.zeros(1)
    # drop the negligible tail
    last = np.flatnonzero(np.abs(taps) > 1e-15 * np.abs(taps).max())
    taps = taps[: last[-1] + 1] if last.size else taps[:1]
    _KERNELS[key] = Kernel(taps)
    return _KERNELS[key]


# --- neuron outputs -----------------------------------------------------------


class Output:
    """What the neurons of one ensemble emit per step, as bounds.

    ``kind`` is ``"counts"`` (spikes: per step ``[c_lo, c_hi]`` counts of
    ``scale`` each, drive ``[d_lo, d_hi]`` counts per step), ``"values"``
    (rates: ``[lo, hi]``) or ``"unknown"`` (``reason``).
    """

    def __init__(self, kind, lo=None, hi=None, scale=1.0, d_lo=None, d_hi=None,
                 window=False, reason=None):  # fmt: skip
        self.kind = kind
        self.lo, self.hi = lo, hi
        self.scale = scale
        self.d_lo, self.d_hi = d_lo, d_hi
        self.window = window  # sigma-delta: windows of T steps <= T d + 1
        self.reason = reason

    def filtered(self, kern):
        """Bounds of this output through the synapse ``kern``: (lo, hi) arrays."""
        if self.kind == "values":
            return kern.values(self.lo, self.hi)
        lo, hi = kern.values(self.lo, self.hi)
        if self.window and kern.nonneg and np.all(self.lo >= 0):
            hi = np.minimum(hi, kern.counts_upper(self.d_hi, self.hi))
        return _mul(self.scale, lo), _mul(self.scale, hi)


def _rates(neuron_type, J, dt):
    """``r(J)`` of a stateless rate neuron type (NaN becomes +-inf)."""
    J = np.array(J, dtype=np.float64)
    out = np.zeros_like(J)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        neuron_type.step(dt, J, out)
    return out


def _stateless_rate(neuron_type):
    return (
        not getattr(neuron_type, "spiking", False)
        and not isinstance(neuron_type, nengo.Direct)
        and not neuron_type.state
        and not isinstance(neuron_type, HybridSpiking)
    )


def neuron_output(neuron_type, J_lo, J_hi, dt):
    """The `Output` of neurons of ``neuron_type`` with currents in ``[J_lo, J_hi]``."""
    nt = neuron_type
    sigma_delta = None  # (base rate type or None for ReLU, precision, amplitude, cap)
    if isinstance(nt, HybridSpiking):
        if not _stateless_rate(nt.base_type):
            return Output("unknown", reason=f"base type {nt.base_type} has state")
        sigma_delta = (nt.base_type, nt.precision, nt.amplitude, nt.max_spikes)
    elif type(nt) in (nengo.SpikingRectifiedLinear,) or (
        type(nt).__name__ == "LoihiSpikingRectifiedLinear"
    ):
        base = nengo.RectifiedLinear(amplitude=1.0)
        sigma_delta = (base, 1.0, nt.amplitude, None)
    elif isinstance(nt, nengo.RegularSpiking):
        if not _stateless_rate(nt.base_type):
            return Output("unknown", reason=f"base type {nt.base_type} has state")
        sigma_delta = (nt.base_type, 1.0, nt.amplitude, None)
    elif isinstance(nt, (nengo.LIF, nengo.Izhikevich)):
        n = np.shape(J_lo)[0]
        ones = np.ones(n)
        return Output(
            "counts", np.zeros(n), ones, scale=nt.amplitude / dt if hasattr(
                nt, "amplitude") else 1.0 / dt, d_lo=np.zeros(n), d_hi=ones,
        )  # fmt: skip
    elif _stateless_rate(nt):
        lo, hi = _rates(nt, J_lo, dt), _rates(nt, J_hi, dt)
        lo, hi = np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)
        return Output("values", lo, hi)
    else:
        return Output(
            "unknown",
            reason=f"{type(nt).__name__} neurons have no count or rate bound here",
        )
    base, p, amplitude, cap = sigma_delta
    d_lo = p * dt * _rates(base, J_lo, dt)
    d_hi = p * dt * _rates(base, J_hi, dt)
    d_lo, d_hi = (
        np.where(np.isnan(d_lo), -np.inf, d_lo),
        np.where(np.isnan(d_hi), np.inf, d_hi),
    )
    with np.errstate(invalid="ignore"):
        c_hi = np.ceil(d_hi - EPS)
        c_lo = np.floor(d_lo + EPS)
    if cap is not None:
        c_hi, c_lo = np.clip(c_hi, -cap, cap), np.clip(c_lo, -cap, cap)
    return Output(
        "counts", c_lo, c_hi, scale=amplitude / (p * dt), d_lo=d_lo, d_hi=d_hi,
        window=cap is None or bool(np.all(d_hi <= cap)),
    )  # fmt: skip


# --- nodes --------------------------------------------------------------------


def node_range(node):
    """``(lo, hi)`` of a Node's output without inputs, or a reason string."""
    out = node.output
    if out is None:
        return None  # passthrough: its input
    if isinstance(out, np.ndarray) or np.isscalar(out):
        v = np.broadcast_to(np.asarray(out, dtype=np.float64), (node.size_out,))
        return v.copy(), v.copy()
    if isinstance(out, nengo.processes.PresentInput):
        x = np.asarray(out.inputs, dtype=np.float64).reshape(-1, node.size_out)
        return x.min(axis=0), x.max(axis=0)
    if isinstance(out, nengo.processes.Piecewise):
        values = []
        for v in out.data.values():
            if callable(v):
                return f"{node} is a Piecewise process with a function"
            values.append(np.broadcast_to(np.asarray(v, float), (node.size_out,)))
        values.append(np.zeros(node.size_out))  # before the first time point
        values = np.stack(values)
        return values.min(axis=0), values.max(axis=0)
    kind = type(out).__name__ if isinstance(out, nengo.Process) else "Python function"
    return f"{node} outputs a {kind}, whose range is unknown"


# --- the network --------------------------------------------------------------


class EnsembleBound:
    """Bounds for the neurons of one ensemble.

    Attributes
    ----------
    J_lo, J_hi : (n,) arrays
        Input current bounds (``-inf``/``inf`` where unknown).
    output : Output
        What the neurons emit per step.
    reason : str or None
        Why the bound is not finite, if it is not.
    """

    def __init__(self, ensemble, J_lo, J_hi, output, reason=None):
        self.ensemble = ensemble
        self.J_lo, self.J_hi = J_lo, J_hi
        self.output = output
        self.reason = reason

    @property
    def max_count(self):
        """Largest spike count per step, or None if it has no bound."""
        out = self.output
        if out.kind != "counts":
            return None
        m = (
            float(np.max(np.abs(np.concatenate([out.lo, out.hi]))))
            if out.hi.size
            else 0
        )
        return int(m) if math.isfinite(m) else None

    @property
    def max_drive(self):
        """Largest drive per step (``precision * dt * r(J)``), or None."""
        out = self.output
        if out.kind != "counts" or out.d_hi is None or not out.d_hi.size:
            return None
        m = float(np.max(np.abs(np.concatenate([out.d_lo, out.d_hi]))))
        return m if math.isfinite(m) else None


class Bounds(dict):
    """``{Ensemble: EnsembleBound}`` of `drive_bounds`, with ``notes``."""

    def __init__(self):
        super().__init__()
        self.notes = []
        self.passes = 0


def reference_model(network, dt):
    """Build ``network`` with Nengo's builder (weights, decoders, gains, biases)."""
    model = NengoModel(dt=float(dt), label="bounds", decoder_cache=NoDecoderCache())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.build(network)
    return model


def _as_matrix(w, n_out, n_in):
    """A connection's weights as ``("scalar"|"diag"|"dense"|"sparse", value)``."""
    if w is None:
        return "scalar", 1.0
    if hasattr(w, "toarray") and not scipy.sparse.issparse(w):  # nengo SparseMatrix
        idx = np.asarray(w.indices)
        w = scipy.sparse.csr_matrix(
            (np.asarray(w.data, dtype=np.float64), (idx[:, 0], idx[:, 1])),
            shape=w.shape,
        )
    if scipy.sparse.issparse(w):
        return "sparse", w.tocsr()
    w = np.asarray(w)
    if w.ndim == 0:
        return "scalar", float(w)
    if w.ndim == 1:
        return "diag", w.astype(np.float64)
    return "dense", w


class _Contribution:
    """One connection's input to its post object, ready to bound repeatedly."""

    def __init__(self, conn, target, index, rows, kind, matrix, pre_index, kern):
        self.conn = conn
        self.target = target  # Ensemble (J space) or Node (input space)
        self.index = index  # indices into the target's vector
        self.rows = rows  # row scaling (gains), or None
        self.kind, self.matrix = kind, matrix
        self.pre_index = pre_index
        self.kernel = kern
        self.reason = None

    def bound(self, lo, hi):
        """``(lo, hi)`` added to the target by inputs in ``[lo, hi]``."""
        lo, hi = lo[self.pre_index], hi[self.pre_index]
        kind, m = self.kind, self.matrix
        if kind == "scalar":
            out = _box_scale(m, lo, hi)
        elif kind == "diag":
            out = _box_scale(m, lo, hi)
        else:
            out = _box_matvec(m, lo, hi, self.rows)
            return out
        if self.rows is not None:
            out = _box_scale(self.rows, *out)
        return out


def _box_scale(w, lo, hi):
    w = np.asarray(w, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        a, b = w * lo, w * hi
    a = np.where(w == 0, 0.0, a)
    b = np.where(w == 0, 0.0, b)
    return np.minimum(a, b), np.maximum(a, b)


def _box_matvec(m, lo, hi, rows=None):
    """Bounds of ``diag(rows) @ m @ x`` for ``x`` in ``[lo, hi]`` (infs handled)."""
    inf_hi, inf_lo = np.isposinf(hi), np.isneginf(lo)
    hi_f = np.where(np.isfinite(hi), hi, 0.0)
    lo_f = np.where(np.isfinite(lo), lo, 0.0)
    # an infinite upper bound with a -inf lower one: both directions unbounded
    n_rows = m.shape[0]
    out_lo, out_hi = np.empty(n_rows), np.empty(n_rows)
    step = max(1, CHUNK_ELEMENTS // max(1, m.shape[1]))
    for i0 in range(0, n_rows, step):
        i1 = min(n_rows, i0 + step)
        block = m[i0:i1]
        if scipy.sparse.issparse(block):
            mp, mn = block.maximum(0), block.minimum(0)
        else:
            block = np.asarray(block, dtype=np.float64)
            mp, mn = np.maximum(block, 0.0), np.minimum(block, 0.0)
        if rows is not None:
            r = np.asarray(rows[i0:i1], dtype=np.float64)
            if scipy.sparse.issparse(mp):
                mp, mn = scipy.sparse.diags(r) @ mp, scipy.sparse.diags(r) @ mn
            else:
                mp, mn = mp * r[:, None], mn * r[:, None]
            if np.any(r < 0):  # negative gains swap the parts
                if scipy.sparse.issparse(mp):
                    mp, mn = (
                        mp.maximum(0) + mn.maximum(0),
                        mp.minimum(0) + mn.minimum(0),
                    )
                else:
                    both = mp + mn
                    mp, mn = np.maximum(both, 0.0), np.minimum(both, 0.0)
        hi_part = np.asarray(mp @ hi_f + mn @ lo_f).ravel()
        lo_part = np.asarray(mp @ lo_f + mn @ hi_f).ravel()
        if inf_hi.any() or inf_lo.any():
            up = np.asarray(mp @ inf_hi.astype(float) - mn @ inf_lo.astype(float))
            down = np.asarray(mp @ inf_lo.astype(float) - mn @ inf_hi.astype(float))
            hi_part = np.where(up.ravel() > 0, np.inf, hi_part)
            lo_part = np.where(down.ravel() > 0, -np.inf, lo_part)
        out_lo[i0:i1], out_hi[i0:i1] = lo_part, hi_part
    return out_lo, out_hi


class _ComposedMatrix:
    """``E[:, post] @ W`` computed one block of rows at a time (never whole)."""

    def __init__(self, left, kind, w, n_in):
        self.left = left  # (n_post, n_mid)
        self.kind, self.w = kind, w
        self.shape = (left.shape[0], n_in)

    def __getitem__(self, rows):
        left = self.left[rows]
        if self.kind == "scalar":
            return left * self.w
        if self.kind == "diag":
            return left * self.w[None, :]
        if self.kind == "sparse":
            return np.asarray((self.w.T @ left.T).T)
        return left @ self.w


def _index(size, sl):
    return np.arange(size)[sl]


def _contributions(model, network, dt):
    """Per connection: `_Contribution` (or one with a ``reason``)."""
    contributions = []
    for conn in network.all_connections:
        post = conn.post_obj
        if isinstance(post, nengo.connection.LearningRule):
            continue
        target = post.ensemble if isinstance(post, Neurons) else post
        if not isinstance(target, (nengo.Ensemble, nengo.Node)):
            continue
        kern = kernel(conn.synapse, dt)
        c = _Contribution(conn, target, None, None, None, None, None, kern)
        contributions.append(c)
        if isinstance(kern, str):
            c.reason = kern
            continue
        if conn.learning_rule_type is not None:
            c.reason = f"{conn} has a learning rule (its weights change)"
            continue
        if isinstance(target, nengo.Ensemble) and isinstance(
            target.neuron_type, nengo.Direct
        ):
            c.reason = f"{target} is in Direct mode (it computes a Python function)"
            continue
        pre = conn.pre_obj
        w = model.sig[conn]["weights"]
        w = None if w is None else w.initial_value
        if isinstance(pre, nengo.Ensemble):
            if isinstance(pre.neuron_type, nengo.Direct):
                c.reason = f"{conn} decodes a Direct-mode ensemble"
                continue
            c.pre_index = slice(None)
        elif isinstance(pre, Neurons):
            c.pre_index = _index(pre.size_out, conn.pre_slice)
        elif isinstance(pre, nengo.Node):
            if conn.function is not None:
                c.reason = f"{conn} computes a Python function of a Node"
                continue
            c.pre_index = _index(pre.size_out, conn.pre_slice)
        else:
            c.reason = f"{conn}: unsupported pre object"
            continue
        n_in = pre.n_neurons if isinstance(pre, nengo.Ensemble) else len(c.pre_index)
        if not isinstance(conn.transform, (nengo.Dense, nengo.Sparse)) and type(
            conn.transform
        ).__name__ not in ("NoTransform",):
            c.reason = (
                f"{conn} has a {type(conn.transform).__name__} transform (no bound)"
            )
            continue
        kind, m = _as_matrix(w, conn.size_out, n_in)
        if isinstance(post, Neurons):
            c.index = _index(target.n_neurons, conn.post_slice)
            c.rows = np.asarray(model.params[target].gain, float)[c.index]
        elif isinstance(post, nengo.Ensemble):
            if conn.solver.weights:  # weights include the post encoders and gains
                c.index = np.arange(target.n_neurons)
            else:
                enc = np.asarray(model.params[target].scaled_encoders, float)
                c.index = np.arange(target.n_neurons)
                left = enc[:, _index(target.dimensions, conn.post_slice)]
                m, kind = _ComposedMatrix(left, kind, m, n_in), "dense"
        else:  # Node input
            c.index = _index(target.size_in, conn.post_slice)
        if kind in ("scalar", "diag") and c.rows is None and len(c.index) != n_in:
            m = np.broadcast_to(np.asarray(m, float), (len(c.index),))
            kind = "diag"
        c.kind, c.matrix = kind, m
    return contributions


def _topological(objects, edges):
    """Objects ordered so that (ignoring back edges) pres come before posts."""
    order, seen = [], set()
    for root in objects:
        if root in seen:
            continue
        stack = [(root, iter(edges.get(root, ())))]
        seen.add(root)
        while stack:
            obj, children = stack[-1]
            for child in children:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, iter(edges.get(child, ()))))
                    break
            else:
                stack.pop()
                order.append(obj)
    return order[::-1]


def drive_bounds(network, dt=0.001, model=None):
    """Bound the input current and spike counts of every ensemble of ``network``.

    Parameters
    ----------
    network : nengo.Network
    dt : float
        The reference simulator's step.
    model : nengo.builder.Model, optional
        ``network`` already built with Nengo's builder.

    Returns
    -------
    Bounds
        ``{Ensemble: EnsembleBound}``; ``EnsembleBound.max_count`` is the
        largest spike count per step (None: no bound, see ``reason``).
    """
    result = Bounds()
    ensembles = list(network.all_ensembles)
    if model is None:
        try:
            model = reference_model(network, dt)
        except Exception as err:  # noqa: BLE001 (reported, not raised)
            reason = f"Nengo's reference build failed ({type(err).__name__}: {err})"
            for ens in ensembles:
                n = ens.n_neurons
                result[ens] = EnsembleBound(
                    ens, np.full(n, -np.inf), np.full(n, np.inf),
                    Output("unknown", reason=reason), reason,
                )  # fmt: skip
            return result

    for node in network.all_nodes:
        out = node.output
        if node.size_in == 0 and (isinstance(out, np.ndarray) or np.isscalar(out)):
            result.notes.append(
                f"{node} has a constant output, taken as its whole range; if it "
                "stands for inputs given later, measure with sample= or counts="
            )
    contributions = _contributions(model, network, dt)
    incoming, edges = {}, {}
    for c in contributions:
        incoming.setdefault(c.target, []).append(c)
        pre = c.conn.pre_obj
        pre = pre.ensemble if isinstance(pre, Neurons) else pre
        edges.setdefault(pre, []).append(c.target)
    objects = _topological(list(network.all_nodes) + ensembles, edges)

    # state: J boxes (ensembles), value boxes (nodes), outputs, reasons
    J, values, outputs, reasons = {}, {}, {}, {}
    versions = {obj: 0 for obj in objects}

    def pre_box(c):
        base = _base(c.conn.pre_obj)
        if isinstance(base, nengo.Node):
            box = values.get(base)
            if box is None:  # not computed yet (back edge): nothing arrived yet
                return np.zeros(base.size_out), np.zeros(base.size_out), None
            return box[0], box[1], reasons.get(base)
        out = outputs.get(base)
        n = base.n_neurons
        if out is None:
            return np.zeros(n), np.zeros(n), None
        if out.kind == "unknown":
            return np.full(n, -np.inf), np.full(n, np.inf), out.reason
        lo, hi = out.filtered(c.kernel)
        return lo, hi, reasons.get(base)

    def inputs_of(obj, size):
        lo, hi = np.zeros(size), np.zeros(size)
        why = None
        for c in incoming.get(obj, ()):
            if c.reason is not None:
                why = why or c.reason
                index = slice(None) if c.index is None else c.index
                lo[index], hi[index] = -np.inf, np.inf
                continue
            plo, phi, pwhy = pre_box(c)
            why = why or pwhy
            clo, chi = c.bound(plo, phi)
            np.add.at(lo, c.index, clo)
            np.add.at(hi, c.index, chi)
        return lo, hi, why

    def update(obj):
        """Recompute ``obj``; True if its bounds grew."""
        if isinstance(obj, nengo.Node):
            fixed = node_range(obj)
            if isinstance(fixed, str):
                new = (np.full(obj.size_out, -np.inf), np.full(obj.size_out, np.inf))
                why = fixed
            elif fixed is None:  # passthrough: its input
                lo, hi, why = inputs_of(obj, obj.size_in)
                new = (lo, hi)
            else:
                new, why = fixed, None
            values[obj], grew = _hull(values.get(obj), new)
            if np.all(np.isfinite(values[obj][0])) and np.all(
                np.isfinite(values[obj][1])
            ):
                reasons.pop(obj, None)
            else:
                reasons[obj] = why or f"{obj} has no bound"
            return grew

        ens, n = obj, obj.n_neurons
        bias = model.params[ens].bias
        bias = np.zeros(n) if bias is None else np.asarray(bias, dtype=np.float64)
        lo, hi, why = inputs_of(ens, n)
        lo, hi = lo + bias, hi + bias
        if ens.noise is not None:
            lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
            why = why or f"{ens} has noise ({ens.noise})"
        J[ens], grew = _hull(J.get(ens), (lo, hi))
        out = neuron_output(ens.neuron_type, J[ens][0], J[ens][1], dt)
        outputs[ens] = out
        if _finite_output(out):
            reasons.pop(ens, None)
        else:
            reasons[ens] = (
                why
                or out.reason
                or reasons.get(ens)
                or f"{ens}: its input has no bound (positive feedback?)"
            )
        return grew

    last = {}
    passes, widened = 0, False
    while True:
        passes += 1
        changed = False
        for obj in objects:
            deps = tuple(versions[_base(c.conn.pre_obj)] for c in incoming.get(obj, ()))
            if last.get(obj) == deps:
                continue
            last[obj] = deps
            if update(obj):
                versions[obj] += 1
                changed = True
        if not changed:
            break
        if passes >= MAX_PASSES and not widened:
            # a loop still growing: what grows has no bound; iterate to stability
            widened = True
            for ens in ensembles:
                if versions[ens] < MAX_PASSES // 2:
                    continue
                n = ens.n_neurons
                J[ens] = (np.full(n, -np.inf), np.full(n, np.inf))
                reasons[ens] = (
                    f"{ens} is in a recurrent loop whose input keeps growing "
                    f"(no bound after {MAX_PASSES} passes)"
                )
                outputs[ens] = neuron_output(ens.neuron_type, *J[ens], dt)
                versions[ens] += 1
        if passes >= 2 * MAX_PASSES + 5:  # pragma: no cover (safety net)
            break
    result.passes = passes

    for ens in ensembles:
        out = outputs[ens]
        reason = None if _finite_output(out) else reasons.get(ens) or out.reason
        result[ens] = EnsembleBound(ens, J[ens][0], J[ens][1], out, reason)
    return result


def _base(obj):
    return obj.ensemble if isinstance(obj, Neurons) else obj


def _finite_output(out):
    if out.kind == "unknown":
        return False
    return bool(np.all(np.isfinite(out.lo)) and np.all(np.isfinite(out.hi)))


def _hull(old, new, rtol=1e-12):
    """``(hull of old and new, whether it grew beyond rtol)``."""
    lo, hi = (np.asarray(x, dtype=np.float64) for x in new)
    if old is None:
        return (lo, hi), True
    olo, ohi = old
    tol_hi = rtol * np.maximum(np.abs(ohi), 1.0)
    tol_lo = rtol * np.maximum(np.abs(olo), 1.0)
    with np.errstate(invalid="ignore"):
        grew = bool(np.any(hi > ohi + tol_hi) or np.any(lo < olo - tol_lo))
    return (np.minimum(olo, lo), np.maximum(ohi, hi)), grew


def measure_counts(network, sample, dt=0.001, ensembles=None):
    """Largest spike count per step of spiking ensembles, in the reference simulator.

    Parameters
    ----------
    network : nengo.Network
    sample : int or dict of {nengo.Node: array_like}
        Steps to run the network as it is, or input values per Node, shaped
        ``(n_steps, node.size_out)``: the Node plays them one per step
        (restored afterwards).
    dt : float
    ensembles : iterable of nengo.Ensemble, optional
        Which ensembles to measure (default: all with spiking neurons).

    Returns
    -------
    dict of {Ensemble: int}
    n_steps : int
    """
    from nengo_hybrid.metrics import spike_counts

    ensembles = [
        e
        for e in (network.all_ensembles if ensembles is None else ensembles)
        if getattr(e.neuron_type, "spiking", False)
    ]
    saved = {}
    try:
        if isinstance(sample, dict):
            lengths = set()
            for node, x in sample.items():
                x = np.asarray(x, dtype=np.float64)
                if x.ndim == 1:
                    x = x[:, None]
                if x.ndim != 2 or x.shape[1] != node.size_out:
                    raise ValueError(
                        f"sample for {node} must be shaped (n_steps, {node.size_out}), "
                        f"got {np.shape(x)}"
                    )
                lengths.add(x.shape[0])
                saved[node] = node.output
                node.output = nengo.processes.PresentInput(x, presentation_time=dt)
            if len(lengths) != 1:
                raise ValueError(
                    "every Node of the sample needs the same number of steps, got "
                    f"{sorted(lengths)}"
                )
            n_steps = lengths.pop()
        else:
            n_steps = int(sample)
        largest = {e: 0 for e in ensembles}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with nengo.Simulator(network, dt=dt, progress_bar=False) as sim:
                sigs = {e: sim.model.sig[e.neurons]["out"] for e in ensembles}
                for _ in range(n_steps):
                    sim.step()
                    for e, sig in sigs.items():
                        c = spike_counts(sim.signals[sig], e.neuron_type, dt)
                        largest[e] = max(largest[e], int(np.abs(c).max(initial=0)))
    finally:
        for node, out in saved.items():
            node.output = out
    return largest, n_steps
