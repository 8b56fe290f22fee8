"""Loihi 2 semantics: a fixed-point program with graded spikes, and its batched run.

A `Program` is a small explicit (NIR-like) description of what runs on Loihi 2
cores: populations of neurons of one *kind* with fixed-point parameters, and
dense projections between them whose integer weights are an 8-bit mantissa
with one shared exponent per projection. `run` executes a program for many
samples at once (``(samples, neurons)`` integer arrays) with the arithmetic of
Lava's fixed-point CPU process models, which are the referee
(`nengo_hybrid.hardware.lava` runs the same program file as Lava processes;
``tests/test_loihi2.py`` compares every step's payloads).

One step ``t`` (Lava's ``LoihiProtocol``, ``run_spk`` of every process):

1. Each projection delivers what its source sent on step ``t - 1``
   (Lava's ``Dense`` sends its buffer first, then accumulates this step's
   input: one step of latency per projection). With graded messages
   (``num_message_bits > 0``) that is ``PyDenseModelBitAcc``::

       a = (W @ s)  shifted by weight_exp   # << e if e > 0, else >> -e (floor)

   in int32 (wrapping), where ``W = 2 * mantissa`` is Lava's "mixed sign mode"
   8-bit weight (``clip_weights`` / ``truncate_weights`` keep even values in
   ``[-256, 254]``) and ``s`` the graded payloads. A population's input is the
   int32 (wrapping) sum over its projections, as Lava's ``PyInPort.recv`` adds
   the messages of several connections.
2. Each population's kind updates its state from that input and emits integer
   payloads (zero payloads are no events). Kinds (`KINDS`):

   * ``"hybrid"``: the `.HybridSpiking` floor quantiser with a ReLU base and a
     CUBA current, a custom neuron (no stock Lava or Loihi 2 model exists; on a
     chip it needs microcode). See `HybridKind`.
   * ``"sigma_delta"``: Lava's stock ``SigmaDelta`` (``lava.proc.sdn``,
     ``PySigmaDeltaModelFixed``, ReLU activation). See `SigmaDeltaKind`.

Host inputs are integer payloads too: row ``t - 1`` of an input is sent on
step ``t`` and reaches its targets on step ``t + 1``.

The projection products are exact (`nengo_hybrid.hardware.exact`): payloads
are below ``2**23`` and mantissas below ``2**8`` in magnitude, so every column
bound stays far below ``2**53``; the int32 wrap of the exact sum equals Lava's
wrapping int32 ``dot`` because ``2**32`` divides ``2**64``.

`from_network` maps a Nengo network (e.g. `nengo_hybrid.frozen.FrozenNetwork.build`)
onto a program, with `Loihi2MappingError` naming what does not map.
"""

import numpy as np

from nengo_hybrid.hardware.exact import ExactProduct
from nengo_hybrid.io import UserError, read_npz, write_npz

FORMAT = "nengo-hybrid-loihi2/1"
DECAY_BITS = 12  # Lava's decay_shift: decays are (4096 - d) / 4096
STATE_BITS = 24  # Lava's fixed-point neuron state (LavaPyType precision=24)
MANTISSA_MIN, MANTISSA_MAX = -128, 127  # 8-bit signed weight mantissa


class Loihi2MappingError(UserError):
    """A network (or program file) does not map onto the Loihi 2 program model."""


def wrap(x, bits):
    """Two's complement wrap of integers ``x`` to ``bits`` bits (int64 out)."""
    x = np.asarray(x, dtype=np.int64)
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def shift(x, exp):
    """``x * 2**exp`` as Lava's Dense: left shift, or arithmetic right shift (floor)."""
    return np.left_shift(x, exp) if exp > 0 else np.right_shift(x, -exp)


def decay(x, d):
    """Lava's fixed-point decay ``sign(x) * (|x| * (4096 - d) >> 12)`` (int64)."""
    x = np.asarray(x, dtype=np.int64)
    return np.sign(x) * ((np.abs(x) * ((1 << DECAY_BITS) - d)) >> DECAY_BITS)


# ------------------------------------------------------------------ kinds


