"""A batched Loihi-core emulator, bit-exact with nengo-loihi's.

nengo-loihi's emulator (``nengo_loihi.emulator.interface``) runs one sample and
loops in Python over every spike. `BatchedEmulator` runs ``B`` independent
samples at once on the same built model, vectorised over samples and
compartments, with the same integer arithmetic, so that every probe output and
every spike count equals what nengo-loihi's emulator produces for each sample
on its own (checked in ``tests/test_emulator.py`` against nengo-loihi itself,
down to every compartment's voltage and current on every step).

Usage::

    sim = nengo_hybrid.hardware.Simulator(net, target="sim")  # builds the model
    emu = BatchedEmulator(sim)          # copies its (initial) emulator state
    out = emu.run({spike_input: counts})   # counts: (B, n_steps, n) host spikes
    out[nengo_probe]                    # (B, n_steps, size), as sim.data[nengo_probe]
    out.spike_count                     # (B, n_compartments)

`NengoLoihiRecorder` records what a nengo-loihi run exchanges with its host
(the spikes delivered to each ``SpikeInput``, the chip-to-host probe data), so
the same run can be repeated here and compared.

What one step does (nengo-loihi's ``EmulatorInterface.step``, in this order):

1. Synaptic input ``q``: each spike of the previous step (on-chip compartments)
   and each host spike sent on the previous host step (``SpikeInput``, one step
   of host-to-chip latency) adds its axon's weight row to the target
   compartments. That is linear in the spike counts, so here it is a matrix
   product ``q = s @ W`` with ``s`` the ``(B, sources)`` spike counts and ``W``
   the integer matrix built once from the axons (compartment and atom maps,
   population weights with compartment bases and weight maps, as nengo-loihi's
   ``Axon.map_spikes`` / ``Synapse.axon_weights_indices``; repeated indices in
   one weight row keep the last weight, as NumPy's ``a[idx] += w``), then
   wrapped to 21 bits plus sign (``Q_BITS``). `SynapseRouting` takes the
   product on a reduced matrix: identical columns (compartments with the same
   inputs, e.g. the copies of a neuron under `.Expand` / `.Thermometer`) once,
   and sources with identical rows (the copies' output axons, identical host
   encoder neurons) as one source whose count is the sum of theirs; a sparse
   (scipy CSR) product when under 10% of the reduced weights are nonzero.
2. Compartment update (`CompartmentState.update`): current decay + ``q``,
   wrapped to 23 bits; plus bias, wrapped to 23 bits; voltage decay + that,
   clipped to ``[vmin, vmax]``; zeroed while refractory; spike where
   ``v > vth``; reset to zero; refractory counter. The same NumPy integer
   operations on the same dtypes (int32 state) as nengo-loihi's ``decay_int``,
   ``overflow_signed`` and ``CompartmentState.update``, with a leading sample
   axis; `decay` uses equivalent cheaper forms where they give the same
   integers (no decay, decay to ``x >> 12``, non-negative voltages), and
   compartments with the same input, current decay and initial current share
   one stored current (it is the same at every step).
3. Probes record ``spiked`` / ``voltage`` / ``current`` (sliced per target
   block); outputs are weighted, concatenated or summed, reindexed and
   filtered as nengo-loihi's ``LoihiProbe.weight_outputs`` and ``ProbeFilter``
   (see "Probe outputs" below).

Why the matrix product is exact
-------------------------------
``W`` holds the discretised weights: integers with ``|w| < 2**31`` (in practice
below ``2**21``: an 8-bit mantissa shifted by the weight exponent and 6 more
bits). ``s`` holds small non-negative integers (0/1 per compartment, summed
over a group of identical sources; host spike counts). For one column ``c``
let ``bound_c = sum_i |W[i, c]| * max(s_i)``. Every product ``s_i * W[i, c]``
and every partial sum of any subset of them, in any order, is an integer of
magnitude at most ``bound_c``. A binary floating-point format with a ``p``-bit
significand represents every integer up to ``2**p`` exactly, so when
``bound_c <= 2**24`` (float32) or ``<= 2**53`` (float64) no product and no
addition ever rounds: the result is the exact integer sum, whatever the
blocking, threading, summation order or FMA use of the BLAS kernel (or of
scipy's sparse product), and whatever grouping of identical rows or columns
was applied first (each is a regrouping of the same integer sum). The bound is
computed from ``W`` and the actual input counts before each run, and the dtype
chosen from it: float32 below ``2**24``, float64 below ``2**53``, and an
integer (int64) product otherwise. Where the argument would fail: a column
with ``bound_c > 2**53`` in float64 (or ``> 2**24`` in float32) could round a
partial sum -- never used, the int64 product is taken instead; a BLAS that
computes in reduced precision (bf16/TF32 "fast" modes, not used by NumPy's
float32/float64 ``matmul``) would break it too.

The wrap-around is exact as well: nengo-loihi accumulates ``q`` in int32
(wrapping modulo ``2**32``) and then keeps the low 22 bits as a signed 21-bit
value; since ``2**22`` divides ``2**32`` (and ``2**64``) the low 22 bits of the
exact sum are the same as those of the int32 (or int64) sum.

Probe outputs
-------------
Scalar weights, slices, concatenation and reindexing are elementwise: run
batched through the probe's own ``weight_outputs``. A 2-D weight matrix is a
float product: batched (identical rows summed first) when its result does not
depend on the summation order (`order_independent`: at most one nonzero per
column, or all weights multiples of one power of two with every partial sum
exact -- e.g. spike counts times ``1/(precision dt)`` summed over a neuron's
copies); otherwise (decoders) per sample, with the very NumPy call nengo-loihi
makes for ``n_steps`` steps collected at once (``(n_steps, n) @ (n, d)``).
So outputs with decoder weights are bit-identical to a nengo-loihi run whose
probe data is collected, or sent to the host, for all steps at once (its
precomputed modes; in its step-by-step mode each step is a ``(1, n)`` product
whose last bit can differ). The tests compare byte for byte, so also the sign
of zeros (scalar weights: an elementwise product plus ``+0``, as the ``dot``
that nengo-loihi calls); for the sign of an exact zero out of a BLAS product
the argument above gives no guarantee. Probe filters run batched for elementwise steps
(nengo's ``LinearFilter.NoX`` / ``OneX``), else per sample with a copy of one
freshly made step function.

Covered / not covered
---------------------
Covered: discretised (integer) models as nengo-loihi builds them for
``target="sim"``, any number of blocks (split blocks included), compartment
and population axons (``compartment_map``, atoms, ``pop_type`` 16/32 weights
with ``axon_compartment_bases`` and ``axon_to_weight_map``), host spike inputs
(``SpikeInput``, including spikes stored in it at build time such as DVS
files), current/voltage decay, bias, thresholds, reset, refractory periods,
``vmin``/``vmax`` clipping, q/current/u2 overflow wrapping (with nengo-loihi's
overflow warnings), ``spiked``/``voltage``/``current`` probes with slices,
weights, reindexing and synapse filters. nengo-loihi's emulator has no
synaptic delays (``CompartmentState.MAX_DELAY = 1``), so neither has this one.

Not covered -- `UnsupportedModel` (a ``NotImplementedError``) names it, and the
caller falls back to nengo-loihi's emulator: compartment noise
(``enable_noise``, it draws from the emulator's RNG), learning (PES) synapses and
host-to-chip error (PES) senders, non-discretised models (``target="simreal"``),
inputs other than ``SpikeInput``, probe keys other than the three above.

Runs are stateless: every `BatchedEmulator.run` starts all samples from the
initial state (that of the nengo-loihi emulator it was made from, including the
initial voltages `nengo_hybrid.hardware.loihi.set_emulator_voltages` sets). The
host side (nengo-loihi's host simulators: encoding of Node values into spikes,
decoding of chip outputs) is not part of it: the caller provides the host
spikes and receives the chip's probe data.
"""

