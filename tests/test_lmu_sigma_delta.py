"""The sigma-delta LMU (``neuron="sigma_delta"`` psMNIST recipes, ``lmu_quick_sd``).

Recipe validation, and a tiny real recipe (8 sigma-delta hidden units on
16-step psMNIST from the embedded digits) through ``train``, ``evaluate``,
``check`` and ``deploy`` on the Loihi 2 profile, and ``report``, with the CLI
in-process, as ``tests/test_cli.py`` does for the hybrid LMU.
"""

import json

import nengo
import pytest

from nengo_hybrid import SigmaDelta, cli, metrics, zoo
from nengo_hybrid.hardware.loihi2_mapping import sigma_delta_frac_bits
from nengo_hybrid.zoo import RecipeError

TINY_SD = """\
\"\"\"A tiny sigma-delta LMU recipe (16-step psMNIST, 8 hidden units).\"\"\"
RECIPE = dict(
    task="psmnist",
    data=dict(source="embedded", pool=7),
    n_steps=16,
    network=dict(n_hidden=8, order=4, theta=16, memory="precomputed"),
    neuron="sigma_delta",
    schedule=dict(type="Linear", start=0.0, end=0.1),
    epochs=1,
    minibatch_size=50,
    learning_rate=1e-2,
    seed=0,
    n_samples=10,
)
"""


def run_cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_zoo_lists_lmu_quick_sd():
    assert "lmu_quick_sd" in zoo.available()
    recipe = zoo.read("lmu_quick_sd")
    net = recipe.build()
    hidden = net.lmu.hidden.neuron_type
    assert isinstance(hidden, SigmaDelta) and hidden.threshold == 0.1
    assert type(hidden.base_type) is nengo.RectifiedLinear
    assert recipe.task.schedule(recipe.settings)["start"] == 0.0  # the rate network
    # control: the hybrid recipe builds hybrid neurons
    assert not isinstance(
        zoo.read("lmu_quick").build().lmu.hidden.neuron_type, SigmaDelta
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(neuron="spiking"), "neuron='spiking' is not a hidden neuron kind"),
        (dict(threshold=-0.5), "threshold=-0.5 is not a valid sigma-delta threshold"),
        (
            dict(schedule=dict(type="Linear", start=0.0, end=-0.1)),
            "not a valid schedule",
        ),
        (dict(precision=2.0), "sets precision, but its neuron='sigma_delta' hidden"),
        (
            dict(neuron="hybrid"),
            "not a valid precision schedule for its neuron='hybrid'",
        ),
        (
            dict(
                neuron="hybrid",
                threshold=0.1,
                schedule=dict(type="Constant", precision=2.0),
            ),
            "sets threshold, but its neuron='hybrid' hidden layer has a precision",
        ),
    ],
)
def test_recipe_validation(change, message):
    settings = zoo.read("lmu_quick_sd").settings
    with pytest.raises(RecipeError, match=message.replace("(", "\\(")) as info:
        zoo.Recipe("lmu_quick_sd.py", {**settings, **change})
    assert "lmu_quick_sd.py" in str(info.value) and info.value.hint


def test_recipe_validation_control():
    settings = zoo.read("lmu_quick_sd").settings
    recipe = zoo.Recipe("x.py", {**settings, "threshold": 0.2})
    assert recipe.task.deploy_thresholds(recipe.settings, {"hidden": 0.1}) == {
        "hidden": 0.2
    }
    recipe = zoo.Recipe("x.py", settings)  # float32 training ends near 0.1
    assert recipe.task.deploy_thresholds(settings, {"hidden": 0.10000000149}) == {
        "hidden": 0.1
    }


@pytest.fixture(scope="module")
def sd_run(tmp_path_factory):
    """A tiny sigma-delta LMU trained and evaluated with the CLI."""
    folder = tmp_path_factory.mktemp("sd")
    recipe = folder / "tiny_sd.py"
    recipe.write_text(TINY_SD)
    run = folder / "run"
    for args in (
        ["train", "--model", recipe, "--out", run, "--n-train", 100],
        ["evaluate", "--run", run, "--n-test", 50],
    ):
        assert cli.main([str(a) for a in args]) == 0, args
    return run