class Kind:
    """A neuron kind: its parameters, state and one batched fixed-point step.

    Subclasses set ``name``, ``params`` (``{name: per_neuron}``: per-neuron
    arrays, or scalars shared by the population), ``state`` (names of the
    state arrays) and implement `initial_state` and `step`.
    """

    name = None
    params = {}
    state = ()

    def validate(self, label, params, n):
        """Check ``params`` of population ``label`` of ``n`` neurons; return them as int64."""
        missing = sorted(set(self.params) - set(params))
        extra = sorted(set(params) - set(self.params))
        if missing or extra:
            raise Loihi2MappingError(
                f"population {label!r} ({self.name}): parameters missing {missing}, "
                f"unknown {extra}",
                hint=f"give exactly {sorted(self.params)}",
            )
        out = {}
        for key, value in params.items():
            value = np.asarray(value)
            per_neuron = self.params.get(key, True)
            if value.dtype.kind not in "biu":
                raise Loihi2MappingError(
                    f"population {label!r}: parameter {key!r} must be integer, got "
                    f"dtype {value.dtype}",
                    hint="quantise it first (a program holds fixed-point values)",
                )
            shape = (n,) if per_neuron else ()
            if value.shape != shape:
                raise Loihi2MappingError(
                    f"population {label!r}: parameter {key!r} has shape "
                    f"{value.shape}, expected {shape}"
                )
            out[key] = value.astype(np.int64)
        return out

    def initial_state(self, params, n_samples, n):
        raise NotImplementedError

    def step(self, params, state, a_in):
        """Advance ``state`` (dict of ``(B, n)`` arrays) by one step; return payloads."""
        raise NotImplementedError


class HybridKind(Kind):
    """`.HybridSpiking` (ReLU base) on Loihi 2: a CUBA current and a floor quantiser.

    Fixed-point state in units of ``2**-frac_bits`` spikes (``vth = 2**frac_bits``)::

        u = wrap24(decay(u, du) + a_in)              # current (synaptic filter)
        v = clip(v + max(u + bias, 0), +-(2**23 - 1)) # integrate the ReLU rate
        n = v >> frac_bits                           # integer spike count (floor)
        n = min(n, max_spikes)                       # if max_spikes > 0
        v = v - (n << frac_bits)                     # keep the residual
        send n                                       # one graded spike

    ``decay`` is Lava's LIF current decay (``du = 4096``: no memory). This is
    our definition of the custom neuron (Lava's LIF conventions: 12-bit decays,
    24-bit state, wrapping current, saturating voltage); no stock Loihi 2
    neuron computes it.
    """

    name = "hybrid"
    params = {
        "bias": True,
        "du": False,
        "frac_bits": False,
        "max_spikes": False,
        "initial_v": True,
    }
    state = ("u", "v")

    def validate(self, label, params, n):
        params = super().validate(label, params, n)
        if not 0 <= params["du"] <= 1 << DECAY_BITS:
            raise Loihi2MappingError(
                f"population {label!r}: du={int(params['du'])} outside [0, 4096]"
            )
        if not 0 <= params["frac_bits"] < STATE_BITS - 1:
            raise Loihi2MappingError(
                f"population {label!r}: frac_bits={int(params['frac_bits'])} "
                f"outside [0, {STATE_BITS - 2}]"
            )
        return params

    def initial_state(self, params, n_samples, n):
        return {
            "u": np.zeros((n_samples, n), dtype=np.int64),
            "v": np.repeat(params["initial_v"][None, :], n_samples, axis=0),
        }

    def step(self, params, state, a_in):
        limit = (1 << (STATE_BITS - 1)) - 1
        u = wrap(decay(state["u"], int(params["du"])) + a_in, STATE_BITS)
        v = np.clip(state["v"] + np.maximum(u + params["bias"], 0), -limit, limit)
        frac = int(params["frac_bits"])
        n = np.right_shift(v, frac)
        if params["max_spikes"] > 0:
            n = np.minimum(n, params["max_spikes"])
        state["u"], state["v"] = u, v - np.left_shift(n, frac)
        return n