import copy
import types
import warnings
from collections import OrderedDict

import numpy as np
import scipy.sparse
from nengo.exceptions import SimulationError
from nengo_loihi.builder.discretize import Q_BITS, U_BITS, overflow_signed
from nengo_loihi.compat import make_process_step
from nengo_loihi.inputs import SpikeInput
from nengo_loihi.probe import LoihiProbe

from nengo_hybrid.hardware.exact import SPARSE_DENSITY, exact_dtype

PROBE_KEYS = ("spiked", "voltage", "current")
DECAY_BITS = 12  # decay_int's default bits


class UnsupportedModel(NotImplementedError):
    """The model uses something the batched emulator does not emulate.

    The message names it; run the model on nengo-loihi's emulator instead.
    """


def check_supported(model):
    """Raise `UnsupportedModel` naming the first thing ``model`` needs that is missing."""

    def fail(what):
        raise UnsupportedModel(
            f"batched emulator: {what} is not emulated; use nengo-loihi's emulator"
        )

    if not model.blocks:
        fail("a model without on-chip blocks")
    for block in model.blocks:
        comp = block.compartment
        if comp.vth.dtype != np.int32:
            fail(f"a non-discretised model (dtype {comp.vth.dtype}, target='simreal')")
        if np.any(comp.enable_noise):
            fail(f"compartment noise (enable_noise) in {block}")
        if comp.scale_u or comp.scale_v:
            fail(f"u/v scaling in {block} (not discretised)")
        for synapse in block.synapses:
            if synapse.learning:
                fail(f"learning (PES) on {synapse} of {block}")
    if getattr(model, "host2chip_pes_senders", None):
        fail("host-to-chip learning errors (PES)")
    for inp in model.inputs:
        if type(inp) is not SpikeInput:
            fail(f"chip input of type {type(inp).__name__}")
    for probe in model.probes:
        if probe.key not in PROBE_KEYS:
            fail(f"probe key {probe.key!r}")


class BlockLayout:
    """Where each block's compartments sit on the flat compartment axis.

    As nengo-loihi's ``BlockInfo``: blocks in model order, ``slices[block]``.
    """

    def __init__(self, blocks):
        self.blocks = list(blocks)
        self.slices = OrderedDict()
        start = 0
        for block in self.blocks:
            self.slices[block] = slice(start, start + block.n_neurons)
            start += block.n_neurons
        self.n_compartments = start
        self.synapse_block = {s: b for b in self.blocks for s in b.synapses}


def decay(x, r, nonnegative=False):
    """nengo-loihi's ``decay_int``: ``sign(x) * (|x| * r >> 12)``, ``r = 4096 - offset - decay``.

    ``r`` is an int64 array (per column) or an int (the same for all columns),
    for which the result is the same, computed with cheaper operations:
    ``r == 4096`` leaves ``x`` unchanged, ``r == 1`` keeps the int32 dtype
    (``|x| < 2**31``), and for ``x >= 0`` the sign is dropped.
    """
    if isinstance(r, int):
        if r == 1 << DECAY_BITS:
            return x
        if r == 1:
            if nonnegative:
                return x >> DECAY_BITS
            return np.sign(x) * (np.abs(x) >> DECAY_BITS)
    scaled = np.right_shift(np.abs(x) * np.asarray(r, dtype=np.int64), DECAY_BITS)
    if nonnegative:
        return scaled.astype(np.int32)
    return np.sign(x) * scaled.astype(np.int32)


def _uniform(values):
    """``int(values[0])`` if all values are equal, else ``values``."""
    values = np.asarray(values)
    if values.size and np.all(values == values.flat[0]):
        return int(values.flat[0])
    return values


