"""The command line's string grammars, parsed here and nowhere else.

Library APIs take objects (`.Schedule`, `.Strategy`); the CLI, sweep specs
and deployment plans (JSON files) spell them as short strings, which these
functions turn into objects with errors that say what the valid forms are.

========================  =====================================================
grammar                   objects
========================  =====================================================
schedule                  ``constant:P``, ``linear|geometric|cosine:START:END``
                          (``:HOLD`` appended: the last fraction HOLD of
                          training at END), ``stepwise:P1,P2,...`` or
                          ``stepwise:E=P,...``, a
                          ``.json`` file or dict (``Schedule.to_dict``)
strategy                  ``auto`` (None), ``onebit``, ``graded``,
                          ``expand:K``, ``substeps:K``, ``thermometer:K``
data                      ``embedded``, ``mnist`` (the Keras cache) or a path
========================  =====================================================
"""

import json
import pathlib

from nengo_hybrid.pipeline.runs import PipelineUsageError

SCHEDULE_KINDS = ("constant", "linear", "geometric", "cosine", "stepwise")
SCHEDULE_FORMS = (
    "constant:P, linear:START:END, geometric:START:END, cosine:START:END (each "
    "optionally :HOLD), stepwise:P1,P2,... or a .json file (see `nengo-hybrid "
    "train --help`)"
)
STRATEGY_FORMS = "auto, onebit, graded, expand:K, substeps:K or thermometer:K (K >= 1)"


def parse_schedule(spec):
    """A schedule from its spelling (see the module table), a dict or a schedule."""
    from nengo_hybrid import schedules

    if isinstance(spec, schedules.Schedule):
        return spec
    if isinstance(spec, dict):
        return _schedule_from_dict(spec, spec)
    if not isinstance(spec, str):
        raise PipelineUsageError(f"bad schedule {spec!r}", hint=f"use {SCHEDULE_FORMS}")
    if spec.endswith(".json"):
        path = pathlib.Path(spec)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise PipelineUsageError(
                f"cannot read schedule file {path}: {err}",
                hint="give a JSON file written by Schedule.to_dict, or KIND:START:END",
            ) from err
        return _schedule_from_dict(data, path)
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    bad = f"bad schedule {spec!r}"
    if kind not in SCHEDULE_KINDS:
        raise PipelineUsageError(bad, hint=f"use {SCHEDULE_FORMS}")
    try:
        if kind == "stepwise":
            return schedules.Stepwise(_stepwise_values(rest))
        numbers = [float(v) for v in rest.split(":")] if rest else []
        if kind == "constant":
            if len(numbers) != 1:
                raise ValueError("constant takes one value")
            return schedules.Constant(numbers[0])
        if len(numbers) not in (2, 3):
            raise ValueError(f"{kind} takes START:END or START:END:HOLD")
        return schedules.Schedule.registry[kind.capitalize()](*numbers)
    except Exception as err:  # ValueError, ValidationError from the schedule
        raise PipelineUsageError(f"{bad}: {err}", hint=f"use {SCHEDULE_FORMS}") from err


def _stepwise_values(text):
    """``"100,10,1"`` -> ``{0: 100, 1: 10, 2: 1}``; ``"0=100,5=4"`` -> ``{0: 100, 5: 4}``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError("stepwise needs at least one precision")
    if all("=" in item for item in items):
        pairs = [item.split("=", 1) for item in items]
        return {int(epoch): float(value) for epoch, value in pairs}
    return {epoch: float(value) for epoch, value in enumerate(items)}


def _schedule_from_dict(data, source):
    from nengo_hybrid import schedules

    try:
        return schedules.Schedule.from_dict(data)
    except Exception as err:
        raise PipelineUsageError(
            f"bad schedule {source}: {err}",
            hint="give a dict/JSON written by Schedule.to_dict",
        ) from err


def parse_strategy(spec, where="strategy"):
    """A `.Strategy` from ``onebit``/``expand:K``/...; ``None`` for ``auto``.

    Parameters
    ----------
    spec : str or Strategy or None
    where : str
        Where the spelling came from, for the error message.
    """
    from nengo_hybrid.hardware import strategies

    if spec is None or isinstance(spec, strategies.Strategy):
        return spec
    text = str(spec).strip().lower()
    if text == "auto":
        return None
    if text == "onebit":
        return strategies.OneBit()
    if text == "graded":
        return strategies.Graded()
    kind, _, k = text.partition(":")
    kinds = {"expand": strategies.Expand, "substeps": strategies.Substeps,
             "thermometer": strategies.Thermometer}  # fmt: skip
    if kind in kinds and k.isdigit() and int(k) >= 1:
        return kinds[kind](int(k))
    raise PipelineUsageError(f"bad {where} {spec!r}", hint=f"use {STRATEGY_FORMS}")


def strategy_spec(strategy):
    """The spelling of a strategy: ``"onebit"``, ``"expand:K"``, ... (None: auto)."""
    if strategy is None:
        return "auto"
    k = getattr(strategy, "K", None)
    if k is None:
        return type(strategy).__name__.lower()  # onebit, graded
    return f"{type(strategy).__name__.lower()}:{k}"


def parse_data(spec):
    """``(source, path)`` of a ``--data`` spelling: embedded, mnist or a path."""
    text = str(spec)
    if text == "embedded":
        return "embedded", None
    if text == "mnist":
        return "full", None
    return "full", text