class SigmaDeltaKind(Kind):
    """Lava's stock sigma-delta neuron (``PySigmaDeltaModelFixed``, ReLU), batched.

    A transcription of ``lava/proc/sdn/models.py`` (lava-nc 0.10.0), int32 as
    Lava's variables. ``vth`` and ``bias`` are the ``SigmaDelta`` process
    arguments, which the process scales by ``2**state_exp`` (``spike_exp`` is
    0) before the model sees them::

        sigma = a_in + sigma
        act = max(sigma + bias, 0)
        delta = act - act_prev + residue
        cum_error: error += delta; s = delta where |error| >= vth; error = 0 where sent
        else:      s = delta where |delta| >= vth
        residue = delta - s; act_prev = act
        send s >> state_exp
    """

    name = "sigma_delta"
    params = {"bias": True, "vth": False, "state_exp": False, "cum_error": False}
    state = ("sigma", "act", "residue", "error")

    def initial_state(self, params, n_samples, n):
        return {k: np.zeros((n_samples, n), dtype=np.int32) for k in self.state}

    def step(self, params, state, a_in):
        exp = int(params["state_exp"])
        bias = (params["bias"] << exp).astype(np.int32)
        vth = np.int32(params["vth"] << exp)
        sigma = a_in.astype(np.int32) + state["sigma"]
        act = np.maximum(sigma + bias, 0)
        delta = act - state["act"] + state["residue"]
        if params["cum_error"]:
            error = state["error"] + delta
            s = np.where(np.abs(error) >= vth, delta, 0).astype(np.int32)
            state["error"] = error * (1 - (np.abs(s) > 0)).astype(np.int32)
        else:
            s = np.where(np.abs(delta) >= vth, delta, 0).astype(np.int32)
        state["sigma"], state["act"], state["residue"] = sigma, act, delta - s
        return np.right_shift(s, exp).astype(np.int64)


KINDS = {kind.name: kind for kind in (HybridKind(), SigmaDeltaKind())}
"""Neuron kinds by name; add a `Kind` here to extend the program model."""


# ------------------------------------------------------------------ program


class Population:
    """``n`` neurons of one kind with fixed-point parameters.

    Parameters
    ----------
    label : str
    kind : str
        A key of `KINDS`.
    n : int
    params : dict of {str: int or array of int}
    scale : float
        What one payload unit means on the host (e.g. ``amplitude / (precision
        * dt)`` for a `.HybridSpiking` ensemble's output), for decoding.
    """

    def __init__(self, label, kind, n, params, scale=1.0):
        if kind not in KINDS:
            raise Loihi2MappingError(
                f"population {label!r}: unknown neuron kind {kind!r}",
                hint=f"use one of {sorted(KINDS)}",
            )
        self.label, self.kind, self.n = str(label), kind, int(n)
        self.params = KINDS[kind].validate(self.label, params, self.n)
        self.scale = float(scale)


class Projection:
    """Dense weights from a source (population or input) to a population.

    The effective weight is ``2 * mantissa * 2**exp`` applied as Lava's Dense:
    ``(W @ s)`` then shifted by ``exp``.

    Parameters
    ----------
    label : str
    pre, post : str
        Labels of the source (population or input) and target population.
    mantissa : array of int, shape (post.n, pre.n)
        In ``[-128, 127]``.
    exp : int
        Lava's ``weight_exp``.
    """

    def __init__(self, label, pre, post, mantissa, exp):
        self.label, self.pre, self.post = str(label), str(pre), str(post)
        mantissa = np.asarray(mantissa)
        if mantissa.ndim != 2 or mantissa.dtype.kind not in "biu":
            raise Loihi2MappingError(
                f"projection {label!r}: mantissa must be a 2-D integer array, got "
                f"{mantissa.ndim}-D {mantissa.dtype}"
            )
        if mantissa.size and (
            mantissa.min() < MANTISSA_MIN or mantissa.max() > MANTISSA_MAX
        ):
            raise Loihi2MappingError(
                f"projection {label!r}: weight mantissas span [{mantissa.min()}, "
                f"{mantissa.max()}], outside the 8-bit [{MANTISSA_MIN}, "
                f"{MANTISSA_MAX}]",
                hint="raise the projection's exponent",
            )
        self.mantissa = mantissa.astype(np.int64)
        self.exp = int(exp)

    @property
    def weights(self):
        """Lava Dense ``weights`` (mixed sign mode): ``2 * mantissa``."""
        return 2 * self.mantissa