class CompartmentState:
    """Compartment parameters (shared by all samples) and the state of ``B`` samples.

    The state arrays are ``(B, n_compartments)``, int32 as in nengo-loihi
    (``spiked`` bool); `update` is nengo-loihi's ``CompartmentState.update``
    (without noise) with a leading sample axis. Compartments that receive the
    same synaptic input (a column group of `SynapseRouting`) with the same
    current decay and initial current have the same current at every step, so
    the current is stored once per such group (``current`` expands it).
    """

    STATE = ("current", "voltage", "spiked", "ref_count", "spike_count")

    def __init__(self, layout):
        n = layout.n_compartments
        names = ("decay_u", "decay_v", "vth", "vmin", "vmax", "bias", "ref")
        params = {name: np.zeros(n, dtype=np.int32) for name in names}
        for block, sl in layout.slices.items():
            comp = block.compartment
            params["decay_u"][sl] = comp.decay_u
            params["decay_v"][sl] = comp.decay_v
            params["vth"][sl] = comp.vth
            params["vmin"][sl] = comp.vmin
            params["vmax"][sl] = comp.vmax
            params["bias"][sl] = comp.bias
            params["ref"][sl] = comp.refract_delay
        self.__dict__.update(params)
        self.n_compartments = n
        self.initial = {
            "current": np.zeros(n, dtype=np.int32),
            "voltage": np.zeros(n, dtype=np.int32),
            "spiked": np.zeros(n, dtype=bool),
            "ref_count": np.zeros(n, dtype=np.int32),
            "spike_count": np.zeros(n, dtype=np.int32),
        }
        self.overflows = set()

    def set_initial(self, **state):
        """Set the initial state (``(n_compartments,)`` arrays) of every sample."""
        for name, value in state.items():
            if name not in self.STATE:
                raise KeyError(f"unknown compartment state {name!r}")
            self.initial[name][...] = value

    def reset(self, n_samples, input_group):
        """Put ``n_samples`` samples in the initial state.

        ``input_group`` (per compartment) is the column of the synaptic input
        ``q`` that `update` will receive for it.
        """
        init = self.initial
        for name in ("voltage", "spiked", "ref_count", "spike_count"):
            setattr(self, name, np.repeat(init[name][None, :], n_samples, axis=0))
        keys = np.stack([input_group, self.decay_u, init["current"]], axis=1)
        _, reps, index = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        index = index.ravel()
        self.current_index = None if len(reps) == self.n_compartments else index
        if self.current_index is None:
            reps = np.arange(self.n_compartments)
        self.current_input = input_group[reps]
        if np.array_equal(self.current_input, np.arange(len(reps))):
            self.current_input = None
        self.current_r = _uniform(
            (1 << DECAY_BITS) - 1 - self.decay_u[reps].astype(np.int64)
        )
        self.voltage_r = _uniform((1 << DECAY_BITS) - self.decay_v.astype(np.int64))
        self.current_groups = np.repeat(
            init["current"][reps][None, :], n_samples, axis=0
        )
        # with vmin >= 0 and a start at v >= 0, the voltage is never negative
        self.nonnegative = bool(np.all(self.vmin >= 0) and np.all(init["voltage"] >= 0))
        self.clip = (_uniform(self.vmin), _uniform(self.vmax))
        # a refractory counter above zero needs a refractory delay above one
        self.refractory = bool(np.any(self.ref > 1) or np.any(self.ref_count > 0))
        self.overflows = set()

    @property
    def current(self):
        """``(B, n_compartments)`` current."""
        if self.current_index is None:
            return self.current_groups
        return self.current_groups[:, self.current_index]

    def wrap(self, x, bits, name):
        """``overflow_signed`` in place, skipped when nothing is out of range."""
        limit = 1 << bits
        if x.size and (x.min() < -limit or x.max() >= limit):
            overflow_signed(x, bits=bits, out=x)
            self.overflows.add(name)
        return x

    def update(self, q):
        """Advance one step with synaptic input ``q`` (int32 per input group, wrapped)."""
        if self.current_input is not None:
            q = q[:, self.current_input]
        current = decay(self.current_groups, self.current_r) + q
        self.current_groups = self.wrap(current, U_BITS, "current")
        u2 = self.wrap(self.current + self.bias, U_BITS, "u2")
        voltage = decay(self.voltage, self.voltage_r, self.nonnegative) + u2
        vmin, vmax = self.clip
        np.clip(voltage, vmin, vmax, out=voltage)
        if self.refractory:
            np.putmask(voltage, self.ref_count > 0, 0)
        np.greater(voltage, self.vth, out=self.spiked)
        np.putmask(voltage, self.spiked, 0)
        self.voltage = voltage
        if self.refractory:
            ref = np.broadcast_to(self.ref, self.ref_count.shape)
            np.copyto(self.ref_count, ref, where=self.spiked)
            np.clip(self.ref_count - 1, 0, None, out=self.ref_count)
        self.spike_count += self.spiked


def _last_unique(targets, weights):
    """Keep the last weight of repeated targets (NumPy's ``a[idx] += w``)."""
    if len(np.unique(targets)) == len(targets):
        return targets, weights
    _, first_of_reversed = np.unique(targets[::-1], return_index=True)
    keep = len(targets) - 1 - first_of_reversed
    return targets[keep], weights[keep]


def _identical_rows(matrix):
    """Group ids of the rows of a canonical CSR/CSC ``matrix`` (equal rows, equal id).

    Ids are numbered in order of first appearance.
    """
    ids = np.empty(matrix.shape[0], dtype=np.int64)
    groups = {}
    indptr, indices, data = matrix.indptr, matrix.indices, matrix.data
    for i in range(matrix.shape[0]):
        lo, hi = indptr[i], indptr[i + 1]
        key = (indices[lo:hi].tobytes(), data[lo:hi].tobytes())
        ids[i] = groups.setdefault(key, len(groups))
    return ids


