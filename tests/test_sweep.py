"""Tests of `nengo-hybrid sweep`: specs, trials on a local Ray, resumption, reports.

The trials are real: a tiny LMU recipe (8 hidden units, 16-step psMNIST from
the embedded digits, as in test_cli.py) and a tiny GRU, trained for one or a
few epochs on a local Ray shared by the tests of this module (two CPUs, a
fresh worker process per trial).
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from test_cli import run_cli, write_recipe

from nengo_hybrid import cli, sweep, sweep_report

ray = pytest.importorskip("ray")

BIG_BATCH_RECIPE = "minibatch_size=50,"


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    return write_recipe(tmp_path_factory.mktemp("recipes"))


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (sweep.run uses a Ray that is running)."""
    import logging

    ray.init(address="local", num_cpus=2, include_dashboard=False,
             log_to_driver=False, logging_level=logging.WARNING,
             object_store_memory=200 * 2**20)  # fmt: skip
    yield ray
    ray.shutdown()


def spec_for(recipe, **changes):
    spec = dict(
        name="t",
        seeds=[1],
        epochs=1,
        n_train=200,
        n_test=100,
        hybrid=dict(models=[str(recipe)], pools=[7], precisions=[2]),
        report=False,
    )
    spec.update(changes)
    return spec


def records(out, planned):
    return {t.id: sweep.read_trial(planned.folder(out, t)) for t in planned.trials}


# ------------------------------------------------------------------- specs


def test_plan_expands_the_grid(recipe):
    planned = sweep.plan(
        spec_for(
            recipe,
            seeds=[0, 1],
            hybrid=dict(
                models=[str(recipe)],
                pools=[7, 14],
                precisions=[1, 4],
                schedules=["geometric", "constant", "linear:32"],
            ),
            baselines=dict(
                models=["gru", "lstm", "rate_lmu"],
                epochs=[2],
                budget_seconds=[30, "match"],
            ),
        )  # fmt: skip
    )
    kinds = [t.kind for t in planned.trials]
    # pools x precisions x schedules x seeds
    assert kinds.count("hybrid") == 2 * 2 * 2 * 3
    # pools (from hybrid) x (epochs, 2 budgets) x seeds
    assert kinds.count("gru") == 2 * 3 * 2
    assert len({t.id for t in planned.trials}) == len(planned.trials)
    by_id = {t.id: t for t in planned.trials}
    steps = {t.pool: t.n_steps for t in planned.trials}
    assert steps == {7: 16, 14: 4}
    schedules = {t.schedule for t in by_id.values() if t.kind == "hybrid"}
    assert {"geometric:16:4", "constant:1", "linear:32:4"} <= schedules
    budgets = [t for t in planned.trials if t.budget_seconds is not None]
    assert budgets and all(t.epochs is None for t in budgets)
    match = [t for t in budgets if t.budget_seconds == "match"]
    assert match and "bmatchs" in match[0].id and "hybrid's time" in match[0].label
    hybrids = [t for t in planned.trials if match[0].matches(t)]
    assert len(hybrids) == 2 * 3 and {t.seed for t in hybrids} == {match[0].seed}
    # the same spec is the same trials (same folders): what resuming relies on
    assert [t.id for t in sweep.plan(planned.spec).trials] == list(by_id)


