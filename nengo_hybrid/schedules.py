"""Precision schedules for interpolation training.

A schedule says which precision `.HybridSpiking` neurons use on each training
batch: start high (output close to the rate network) and anneal to the
precision the network will be deployed with. Schedules are small frozen
objects, like Nengo distributions: they compare equal by value, have a clear
``repr``, and round-trip through `Schedule.to_dict` / `Schedule.from_dict`
(checkpoints store them this way).
"""

import math

from nengo.exceptions import ValidationError
from nengo.params import DictParam, FrozenObject, NumberParam

from nengo_hybrid.neurons import FiniteNumberParam


class Schedule(FrozenObject):
    """Base class: the precision as a function of training progress."""

    registry = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Schedule.registry[cls.__name__] = cls

    def at(self, progress):
        """Precision at ``progress`` in [0, 1] (0 = first batch, 1 = last)."""
        raise NotImplementedError

    def value(self, epoch, batch=0, steps_per_epoch=1, epochs=1):
        """Precision for ``batch`` of ``epoch`` (both zero-based)."""
        total = epochs * steps_per_epoch
        step = epoch * steps_per_epoch + batch
        return self.at(min(step / max(total - 1, 1), 1.0))

    @property
    def final(self):
        """The precision at the end of training (the deployment precision)."""
        return self.at(1.0)

    def to_dict(self):
        """JSON-serialisable description; inverse of `from_dict`."""
        args = {name: getattr(self, name) for name in self._paramdict}
        return {"type": type(self).__name__, **args}

    @staticmethod
    def from_dict(data):
        """Rebuild a schedule written by `to_dict`."""
        data = dict(data)
        name = data.pop("type", None)
        if name not in Schedule.registry:
            raise ValidationError(
                f"unknown schedule type {name!r}; expected one of "
                f"{sorted(Schedule.registry)}",
                attr="type",
            )
        return Schedule.registry[name](**data)


def _precision_param(name):
    return FiniteNumberParam(name, low=0, low_open=True, readonly=True)


class Constant(Schedule):
    """The same precision throughout (training directly at the final precision)."""

    precision = _precision_param("precision")

    def __init__(self, precision):
        super().__init__()
        self.precision = precision

    def at(self, progress):
        return float(self.precision)


class _Interpolated(Schedule):
    """Interpolates from ``start`` to ``end`` over the first ``1 - hold`` of training.

    Parameters
    ----------
    start : float
        Precision on the first batch (large: close to the rate network).
    end : float
        Final (deployment) precision.
    hold : float
        Fraction of training, at the end, spent at ``end`` (fine-tuning at the
        deployment precision). ``0 <= hold < 1``.
    """

    start = _precision_param("start")
    end = _precision_param("end")
    hold = NumberParam("hold", low=0, high=1, high_open=True, readonly=True)

    def __init__(self, start, end, hold=0.0):
        super().__init__()
        self.start = start
        self.end = end
        self.hold = hold

    def at(self, progress):
        return self.interpolate(min(progress / (1.0 - self.hold), 1.0))

    def interpolate(self, t):
        """Precision at ``t`` in [0, 1] of the annealing phase."""
        raise NotImplementedError


class Linear(_Interpolated):
    """Linear interpolation from ``start`` to ``end`` precision."""

    def interpolate(self, t):
        return self.start + (self.end - self.start) * t


class Geometric(_Interpolated):
    """Exponential interpolation: equal ratios per step, ``start * (end/start)**t``.

    Spends equal training time per decade of precision, i.e. per bit removed.
    """

    def interpolate(self, t):
        return self.start * (self.end / self.start) ** t


class Cosine(_Interpolated):
    """Cosine interpolation: slow at both ends, fastest mid-way."""

    def interpolate(self, t):
        return self.end + (self.start - self.end) * 0.5 * (1 + math.cos(math.pi * t))


class Stepwise(Schedule):
    """Piecewise-constant precision by epoch.

    Parameters
    ----------
    values : dict of {int: float}
        ``{first_epoch: precision}``; must contain epoch 0. Each precision holds
        from its epoch until the next key.
    """

    values = DictParam("values", readonly=True)

    def __init__(self, values):
        super().__init__()
        values = {int(k): float(v) for k, v in dict(values).items()}
        if 0 not in values:
            raise ValidationError(
                "Stepwise needs a precision for epoch 0, e.g. {0: 100, 5: 4}",
                attr="values",
                obj=self,
            )
        for epoch, precision in values.items():
            if epoch < 0 or not math.isfinite(precision) or precision <= 0:
                raise ValidationError(
                    f"epochs must be >= 0 and precisions finite and > 0, got "
                    f"{epoch}: {precision}",
                    attr="values",
                    obj=self,
                )
        self.values = dict(sorted(values.items()))

    def value(self, epoch, batch=0, steps_per_epoch=1, epochs=1):
        return max(
            (start, precision)
            for start, precision in self.values.items()
            if start <= epoch
        )[1]

    def at(self, progress):
        # progress is ambiguous without the epoch count; only the end is defined
        if progress >= 1.0:
            return self.values[max(self.values)]
        raise NotImplementedError(
            "Stepwise schedules are defined by epoch; use value()"
        )

    def to_dict(self):
        return {
            "type": "Stepwise",
            "values": {str(k): v for k, v in self.values.items()},
        }
