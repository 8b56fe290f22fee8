"""The project's bad-input matrix, through the command line (issue 12).

Every case runs ``nengo-hybrid`` as a user would (in-process through
`nengo_hybrid.cli.main`; the interrupt through the console script) and asserts:

* the exit code (2: bad input, 3: does not fit the hardware, 130: interrupted);
* an ``error:`` line that names the file or object at fault, and a ``fix:``
  line (the hardware check's violations carry their own ``Fix:``; see
  `EXIT_3_FORMAT`);
* nothing half-written or left over: no ``*.tmp`` file anywhere, every JSON
  file complete, and a failed stage changed nothing in the run folder (no
  partial stage JSON, the checkpoint untouched).

Inputs: neuron parameters in a recipe, data files, shapes, checkpoints,
hardware profiles, over-capacity networks, deployment plans, and SIGINT.
"""

import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from test_cli import TINY_RECIPE, run_cli

from nengo_hybrid import cli
from nengo_hybrid.io import read_npz, write_npz

#: `nengo-hybrid`'s report of a failed hardware check (cli._check_exit) has no
#: "error:"/"fix:" prefixes: "hardware check FAILED on PROFILE" and one line per
#: violation "OBJECT: KIND = VALUE (limit: L) (...). Fix: ..."
EXIT_3_FORMAT = re.compile(r"hardware check FAILED on \S+: \d+ violation")

EXE = pathlib.Path(sys.executable).with_name("nengo-hybrid")


# --------------------------------------------------------------------- inputs


def recipe(folder, name, replace=()):
    """The tiny test recipe, with ``(old, new)`` text replacements."""
    text = TINY_RECIPE.format(n_hidden=8)
    for old, new in replace:
        assert old in text, old
        text = text.replace(old, new)
    path = pathlib.Path(folder) / f"{name}.py"
    path.write_text(text)
    return path


def digits(n, rng, shape=(28, 28)):
    return rng.randint(0, 256, size=(n, *shape)).astype(np.uint8)


def write_npz_data(path, rng, shape=(28, 28), labels=None):
    y = rng.randint(10, size=100) if labels is None else labels
    np.savez(
        path,
        x_train=digits(100, rng, shape),
        y_train=y,
        x_test=digits(50, rng, shape),
        y_test=rng.randint(10, size=50),
    )
    return path


def idx_bytes(array):
    dims = b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return bytes([0, 0, 8, array.ndim]) + dims + array.tobytes()


def write_idx_folder(folder, rng, gzipped=False, mangle=None):
    """The four MNIST IDX files; ``mangle(name, raw) -> raw`` spoils one."""
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    images, labels = digits(100, rng), rng.randint(10, size=100).astype(np.uint8)
    files = {
        "train-images-idx3-ubyte": idx_bytes(images),
        "train-labels-idx1-ubyte": idx_bytes(labels),
        "t10k-images-idx3-ubyte": idx_bytes(images[:50]),
        "t10k-labels-idx1-ubyte": idx_bytes(labels[:50]),
    }
    for name, raw in files.items():
        if gzipped:
            raw, name = gzip.compress(raw), name + ".gz"
        if mangle is not None:
            raw = mangle(name, raw)
        (folder / name).write_bytes(raw)
    return folder


def write_profile(path, name, key=None, value=None, raw=None):
    from nengo_hybrid.hardware.profiles import PROFILE_DIR

    if raw is None:
        data = json.loads(pathlib.Path(PROFILE_DIR, "loihi1.json").read_text())
        data["name"] = name
        data["limits"][key]["value"] = value
        raw = json.dumps(data)
    path.write_text(raw)
    return path


def write_plan(path, model, strategy):
    plan = {
        "model": model,
        "profile": "loihi1",
        "target": "emulator",
        "dt": 0.001,
        "strategy": strategy,
        "host": [],
    }
    path.write_text(json.dumps(plan))
    return path


# --------------------------------------------------------------------- checks