def test_trial_recipe_follows_the_sequence_length(recipe):
    planned = sweep.plan(spec_for(recipe, hybrid=dict(
        models=[str(recipe)], pools=[14], precisions=[3], schedules=["constant"])))  # fmt: skip
    r = sweep.trial_recipe(planned.trials[0])
    assert r["data"]["pool"] == 14 and r["n_steps"] == 4
    assert r["network"]["theta"] == 4  # theta was the sequence length: it follows
    assert r["seed"] == 1 and r["schedule"]["end"] == 3


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(hybrid=dict(models=["no_such_model"], precisions=[2])), "unknown model"),
        (dict(hybrid=dict(models=["lmu_quick"], precisions=[2, -1])), "positive"),
        (dict(hybrid=dict(models=["lmu_quick"], precisions=[0])), "positive"),
        (dict(hybrid=dict(models=["lmu_quick"], precisions=[])), "grid is empty"),
        (dict(seeds=[]), "grid is empty"),
        (dict(hybrid=None), "grid is empty"),
        (dict(hybrid=dict(models=["lmu_quick"], precisions=[2], pools=[3])), "28"),
        (dict(hybrid=dict(models=["mnist_dense"], precisions=[2])), "psmnist"),
        (dict(hybrid=dict(models=["lmu_quick_sd"], precisions=[2])), "sigma_delta"),
        (dict(hybrid=dict(precisions=[2], schedules=["zigzag"])), "schedule"),
        (dict(baselines=dict(models=["transformer"])), "unknown baseline"),
        (dict(baselines=dict(models=["gru"], budget_seconds=[-5])), "positive"),
        (dict(hybrid=None, baselines=dict(budget_seconds=["match"])), "match needs"),
        (dict(epochs=0), "epochs"),
        (dict(hybrid=dict(precisions=[2], budget_seconds=[9])), "budget_seconds"),
        (dict(precision=[2]), "unknown key"),
        (dict(data="/no/such/mnist.npz"), "no such file"),
    ],
)
def test_bad_spec_is_refused_before_any_trial(
    recipe, tmp_path, capsys, change, message
):
    spec = dict(seeds=[0], epochs=1, hybrid=dict(models=["lmu_quick"], precisions=[2]))
    spec.update(change)
    with pytest.raises(sweep.SweepSpecError, match=message):
        sweep.plan(spec)
    # the command: exit 2, the reason and a fix, and nothing written
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec))
    code, _, err = run_cli(capsys, "sweep", path, "--out", tmp_path / "out")
    assert code == cli.EXIT_USAGE
    assert message.split()[0] in err and "fix:" in err
    assert not (tmp_path / "out").exists()


