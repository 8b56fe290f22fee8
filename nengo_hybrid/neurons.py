"""Hybrid-spiking neuron types and their NumPy reference math.

`HybridSpiking` is a first-order sigma-delta modulator applied to the output of
any Nengo rate neuron type (Voelker, Rasmussen & Eliasmith 2020,
arXiv:2002.03553). Each step the neuron emits a small integer number of spikes;
the rounding error is kept in the ``voltage`` state and carried to the next step,
so the cumulative error never exceeds one quantum.

`SigmaDelta` is Lava's sigma-delta neuron (``lava.proc.sdn``, the stock Loihi 2
neuron for rate-like networks): it sends the change of its activation when the
change reaches a threshold, and its output is what the receiver reconstructs.

Both have one parameter that interpolation training anneals (`annealed_param`):
``precision`` for `HybridSpiking` (large = close to the rate network),
``threshold`` for `SigmaDelta` (0 = exactly the rate network).
"""

import math

import nengo
import numpy as np
from nengo.dists import Choice, Uniform
from nengo.exceptions import ValidationError
from nengo.neurons import RatesToSpikesNeuronType
from nengo.params import BoolParam, IntParam, NumberParam
from nengo.utils.numpy import is_array, is_number


class FiniteNumberParam(NumberParam):
    """A `~nengo.params.NumberParam` that rejects NaN and infinity.

    Python numbers, NumPy scalars (``np.float32('nan')``) and 0-d arrays are all
    checked, before the range check (which cannot compare NaN).
    """

    def coerce(self, instance, num):
        if is_array(num) and np.shape(num) == ():
            num = num.item()  # NumPy scalar or 0-d array -> Python number
        if is_number(num) and not math.isfinite(num):
            raise ValidationError(
                f"Value must be a finite number, got {num}; pass a finite value "
                f"for {self.name}",
                attr=self.name,
                obj=instance,
            )
        return super().coerce(instance, num)


def _check_rate_base(base_type, obj):
    """Raise unless ``base_type`` is a rate (non-spiking, non-Direct) neuron type."""
    if isinstance(base_type, nengo.Direct):
        raise ValidationError(
            "base_type cannot be nengo.Direct: it has no rate to quantize",
            attr="base_type",
            obj=obj,
        )
    if getattr(base_type, "spiking", False):
        raise ValidationError(
            f"base_type must be a rate (non-spiking) neuron type, got "
            f"{type(base_type).__name__}; use its rate equivalent, e.g. "
            "nengo.LIFRate() instead of nengo.LIF()",
            attr="base_type",
            obj=obj,
        )


def annealed_param(neuron_type):
    """Name of the parameter interpolation training anneals, or None.

    ``"precision"`` for `HybridSpiking`, ``"threshold"`` for `SigmaDelta`,
    None for every other neuron type.
    """
    return getattr(type(neuron_type), "annealed", None)