def snapshot(root):
    """``{relative path: sha1}`` of every file under ``root``."""
    root = pathlib.Path(root)
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = pathlib.Path(folder, name)
            found[str(path.relative_to(root))] = hashlib.sha1(
                path.read_bytes()
            ).hexdigest()
    return found


def assert_nothing_half_written(root, before=None):
    """No ``*.tmp`` under ``root``; every JSON file written since ``before`` complete."""
    before = before or {}
    for rel, digest in snapshot(root).items():
        path = pathlib.Path(root, rel)
        assert not path.name.endswith(".tmp"), f"temporary file left: {path}"
        if path.suffix == ".json" and before.get(rel) != digest:
            json.loads(path.read_text())  # complete


def assert_message(err, code, names):
    """``error:`` naming every one of ``names``, and a ``fix:`` line."""
    if code == cli.EXIT_CHECK_FAILED:
        assert EXIT_3_FORMAT.search(err), err
        lines = [line for line in err.splitlines() if "Fix:" in line]
    else:
        lines = [line for line in err.splitlines() if "error:" in line]
        assert any(line.startswith("nengo-hybrid: fix: ") for line in err.splitlines())
    assert lines, err
    for name in names:
        assert any(str(name) in line for line in lines), (name, err)
    assert "Traceback" not in err


# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("bad_inputs")


@pytest.fixture(scope="module")
def tiny(work):
    return recipe(work, "tiny")


@pytest.fixture(scope="module")
def trained(work, tiny):
    """A trained run folder (one epoch, 100 digits) the run-folder cases copy."""
    run = work / "trained"
    code = cli.main(
        ["train", "--model", str(tiny), "--out", str(run), "--n-train", "100"]
    )
    assert code == 0
    assert cli.main(["evaluate", "--run", str(run), "--n-test", "50"]) == 0
    return run


def copy_run(trained, folder):
    shutil.copytree(trained, folder)
    return folder


# --------------------------------------------------------------------- the matrix
# each case: (id, exit code, setup(work, tiny, trained, rng) -> (argv, names, watched))
# ``watched``: a run folder that must not change (None: nothing may be created
# in the case's own folder)


def _recipe_case(replace, command="check"):
    def setup(case, tiny, trained, rng):
        path = recipe(case, "bad", replace)
        out = ["--out", case / "run"] if command == "train" else []
        return [command, "--model", path, *out], [path], None

    return setup


def _data_case(make):
    def setup(case, tiny, trained, rng):
        data = make(case, rng)
        argv = ["train", "--model", tiny, "--data", data, "--out", case / "run"]
        return argv, [make.names(case)], None

    return setup


def _named(names):
    def wrap(make):
        make.names = names
        return make

    return wrap


@_named(lambda case: case / "mnist.npz")
def truncated_npz(case, rng):
    path = write_npz_data(case / "mnist.npz", rng)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


@_named(lambda case: case / "idx" / "train-images-idx3-ubyte.gz")
def truncated_gz_idx(case, rng):
    def cut(name, raw):
        return raw[: len(raw) // 2] if name.startswith("train-images") else raw

    return write_idx_folder(case / "idx", rng, gzipped=True, mangle=cut)


@_named(lambda case: case / "idx" / "t10k-labels-idx1-ubyte")
def idx_cut_in_header(case, rng):
    def cut(name, raw):
        return raw[:6] if name.startswith("t10k-labels") else raw

    return write_idx_folder(case / "idx", rng, mangle=cut)


@_named(lambda case: case / "idx" / "train-labels-idx1-ubyte")
def idx_trailing_bytes(case, rng):
    def extra(name, raw):
        return raw + b"\x00\x01" if name.startswith("train-labels") else raw

    return write_idx_folder(case / "idx", rng, mangle=extra)


@_named(lambda case: case / "mnist.npz")
def npz_wrong_image_shape(case, rng):
    return write_npz_data(case / "mnist.npz", rng, shape=(10, 10))


@_named(lambda case: case / "mnist.npz")
def npz_labels_out_of_range(case, rng):
    return write_npz_data(case / "mnist.npz", rng, labels=np.full(100, 12))


def _checkpoint_case(spoil, command):
    def setup(case, tiny, trained, rng):
        run = copy_run(trained, case / "run")
        spoil(run / "checkpoint.npz")
        if command == "train":
            argv = ["train", "--model", tiny, "--out", run, "--n-train", "100"]
        else:
            argv = [command, "--run", run]
        return argv, [run / "checkpoint.npz"], run

    return setup


def corrupt(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3])