class SourceGroups:
    """Sums the spike counts of sources whose weight rows are identical.

    ``members`` (source indices) sorted by group; ``starts``: first position of
    each group. ``__call__`` maps ``(..., n_sources)`` counts to
    ``(..., n_groups)`` sums.
    """

    def __init__(self, sources, group_ids):
        order = np.argsort(group_ids, kind="stable")
        self.members = np.asarray(sources, dtype=np.int64)[order]
        new_group = np.diff(group_ids[order]) > 0
        self.starts = np.flatnonzero(np.r_[True, new_group]) if len(order) else order
        self.first = order[self.starts]  # position of each group's first member
        self.n_groups = len(self.starts)
        self.sizes = np.diff(np.r_[self.starts, len(order)])
        self.singletons = self.n_groups == len(order)
        m = self.members
        self.contiguous = len(m) > 0 and np.array_equal(m, np.arange(m[0], m[-1] + 1))
        self.index = slice(int(m[0]), int(m[-1]) + 1) if self.contiguous else m

    def __call__(self, counts, dtype, out=None):
        x = counts[..., self.index]
        if self.singletons:
            if out is None:
                return x.astype(dtype)
            out[...] = x
            return out
        if self.n_groups == 0:
            return np.zeros(x.shape[:-1] + (0,), dtype=dtype)
        return np.add.reduceat(x, self.starts, axis=-1, dtype=dtype, out=out)

    def max_counts(self, source_max):
        """Largest sum per group, given the largest count of every source."""
        if self.n_groups == 0:
            return np.zeros(0)
        member_max = np.asarray(source_max, dtype=np.float64)[self.members]
        return np.add.reduceat(member_max, self.starts)


class SynapseRouting:
    """Axons and synapses as one integer matrix from spike sources to compartments.

    Sources are the compartments (their spikes of the previous step) followed
    by the neurons of each host `SpikeInput`. Row ``i`` of `matrix` is what one
    spike of source ``i`` adds to the input of every compartment, as
    nengo-loihi's ``SynapseState.inject_current`` and ``update_input`` add it
    spike by spike (``qb[0, base + indices] += weights``, where repeated indices
    within one weight row keep the last weight).

    For speed the product is taken on a reduced matrix (`reduce`): identical
    columns (compartments with the same inputs, e.g. the copies of a neuron in
    `.Expand` / `.Thermometer`) are computed once (``input_group`` maps each
    compartment to its column), and sources with identical rows (e.g. the
    copies' output axons, or a host encoder's identical neurons) have their
    spike counts summed first. Both are exact rewritings of the same integer sum.
    """

    def __init__(self, layout, inputs):
        self.layout = layout
        self.inputs = list(inputs)
        n = layout.n_compartments
        self.input_offsets = []
        offset = n
        for inp in self.inputs:
            self.input_offsets.append(offset)
            offset += inp.n_neurons
        self.n_sources = offset

        rows, cols, vals = [], [], []
        for block, sl in layout.slices.items():
            for axon in block.axons:
                self._add_axon(axon, sl.start, block.n_neurons, rows, cols, vals)
        for inp, start in zip(self.inputs, self.input_offsets):
            for axon in inp.axons:
                self._add_axon(axon, start, inp.n_neurons, rows, cols, vals)
        rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        cols = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        vals = np.concatenate(vals) if vals else np.zeros(0, dtype=np.int64)
        # duplicates (several axons of one source onto one compartment) are summed
        matrix = scipy.sparse.csr_matrix(
            (vals, (rows, cols)), shape=(self.n_sources, n), dtype=np.int64
        )
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        active = np.flatnonzero(np.diff(matrix.indptr))  # sources with any weight
        self.active_compartments = active[active < n]
        self.active_inputs = active[active >= n]
        self.set_matrix(matrix[active])

    def set_matrix(self, matrix):
        """Set the ``(n_active_sources, n_compartments)`` int64 weight matrix."""
        self.matrix = scipy.sparse.csr_matrix(matrix, dtype=np.int64)
        self.matrix.sort_indices()
        self._reduced = None
        self._dense = {}

    def reduce(self):
        """Group identical columns and identical rows (cached); see the class doc."""
        if self._reduced is not None:
            return self._reduced
        matrix = self.matrix
        n_comp = len(self.active_compartments)
        csc = matrix.tocsc()
        csc.sort_indices()
        col_ids = _identical_rows(_csc_as_rows(csc))
        _, col_reps = np.unique(col_ids, return_index=True)
        reduced = matrix[:, col_reps].tocsr()
        reduced.sort_indices()
        row_ids = _identical_rows(reduced)
        comp_ids, in_ids = row_ids[:n_comp], row_ids[n_comp:]
        # renumber each part from 0 in order of first appearance
        comp_groups = SourceGroups(self.active_compartments, _renumber(comp_ids))
        in_groups = SourceGroups(
            self.active_inputs - self.layout.n_compartments, _renumber(in_ids)
        )
        reps = np.r_[comp_groups.first, n_comp + in_groups.first].astype(np.int64)
        weights = reduced[reps].tocsr()  # (source groups, columns) int64
        self._reduced = types.SimpleNamespace(
            input_group=col_ids,
            comp_groups=comp_groups,
            in_groups=in_groups,
            weights=weights,
            abs_weights=abs(weights).astype(np.float64).tocsc(),
        )
        return self._reduced

    def _add_axon(self, axon, start, n_src, rows, cols, vals):
        synapse = axon.target
        target_block = self.layout.synapse_block.get(synapse)
        if target_block is None:
            raise UnsupportedModel(
                f"batched emulator: {axon} targets an unknown synapse"
            )
        target_start = self.layout.slices[target_block].start
        src = np.arange(n_src)
        axon_ids = np.asarray(axon.map_axon(src))
        atoms = np.asarray(axon.map_atoms(src), dtype=np.int64)
        cache = {}
        for i, axon_id, atom in zip(src, axon_ids, atoms):
            if axon_id < 0:
                continue
            key = (int(axon_id), int(atom))
            if key not in cache:
                base = synapse.axon_compartment_base(int(axon_id))
                if base is None:
                    cache[key] = None
                else:
                    w, idx = synapse.axon_weights_indices(int(axon_id), atom=int(atom))
                    targets = target_start + base + np.asarray(idx, dtype=np.int64)
                    cache[key] = _last_unique(targets, np.asarray(w, dtype=np.int64))
            if cache[key] is None:
                continue
            targets, w = cache[key]
            rows.append(np.full(len(targets), start + i, dtype=np.int64))
            cols.append(targets)
            vals.append(w)

    def dtype_for(self, input_max_counts):
        """The matmul dtype that is exact for these inputs (see the module docstring).

        ``input_max_counts``: the largest count of each input neuron (all
        `SpikeInput` neurons in order).
        """
        red = self.reduce()
        group_max = np.r_[
            red.comp_groups.sizes.astype(np.float64),
            red.in_groups.max_counts(input_max_counts),
        ]
        bound = red.abs_weights.T @ group_max if len(group_max) else np.zeros(1)
        return exact_dtype(np.max(bound, initial=0.0))

    def weights(self, dtype):
        """The reduced weight matrix in ``dtype``: a NumPy array, or a scipy CSR
        matrix when sparse (density below ``SPARSE_DENSITY``). Either product
        is exact under the same bound (see the module docstring)."""
        if dtype not in self._dense:
            w = self.reduce().weights.astype(dtype)
            size = w.shape[0] * w.shape[1]
            if not (size and w.nnz < SPARSE_DENSITY * size):
                w = w.toarray()
            self._dense[dtype] = w
        return self._dense[dtype]

    def inject(self, sources, dtype):
        """Synaptic input ``q`` per input group (int32, wrapped to ``Q_BITS``).

        ``sources``: ``(B, groups)`` summed spike counts of the source groups.
        """
        q = sources @ self.weights(dtype)
        if dtype is np.float32:
            q = q.astype(np.int32)  # exact: |q| <= 2**24
        else:
            q = q.astype(np.int64)  # exact: |q| <= 2**53, or int64 already
        limit = 1 << Q_BITS
        overflowed = q.size and (q.min() < -limit or q.max() >= limit)
        if overflowed:
            overflow_signed(q, bits=Q_BITS, out=q)
        return q.astype(np.int32, copy=False), bool(overflowed)