def check_annealed(neuron_type, value):
    """``value`` as a valid annealed parameter of ``neuron_type``, as a float.

    Checked against the parameter's bound (precision finite and > 0, threshold
    finite and >= 0); raises `~nengo.exceptions.ValidationError` naming it.
    """
    name = annealed_param(neuron_type)
    if name is None:
        raise ValidationError(
            f"{type(neuron_type).__name__} has no parameter that training anneals; "
            "use nengo_hybrid.HybridSpiking or nengo_hybrid.SigmaDelta neurons",
            attr="neuron_type",
        )
    param = getattr(type(neuron_type), name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    too_low = number <= param.low if param.low_open else number < param.low
    if not math.isfinite(number) or too_low:
        bound = f"{'>' if param.low_open else '>='} {param.low:g}"
        raise ValidationError(
            f"{name} must be finite and {bound}, got {value!r}",
            attr=name,
            obj=neuron_type,
        )
    return number


class HybridSpiking(RatesToSpikesNeuronType):
    """Quantize a rate neuron type into multi-bit ("hybrid") spikes.

    Each step, with base rate ``r(J)`` and simulator step ``dt``::

        voltage += precision * dt * r(J)
        n = floor(voltage)                        # integer spike count
        n = clip(n, -max_spikes, max_spikes)      # only if max_spikes is set
        voltage -= n                              # residual carried forward
        output = amplitude * n / (precision * dt)

    ``precision=1`` is exactly `nengo.RegularSpiking` with the same base type.
    As ``precision`` grows the output tends to ``amplitude * r(J)``, the rate
    network; the error on any step is below one quantum
    ``amplitude / (precision * dt)`` and so is the cumulative error, because the
    rounding error is diffused forward in time instead of being discarded.
    When ``precision * dt * max(r) <= 1`` the neuron emits classic 1-bit spikes.

    Signed base types (e.g. `nengo.Tanh`) produce signed spike counts.

    Parameters
    ----------
    base_type : NeuronType
        A rate-based (non-spiking) neuron type, e.g. `nengo.RectifiedLinear`,
        `nengo.LIFRate`, `nengo.Tanh`, `nengo.Sigmoid`.
    precision : float
        Quantization steps per spike (``p > 0``, finite). The spike count per step
        is ``floor`` of the integrated ``precision * dt * r(J)``.
    max_spikes : int or None
        If set, the largest magnitude of the spike count on one step. Whatever
        does not fit stays in the voltage and is emitted later.
    amplitude : float
        Scaling on the output, as for `nengo.RegularSpiking`.
    initial_state : {str: Distribution or array_like}
        Overrides the initial ``voltage`` (default ``Uniform(0, 1)``, as
        `nengo.RegularSpiking`).

    Notes
    -----
    ``rates``, ``gain_bias`` and ``max_rates_intercepts`` are those of the base
    type (firing rates in Hz, without ``amplitude``), following Nengo's
    convention for `nengo.RegularSpiking`.

    Examples
    --------
    A neuron whose rate is 2500 Hz needs 2.5 spikes per 1 ms step: at
    ``precision=1`` it alternates between 2 and 3 spikes, carrying the half
    spike it could not send to the next step, so the average is exact.

    >>> import nengo
    >>> import numpy as np
    >>> from nengo_hybrid import HybridSpiking
    >>> start = {"voltage": np.zeros(1)}
    >>> with nengo.Network(seed=0) as net:
    ...     ens = nengo.Ensemble(
    ...         1, 1, gain=[0.0], bias=[2500.0],
    ...         neuron_type=HybridSpiking(nengo.RectifiedLinear(), initial_state=start),
    ...     )
    ...     probe = nengo.Probe(ens.neurons)
    >>> with nengo.Simulator(net, progress_bar=False) as sim:
    ...     sim.run_steps(6)
    >>> counts = np.round(sim.data[probe][:, 0] * sim.dt).astype(int)
    >>> counts.tolist(), counts.mean()
    ([2, 3, 2, 3, 2, 3], 2.5)

    With ``precision=4`` each spike stands for a quarter of the output, and the
    count per step is ten quanta:

    >>> ens.neuron_type = HybridSpiking(nengo.RectifiedLinear(), precision=4)
    >>> with nengo.Simulator(net, progress_bar=False) as sim:
    ...     sim.run_steps(2)
    >>> (sim.data[probe][:, 0] * sim.dt * 4).round().tolist()
    [10.0, 10.0]
    """

    precision = FiniteNumberParam("precision", low=0, low_open=True)
    #: the parameter interpolation training anneals (see `annealed_param`)
    annealed = "precision"
    # RatesToSpikesNeuronType's amplitude is a plain NumberParam (NaN gives a
    # TypeError there, infinity is accepted); the output must be finite
    amplitude = FiniteNumberParam("amplitude", low=0, low_open=True)
    max_spikes = IntParam("max_spikes", low=1, optional=True)

    # same state and initial distribution as RegularSpiking, so that with equal
    # seeds both draw identical initial voltages
    state = {"voltage": Uniform(low=0, high=1)}

    def __init__(
        self,
        base_type,
        precision=1.0,
        max_spikes=None,
        amplitude=1.0,
        initial_state=None,
    ):
        _check_rate_base(base_type, self)
        super().__init__(base_type, amplitude=amplitude, initial_state=initial_state)
        self.precision = precision
        self.max_spikes = max_spikes

    @property
    def quantum(self):
        """Output per spike at ``dt=1``; divide by ``dt`` for the output quantum."""
        return self.amplitude / self.precision

    def step(self, dt, J, output, voltage):
        # Note: J is the base type's rate (see nengo.builder.neurons), not a current
        voltage += (self.precision * dt) * J
        n_spikes = np.floor(voltage)
        if self.max_spikes is not None:
            np.clip(n_spikes, -self.max_spikes, self.max_spikes, out=n_spikes)
        voltage -= n_spikes
        output[...] = (self.amplitude / (self.precision * dt)) * n_spikes


class SigmaDelta(RatesToSpikesNeuronType):
    """Lava's sigma-delta neuron (``lava.proc.sdn.SigmaDelta``) as a Nengo neuron.

    Each step, with the base type's rate ``act = r(J)`` (for
    `nengo.RectifiedLinear`, Lava's ``relu(sigma + bias)``: Nengo's input
    current ``J`` is the receiver's sigma plus the bias)::

        delta = act - act_prev + residue
        sent = delta if |delta| >= threshold else 0
        residue = delta - sent
        act_prev = act
        reconstruction += sent
        output = amplitude * reconstruction

    With ``cum_error=True`` (Lava's error accumulator), the decision looks at
    the error accumulated since the last message instead of ``delta``::

        error += delta
        sent = delta if |error| >= threshold else 0
        error = 0 where sent != 0

    This is Lava 0.10.0's float model (``PySigmaDeltaModelFloat``) step for
    step, all state starting at zero as there. The neuron sends only changes:
    constant activity costs no messages. ``threshold=0`` sends every change, so
    the output is exactly the rate network's ``amplitude * r(J)``; a larger
    threshold sends fewer, larger messages. Interpolation training anneals the
    threshold from 0 up to the deployment value.

    Nengo's output is what the receiving side reconstructs, the running sum of
    the sent deltas (Lava's sigma decoder). Synapses and weights are linear, so
    everything downstream sees exactly what it would see in Lava.

    Parameters
    ----------
    base_type : NeuronType
        A rate neuron type; its rate is the activation. Lava's stock neuron is
        `nengo.RectifiedLinear` (``act_mode=RELU``); others run in Nengo,
        NengoDL and the metrics but have no stock Loihi 2 model.
    threshold : float
        ``vth``: the smallest change (or accumulated error) that is sent, in
        the units of the base type's rate (Hz for `nengo.LIFRate`). Finite and
        ``>= 0``.
    cum_error : bool
        Lava's ``cum_error`` (error accumulator) variant.
    amplitude : float
        Scaling on the output, as for `nengo.RegularSpiking`.
    initial_state : {str: Distribution or array_like}
        Overrides the initial ``activation``, ``residue``, ``error`` or
        ``reconstruction`` (all zero by default, as in Lava).

    Notes
    -----
    Unlike `HybridSpiking`, the output does not depend on ``dt``: a message
    carries a change of rate, not spikes per step. ``rates``, ``gain_bias``
    and ``max_rates_intercepts`` are those of the base type.

    Examples
    --------
    A neuron whose rate ramps by 0.4 per step, with threshold 1: it sends a
    message once the change it owes reaches 1, and the receiver's
    reconstruction catches up in one step.

    >>> import nengo
    >>> import numpy as np
    >>> from nengo_hybrid import SigmaDelta
    >>> with nengo.Network() as net:
    ...     ramp = nengo.Node(lambda t: 400 * t)
    ...     ens = nengo.Ensemble(
    ...         1, 1, gain=[1.0], bias=[0.0], encoders=[[1]],
    ...         neuron_type=SigmaDelta(nengo.RectifiedLinear(), threshold=1.0),
    ...     )
    ...     _ = nengo.Connection(ramp, ens.neurons, synapse=None)
    ...     probe = nengo.Probe(ens.neurons)
    >>> with nengo.Simulator(net, progress_bar=False) as sim:
    ...     sim.run_steps(6)
    >>> sim.data[probe][:, 0].round(6).tolist()
    [0.0, 0.0, 1.2, 1.2, 1.2, 2.4]

    With ``threshold=0`` every change is sent: the output is the rate itself.

    >>> ens.neuron_type = SigmaDelta(nengo.RectifiedLinear(), threshold=0)
    >>> with nengo.Simulator(net, progress_bar=False) as sim:
    ...     sim.run_steps(3)
    >>> sim.data[probe][:, 0].round(6).tolist()
    [0.4, 0.8, 1.2]
    """

    threshold = FiniteNumberParam("threshold", low=0)
    cum_error = BoolParam("cum_error")
    amplitude = FiniteNumberParam("amplitude", low=0, low_open=True)
    #: the parameter interpolation training anneals (see `annealed_param`)
    annealed = "threshold"

    state = {
        "activation": Choice([0.0]),
        "residue": Choice([0.0]),
        "error": Choice([0.0]),
        "reconstruction": Choice([0.0]),
    }

    def __init__(
        self,
        base_type=None,
        threshold=0.0,
        cum_error=False,
        amplitude=1.0,
        initial_state=None,
    ):
        base_type = nengo.RectifiedLinear() if base_type is None else base_type
        _check_rate_base(base_type, self)
        super().__init__(base_type, amplitude=amplitude, initial_state=initial_state)
        self.threshold = threshold
        self.cum_error = cum_error

    def with_threshold(self, threshold):
        """A copy of this neuron type with another ``threshold``."""
        return type(self)(
            self.base_type,
            threshold=threshold,
            cum_error=self.cum_error,
            amplitude=self.amplitude,
            initial_state=self.initial_state,
        )

    def send(self, act, activation, residue, error):
        """Lava's delta encoder: update the state, return the sent deltas."""
        delta = act - activation + residue
        if self.cum_error:
            error += delta
            sent = np.where(np.abs(error) >= self.threshold, delta, 0)
            error *= 1 - (np.abs(sent) > 0)
        else:
            sent = np.where(np.abs(delta) >= self.threshold, delta, 0)
        residue[...] = delta - sent
        activation[...] = act
        return sent

    def step(self, dt, J, output, activation, residue, error, reconstruction):
        # Note: J is the base type's rate (see nengo.builder.neurons)
        reconstruction += self.send(J, activation, residue, error)
        output[...] = self.amplitude * reconstruction