class Program:
    """Populations, host inputs and projections of one Loihi 2 network.

    Parameters
    ----------
    populations : list of Population
    inputs : dict of {str: int}
        Host input label -> size (integer payloads sent from the host).
    projections : list of Projection
    payload_bits : int
        Message width (signed), from the profile's ``spike_payload_bits``.
    meta : dict, optional
        JSON-serialisable facts for the host side (input scales, readouts).
    """

    def __init__(self, populations, inputs, projections, payload_bits, meta=None):
        self.populations = list(populations)
        self.inputs = {str(k): int(v) for k, v in inputs.items()}
        self.projections = list(projections)
        self.payload_bits = int(payload_bits)
        self.meta = dict(meta or {})
        self.by_label = {p.label: p for p in self.populations}
        sizes = dict(self.inputs)
        for pop in self.populations:
            if pop.label in sizes:
                raise Loihi2MappingError(f"label {pop.label!r} is used twice")
            sizes[pop.label] = pop.n
        for proj in self.projections:
            for end in (proj.pre, proj.post):
                if end not in sizes:
                    raise Loihi2MappingError(
                        f"projection {proj.label!r}: unknown source/target {end!r}"
                    )
            if proj.post not in self.by_label:
                raise Loihi2MappingError(
                    f"projection {proj.label!r} targets host input {proj.post!r}"
                )
            if proj.mantissa.shape != (sizes[proj.post], sizes[proj.pre]):
                raise Loihi2MappingError(
                    f"projection {proj.label!r}: weights {proj.mantissa.shape}, "
                    f"expected ({sizes[proj.post]}, {sizes[proj.pre]})"
                )

    # ---------------------------------------------------------- file

    def to_arrays(self):
        """``(header, arrays)``: the program file content (read by the Lava runner)."""
        arrays, pops, projs = {}, [], []
        for i, pop in enumerate(self.populations):
            pops.append(
                {
                    "label": pop.label,
                    "kind": pop.kind,
                    "n": pop.n,
                    "scale": pop.scale,
                }
            )
            for key, value in pop.params.items():
                arrays[f"pop_{i}_{key}"] = np.asarray(value, dtype=np.int64)
        for i, proj in enumerate(self.projections):
            projs.append(
                {
                    "label": proj.label,
                    "pre": proj.pre,
                    "post": proj.post,
                    "exp": proj.exp,
                }
            )
            arrays[f"proj_{i}_mantissa"] = proj.mantissa
        header = {
            "format": FORMAT,
            "populations": pops,
            "inputs": self.inputs,
            "projections": projs,
            "payload_bits": self.payload_bits,
            "meta": self.meta,
        }
        return header, arrays

    def write(self, path, extra_arrays=None):
        """Write the program (plus ``extra_arrays``, e.g. inputs) atomically."""
        header, arrays = self.to_arrays()
        arrays.update(extra_arrays or {})
        return write_npz(path, arrays, header)

    @classmethod
    def read(cls, path):
        """Read a program file; `Loihi2MappingError` naming it if unreadable."""
        try:
            header, arrays = read_npz(path)
        except Exception as err:
            raise Loihi2MappingError(
                f"Loihi 2 program file {path} is unreadable ({err})",
                hint="write it again with Program.write",
            ) from err
        if header.get("format") != FORMAT:
            raise Loihi2MappingError(
                f"{path} is not a Loihi 2 program (format {header.get('format')!r})"
            )
        pops = []
        for i, rec in enumerate(header["populations"]):
            prefix = f"pop_{i}_"
            params = {
                k[len(prefix) :]: (v if v.ndim else v[()])
                for k, v in arrays.items()
                if k.startswith(prefix)
            }
            pops.append(
                Population(rec["label"], rec["kind"], rec["n"], params, rec["scale"])
            )
        projs = [
            Projection(
                r["label"], r["pre"], r["post"], arrays[f"proj_{i}_mantissa"], r["exp"]
            )
            for i, r in enumerate(header["projections"])
        ]
        return cls(
            pops, header["inputs"], projs, header["payload_bits"], header["meta"]
        )


# ------------------------------------------------------------------ run


def overflowing(payloads, bits):
    """Labels of ``{label: payloads}`` with a payload that needs more than ``bits``
    (signed) bits. Lava's CPU models pass such payloads on whole (int32
    messages); a chip's ``bits``-bit messages could not."""
    limit = 1 << (bits - 1)
    return sorted(
        k
        for k, v in payloads.items()
        if v.size and (v.min() < -limit or v.max() >= limit)
    )


