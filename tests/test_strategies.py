"""Strategies are frozen Nengo objects; strings are the CLI's, deprecated here."""

import copy
import pickle

import numpy as np
import pytest
from nengo.exceptions import ReadonlyError, ValidationError
from nengo.params import FrozenObject

from nengo_hybrid.hardware.strategies import (
    Expand,
    OneBit,
    Strategy,
    Substeps,
    Thermometer,
    as_strategy,
)

PER_STEP = (Expand, Substeps, Thermometer)


def test_strategies_are_frozen_objects_equal_by_value():
    for cls in PER_STEP:
        s = cls(4)
        assert isinstance(s, (Strategy, FrozenObject))
        assert s == cls(4) and hash(s) == hash(cls(4)) and s != cls(5)
        assert repr(s) == f"{cls.__name__}(K=4)"
        assert pickle.loads(pickle.dumps(s)) == s and copy.deepcopy(s) == s
        with pytest.raises(ReadonlyError):
            s.K = 5
    assert OneBit() == OneBit() and repr(OneBit()) == "OneBit()"
    assert hash(OneBit()) == hash(OneBit())
    # same K, different kind: different strategies
    assert len({Expand(3), Thermometer(3), Substeps(3), OneBit()}) == 4
    # usable as dict keys and in sets, as neuron types are
    assert {Expand(2): "a"}[Expand(2)] == "a"


def test_to_dict_unchanged():
    assert OneBit().to_dict() == {"name": "OneBit", "compartments": 1}
    assert Expand(3).to_dict() == {"name": "Expand", "compartments": 3, "K": 3}
    assert Thermometer(3).to_dict() == {
        "name": "Thermometer",
        "compartments": 3,
        "K": 3,
    }
    assert Substeps(3).to_dict() == {
        "name": "Substeps",
        "compartments": 1,
        "K": 3,
        "steps": 3,
    }


@pytest.mark.parametrize("cls", PER_STEP)
@pytest.mark.parametrize("bad", [0, -1, 2.5, 4.0, "4", None, True, np.bool_(True)])
def test_K_is_validated(cls, bad):
    with pytest.raises(ValidationError, match="K"):
        cls(bad)


def test_K_is_stored_as_int():
    s = Expand(np.int64(3))
    assert type(s.K) is int and repr(s) == "Expand(K=3)"


def test_as_strategy_objects_and_defaults():
    assert as_strategy(None) == OneBit()
    e = Expand(4)
    assert as_strategy(e) is e
    assert as_strategy(1) == OneBit() and as_strategy(np.int64(3)) == Expand(3)


@pytest.mark.parametrize("flag", [True, False, np.bool_(True)])
def test_as_strategy_refuses_booleans(flag):
    with pytest.raises(ValidationError, match="ambiguous"):
        as_strategy(flag)


def test_as_strategy_refuses_other_types():
    with pytest.raises(ValidationError, match="Unknown strategy"):
        as_strategy(4.0)
    with pytest.raises(ValidationError, match="Unknown strategy"):
        as_strategy([4])


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("onebit", OneBit()),
        ("expand:4", Expand(4)),
        ("substeps:2", Substeps(2)),
        ("thermometer:5", Thermometer(5)),
        ("Expand: 3", Expand(3)),
    ],
)
def test_strategy_strings_still_work_but_are_deprecated(spec, expected):
    with pytest.warns(DeprecationWarning, match="Expand\\(K\\)"):
        assert as_strategy(spec) == expected


@pytest.mark.parametrize(
    "spec, problem",
    [
        ("expand:abc", "K must be an integer, got 'abc'"),
        ("expand", "'expand' needs the number K"),
        ("expand:", "'expand' needs the number K"),
        ("expand:0", "K must be an integer >= 1, got 0"),
        ("thermometer:-2", "K must be an integer >= 1, got -2"),
        ("foo:3", "unknown kind 'foo'"),
        ("onebit:2", "'onebit' takes no K"),
        ("", "unknown kind ''"),
    ],
)
def test_malformed_strategy_strings_are_validation_errors(spec, problem):
    with pytest.warns(DeprecationWarning):
        with pytest.raises(ValidationError) as info:
            as_strategy(spec)
    message = str(info.value)
    assert f"Cannot read the strategy {spec!r}" in message
    assert problem in message
    assert "'expand:K'" in message and "'thermometer:K'" in message  # valid forms


def test_deprecation_points_at_the_caller():
    # the warning is attributed to this file, not to the library function
    with pytest.warns(DeprecationWarning) as record:
        as_strategy("expand:2")
    assert record[0].filename == __file__