def _csc_as_rows(csc):
    """A CSC matrix's columns as the rows of a CSR-like view (same arrays)."""
    return types.SimpleNamespace(
        shape=(csc.shape[1], csc.shape[0]),
        indptr=csc.indptr,
        indices=csc.indices,
        data=csc.data,
    )


def _renumber(ids):
    """Ids renumbered ``0..`` in order of first appearance."""
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse.ravel()] if len(ids) else ids


class ProbeState:
    """Records probed compartment state for ``B`` samples; outputs as nengo-loihi's.

    Per probe and target block, the global compartment indices
    (``block slice[probe.slice[k]]``) are recorded every step into
    ``(B, n_steps, n_k)`` buffers.
    """

    def __init__(self, layout, probes, dt):
        self.dt = dt
        self.probes = list(probes)
        self.indices = OrderedDict()
        for probe in self.probes:
            idxs = []
            for block, sl in zip(probe.target, probe.slice):
                idx = np.arange(layout.n_compartments)[layout.slices[block]][sl]
                idx = np.atleast_1d(idx)
                size = len(idx)
                if size and np.array_equal(idx, np.arange(idx[0], idx[-1] + 1)):
                    idx = slice(int(idx[0]), int(idx[-1]) + 1)
                idxs.append((idx, size))
            self.indices[probe] = idxs
        self._grouped = {}

    def allocate(self, n_samples, n_steps, probes=None):
        """Buffers for ``probes`` (default: all) over ``n_steps`` steps."""
        self.buffers = OrderedDict()
        for probe, idxs in self.indices.items():
            if probes is not None and probe not in probes:
                continue
            dtype = bool if probe.key == "spiked" else np.int32
            self.buffers[probe] = [
                np.zeros((n_samples, n_steps, size), dtype=dtype) for _, size in idxs
            ]

    def update(self, step, compartment):
        for probe, buffers in self.buffers.items():
            state = getattr(compartment, probe.key)
            for buf, (idx, _) in zip(buffers, self.indices[probe]):
                buf[:, step, :] = state[:, idx]

    def outputs(self, probe):
        """``(B, n_steps, size)`` output of ``probe``, as nengo-loihi's ``collect_probe_output``."""
        buffers = self.buffers[probe]
        n_samples, n_steps = buffers[0].shape[:2]
        if all(
            order_independent(w, np.abs(b).max(initial=0), _dot_dtype(b, w))
            for w, b in zip(probe.weights, buffers)
        ):
            # elementwise weights, or products that are the same in any
            # summation order: all samples and steps at once
            out = self._weight_outputs(probe, buffers)
        else:
            # float products whose rounding depends on the summation order:
            # the same call per sample as nengo-loihi
            out = np.stack(
                [
                    probe.weight_outputs([b[i] for b in buffers])
                    for i in range(n_samples)
                ]
            )
        return filter_outputs(probe, out, self.dt)

    def _weight_outputs(self, probe, buffers):
        """nengo-loihi's ``LoihiProbe.weight_outputs`` on all samples' steps at once.

        Only for weights whose products are order-independent: scalar weights
        as an elementwise product (equal to ``output.dot(w)``, zero signs
        included), matrices with identical rows (e.g. the copies of one neuron)
        as exact sums of counts times the unique rows. Blocks are summed in
        block order, or concatenated and reindexed, as ``weight_outputs`` does.
        """
        n_samples, n_steps = buffers[0].shape[:2]
        weighted = []
        for k, (w, b) in enumerate(zip(probe.weights, buffers)):
            x = b.reshape(n_samples * n_steps, -1)
            if w is None:
                weighted.append(x)
            elif np.ndim(w) == 0:
                weighted.append(scalar_dot(x, w))
            else:
                key = (probe, k)
                if key not in self._grouped:
                    w = np.asarray(w)
                    csr = scipy.sparse.csr_matrix(w)
                    csr.sort_indices()
                    groups = SourceGroups(np.arange(len(w)), _identical_rows(csr))
                    self._grouped[key] = (groups, w[groups.first])
                groups, w_unique = self._grouped[key]
                dtype = _dot_dtype(x, w_unique)
                weighted.append(groups(x, dtype) @ w_unique.astype(dtype))
        if probe.is_transformed:
            assert probe.reindexing is None
            result = sum(weighted)
        else:
            result = weighted[0] if len(weighted) == 1 else np.column_stack(weighted)
            if probe.reindexing is not None:
                result = result[..., probe.reindexing]
        return result.reshape(n_samples, n_steps, -1)