def test_unreadable_spec(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("seeds: [0\n")
    code, _, err = run_cli(capsys, "sweep", path)
    assert code == cli.EXIT_USAGE and "not valid YAML" in err
    code, _, err = run_cli(capsys, "sweep", tmp_path / "missing.yaml")
    assert code == cli.EXIT_USAGE and "cannot read sweep spec" in err


def test_example_spec_plans(capsys):
    example = pathlib.Path(__file__).parents[1] / "sweeps" / "quick.yaml"
    code, out, _ = run_cli(capsys, "sweep", example, "--dry-run")
    assert code == 0
    assert out.count("todo") == 8 and "gru-49steps" in out


def test_help_shows_a_spec(capsys):
    code, out, _ = run_cli(capsys, "sweep", "--help")
    assert code == 0
    for text in ("--address", "--workers", "precisions:", "budget_seconds", "pools:"):
        assert text in out


# ----------------------------------------------------------------- running


@pytest.fixture(scope="module")
def finished(recipe, tmp_path_factory, local_ray):
    """A sweep of a hybrid LMU, a GRU and a trial that fails, run once."""
    folder = tmp_path_factory.mktemp("sweep")
    broken = folder / "broken.py"
    broken.write_text(
        recipe.read_text().replace(BIG_BATCH_RECIPE, "minibatch_size=5000,")
    )
    spec = spec_for(
        recipe,
        hybrid=dict(models=[str(recipe), str(broken)], pools=[7], precisions=[2]),
        baselines=dict(
            models=["gru"], recipe=str(recipe), epochs=[1], budget_seconds=["match"]
        ),
        report=True,
        check=True,
    )
    planned = sweep.plan(spec)
    out = folder / "out"
    tic = time.perf_counter()
    summary = sweep.run(planned, out, workers=2, progress=False)
    summary["test_seconds"] = time.perf_counter() - tic
    return planned, out, summary


def test_sweep_runs_on_local_ray_and_aggregates(finished):
    planned, out, summary = finished
    assert len(planned.trials) == 4
    assert summary["started"] == 4 and summary["done"] == 3 and summary["failed"] == 1
    found = records(out, planned)
    hybrid = next(r for r in found.values() if r["trial"]["model"] == "tiny")
    assert hybrid["status"] == "done"
    folder = out / "trials" / hybrid["id"]
    # an ordinary run folder: the stages' files, and the report works on it
    for name in ("train.json", "checkpoint.npz", "frozen.npz", "evaluate.json",
                 "check.json", "report.md"):  # fmt: skip
        assert (folder / name).exists(), name
    assert hybrid["result"]["epochs"] == 1
    assert 0 <= hybrid["result"]["test_accuracy"] <= 1
    assert hybrid["attempts"][0]["pid"] != os.getpid()  # ran in a Ray worker
    gru = next(
        r
        for r in found.values()
        if r["trial"]["kind"] == "gru" and r["trial"]["epochs"]
    )
    assert gru["status"] == "done" and gru["result"]["activity_bits"] == 32
    # equal wall time: trained (at least) as long as the hybrid that finished
    match = next(r for r in found.values() if r["trial"]["budget_seconds"] == "match")
    assert match["status"] == "done"
    assert match["result"]["budget_seconds"] == hybrid["result"]["train_seconds"]
    assert match["result"]["train_seconds"] >= hybrid["result"]["train_seconds"]

    record = json.loads((out / "sweep.json").read_text())
    assert record["status"] == dict(trials=4, done=3, failed=1, not_run=0)
    assert {g["kind"] for g in record["groups"]} == {"hybrid", "gru"}
    for row in record["trials"]:
        assert "seed" in row and "data" in row
    done = [r for r in record["trials"] if r["status"] == "done"]
    assert all("16 steps" in r["data"] and r["versions"]["nengo-dl"] for r in done)
    assert any(g["pareto"] for g in record["groups"])
    claims = {c["comparison"]: c for c in record["claims"]}
    assert claims["equal epochs"]["per_seed"][0]["gru_trial"] == gru["id"]
    assert claims["equal wall time"]["per_seed"][0]["gru_trial"] in (
        gru["id"],  # if one epoch took about as long as the hybrid's training
        match["id"],
    )
    assert claims["equal wall time"]["compared_with"] == ["gru"]
    text = (out / "sweep.md").read_text()
    assert "Pareto" in text and "The paper's claim" in text
    for name in ("accuracy_vs_bits.png", "accuracy_vs_time.png"):
        assert (out / "plots" / name).read_bytes().startswith(b"\x89PNG")
    assert not list(out.rglob(".*.tmp"))


def test_failing_trial_is_recorded_and_the_others_go_on(finished):
    planned, out, _ = finished
    failed = [r for r in records(out, planned).values() if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["trial"]["model"] == "broken"
    assert "minibatch" in failed[0]["error"] and "Traceback" in failed[0]["traceback"]
    assert "broken" in (out / "sweep.md").read_text()


def test_rerunning_a_finished_sweep_starts_no_trial(finished, capsys):
    planned, out, _ = finished
    ok = [t for t in planned.trials if t.model != "broken"]
    done = sweep.Sweep(planned.name, planned.spec, ok)
    before = {t.id: (planned.folder(out, t) / "trial.json").stat().st_mtime_ns
              for t in ok}  # fmt: skip
    summary = sweep.run(done, out, progress=False)
    assert summary["started"] == 0 and summary["skipped"] == 3
    after = {t.id: (planned.folder(out, t) / "trial.json").stat().st_mtime_ns
             for t in ok}  # fmt: skip
    assert after == before
    record = json.loads((out / "sweep.json").read_text())
    assert record["sessions"][-1]["started"] == 0


def test_report_command_works_on_a_trial(finished, capsys):
    planned, out, _ = finished
    trial = next(t for t in planned.trials if t.model == "tiny")
    code, _, _ = run_cli(capsys, "report", "--run", planned.folder(out, trial))
    assert code == 0


def _kill_after_first_epoch(folder, killed, timeout=120):
    """Wait for the trial's first checkpoint, then SIGKILL its worker process."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        record = sweep.read_trial(folder)
        if record and (folder / "checkpoint.npz").exists():
            pid = record["attempts"][0]["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


@pytest.mark.slow  # about 2 minutes: a fresh Ray trial, killed and retried
def test_killed_worker_is_retried_and_resumes_from_its_checkpoint(
    recipe, tmp_path, local_ray
):
    planned = sweep.plan(spec_for(recipe, epochs=3, n_train=500))
    (trial,) = planned.trials
    out = tmp_path / "killed"
    # the reference: the same trial, uninterrupted, in another Ray worker
    reference = tmp_path / "reference"
    task = ray.remote(num_cpus=1, max_calls=1)(sweep.run_trial)
    uninterrupted = task.remote(trial.to_dict(), str(reference), 1)

    killed = []
    killer = threading.Thread(
        target=_kill_after_first_epoch, args=(planned.folder(out, trial), killed)
    )
    killer.start()
    summary = sweep.run(planned, out, workers=2, max_retries=2, progress=False)
    killer.join()
    expected = ray.get(uninterrupted)

    assert killed, "the trial finished before it could be killed"
    record = sweep.read_trial(planned.folder(out, trial))
    assert summary["done"] == 1 and record["status"] == "done"
    first, retry = record["attempts"]
    assert first["pid"] == killed[0] and retry["pid"] != first["pid"]
    assert 1 <= retry["resumed_from_epoch"] < 3  # resumed, not started afresh
    result, reference_result = record["result"], expected["result"]
    assert result["test_accuracy"] == reference_result["test_accuracy"]
    assert result["activity_bits"] == reference_result["activity_bits"]
    evaluated = [
        json.loads((f / "evaluate.json").read_text())
        for f in (planned.folder(out, trial), reference)
    ]
    assert evaluated[0]["predictions"] == evaluated[1]["predictions"]
    frozen = [
        np.load(f / "frozen.npz") for f in (planned.folder(out, trial), reference)
    ]
    for key in frozen[1].files:
        np.testing.assert_array_equal(frozen[0][key], frozen[1][key], err_msg=key)


# ----------------------------------------------------------------- command


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_the_sweep_resumes(recipe, tmp_path):
    """SIGINT to `nengo-hybrid sweep`: exit 130, no partial files; resumes."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_for(recipe, epochs=3, n_train=500)))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "nengo_hybrid.cli", "sweep", str(spec),
               "--out", str(out), "--workers", "1"]  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    planned = sweep.plan(json.loads(spec.read_text()))
    folder = planned.folder(out, planned.trials[0])
    deadline = time.time() + 180
    while not (folder / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == cli.EXIT_INTERRUPTED, err
    assert not list(out.rglob(".*.tmp"))
    record = sweep.read_trial(folder)  # complete JSON, not done
    assert record["status"] in ("interrupted", "running")
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    record = sweep.read_trial(folder)
    assert record["status"] == "done"
    assert record["attempts"][-1]["resumed_from_epoch"] >= 1


def test_aggregate_marks_the_pareto_front():
    rows = []
    for kind, bits, acc in [("hybrid", 1.5, 0.80), ("hybrid", 2.5, 0.78),
                            ("hybrid", 3.5, 0.90), ("gru", 32, 0.85)]:  # fmt: skip
        for seed, noise in ((0, -0.01), (1, 0.01)):
            rows.append(dict(
                status="done", group=f"{kind}{bits}", label=f"{kind} {bits}",
                kind=kind, model="m", n_steps=49, precision=bits, schedule="s",
                epochs=3, budget_seconds=None, data="d", seed=seed, versions={},
                test_accuracy=acc + noise, activity_bits=bits, train_seconds=10.0,
                epochs_trained=3, id=f"{kind}{bits}-{seed}",
            ))  # fmt: skip
    found = {g["label"]: g for g in sweep_report.groups(rows)}
    assert [k for k, g in found.items() if g["pareto"]] == ["hybrid 1.5", "hybrid 3.5"]
    assert found["hybrid 3.5"]["accuracy_sd"] == pytest.approx(
        np.std([0.89, 0.91], ddof=1)
    )
    (claim,) = [c for c in sweep_report.claims(rows, list(found.values()))
                if c["comparison"] == "equal epochs"]  # fmt: skip
    assert claim["hybrid"] == "hybrid 3.5" and claim["verdict"] == "holds"
    assert claim["compared_with"] == ["gru"] and "no LSTM" in claim["note"]