class Loihi2Output:
    """Payloads of a batched run.

    ``payloads[label]``: ``(B, n_steps, n)`` int32 graded spikes of every
    population on every step; ``overflow``: labels of populations whose
    payloads did not fit ``payload_bits`` (signed) on some step.
    """

    def __init__(self, payloads, overflow):
        self.payloads = payloads
        self.overflow = overflow

    def events(self, label):
        """Number of nonzero payloads (messages sent) of ``label`` per sample."""
        return np.count_nonzero(self.payloads[label], axis=(1, 2))


def input_payloads(program, inputs, n_steps):
    inputs = dict(inputs or {})
    unknown = sorted(set(inputs) - set(program.inputs))
    if unknown:
        raise Loihi2MappingError(
            f"inputs {unknown} are not host inputs of the program",
            hint=f"its inputs are {sorted(program.inputs)}",
        )
    out, n_samples = {}, None
    for label, size in program.inputs.items():
        x = inputs.get(label)
        if x is None:
            continue
        x = np.asarray(x)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[2] != size or x.dtype.kind not in "biu":
            raise Loihi2MappingError(
                f"input {label!r}: payloads must be integer (B, n_steps, {size}), "
                f"got {x.dtype} {x.shape}"
            )
        out[label] = x.astype(np.int64)
        n_samples = x.shape[0] if n_samples is None else n_samples
        n_steps = x.shape[1] if n_steps is None else n_steps
    if n_steps is None:
        raise Loihi2MappingError("give n_steps (the run has no inputs)")
    short = sorted(k for k, x in out.items() if x.shape[1] < n_steps)
    if short:
        raise Loihi2MappingError(
            f"inputs {short} have fewer than n_steps={n_steps} steps",
            hint="give every input n_steps rows (zeros where nothing is sent)",
        )
    return out, n_samples or 1, n_steps


def run(program, inputs=None, n_steps=None, n_samples=None, batch_size=256):
    """Run ``program`` on ``B`` samples with Loihi 2 (Lava fixed-point) semantics.

    Parameters
    ----------
    program : Program
    inputs : dict of {str: array of int}
        Per host input, ``(B, n_steps, size)`` integer payloads; row ``t - 1``
        is sent on step ``t`` (it reaches its targets on step ``t + 1``).
    n_steps, n_samples : int, optional
        Default: from the inputs.
    batch_size : int
        Samples run together.

    Returns
    -------
    Loihi2Output
    """
    payloads, given, n_steps = input_payloads(program, inputs, n_steps)
    n_samples = n_samples or given
    chunks = []
    for b0 in range(0, n_samples, batch_size):
        b1 = min(b0 + batch_size, n_samples)
        chunk_in = {
            k: (v[b0:b1] if v.shape[0] > 1 else np.repeat(v, b1 - b0, axis=0))
            for k, v in payloads.items()
        }
        chunks.append(_run_chunk(program, chunk_in, n_steps, b1 - b0))
    out = {
        pop.label: np.concatenate([c[0][pop.label] for c in chunks])
        for pop in program.populations
    }
    overflow = sorted(set().union(*(c[1] for c in chunks)))
    return Loihi2Output(out, overflow)


def _run_chunk(program, inputs, n_steps, n_samples):
    products = [ExactProduct(p.weights.T) for p in program.projections]
    state = {
        pop.label: KINDS[pop.kind].initial_state(pop.params, n_samples, pop.n)
        for pop in program.populations
    }
    sent = {
        label: np.zeros((n_samples, size), dtype=np.int64)
        for label, size in program.inputs.items()
    }
    sent.update(
        {
            p.label: np.zeros((n_samples, p.n), dtype=np.int64)
            for p in program.populations
        }
    )
    out = {
        p.label: np.zeros((n_samples, n_steps, p.n), dtype=np.int32)
        for p in program.populations
    }
    for t in range(n_steps):
        a_in = {
            p.label: np.zeros((n_samples, p.n), dtype=np.int64)
            for p in program.populations
        }
        for proj, product in zip(program.projections, products):
            q = wrap(product(sent[proj.pre]), 32)  # Lava: int32 dot, wrapping
            a_in[proj.post] += wrap(shift(q, proj.exp), 32)
        for label, x in inputs.items():
            sent[label] = x[:, t]
        for pop in program.populations:
            n = KINDS[pop.kind].step(
                pop.params, state[pop.label], wrap(a_in[pop.label], 32)
            )
            sent[pop.label] = n
            out[pop.label][:, t] = n
    return out, overflowing(out, program.payload_bits)