@pytest.mark.slow  # trains and evaluates (about 45 s with the next test)
def test_evaluate_reports_messages_and_payload_bits(sd_run):
    """evaluate's messages and payload bits are those of Nengo's reference
    simulator running the frozen network on the same samples (control: the
    rate network's, threshold 0, are not)."""
    from nengo_hybrid.hardware.run import reference_samples
    from nengo_hybrid.pipeline.runs import read_frozen, recipe_of

    result = json.loads((sd_run / "evaluate.json").read_text())
    assert result["neuron"] == "sigma_delta" and result["threshold"] == 0.1
    assert "activity_bits" not in result and result["max_counts"] == {}
    layer = result["layers"]["hidden"]
    assert layer["updates_per_sample"] == 16 * 8
    assert result["message_fraction"] == layer["messages_per_sample"] / (16 * 8)

    recipe, frozen = recipe_of(sd_run), read_frozen(sd_run)
    x = recipe.load_data().x_test[:50]

    def reference(threshold):
        net = frozen.build(recipe)
        net.lmu.hidden.neuron_type = net.lmu.hidden.neuron_type.with_threshold(
            threshold
        )
        (probe,) = net.layer_probes()
        values = net.inputs(x)
        out = reference_samples(net, values, [probe], 16, seed=0)[probe]
        deltas = metrics.sent_deltas(out, net.lmu.hidden.neuron_type)
        resolution = 2.0 ** -sigma_delta_frac_bits(threshold)
        return metrics.delta_events(deltas) / 50, metrics.payload_bits(
            deltas, resolution
        )

    messages, bits = reference(0.1)
    assert messages > 0
    assert abs(layer["messages_per_sample"] - messages) <= 0.01 * messages
    assert abs(result["payload_bits"] - bits) <= 1
    assert result["max_payloads"]["hidden"].bit_length() + 1 == result["payload_bits"]
    rate_messages, _ = reference(0.0)
    assert abs(layer["messages_per_sample"] - rate_messages) > 0.01 * rate_messages


@pytest.mark.slow
def test_check_deploy_and_report_on_loihi2(capsys, sd_run):
    evaluated = json.loads((sd_run / "evaluate.json").read_text())
    code, _, err = run_cli(capsys, "check", "--run", sd_run, "--profile", "loihi2")
    assert code == 0, err
    checked = json.loads((sd_run / "check.json").read_text())
    (row,) = [r for r in checked["ensembles"] if r["strategy"] == "sigma-delta"]
    assert row["payload_bits_needed"] == evaluated["layers"]["hidden"]["payload_bits"]
    assert row["payload_bits"] == 16 and checked["ok"]
    assert "Sigma-delta ensembles:" in checked["table"]

    code, _, err = run_cli(
        capsys, "deploy", "--run", sd_run, "--profile", "loihi2", "--n-samples", 20,
        "--reference-samples", 5,
    )  # fmt: skip
    assert code == 0, err
    deployed = json.loads((sd_run / "deploy.json").read_text())
    hidden = deployed["layers"]["hidden"]
    assert hidden["kind"] == "sigma_delta" and hidden["events_per_sample"] > 0
    assert hidden["payload_bits_needed"] <= hidden["payload_bits_available"] == 16
    assert 0 <= deployed["accuracy"] <= 1 and len(deployed["predictions"]) == 20

    code, _, err = run_cli(capsys, "report", "--run", sd_run)
    assert code == 0, err
    text = (sd_run / "report.md").read_text()
    assert "| Messages per sample (nonzero deltas, all layers) |" in text
    assert "| Payload bits (widest message, sign included) |" in text
    assert "sigma-delta neurons (messages are deltas)" in text
    assert "n/a (sigma-delta layers send deltas, not spikes)" in text
    assert "| Activity bits (mean over neurons) | n/a" in text