def scalar_dot(x, w):
    """``x.dot(w)`` for integer ``x`` and a 0-d ``w``, elementwise (much faster).

    Same dtype, values and zero signs: ``dot`` sums each product onto ``+0``,
    so a ``-0`` product (``0 * w`` with ``w < 0``, ``x * 0`` with ``x < 0``)
    comes out as ``+0``.
    """
    out = np.multiply(x, w, dtype=_dot_dtype(x, w))
    if not w > 0:  # integer x times w > 0 is never -0
        out += 0
    return out


def _dot_dtype(x, w):
    """The dtype of ``x.dot(w)`` (NumPy converts both arrays to a common type)."""
    return np.result_type(x.dtype, np.asarray(w).dtype) if w is not None else x.dtype


def order_independent(weights, x_max, dtype=np.float64):
    """Whether ``x @ weights`` in ``dtype`` is the same in any summation order,
    for integer ``x`` with ``|x| <= x_max``.

    True for no weights or scalar weights (elementwise), when no column has
    more than one nonzero weight (one rounded product, plus exact zeros), or
    when all weights are integer multiples of one power of two ``2**e`` and
    every column's ``x_max * sum |w|`` is below ``2**(p + e)`` (``p``: 53
    significand bits for float64, 24 for float32): then every product and
    partial sum is exact.
    """
    if weights is None or np.ndim(weights) < 2:
        return True
    w = np.asarray(weights, dtype=np.float64)
    nonzero = w != 0
    if np.all(nonzero.sum(axis=0) <= 1):
        return True
    values = np.abs(w[nonzero])
    if not np.all(np.isfinite(values)):
        return False
    mantissa, exponent = np.frexp(values)  # values = mantissa * 2**exponent
    ints = (mantissa * 2.0**53).astype(np.int64)  # exact 53-bit integers
    lowest_bit = np.log2(ints & -ints).astype(np.int64)
    e = int(np.min(exponent - 53 + lowest_bit))
    column_sums = np.abs(w).sum(axis=0) * 2.0**-e  # integers (if below 2**53)
    exact = 2.0 ** (np.finfo(dtype).nmant + 1)
    return bool(float(x_max) * column_sums.max() < exact * (1 - 1e-9))


def _filter_step(synapse, shape, dt):
    return make_process_step(
        synapse, shape_in=shape, shape_out=shape, dt=dt, rng=None, dtype=np.float32
    )


def filter_outputs(probe, data, dt):
    """Apply ``probe.synapse`` to ``(B, n_steps, size)`` data, as nengo-loihi's ``ProbeFilter``."""
    if probe.synapse is None:
        return data
    import nengo

    n_samples, n_steps, size = data.shape
    one = _filter_step(probe.synapse, (size,), dt)
    elementwise = (nengo.LinearFilter.NoX, nengo.LinearFilter.OneX)
    out = np.zeros_like(data)
    if type(one) in elementwise:
        step = _filter_step(probe.synapse, (n_samples, size), dt)
        if type(step) is type(one):
            for t in range(n_steps):
                out[:, t] = step(t * dt, data[:, t])
            return out
    fresh = copy.deepcopy(one)  # a step with its initial state, for each sample
    for i in range(n_samples):
        step = copy.deepcopy(fresh)
        for t in range(n_steps):
            out[i, t] = step(t * dt, data[i, t])
    return out


class EmulatorOutput:
    """Probe outputs of a batched run.

    ``out[probe]`` for a `nengo.Probe` (as ``sim.data[probe]``, with a leading
    sample axis) or a ``LoihiProbe``: ``(B, n_steps, size)``.
    ``spike_count``: ``(B, n_compartments)`` spikes per compartment over the run.
    """

    def __init__(self, probes, nengo_probes, spike_count):
        self.probes = probes
        self.nengo_probes = nengo_probes
        self.spike_count = spike_count

    def __getitem__(self, probe):
        loihi_probe = probe if isinstance(probe, LoihiProbe) else None
        if loihi_probe is None:
            loihi_probe = self.nengo_probes.get(probe)
        if loihi_probe not in self.probes:
            raise KeyError(
                f"{probe}: no output (not a chip probe of this model, or not "
                "in the run's probes); host-side probes are not emulated"
            )
        return self.probes[loihi_probe]

    def __contains__(self, probe):
        return probe in self.probes or probe in self.nengo_probes