def other_labels(path):
    meta, arrays = read_npz(path)
    (value,) = meta["precision"].values()  # the one hybrid layer, 'hidden'
    meta["precision"] = {"h0": value}
    write_npz(path, arrays, meta)


def _profile_case(key=None, value=None, raw=None):
    def setup(case, tiny, trained, rng):
        path = write_profile(case / "profile.json", "mine", key, value, raw)
        return ["check", "--model", tiny, "--profile", path], [path], None

    return setup


def _over_capacity(command):
    def setup(case, tiny, trained, rng):
        profile = write_profile(
            case / "tiny-cores.json", "tiny-cores", "input_axons_per_core", 8
        )
        run = copy_run(trained, case / "run")
        argv = [command, "--run", run, "--profile", profile]
        return argv, ["<Ensemble 'hidden'>", "input_axons"], run

    return setup


def _plan_case(strategy):
    def setup(case, tiny, trained, rng):
        path = write_plan(case / "plan.json", "tiny", strategy)
        return ["check", "--model", tiny, "--plan", path], [path], None

    return setup


SEED_END = ("seed=0,\n", "seed=0,\n    precision={},\n")
CASES = [
    # neuron parameters in a recipe
    ("precision_negative", 2, _recipe_case([(SEED_END[0], SEED_END[1].format(-1.0))])),
    ("precision_zero", 2, _recipe_case([(SEED_END[0], SEED_END[1].format(0))])),
    ("precision_infinite", 2, _recipe_case([(SEED_END[0], SEED_END[1].format("1e999"))])),
    ("precision_string", 2, _recipe_case([(SEED_END[0], SEED_END[1].format("'high'"))])),
    ("schedule_end_zero", 2, _recipe_case([("end=2.0", "end=0.0")], "train")),
    ("no_hidden_neurons", 2, _recipe_case([("n_hidden=8", "n_hidden=0")])),
    # data files
    ("truncated_npz", 2, _data_case(truncated_npz)),
    ("truncated_gz_idx", 2, _data_case(truncated_gz_idx)),
    ("idx_cut_in_header", 2, _data_case(idx_cut_in_header)),
    ("idx_trailing_bytes", 2, _data_case(idx_trailing_bytes)),
    # shapes
    ("recipe_steps_not_the_datas", 2, _recipe_case([("n_steps=16", "n_steps=20")], "train")),
    ("npz_wrong_image_shape", 2, _data_case(npz_wrong_image_shape)),
    ("npz_labels_out_of_range", 2, _data_case(npz_labels_out_of_range)),
    # checkpoints
    ("checkpoint_corrupt_resume", 2, _checkpoint_case(corrupt, "train")),
    ("checkpoint_corrupt_freeze", 2, _checkpoint_case(corrupt, "freeze")),
    ("checkpoint_other_labels_resume", 2, _checkpoint_case(other_labels, "train")),
    ("checkpoint_other_labels_freeze", 2, _checkpoint_case(other_labels, "freeze")),
    # hardware profiles
    ("profile_zero_limit", 2, _profile_case("compartments_per_core", 0)),
    ("profile_string_limit", 2, _profile_case("synapse_bits_per_core", "lots")),
    ("profile_negative_limit", 2, _profile_case("input_axons_per_core", -1)),
    ("profile_broken_json", 2, _profile_case(raw='{"name": "mine", "limits": {')),
    # over-capacity networks
    ("over_capacity_check", 3, _over_capacity("check")),
    ("over_capacity_deploy", 3, _over_capacity("deploy")),
    # deployment plans
    ("plan_unknown_label", 2, _plan_case({"default": "auto", "nosuch": "onebit"})),
    ("plan_bad_strategy", 2, _plan_case({"default": "expand:zero"})),
]  # fmt: skip


