import math

import pytest
from nengo.exceptions import ValidationError

from nengo_hybrid.schedules import (
    Constant,
    Cosine,
    Geometric,
    Linear,
    Schedule,
    Stepwise,
)

# 4 epochs x 3 batches = 12 steps; progress = step / 11
CASES = [
    (Constant(4.0), {0: 4.0, 5: 4.0, 11: 4.0}),
    (Linear(100.0, 1.0), {0: 100.0, 11: 1.0, 5: 100 - 99 * 5 / 11}),
    (Geometric(1000.0, 10.0), {0: 1000.0, 11: 10.0, 5: 1000 * 0.01 ** (5 / 11)}),
    (
        Cosine(50.0, 2.0),
        {0: 50.0, 11: 2.0, 5: 2 + 48 * 0.5 * (1 + math.cos(math.pi * 5 / 11))},
    ),
    (
        Stepwise({0: 100, 2: 10, 3: 1}),
        {0: 100.0, 5: 100.0, 6: 10.0, 8: 10.0, 9: 1.0, 11: 1.0},
    ),
    # anneal over the first half (progress 0..0.5 -> t 0..1), then hold
    (
        Linear(100.0, 1.0, hold=0.5),
        {0: 100.0, 4: 100 - 99 * (4 / 11) / 0.5, 6: 1.0, 11: 1.0},
    ),
]


@pytest.mark.parametrize("schedule, expected", CASES, ids=lambda c: repr(c)[:30])
def test_schedule_values(schedule, expected):
    for step, value in expected.items():
        epoch, batch = divmod(step, 3)
        assert schedule.value(
            epoch, batch, steps_per_epoch=3, epochs=4
        ) == pytest.approx(value)


def test_geometric_halves_each_equal_share():
    s = Geometric(64.0, 1.0)
    values = [s.at(t) for t in (0, 1 / 3, 2 / 3, 1)]
    assert values == pytest.approx([64, 16, 4, 1])


@pytest.mark.parametrize("schedule", [c[0] for c in CASES], ids=repr)
def test_round_trip_and_repr(schedule):
    restored = Schedule.from_dict(schedule.to_dict())
    assert restored == schedule
    assert repr(restored) == repr(schedule)
    assert type(schedule).__name__ + "(" in repr(schedule)


def test_final_is_deployment_precision():
    assert Linear(100, 3).final == 3
    assert Stepwise({0: 9, 4: 2}).final == 2


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Constant(-1), "greater than or equal to 0"),
        (lambda: Linear(-1, 2), "greater than or equal to 0"),
        (lambda: Geometric(0, 2), "Geometric needs start and end > 0"),
        (lambda: Geometric(100, float("nan")), "finite"),
        (lambda: Cosine(float("inf"), 1), "finite"),
        (lambda: Stepwise({1: 10}), "epoch 0"),
        (lambda: Geometric(100, 1, hold=1.0), "hold"),
        (lambda: Linear(100, 1, hold=-0.1), "hold"),
        (lambda: Stepwise({0: 10, 2: -1}), "finite and >= 0"),
        (
            lambda: Schedule.from_dict({"type": "Exponentialish", "start": 1}),
            "unknown schedule",
        ),
    ],
)
def test_invalid_schedules(make, match):
    with pytest.raises(ValidationError, match=match):
        make()


def test_from_dict_builds_only_concrete_schedules():
    # the abstract base of Linear/Geometric/Cosine has no interpolation of its own
    with pytest.raises(ValidationError, match="_Interpolated.*Constant.*Stepwise"):
        Schedule.from_dict({"type": "_Interpolated", "start": 100, "end": 1})
    assert "_Interpolated" not in Schedule.registry
    assert set(Schedule.registry) == {
        "Constant",
        "Linear",
        "Geometric",
        "Cosine",
        "Stepwise",
    }
    # control: a concrete one with the same arguments builds
    assert Schedule.from_dict({"type": "Linear", "start": 100, "end": 1}) == Linear(
        100, 1
    )


@pytest.mark.parametrize(
    "data, match",
    [
        ({"type": "Linear", "start": 100}, "Linear takes the arguments.*end"),
        ({"type": "Constant", "precision": 2, "end": 1}, "Constant takes"),
        ({"start": 100, "end": 1}, "unknown schedule type None"),
        (["Linear", 100, 1], "must be a dict"),
        ({"type": "Stepwise", "values": {"zero": 10}}, "integer epochs"),
        ({"type": "Stepwise", "values": [10, 1]}, "dict of"),
    ],
)
def test_from_dict_bad_descriptions(data, match):
    with pytest.raises(ValidationError, match=match):
        Schedule.from_dict(data)


def test_stepwise_is_immutable():
    given = {0: 100, 3: 10}
    schedule = Stepwise(given)
    before = hash(schedule)
    given[1] = 50.0  # the caller's dict is not shared
    with pytest.raises(TypeError):
        schedule.values[1] = 50.0
    with pytest.raises(AttributeError):
        schedule.values.clear()
    assert schedule.value(1) == 100.0
    assert hash(schedule) == before
    assert schedule == Stepwise({3: 10, 0: 100}) != Stepwise({0: 100, 3: 9})
    assert repr(schedule) == "Stepwise(values={0: 100.0, 3: 10.0})"
    assert dict(schedule.values) == {0: 100.0, 3: 10.0}


def test_one_schedule_concept_for_precision_and_threshold():
    """A schedule from 0 drives thresholds; the same values fail for precision."""
    import nengo

    from nengo_hybrid import HybridSpiking, SigmaDelta

    anneal = Linear(0, 4)
    assert [anneal.value(e, epochs=5) for e in range(5)] == [0, 1, 2, 3, 4]
    anneal.check_values(SigmaDelta())  # threshold 0 is exact: valid
    with pytest.raises(ValidationError, match="cannot drive HybridSpiking.*> 0"):
        anneal.check_values(HybridSpiking(nengo.RectifiedLinear()))
    Geometric(64, 2).check_values(HybridSpiking(nengo.RectifiedLinear()))
    with pytest.raises(ValidationError, match="cannot drive HybridSpiking"):
        Stepwise({0: 8, 2: 0}).check_values(HybridSpiking(nengo.LIFRate()))