class BatchedEmulator:
    """Run ``B`` samples of a built nengo-loihi model at once, bit-exact.

    Parameters
    ----------
    model : nengo_loihi.Simulator or nengo_loihi.builder.Model
        A simulator built with ``target="sim"`` (its emulator's current state,
        before running, is the initial state: use this to include the initial
        voltages of `nengo_hybrid.hardware.Simulator`), or a built and
        discretised model (initial state zero, except the voltages
        `nengo_hybrid.hardware.loihi.set_emulator_voltages` sets for hybrid
        blocks when ``match_initial_voltages``).
    match_initial_voltages : bool
        Only for a model: start hybrid blocks from the reference voltages.

    Raises
    ------
    UnsupportedModel
        Naming what the model uses that is not emulated (noise, learning, ...).
    """

    def __init__(self, model, match_initial_voltages=True):
        sim = None
        if not hasattr(model, "blocks") and hasattr(model, "model"):
            sim, model = model, model.model
        check_supported(model)
        self.model = model
        self.dt = model.dt
        self.layout = BlockLayout(model.blocks)
        self.inputs = list(model.inputs)
        self.compartment = CompartmentState(self.layout)
        self.routing = SynapseRouting(self.layout, self.inputs)
        self.probes = ProbeState(self.layout, model.probes, model.dt)
        self.nengo_probes = OrderedDict(
            (p, model.objs[p]["out"])
            for p in model.nengo_probes
            if isinstance(model.objs.get(p, {}).get("out"), LoihiProbe)
        )
        # host spikes already stored in the inputs (e.g. DVS files), for every sample
        self.stored_spikes = [dict(inp.spikes) for inp in self.inputs]

        if sim is not None:
            self._state_from_simulator(sim)
        elif match_initial_voltages and getattr(model, "hybrid_blocks", None):
            self._hybrid_initial_voltages()

    def _state_from_simulator(self, sim):
        emu = sim.sims.get("emulator") if hasattr(sim, "sims") else None
        if emu is None or emu.closed:
            raise UnsupportedModel(
                "batched emulator: the simulator has no open nengo-loihi emulator "
                "(build it with target='sim')"
            )
        if emu.t != 0:
            raise ValueError(
                "make the BatchedEmulator before running the nengo-loihi simulator "
                f"(it has run {emu.t} steps)"
            )
        c = emu.compartment
        self.compartment.set_initial(
            current=c.current,
            voltage=c.voltage,
            spiked=c.spiked,
            ref_count=c.ref_count,
            spike_count=c.spike_count,
        )

    def _hybrid_initial_voltages(self):
        from nengo_hybrid.hardware.loihi import set_emulator_voltages

        # set_emulator_voltages reads the emulator's vth and block slices and
        # writes its voltages: give it this emulator's arrays
        comp = types.SimpleNamespace(
            vth=self.compartment.vth, voltage=self.compartment.initial["voltage"]
        )
        emu = types.SimpleNamespace(compartment=comp, block_info=self.layout)
        set_emulator_voltages(
            types.SimpleNamespace(model=self.model, sims={"emulator": emu})
        )

    def _input_counts(self, inputs, n_steps, n_samples):
        """Per input, ``(B, n_steps, n)`` integer counts (row ``j``: host step ``j + 1``)."""
        inputs = {} if inputs is None else inputs
        if not isinstance(inputs, dict):
            if len(self.inputs) != 1:
                raise ValueError(
                    f"the model has {len(self.inputs)} spike inputs: pass a dict "
                    "{SpikeInput: counts}"
                )
            inputs = {self.inputs[0]: inputs}
        unknown = [k for k in inputs if not any(k is i for i in self.inputs)]
        if unknown:
            raise KeyError(f"not a spike input of this model: {unknown[0]}")
        arrays = []
        for inp in self.inputs:
            x = inputs.get(inp)
            if x is None:
                arrays.append(None)
                continue
            x = np.asarray(x)
            if x.ndim == 2:
                x = x[None]
            if x.ndim != 3 or x.shape[2] != inp.n_neurons:
                raise ValueError(
                    f"spikes for {inp.label or inp} must be (B, n_steps, "
                    f"{inp.n_neurons}), got {x.shape}"
                )
            if np.any(x < 0) or (x.dtype.kind == "f" and np.any(x != np.round(x))):
                raise ValueError("spike counts must be non-negative integers")
            arrays.append(x)
        given = [x for x in arrays if x is not None]
        if n_samples is None:
            n_samples = given[0].shape[0] if given else 1
        if n_steps is None:
            if not given:
                raise ValueError("give n_steps (there are no spike inputs)")
            n_steps = given[0].shape[1]
        counts = []
        for inp, x, stored in zip(self.inputs, arrays, self.stored_spikes):
            stored = {ti: i for ti, i in stored.items() if 1 <= ti <= n_steps}
            if x is not None and x.shape[0] not in (1, n_samples):
                raise ValueError(
                    f"{x.shape[0]} samples of spikes, expected {n_samples}"
                )
            if (
                x is not None
                and not stored
                and x.shape[:2] == (n_samples, n_steps)
                and x.dtype.kind in "biu"
            ):
                counts.append(x)  # used as given (integer counts), no copy
                continue
            c = np.zeros((n_samples, n_steps, inp.n_neurons), dtype=np.int32)
            if x is not None:
                m = min(n_steps, x.shape[1])
                c[:, :m] += x[:, :m].astype(np.int32)
            for ti, idxs in stored.items():
                np.add.at(c, (slice(None), ti - 1, np.asarray(idxs, dtype=np.int64)), 1)
            counts.append(c)
        return counts, n_samples, n_steps

    def run(
        self, inputs=None, n_steps=None, n_samples=None, batch_size=256, probes=None
    ):
        """Run every sample for ``n_steps`` steps from the initial state.

        Parameters
        ----------
        inputs : dict of {SpikeInput: array_like}, or array_like
            Host spikes per chip input (``model.inputs``; an array when there is
            only one): ``(B, n_steps, n_neurons)`` counts, where row ``j`` holds
            the spikes nengo-loihi's host sends on host step ``j + 1`` (its
            ``SpikeInput.add_spikes(j + 1, idxs)``, one count per index). They
            reach the compartments on chip step ``j + 2``, so the last row is
            not used within ``n_steps``. ``(n_steps, n)`` is one sample.
        n_steps : int, optional
            Default: the inputs' length.
        n_samples : int, optional
            Only needed without inputs (all samples are then identical).
        batch_size : int
            Samples simulated together (memory: a few ``(batch_size,
            n_compartments)`` arrays, plus the probe buffers).
        probes : list of nengo.Probe or LoihiProbe, optional
            Only compute these outputs (default: all probes of the model).

        Returns
        -------
        EmulatorOutput
        """
        counts, n_samples, n_steps = self._input_counts(inputs, n_steps, n_samples)
        if len(counts) == 1:
            all_in = counts[0]
        elif counts:
            all_in = np.concatenate(counts, axis=2)
        else:
            all_in = np.zeros((n_samples, n_steps, 0), dtype=np.int32)
        max_counts = (
            all_in.max(axis=(0, 1)) if all_in.size else np.zeros(all_in.shape[2])
        )
        dtype = self.routing.dtype_for(max_counts)
        if probes is not None:
            probes = [
                p if isinstance(p, LoihiProbe) else self.nengo_probes[p] for p in probes
            ]

        outputs = {}
        spike_count = np.zeros((n_samples, self.layout.n_compartments), dtype=np.int32)
        overflows = set()
        for b0 in range(0, n_samples, batch_size):
            b1 = min(b0 + batch_size, n_samples)
            chunk_out, chunk_count, chunk_overflows = self._run_chunk(
                all_in[b0:b1], b1 - b0, n_steps, dtype, probes
            )
            for p, out in chunk_out.items():
                if p not in outputs:
                    outputs[p] = np.empty((n_samples,) + out.shape[1:], dtype=out.dtype)
                outputs[p][b0:b1] = out
            spike_count[b0:b1] = chunk_count
            overflows |= chunk_overflows
        from nengo_loihi.emulator import EmulatorInterface

        for name in [n for n in ("q0", "current", "u2") if n in overflows]:
            if EmulatorInterface.strict:  # as nengo-loihi's emulator
                raise SimulationError(f"Overflow in {name}")
            warnings.warn(f"Overflow in {name}", stacklevel=2)
        return EmulatorOutput(outputs, self.nengo_probes, spike_count)

    def _run_chunk(self, inputs, n_samples, n_steps, dtype, probes):
        comp = self.compartment
        routing = self.routing
        red = routing.reduce()
        comp.reset(n_samples, red.input_group)
        self.probes.allocate(n_samples, n_steps, probes)
        n_comp_groups = red.comp_groups.n_groups
        src = np.zeros((n_samples, n_comp_groups + red.in_groups.n_groups), dtype=dtype)
        src_comp, src_in = src[:, :n_comp_groups], src[:, n_comp_groups:]
        inputs = red.in_groups(inputs, dtype)  # (B, n_steps, input groups)
        overflows = set()
        for t in range(1, n_steps + 1):
            # spikes of the previous step, and host spikes of the previous host step
            red.comp_groups(comp.spiked, dtype, out=src_comp)
            if src_in.shape[1]:
                src_in[...] = inputs[:, t - 2] if t >= 2 else 0
            q, overflowed = routing.inject(src, dtype)
            if overflowed:
                overflows.add("q0")
            comp.update(q)
            self.probes.update(t - 1, comp)
        overflows |= comp.overflows
        outputs = {p: self.probes.outputs(p) for p in self.probes.buffers}
        return outputs, comp.spike_count, overflows


