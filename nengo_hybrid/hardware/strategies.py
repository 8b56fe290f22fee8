"""Strategies for putting multi-bit (hybrid) spiking neurons on 1-bit cores.

A `.HybridSpiking` neuron emits an integer spike count ``n`` per step. A Loihi 1
compartment emits at most one spike per step, so a neuron whose count can exceed
one needs a strategy:

`OneBit`
    One compartment per neuron. Only valid when the neuron never needs more than
    one spike per step (``precision * dt * max_rate <= 1``); otherwise the check
    reports the neuron (never a silent saturation at ``1/dt``).
`Expand`
    ``K`` one-bit compartments per neuron, each integrating ``1/K`` of the rate,
    initial voltages staggered by ``k/K``. By Hermite's identity
    ``sum_k floor(y + k/K) = floor(K y)`` the summed counts equal the multi-bit
    neuron's counts step for step -- exactly, with a subtractive reset and no
    count above ``K``. Loihi 1 resets to zero, which makes it approximate
    (see `expanded_counts` to measure the difference). Cost: ``K`` times the
    compartments and ``K`` times the synapse memory into the ensemble.
    A second Loihi 1 effect: a ReLU compartment integrates the *signed* input
    current and clips its voltage at zero, so a negative input sets all ``K``
    voltages of a neuron to zero and re-synchronises them (they then fire in
    bursts of ``K``). Choose ``K`` = the largest measured count, not more
    (``benchmarks/results/deploy_fidelity.md``). In a recurrent network whose
    input changes every step these losses feed back: prefer `Thermometer`
    there (the quick LMU: ``benchmarks/results/deploy_fidelity_lmu.md``).

`Substeps`
    ``K`` chip steps per model step: the whole network runs at ``dt / K``, so
    each one-bit compartment can emit up to ``K`` spikes per model step. One
    compartment per neuron; cost: ``K`` times the chip steps (time and neuron
    updates) per model step. Approximate: it simulates the same continuous-time
    network on a finer time grid (synapses and inputs update every sub-step).

`Thermometer`
    ``K`` one-bit compartments per neuron with thresholds at ``0.5, 1.5, ...,
    K - 0.5`` quanta and no voltage memory (full voltage decay each step):
    compartment ``k`` spikes when this step's drive ``p * dt * r(J)`` exceeds
    ``k + 0.5``, so the summed count is the drive *rounded* to an integer
    (clipped to ``0..K``), `thermometer_counts`. This is not the reference
    neuron (which carries the rounding error to the next step), but Loihi 1
    runs it exactly: with no voltage memory, its reset to zero and its
    clipping of negative voltages change nothing. Use it where the residual
    matters, e.g. recurrent networks whose inputs change every step (the
    quick LMU: Expand lost all accuracy on the emulator, see
    ``benchmarks/results/deploy_fidelity.md``). Cost as for `Expand`.

`Graded`
    One graded-spike neuron per neuron, for profiles whose spikes carry an
    integer payload (``"spikes": "graded"``, Loihi 2): the count travels as
    one message, so no expansion is needed. Its budget is the profile's
    payload (``spike_payload_bits``, signed), not the strategy; on a binary
    profile the check refuses it.

This module is pure NumPy (no nengo-loihi): the reference math the emulator
runs are compared against.
"""

import sys
import warnings

import numpy as np
from nengo.exceptions import ValidationError
from nengo.params import FrozenObject, IntParam


class CountParam(IntParam):
    """A positive integer parameter stored as a Python ``int`` (no bools)."""

    def coerce(self, instance, num):
        if isinstance(num, (bool, np.bool_)):
            raise ValidationError(
                f"must be an integer >= {self.low}, got {num!r}",
                attr=self.name,
                obj=instance,
            )
        return int(super().coerce(instance, num))


class Strategy(FrozenObject):
    """Base class: how one `.HybridSpiking` neuron maps onto compartments.

    Strategies are frozen Nengo objects, like neuron types: their parameters
    are validated Nengo parameters, they compare equal and hash by value, and
    their ``repr`` is the expression that creates them (``Expand(K=4)``).
    """

    #: compartments per neuron
    compartments = 1

    @property
    def max_count(self):
        """Largest spike count per model step the strategy can represent."""
        return self.compartments

    def exact(self, profile):
        """Whether the mapping reproduces the reference counts exactly."""
        return profile.subtractive_reset

    def to_dict(self):
        return {"name": type(self).__name__, "compartments": self.compartments}