@pytest.mark.parametrize("case_id, code, setup", CASES, ids=[case[0] for case in CASES])
def test_bad_input(capsys, work, tiny, trained, case_id, code, setup):
    case = work / case_id
    case.mkdir()
    argv, names, watched = setup(case, tiny, trained, np.random.RandomState(0))
    before = snapshot(watched) if watched is not None else None
    inputs = snapshot(case)
    capsys.readouterr()

    got, _, err = run_cli(capsys, *argv)

    assert got == code, err
    assert_message(err, code, names)
    assert_nothing_half_written(case, inputs)
    if watched is None:
        assert not (case / "run").exists() or not any((case / "run").iterdir())
        return
    after = snapshot(watched)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    if code == 3:
        # the failed check is recorded, complete; nothing else changes (deploy
        # checks again for another profile, and writes no deploy.json)
        assert changed == {"check.json"}
        result = json.loads((watched / "check.json").read_text())
        assert not result["ok"] and result["violations"]
    else:
        assert not changed, changed  # no partial stage JSON, checkpoint untouched


# --------------------------------------------------------------------- interrupt


def test_a_sigint_swallowed_by_a_finalizer_is_raised_again(monkeypatch):
    """The mechanism behind one Ctrl-C stopping training: Python drops a
    KeyboardInterrupt raised inside a finalizer; `raise_if_interrupted` (called
    before each training batch) raises it again from ordinary code."""
    import gc
    import weakref

    from nengo_hybrid import interrupts

    class Garbage:
        pass

    def interrupted_inside_a_finalizer():
        obj = Garbage()
        weakref.finalize(obj, os.kill, os.getpid(), signal.SIGINT)
        del obj  # the finalizer runs here; its KeyboardInterrupt is "ignored"
        gc.collect()

    previous = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(interrupts, "_pending", False)
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's default
        interrupted_inside_a_finalizer()  # control: the interrupt is lost
        interrupts.raise_if_interrupted()

        interrupts.install()
        interrupted_inside_a_finalizer()
        with pytest.raises(KeyboardInterrupt):
            interrupts.raise_if_interrupted()
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow  # a minute: two training processes; the mechanism is tested above
def test_interrupt_exits_130_and_the_next_run_resumes(tiny, tmp_path):
    if not EXE.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    run = tmp_path / "run"
    argv = [str(EXE), "train", "--model", str(tiny), "--out", str(run)]
    argv += ["--n-train", "200", "--epochs", "10", "--seed", "3"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while not (run / "checkpoint.npz").exists():  # interrupt after an epoch
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint after 300 s"
        time.sleep(0.05)
    # one Ctrl-C must do: Python drops a KeyboardInterrupt raised inside a
    # finalizer ("Exception ignored in ..."), and TensorFlow runs many, so the
    # command line records the signal and raises again between batches
    # (nengo_hybrid.interrupts). Without that, this run went on to finish.
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("one SIGINT did not stop nengo-hybrid train") from None
    assert proc.returncode == cli.EXIT_INTERRUPTED == 130, err
    assert "nengo-hybrid: interrupted" in err and "Traceback" not in err
    assert_nothing_half_written(run)
    assert not (run / "train.json").exists()  # the stage did not finish
    meta, _ = read_npz(run / "checkpoint.npz")  # complete and readable
    done = meta["epochs_done"]
    assert 1 <= done < 10

    # the same command again: resumes where the checkpoint stopped
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    history = json.loads((run / "train.json").read_text())["history"]["epochs"]
    assert len(history) == 10
    # epochs before the interrupt were not trained again (same records, times)
    assert history[:done] == meta["history"]["epochs"][:done]
    assert_nothing_half_written(run)
