"""Schedules for interpolation training: the annealed parameter per batch.

A schedule gives the value of each ensemble's annealed parameter
(`.neurons.annealed_param`) on each training batch, starting close to the rate
network and ending at the value the network will be deployed with:

* `.HybridSpiking`: the ``precision``, from high (many quanta per spike, close
  to the rate network) down to the deployment precision, e.g. ``Geometric(64, 2)``;
* `.SigmaDelta`: the ``threshold``, from 0 (every change sent: exactly the rate
  network) up to the deployment threshold, e.g. ``Linear(0, 5)``.

The schedules are the same for both; the values are checked against the neuron
type they drive when training starts (`check_values`). Schedules are small frozen
objects, like Nengo distributions: they compare equal by value, have a clear
``repr``, and round-trip through `Schedule.to_dict` / `Schedule.from_dict`
(checkpoints store them this way).
"""

import inspect
import math
from collections.abc import Mapping

from nengo.exceptions import ValidationError
from nengo.params import FrozenObject, NumberParam, Parameter

from nengo_hybrid.neurons import FiniteNumberParam, annealed_param, check_annealed


class Schedule(FrozenObject):
    """Base class: the annealed value (precision or threshold) over training.

    Every public subclass is added to `registry` (by class name), which
    `from_dict` builds from. Abstract helpers whose names start with an
    underscore (such as ``_Interpolated``) are not registered.
    """

    registry = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            Schedule.registry[cls.__name__] = cls

    def at(self, progress):
        """Value at ``progress`` in [0, 1] (0 = first batch, 1 = last)."""
        raise NotImplementedError

    def value(self, epoch, batch=0, steps_per_epoch=1, epochs=1):
        """Value for ``batch`` of ``epoch`` (both zero-based)."""
        total = epochs * steps_per_epoch
        step = epoch * steps_per_epoch + batch
        return self.at(min(step / max(total - 1, 1), 1.0))

    @property
    def final(self):
        """The value at the end of training (the deployment value)."""
        return self.at(1.0)

    @property
    def extremes(self):
        """The values the schedule's range is bounded by (it never leaves them)."""
        raise NotImplementedError

    def check_values(self, neuron_type):
        """Raise unless every value is valid for ``neuron_type``'s annealed parameter.

        E.g. a threshold may be 0 but a precision must be > 0. Raises a
        `~nengo.exceptions.ValidationError` naming the schedule and the parameter.
        """
        for value in self.extremes:
            try:
                check_annealed(neuron_type, value)
            except ValidationError as err:
                raise ValidationError(
                    f"{self!r} cannot drive {type(neuron_type).__name__} neurons: "
                    f"{err}",
                    attr=annealed_param(neuron_type),
                    obj=self,
                ) from err

    def to_dict(self):
        """JSON-serialisable description; inverse of `from_dict`."""
        args = {name: getattr(self, name) for name in self._paramdict}
        return {"type": type(self).__name__, **args}

    @staticmethod
    def from_dict(data):
        """Rebuild a schedule written by `to_dict`.

        Only the registered (concrete) schedule types can be built; anything
        else raises a `~nengo.exceptions.ValidationError` that lists them.
        """
        if not isinstance(data, Mapping):
            raise ValidationError(
                f"a schedule description must be a dict like "
                f"{{'type': 'Linear', 'start': 100, 'end': 1}}, got "
                f"{type(data).__name__} {data!r}",
                attr="type",
            )
        data = dict(data)
        name = data.pop("type", None)
        known = sorted(Schedule.registry)
        if not isinstance(name, str) or name not in Schedule.registry:
            raise ValidationError(
                f"unknown schedule type {name!r}; set 'type' to one of {known}",
                attr="type",
            )
        cls = Schedule.registry[name]
        try:
            return cls(**data)
        except TypeError as err:
            args = list(inspect.signature(cls.__init__).parameters)[1:]
            raise ValidationError(
                f"cannot build a {name} schedule from {data!r} ({err}); {name} "
                f"takes the arguments {args}",
                attr=name,
            ) from err


def _value_param(name):
    # >= 0: a threshold of 0 is valid; check_values applies each neuron's bound
    return FiniteNumberParam(name, low=0, readonly=True)


class Constant(Schedule):
    """The same value throughout (training directly at the final value).

    The argument is called ``precision`` for compatibility; it is the annealed
    value of whichever neuron type it drives (a threshold for `.SigmaDelta`).
    """

    precision = _value_param("precision")

    def __init__(self, precision):
        super().__init__()
        self.precision = precision

    def at(self, progress):
        return float(self.precision)

    @property
    def extremes(self):
        return (float(self.precision),)