class OneBit(Strategy):
    """One compartment per neuron; requires at most one spike per step."""


class Graded(Strategy):
    """One graded-spike neuron per neuron: the count travels as one payload.

    For profiles with graded spikes (`.Profile.graded`, Loihi 2). The largest
    count per step is the profile's (a signed ``spike_payload_bits`` message),
    and the neuron keeps its residual, so the counts are the reference's.
    """

    @property
    def max_count(self):
        return None  # the profile's payload decides

    def exact(self, profile):
        return profile.graded


class _PerStep(Strategy):
    """A strategy parameterised by ``K``, the largest count per model step."""

    K = CountParam("K", low=1, readonly=True)

    def __init__(self, K):
        super().__init__()
        self.K = K


class Expand(_PerStep):
    """``K`` one-bit compartments per neuron (exact by Hermite's identity).

    Parameters
    ----------
    K : int
        Compartments per neuron; the largest representable count per step.
    """

    @property
    def compartments(self):
        return self.K

    def to_dict(self):
        return {"name": "Expand", "compartments": self.K, "K": self.K}


class Substeps(_PerStep):
    """``K`` chip steps per model step (the network runs at ``dt / K``).

    Parameters
    ----------
    K : int
        Chip steps per model step; the largest representable count per step.
    """

    steps = property(lambda self: self.K)

    @property
    def max_count(self):
        return self.K

    def exact(self, profile):
        return False  # a finer time grid, not the same discrete-time network

    def to_dict(self):
        return {"name": "Substeps", "compartments": 1, "K": self.K, "steps": self.K}


class Thermometer(Expand):
    """``K`` memoryless threshold compartments per neuron: counts = rounded drive.

    Parameters
    ----------
    K : int
        Compartments per neuron; the largest representable count per step.
    """

    def exact(self, profile):
        # exact for `thermometer_counts`, not for the reference neuron
        return False

    def to_dict(self):
        return {"name": "Thermometer", "compartments": self.K, "K": self.K}


KINDS = {"expand": Expand, "substeps": Substeps, "thermometer": Thermometer}

SPEC_FORMS = (
    "'onebit', 'graded', 'expand:K', 'substeps:K' or 'thermometer:K' (K an integer "
    ">= 1)"
)


def _from_spec(spec):
    """Parse the command line's spelling of a strategy (``"expand:4"``)."""
    kind, sep, number = spec.strip().lower().partition(":")
    if kind in ("onebit", "graded"):
        if not sep:
            return OneBit() if kind == "onebit" else Graded()
        problem = f"{kind!r} takes no K"
    elif kind not in KINDS:
        problem = f"unknown kind {kind!r}"
    elif not number.strip():
        problem = f"{kind!r} needs the number K after a colon, e.g. '{kind}:4'"
    else:
        try:
            K = int(number)
        except ValueError:
            problem = f"K must be an integer, got {number.strip()!r}"
        else:
            if K >= 1:
                return KINDS[kind](K)
            problem = f"K must be an integer >= 1, got {K}"
    raise ValidationError(
        f"Cannot read the strategy {spec!r}: {problem}. Valid forms: {SPEC_FORMS}",
        attr="strategy",
    )


def as_strategy(strategy):
    """Coerce a strategy argument to a `Strategy`.

    Parameters
    ----------
    strategy : Strategy, int or None
        A `Strategy` is returned as is; ``None`` means `OneBit`; an integer
        ``K`` means `Expand` (``K`` compartments; 1 is `OneBit`).

        Strings (``"onebit"``, ``"expand:K"``, ``"substeps:K"``,
        ``"thermometer:K"``) are the command line's spelling; they are still
        accepted but deprecated here (a `DeprecationWarning`): pass
        ``Expand(4)`` rather than ``"expand:4"``.

    Raises
    ------
    nengo.exceptions.ValidationError
        For anything else (``True``/``False`` included), and for malformed
        strings.
    """
    if strategy is None:
        return OneBit()
    if isinstance(strategy, Strategy):
        return strategy
    if isinstance(strategy, (bool, np.bool_)):
        raise ValidationError(
            f"strategy={strategy!r} is ambiguous; pass a Strategy, e.g. OneBit() "
            "or Expand(4) (None means OneBit())",
            attr="strategy",
        )
    if isinstance(strategy, (int, np.integer)):
        return OneBit() if strategy == 1 else Expand(int(strategy))
    if isinstance(strategy, str):
        warnings.warn(
            f"Strategy strings such as {strategy!r} are the command line's spelling "
            "and are deprecated in the library (accepted for one more release); "
            "pass a Strategy object: OneBit(), Expand(K), Substeps(K) or "
            "Thermometer(K)",
            DeprecationWarning,
            stacklevel=_caller_outside_package(),
        )
        return _from_spec(strategy)
    raise ValidationError(
        f"Unknown strategy {strategy!r}; pass OneBit(), Expand(K), Substeps(K) or "
        "Thermometer(K) (or None for OneBit())",
        attr="strategy",
    )


