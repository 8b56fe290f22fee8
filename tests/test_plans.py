"""Deployment plans (``deploy/*.json``): read, validated and applied, never echoed."""

import json
import pathlib

import nengo
import nengo_loihi
import pytest

from nengo_hybrid import zoo
from nengo_hybrid.hardware import check, plans
from nengo_hybrid.hardware.strategies import Expand, OneBit

REPO = pathlib.Path(__file__).resolve().parents[1]
PLANS = ["mnist_dense_loihi1.json", "mnist_dense_loihi2.json", "lmu_quick_loihi1.json"]


@pytest.fixture
def no_emulation(monkeypatch):
    """Fail if anything tries to emulate (plans and checks never run the network)."""

    def refuse(*args, **kwargs):
        raise RuntimeError("check() started the emulator")

    monkeypatch.setattr(nengo_loihi.simulator.EmulatorInterface, "__init__", refuse)


@pytest.mark.parametrize("name", PLANS)
def test_shipped_plans_load(name):
    plan = plans.Plan.read(REPO / "deploy" / name)
    assert plan.profile == name.rsplit("_", 1)[1][: -len(".json")]
    assert plan.model == name.rsplit("_", 1)[0]
    assert "default" in plan.strategies
    # the narrative is kept apart from what is applied
    assert plan.notes and not set(plan.notes) & {
        "profile",
        "strategy",
        "host",
        "target",
    }


def test_plans_ship_in_the_package():
    """find_plan looks in the installed package too (nengo_hybrid.deploy)."""
    folder = plans.search_path()[-1]
    assert {p.name for p in folder.glob("*.json")} >= set(PLANS)


def test_mnist_dense_plan_is_applied(no_emulation):
    """The plan's placement and per-ensemble strategies reach the check."""
    net = zoo.read("mnist_dense").build()
    plan = plans.Plan.read(REPO / "deploy" / "mnist_dense_loihi1.json")
    strategies = plan.resolve(net)
    by_label = {e.label: s for e, s in strategies.items()}
    assert by_label == {"hidden1": OneBit(), "hidden2": Expand(2)}
    assert net.config[net.input_layer].on_chip is False
    report = check(net, profile=plan.profile, strategy=strategies)
    assert report.ok, report
    assert {row["ensemble"] for row in report.ensembles} == {
        "<Ensemble 'hidden1'>",
        "<Ensemble 'hidden2'>",
    }
    assert "<Ensemble 'input'>" in {row["object"] for row in report.host}
    # control: without the plan the input layer would be on the chip
    bare = zoo.read("mnist_dense").build()
    assert "<Ensemble 'input'>" not in {row["object"] for row in check(bare).host}


def _plan(tmp_path, **changes):
    data = json.loads((REPO / "deploy" / "mnist_dense_loihi1.json").read_text())
    data.update(changes)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"why": "narrative at the top level"}, "unknown keys why"),
        ({"strategy": {"default": "expand:abc"}}, "bad strategy for 'default'"),
        ({"strategy": {"default": "expand:0"}}, "bad strategy for 'default'"),
        ({"strategy": "onebit"}, "'strategy' must map ensemble labels"),
        ({"target": "moon"}, "unknown target 'moon'"),
        ({"profile": None}, "needs 'profile'"),
        ({"host": "input"}, "'host' must be a list"),
    ],
)
def test_malformed_plans(tmp_path, changes, message):
    path = _plan(tmp_path, **changes)
    with pytest.raises(plans.PlanError, match=message) as info:
        plans.Plan.read(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("field", ["strategy", "host"])
def test_unknown_label_is_an_error(tmp_path, field):
    value = (
        {"default": "onebit", "hiden2": "expand:2"}
        if field == "strategy"
        else ["inptu"]
    )
    plan = plans.Plan.read(_plan(tmp_path, **{field: value}))
    net = zoo.read("mnist_dense").build()
    with pytest.raises(plans.PlanError, match="names ensembles (hiden2|inptu)") as info:
        plan.resolve(net)
    assert "hidden2" in info.value.hint and "input" in info.value.hint
    # nothing was changed before the error
    with pytest.raises((AttributeError, nengo.exceptions.ConfigError)):
        _ = net.config[net.input_layer].on_chip


def test_unreadable_plan(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(plans.PlanError, match=f"cannot read deployment plan {path}"):
        plans.Plan.read(path)


def test_plan_for_another_profile_is_an_error(tmp_path):
    from nengo_hybrid.pipeline.check import check
    from nengo_hybrid.pipeline.runs import PipelineUsageError

    recipe = zoo.read("mnist_dense")
    plan = REPO / "deploy" / "mnist_dense_loihi1.json"
    with pytest.raises(
        PipelineUsageError, match="is for profile 'loihi1', not 'loihi2'"
    ):
        check(recipe=recipe, profile="loihi2", plan=plan)
    assert check(recipe=recipe, plan=plan)["profile"] == "loihi1"  # control