class NengoLoihiRecorder:
    """Record a run of nengo-loihi's emulator, to run the same on `BatchedEmulator`.

    Make it (after the `BatchedEmulator`) before running ``sim``; it records
    the host spikes delivered to each chip input (`inputs`) and the data the
    chip sends to the host (chip-to-host probes), and `outputs` gives, per
    ``LoihiProbe``, what nengo-loihi produced: ``sim.data`` for chip probes,
    the sent data for chip-to-host probes.
    """

    def __init__(self, sim):
        self.sim = sim
        self.spike_inputs = list(sim.model.inputs)
        self.sent_spikes = {inp: [] for inp in self.spike_inputs}
        for inp in self.spike_inputs:
            inp.add_spikes = self._spike_recorder(inp, inp.add_spikes)
        self.sent_outputs = {}
        state = sim.sims["emulator"].probes
        state.send = self._send_recorder(state, state.send)

    def _spike_recorder(self, inp, add_spikes):
        def add(ti, spike_idxs, permanent=False):
            self.sent_spikes[inp].append(
                (int(ti), np.array(spike_idxs, dtype=np.int64))
            )
            return add_spikes(ti, spike_idxs, permanent=permanent)

        return add

    def _send_recorder(self, state, send):
        def recording_send(t, probe, receiver):
            if len(state.outputs[probe][0]) > 0:
                self.sent_outputs.setdefault(probe, []).append(
                    probe.weight_outputs(state.outputs[probe])
                )
            return send(t, probe, receiver)

        return recording_send

    def inputs(self, n_steps):
        """``{SpikeInput: (n_steps, n_neurons)}`` spike counts per host step."""
        out = {}
        for inp in self.spike_inputs:
            c = np.zeros((n_steps, inp.n_neurons), dtype=np.int32)
            for ti, idxs in self.sent_spikes[inp]:
                if 1 <= ti <= n_steps:
                    np.add.at(c, (ti - 1, idxs), 1)
            out[inp] = c
        return out

    def outputs(self):
        """``{LoihiProbe: (n_steps, size)}`` nengo-loihi's output of every chip probe."""
        model, out = self.sim.model, {}
        for probe in model.nengo_probes:
            loihi_probe = model.objs.get(probe, {}).get("out")
            if not isinstance(loihi_probe, LoihiProbe):
                continue
            if probe in model.chip2host_params:
                sent = self.sent_outputs.get(loihi_probe, [])
                out[loihi_probe] = np.concatenate(sent) if sent else None
            else:
                out[loihi_probe] = np.asarray(self.sim.data[probe])
        return out