def coerce_strategy_argument(strategy):
    """A ``strategy`` argument as a `Strategy` or ``{ensemble: Strategy}``."""
    if isinstance(strategy, dict):
        return {ens: as_strategy(s) for ens, s in strategy.items()}
    return as_strategy(strategy)


def _caller_outside_package():
    """``stacklevel`` of the first caller outside `nengo_hybrid.hardware`.

    So that a `DeprecationWarning` points at (and, by Python's default filters,
    is shown for) the user's code, not at the library function that passed
    the value on.
    """
    frame, level = sys._getframe(2), 2  # the caller of the warning function
    while frame is not None and frame.f_globals.get("__name__", "").startswith(
        "nengo_hybrid.hardware"
    ):
        frame, level = frame.f_back, level + 1
    return level


def hybrid_counts(increments, v0):
    """Spike counts of the multi-bit reference neuron (`.HybridSpiking.step`).

    Parameters
    ----------
    increments : (n_steps, n) array_like
        ``precision * dt * r(J)`` on each step.
    v0 : (n,) array_like
        Initial voltages in ``[0, 1)``.

    Returns
    -------
    counts : (n_steps, n) ndarray of int
    """
    increments = np.asarray(increments, dtype=np.float64)
    v = np.array(v0, dtype=np.float64)
    counts = np.zeros(increments.shape, dtype=np.int64)
    for t, inc in enumerate(increments):
        v += inc
        n = np.floor(v)
        v -= n
        counts[t] = n
    return counts


def expanded_counts(increments, v0, K, reset="subtract"):
    """Summed spike counts of ``K`` one-bit compartments per neuron.

    Compartment ``k`` of a neuron starts at ``(v0 + k) / K`` (in units of its
    threshold), integrates ``increments / K`` and emits at most one spike per
    step.

    Parameters
    ----------
    increments : (n_steps, n) array_like
        ``precision * dt * r(J)`` of the multi-bit neuron on each step.
    v0 : (n,) array_like
        Initial voltages of the multi-bit neurons, in ``[0, 1)``.
    K : int
        Compartments per neuron.
    reset : {"subtract", "zero"}
        ``"subtract"``: the threshold is subtracted on a spike (exact by
        Hermite's identity when no count exceeds ``K``). ``"zero"``: Loihi 1
        behaviour, the voltage is set to zero and the spike condition is the
        strict ``v > threshold`` of nengo-loihi's emulator.

    Returns
    -------
    counts : (n_steps, n) ndarray of int
    """
    if reset not in ("subtract", "zero"):
        raise ValidationError("reset must be 'subtract' or 'zero'", attr="reset")
    increments = np.asarray(increments, dtype=np.float64)
    v0 = np.asarray(v0, dtype=np.float64)
    v = (v0[None, :] + np.arange(K)[:, None]) / K  # (K, n)
    counts = np.zeros(increments.shape, dtype=np.int64)
    for t, inc in enumerate(increments):
        v += inc[None, :] / K
        if reset == "subtract":
            spiked = v >= 1
            v[spiked] -= 1
        else:
            spiked = v > 1
            v[spiked] = 0
        counts[t] = spiked.sum(axis=0)
    return counts


def thermometer_counts(increments, K):
    """Summed spike counts of a neuron mapped with `Thermometer` (``K``).

    Compartment ``k`` (``k = 0 .. K-1``) spikes when the step's drive exceeds
    ``k + 0.5`` (strict, as nengo-loihi's emulator), with no memory between
    steps: the count is the drive rounded to an integer, clipped to ``0..K``.

    Parameters
    ----------
    increments : (n_steps, n) array_like
        ``precision * dt * r(J)`` on each step.
    K : int

    Returns
    -------
    counts : (n_steps, n) ndarray of int
    """
    increments = np.asarray(increments, dtype=np.float64)
    thresholds = np.arange(K) + 0.5
    return (increments[..., None] > thresholds).sum(axis=-1).astype(np.int64)
