"""Hybrid-spiking neuron types and their NumPy reference math.

The quantizer implemented here is a first-order sigma-delta modulator applied to
the output of any Nengo rate neuron type (Voelker, Rasmussen & Eliasmith 2020,
arXiv:2002.03553). Each step the neuron emits a small integer number of spikes;
the rounding error is kept in the ``voltage`` state and carried to the next step,
so the cumulative error never exceeds one quantum.
"""

import math

import nengo
import numpy as np
from nengo.dists import Uniform
from nengo.exceptions import ValidationError
from nengo.neurons import RatesToSpikesNeuronType
from nengo.params import IntParam, NumberParam
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
        if isinstance(base_type, nengo.Direct):
            raise ValidationError(
                "base_type cannot be nengo.Direct: it has no rate to quantize",
                attr="base_type",
                obj=self,
            )
        if getattr(base_type, "spiking", False):
            raise ValidationError(
                f"base_type must be a rate (non-spiking) neuron type, got "
                f"{type(base_type).__name__}; use its rate equivalent, e.g. "
                "nengo.LIFRate() instead of nengo.LIF()",
                attr="base_type",
                obj=self,
            )
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