class _Interpolated(Schedule):
    """Interpolates from ``start`` to ``end`` over the first ``1 - hold`` of training.

    Parameters
    ----------
    start : float
        Value on the first batch (close to the rate network: a large precision,
        or threshold 0).
    end : float
        Final (deployment) value.
    hold : float
        Fraction of training, at the end, spent at ``end`` (fine-tuning at the
        deployment precision). ``0 <= hold < 1``.
    """

    start = _value_param("start")
    end = _value_param("end")
    hold = NumberParam("hold", low=0, high=1, high_open=True, readonly=True)

    def __init__(self, start, end, hold=0.0):
        super().__init__()
        self.start = start
        self.end = end
        self.hold = hold

    def at(self, progress):
        return self.interpolate(min(progress / (1.0 - self.hold), 1.0))

    @property
    def extremes(self):
        return (float(self.start), float(self.end))

    def interpolate(self, t):
        """Value at ``t`` in [0, 1] of the annealing phase."""
        raise NotImplementedError


class Linear(_Interpolated):
    """Linear interpolation from ``start`` to ``end``."""

    def interpolate(self, t):
        return self.start + (self.end - self.start) * t


class Geometric(_Interpolated):
    """Exponential interpolation: equal ratios per step, ``start * (end/start)**t``.

    Spends equal training time per decade of precision, i.e. per bit removed.
    Both ends must be > 0 (a geometric path cannot start at threshold 0).
    """

    def __init__(self, start, end, hold=0.0):
        super().__init__(start, end, hold)
        if self.start == 0 or self.end == 0:
            raise ValidationError(
                f"Geometric needs start and end > 0, got {self.start} and "
                f"{self.end}; use Linear or Cosine to start from threshold 0",
                attr="start",
                obj=self,
            )

    def interpolate(self, t):
        return self.start * (self.end / self.start) ** t


class Cosine(_Interpolated):
    """Cosine interpolation: slow at both ends, fastest mid-way."""

    def interpolate(self, t):
        return self.end + (self.start - self.end) * 0.5 * (1 + math.cos(math.pi * t))


class _FrozenSteps(Mapping):
    """An immutable, hashable ``{first_epoch: value}`` mapping (sorted by epoch).

    Compares equal to a dict with the same items and has a dict's ``repr``, so
    `Stepwise` keeps its ``repr`` and equality while its state cannot change.
    """

    __slots__ = ("_items",)

    def __init__(self, items):
        object.__setattr__(self, "_items", tuple(sorted(dict(items).items())))

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __getitem__(self, key):
        for epoch, precision in self._items:
            if epoch == key:
                return precision
        raise KeyError(key)

    def __iter__(self):
        return (epoch for epoch, _ in self._items)

    def __len__(self):
        return len(self._items)

    def __hash__(self):
        return hash(self._items)

    def __repr__(self):
        return repr(dict(self._items))

    def __reduce__(self):
        return (type(self), (dict(self._items),))


class _StepsParam(Parameter):
    """Stores ``{epoch: precision}`` as an immutable `_FrozenSteps`."""

    equatable = True

    def coerce(self, instance, value):
        if not isinstance(value, Mapping):
            raise ValidationError(
                f"must be a dict of {{first_epoch: precision}}, e.g. {{0: 100, 5: 4}}, "
                f"got {type(value).__name__}",
                attr=self.name,
                obj=instance,
            )
        return super().coerce(instance, _FrozenSteps(value))


class Stepwise(Schedule):
    """Piecewise-constant value (precision or threshold) by epoch.

    Parameters
    ----------
    values : dict of {int: float}
        ``{first_epoch: value}``; must contain epoch 0. Each value holds
        from its epoch until the next key. Stored as an immutable mapping
        (sorted by epoch), so a schedule cannot change after construction.
    """

    values = _StepsParam("values", readonly=True)

    def __init__(self, values):
        super().__init__()
        if not isinstance(values, Mapping):
            raise ValidationError(
                f"Stepwise needs a dict of {{first_epoch: precision}}, e.g. "
                f"{{0: 100, 5: 4}}, got {type(values).__name__} {values!r}",
                attr="values",
                obj=self,
            )
        try:
            converted = {int(k): float(v) for k, v in values.items()}
        except (TypeError, ValueError) as err:
            raise ValidationError(
                f"Stepwise values must map integer epochs to numbers, got {values!r} "
                f"({err}); use e.g. {{0: 100, 5: 4}}",
                attr="values",
                obj=self,
            ) from err
        if 0 not in converted:
            raise ValidationError(
                "Stepwise needs a precision for epoch 0, e.g. {0: 100, 5: 4}",
                attr="values",
                obj=self,
            )
        for epoch, value in converted.items():
            if epoch < 0 or not math.isfinite(value) or value < 0:
                raise ValidationError(
                    f"epochs must be >= 0 and values finite and >= 0, got "
                    f"{epoch}: {value}; fix that entry",
                    attr="values",
                    obj=self,
                )
        self.values = converted

    def value(self, epoch, batch=0, steps_per_epoch=1, epochs=1):
        return max(
            (start, precision)
            for start, precision in self.values.items()
            if start <= epoch
        )[1]

    @property
    def extremes(self):
        return tuple(self.values.values())

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
