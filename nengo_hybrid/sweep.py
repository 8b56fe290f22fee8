"""Sweeps: grids of trials (hybrid LMUs and baselines) run as Ray tasks.

A *sweep spec* (YAML or JSON, `load_spec`) names a grid; `plan` checks it
completely and expands it into `Trial` objects before anything runs::

    name: quick                 # default: the spec file's name
    data: embedded              # embedded | mnist | PATH (as --data)
    seeds: [0, 1, 2]
    epochs: 10                  # default for every trial
    n_train: 2000               # optional: first N training examples
    n_test: 500                 # optional: first N test examples
    hybrid:                     # hybrid-spiking LMUs, trained by the pipeline
      models: [lmu_quick]       # psmnist recipes (names or paths)
      pools: [4, 2, 1]          # average pooling: 49, 196, 784 steps
      precisions: [1, 2, 4, 8]  # final precision (where the schedule ends)
      schedules: [geometric]    # KIND or KIND:START (linear, geometric, cosine,
                                # constant = train at the final precision)
    baselines:                  # non-spiking, `nengo_hybrid.baselines`
      models: [lstm, gru, rate_lmu]
      recipe: lmu_quick         # hidden size, minibatch, learning rate, seed
      epochs: [10]              # equal epochs
      budget_seconds: [match]   # and/or equal wall time: train as long as the
                                # hybrids of that pool and seed (or N seconds)
    check: false                # hybrid trials: also run the hardware check
    deploy: false               #   ... and the emulator
    report: true                #   ... and write report.md

`run` runs the trials that are not finished yet as Ray tasks (a local Ray by
default, one trial per core; ``address`` joins a cluster) and `aggregate`
(`nengo_hybrid.sweep_report`) writes ``sweep.json``, ``sweep.md`` and plots.

Each trial is a folder ``OUT/trials/ID``: for a hybrid trial an ordinary run
folder made by the pipeline stages (``train.json``, ``checkpoint.npz``,
``frozen.npz``, ``evaluate.json``, ...; ``nengo-hybrid report --run`` works on
it), for a baseline its checkpoint; both with ``trial.json`` (the trial, its
status, attempts, result or error) and ``trial.log``. The ID is readable and
ends with a hash of everything that defines the trial, so the same spec maps to
the same folders: a finished trial is skipped, an interrupted one resumes from
its checkpoint, a failed one runs again.
"""

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import pathlib
import socket
import sys
import time
import traceback

from nengo_hybrid import io as nio
from nengo_hybrid.io import UserError

TRIAL_FORMAT = "nengo-hybrid-trial-1"
TRIAL_JSON = "trial.json"
TRIAL_LOG = "trial.log"
TRIALS_DIR = "trials"
SPEC_JSON = "spec.json"
BASELINE_CHECKPOINT = "checkpoint.npz"

HYBRID = "hybrid"
BASELINES = ("lstm", "gru", "rate_lmu")
SCHEDULE_KINDS = ("geometric", "linear", "cosine", "constant")
POOLS = (1, 2, 4, 7, 14)  # divisors of 28: 784, 196, 49, 16, 4 steps

TOP_KEYS = {
    "name": "the sweep's name (default: the spec file's name)",
    "data": "embedded, mnist or a path (as --data)",
    "seeds": "list of seeds",
    "epochs": "epochs of every trial (a section may override)",
    "n_train": "first N training examples",
    "n_test": "first N test examples",
    "hybrid": "the hybrid-spiking LMUs: models, pools, precisions, schedules",
    "baselines": "lstm, gru, rate_lmu: models, recipe, pools, epochs, budget_seconds",
    "max_epochs": "most epochs a budget_seconds trial may take",
    "check": "run the hardware check on hybrid trials (true/false)",
    "deploy": "run hybrid trials on the emulator (true/false)",
    "report": "write report.md in hybrid trials (true/false)",
}
HYBRID_KEYS = ("models", "pools", "precisions", "schedules", "epochs", "seeds")
BASELINE_KEYS = ("models", "recipe", "pools", "epochs", "budget_seconds", "seeds")
#: ``budget_seconds: match``: the training time of the sweep's hybrid trials
MATCH = "match"


class SweepError(UserError):
    """A sweep cannot start: no Ray, no cluster at the address (``hint``: fix)."""


class SweepSpecError(SweepError):
    """A sweep spec is unreadable or invalid (``hint`` says how to fix it)."""


# ------------------------------------------------------------------- trials


@dataclasses.dataclass(frozen=True)
class Trial:
    """One trial of a sweep: a hybrid LMU or a baseline, with one seed.

    Attributes
    ----------
    kind : str
        ``"hybrid"``, ``"lstm"``, ``"gru"`` or ``"rate_lmu"``.
    model : str
        The recipe's name (for baselines: the recipe they take sizes from).
    recipe_path : str
        The recipe file.
    recipe_digest : str
        Hash of the recipe's settings (a changed recipe is a new trial).
    pool, n_steps : int
        Average pooling of the digits and the resulting sequence length.
    seed : int
    data : str
        ``embedded``, ``mnist`` or a path.
    epochs : int or None
        Epochs; ``None`` when ``budget_seconds`` is set (baselines only).
    budget_seconds : float, "match" or None
        Train until the training time reaches this; ``"match"``: the longest
        training time of the sweep's hybrid trials of the same pooling and
        seed (resolved when they have finished).
    max_epochs : int
        Most epochs of a budget trial.
    precision : float or None
        Hybrid: the final precision.
    schedule : str or None
        Hybrid: the schedule's spelling (`nengo_hybrid.pipeline.specs`).
    n_train, n_test : int or None
    check, deploy, report : bool
        Hybrid: extra pipeline stages (not part of the trial's identity).
    """

    kind: str
    model: str
    recipe_path: str
    recipe_digest: str
    pool: int
    n_steps: int
    seed: int
    data: str
    epochs: int = None
    budget_seconds: float = None
    max_epochs: int = 1000
    precision: float = None
    schedule: str = None
    n_train: int = None
    n_test: int = None
    check: bool = False
    deploy: bool = False
    report: bool = True

    #: fields that do not change what a trial computes
    NOT_IDENTITY = ("recipe_path", "check", "deploy", "report")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})

    def identity(self):
        """What defines the trial's result (everything but paths and extra stages)."""
        return {k: v for k, v in self.to_dict().items() if k not in self.NOT_IDENTITY}

    @property
    def id(self):
        """Readable folder name plus a hash of `identity`."""
        text = json.dumps(self.identity(), sort_keys=True)
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
        budget = f"e{self.epochs}" if self.epochs is not None else f"b{self.budget}s"
        if self.kind == HYBRID:
            sched = self.schedule.split(":")[0]
            head = f"{self.model}-{self.n_steps}steps-p{self.precision:g}-{sched}"
        else:
            head = f"{self.kind}-{self.n_steps}steps"
        return f"{head}-{budget}-seed{self.seed}-{digest}"

    @property
    def budget(self):
        """``budget_seconds`` as text (``"match"`` or the number)."""
        b = self.budget_seconds
        return b if b == MATCH else f"{b:g}"

    def matches(self, other):
        """Whether hybrid trial ``other`` sets the time of this ``match`` trial."""
        return other.kind == HYBRID and all(
            getattr(other, k) == getattr(self, k)
            for k in ("pool", "seed", "data", "n_train")
        )

    @property
    def group(self):
        """The trial's configuration without its seed (trials averaged over seeds)."""
        return {k: v for k, v in self.identity().items() if k != "seed"}

    @property
    def label(self):
        """A short name for tables and plots."""
        budget = (
            f"{self.epochs} ep"
            if self.epochs is not None
            else "hybrid's time"
            if self.budget_seconds == MATCH
            else f"{self.budget_seconds:g} s"
        )
        if self.kind == HYBRID:
            return (
                f"hybrid {self.model} p={self.precision:g} ({self.schedule}), {budget}"
            )
        name = {"lstm": "LSTM", "gru": "GRU", "rate_lmu": "LMU (non-spiking)"}
        return f"{name[self.kind]}, {budget}"


@dataclasses.dataclass
class Sweep:
    """A planned sweep: its name, the spec it came from and its trials."""

    name: str
    spec: dict
    trials: list

    def folder(self, out, trial):
        return pathlib.Path(out) / TRIALS_DIR / trial.id


# --------------------------------------------------------------- spec: parse


def load_spec(path):
    """Read a sweep spec (``.yaml``/``.yml`` or ``.json``) as a dict."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SweepSpecError(
            f"cannot read sweep spec {path}: {err.strerror or err}",
            hint="give a .yaml or .json sweep spec (see `nengo-hybrid sweep --help`)",
        ) from err
    try:
        if path.suffix.lower() == ".json":
            spec = json.loads(text)
        else:
            import yaml

            spec = yaml.safe_load(text)
    except Exception as err:  # json.JSONDecodeError, yaml.YAMLError
        raise SweepSpecError(
            f"sweep spec {path} is not valid {path.suffix.lstrip('.').upper() or 'YAML'}:"
            f" {err}",
            hint="fix the syntax; see the example in `nengo-hybrid sweep --help`",
        ) from err
    if not isinstance(spec, dict):
        raise SweepSpecError(
            f"sweep spec {path} must be a mapping (keys like seeds, hybrid, baselines)",
            hint="see the example in `nengo-hybrid sweep --help`",
        )
    spec.setdefault("name", path.stem)
    return spec


def _error(message, hint=None):
    return SweepSpecError(
        message, hint=hint or "see the example in `nengo-hybrid sweep --help`"
    )


def _list(section, key, value):
    where = f"{section}.{key}" if section else key
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not values:
        raise _error(
            f"the grid is empty: {where} is an empty list",
            hint=f"give {where} at least one value, or leave it out",
        )
    return values


def _ints(section, key, values, minimum, wording):
    where = f"{section}.{key}" if section else key
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise _error(f"{where} must be whole numbers {wording}, got {v!r}")
        out.append(int(v))
    return out


def _positive(section, key, values):
    where = f"{section}.{key}" if section else key
    out = []
    for v in values:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if not ok or not math.isfinite(v) or v <= 0:
            raise _error(
                f"{where} must be positive numbers, got {v!r}",
                hint=f"{where}: precisions and budgets are > 0 (e.g. [1, 2, 4, 8])",
            )
        out.append(float(v))
    return out


def _check_keys(where, section, allowed):
    if not isinstance(section, dict):
        raise _error(f"{where} must be a mapping, got {section!r}")
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise _error(
            f"{where} has unknown key(s) {', '.join(map(repr, unknown))}",
            hint=f"{where} takes {', '.join(allowed)}",
        )


def _recipe(model, where):
    from nengo_hybrid import zoo

    try:
        recipe = zoo.read(model)
    except zoo.RecipeError as err:
        raise _error(f"{where}: {err}", hint=err.hint) from err
    if recipe.task.name != "psmnist":
        raise _error(
            f"{where}: recipe {recipe.name!r} has task {recipe.task.name!r}; sweeps "
            "train psmnist recipes (sequence length, precision schedules, baselines)",
            hint="use a psmnist recipe such as lmu_quick or lmu_paper",
        )
    if recipe.get("neuron", "hybrid") != "hybrid":
        raise _error(
            f"{where}: recipe {recipe.name!r} has {recipe['neuron']} neurons; sweeps "
            "anneal and compare the precision of HybridSpiking neurons",
            hint="use a HybridSpiking recipe such as lmu_quick; compare SigmaDelta "
            "with benchmarks/loihi2_study.py",
        )
    return recipe


def _digest(recipe):
    text = json.dumps(nio.to_jsonable(recipe.settings), sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def _schedule(kind, recipe, precision, where):
    """The spelling of a schedule ending at ``precision`` (KIND or KIND:START)."""
    name, _, start = str(kind).strip().lower().partition(":")
    if name not in SCHEDULE_KINDS:
        raise _error(
            f"{where}: unknown schedule {kind!r}",
            hint=f"use {', '.join(SCHEDULE_KINDS)}, optionally KIND:START (the "
            "schedule ends at each precision)",
        )
    if name == "constant":
        if start:
            raise _error(f"{where}: constant takes no start (it is the precision)")
        return f"constant:{precision:g}"
    if start:
        try:
            begin = float(start)
        except ValueError:
            raise _error(f"{where}: bad start in schedule {kind!r}") from None
        if not math.isfinite(begin) or begin <= 0:
            raise _error(f"{where}: schedule start must be > 0, got {start}")
    else:
        begin = float(recipe["schedule"].get("start", precision))
    return f"{name}:{max(begin, precision):g}:{precision:g}"


def _data(spec):
    from nengo_hybrid.pipeline.specs import parse_data

    data = spec.get("data", "embedded")
    if not isinstance(data, str) or not data:
        raise _error(f"data must be embedded, mnist or a path, got {data!r}")
    _, path = parse_data(data)
    if path is not None:
        resolved = pathlib.Path(path).expanduser().resolve()
        if not resolved.exists():
            raise _error(
                f"data {data!r}: no such file or folder",
                hint="give mnist.npz or a folder with the four MNIST IDX files, or "
                "embedded",
            )
        return str(resolved)
    return data


def plan(spec):
    """Check a spec (a dict, e.g. from `load_spec`) and expand it into a `Sweep`.

    Every error (unknown keys, models or schedules, non-positive precisions,
    empty grids, missing data files) is raised here, as a `SweepSpecError`,
    before any trial runs.
    """
    if not isinstance(spec, dict):
        raise _error("a sweep spec must be a mapping")
    _check_keys("the sweep spec", spec, list(TOP_KEYS))
    name = str(spec.get("name") or "sweep")
    data = _data(spec)
    seeds = _ints("", "seeds", _list("", "seeds", spec.get("seeds", [0])), 0, ">= 0")
    epochs = _ints(
        "", "epochs", _list("", "epochs", spec.get("epochs")) or [], 1, ">= 1"
    )
    n_train, n_test = (
        None if spec.get(k) is None else _ints("", k, [spec[k]], 1, ">= 1")[0]
        for k in ("n_train", "n_test")
    )
    max_epochs = _ints("", "max_epochs", [spec.get("max_epochs", 1000)], 1, ">= 1")[0]
    flags = {}
    for key, default in (("check", False), ("deploy", False), ("report", True)):
        value = spec.get(key, default)
        if not isinstance(value, bool):
            raise _error(f"{key} must be true or false, got {value!r}")
        flags[key] = value
    common = dict(data=data, n_train=n_train, n_test=n_test, max_epochs=max_epochs)

    if spec.get("hybrid") is None and spec.get("baselines") is None:
        raise _error(
            "the grid is empty: the spec has neither hybrid nor baselines",
            hint="add a hybrid section (models, precisions, ...) and/or baselines",
        )
    trials = []
    hybrid_models = []
    if spec.get("hybrid") is not None:
        section = spec["hybrid"]
        if isinstance(section, dict) and "budget_seconds" in section:
            raise _error(
                "hybrid trials train for a number of epochs (the precision schedule "
                "anneals over them); budget_seconds is for baselines",
                hint="give hybrid.epochs, and baselines.budget_seconds for equal "
                "wall time",
            )
        _check_keys("hybrid", section, HYBRID_KEYS)
        models = _list("hybrid", "models", section.get("models", ["lmu_quick"]))
        recipes = [_recipe(m, "hybrid.models") for m in models]
        hybrid_models = recipes
        pools = _pools("hybrid", section, recipes[0])
        precisions = _positive(
            "hybrid", "precisions", _list("hybrid", "precisions", section.get("precisions"))
            or _missing("hybrid.precisions", "[1, 2, 4, 8]")
        )  # fmt: skip
        kinds = _list("hybrid", "schedules", section.get("schedules", ["geometric"]))
        section_epochs = _epochs("hybrid", section, epochs)
        section_seeds = _seeds("hybrid", section, seeds)
        for recipe in recipes:
            schedules = {
                p: [_schedule(k, recipe, p, "hybrid.schedules") for k in kinds]
                for p in precisions
            }
            for pool in pools:
                for p in precisions:
                    for sched in schedules[p]:
                        for e in section_epochs:
                            for seed in section_seeds:
                                trials.append(
                                    _trial(HYBRID, recipe, pool, seed, epochs=e,
                                           precision=p, schedule=sched, **common,
                                           **flags)
                                )  # fmt: skip
    if spec.get("baselines") is not None:
        section = spec["baselines"]
        _check_keys("baselines", section, BASELINE_KEYS)
        kinds = _list("baselines", "models", section.get("models", list(BASELINES)))
        for kind in kinds:
            if kind not in BASELINES:
                raise _error(
                    f"baselines.models: unknown baseline {kind!r}",
                    hint=f"use {', '.join(BASELINES)}",
                )
        if "recipe" in section:
            recipe = _recipe(section["recipe"], "baselines.recipe")
        elif hybrid_models:
            recipe = hybrid_models[0]
        else:
            recipe = _recipe("lmu_quick", "baselines.recipe")
        pools = _pools("baselines", section, recipe, spec.get("hybrid"))
        budgets = _list("baselines", "budget_seconds", section.get("budget_seconds"))
        budgets = budgets or []
        match = MATCH in budgets
        budgets = _positive(
            "baselines", "budget_seconds", [b for b in budgets if b != MATCH]
        ) + ([MATCH] if match else [])
        section_epochs = (
            _epochs("baselines", section, epochs)
            if "epochs" in section or not budgets
            else []
        )
        section_seeds = _seeds("baselines", section, seeds)
        for kind in kinds:
            for pool in pools:
                for seed in section_seeds:
                    for e in section_epochs:
                        trials.append(
                            _trial(kind, recipe, pool, seed, epochs=e, **common)
                        )
                    for b in budgets:
                        trials.append(
                            _trial(kind, recipe, pool, seed, budget_seconds=b, **common)
                        )
    if not trials:
        raise _error("the grid is empty: no trials")
    hybrids = [t for t in trials if t.kind == HYBRID]
    for t in trials:
        if t.budget_seconds == MATCH and not any(t.matches(h) for h in hybrids):
            raise _error(
                f"baselines.budget_seconds: match needs hybrid trials of the same "
                f"pooling and seed, and there is none for {t.label}, pool {t.pool}, "
                f"seed {t.seed}",
                hint="give the baselines the hybrid's pools and seeds, or a number",
            )
    ids = [t.id for t in trials]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise _error(
            f"the grid lists the same trial more than once: {', '.join(duplicates)}",
            hint="remove the repeated values",
        )
    return Sweep(name=name, spec=nio.to_jsonable(spec), trials=trials)


def _missing(where, example):
    raise _error(f"{where} is required", hint=f"e.g. {where}: {example}")


def _epochs(section_name, section, default):
    values = _list(section_name, "epochs", section.get("epochs"))
    if values is None:
        if not default:
            raise _error(
                f"{section_name}: no epochs (give epochs at the top or in the section)",
                hint="e.g. epochs: 10",
            )
        return default
    return _ints(section_name, "epochs", values, 1, ">= 1")


def _seeds(section_name, section, default):
    values = _list(section_name, "seeds", section.get("seeds"))
    return (
        default if values is None else _ints(section_name, "seeds", values, 0, ">= 0")
    )


def _pools(section_name, section, recipe, hybrid=None):
    values = _list(section_name, "pools", section.get("pools"))
    if values is None and isinstance(hybrid, dict) and hybrid.get("pools") is not None:
        values = _list("hybrid", "pools", hybrid["pools"])
    if values is None:
        values = [int(recipe["data"].get("pool", 1))]
    values = _ints(section_name, "pools", values, 1, "in 1, 2, 4, 7, 14")
    for v in values:
        if v not in POOLS:
            raise _error(
                f"{section_name}.pools: {v} does not divide 28",
                hint="use 4 (49 steps), 2 (196 steps) or 1 (784 steps); also 7, 14",
            )
    return values


def _trial(kind, recipe, pool, seed, **options):
    return Trial(
        kind=kind,
        model=recipe.name,
        recipe_path=str(recipe.path),
        recipe_digest=_digest(recipe),
        pool=int(pool),
        n_steps=(28 // int(pool)) ** 2,
        seed=int(seed),
        **options,
    )


# ------------------------------------------------------------ trial: execute


def trial_recipe(trial):
    """The recipe of a trial: the seed, pooling (sequence length) and schedule set.

    When the recipe's LMU window ``theta`` equals its sequence length, it
    follows the new length (so the memory still spans the whole sequence).
    """
    from nengo_hybrid import zoo
    from nengo_hybrid.pipeline.specs import parse_schedule

    path = pathlib.Path(trial.recipe_path)
    # on another node of a cluster the recipe may live elsewhere: by name
    recipe = zoo.read(path if path.is_file() else trial.model)
    if _digest(recipe) != trial.recipe_digest:
        raise SweepError(
            f"recipe {recipe.path} on {socket.gethostname()} is not the one the sweep "
            "was planned with (its settings differ)",
            hint="use the same recipe files on every node",
        )
    settings = dict(recipe.settings)
    data = dict(settings["data"])
    old_steps = settings.get("n_steps", (28 // int(data.get("pool", 1))) ** 2)
    data["pool"] = trial.pool
    changes = dict(seed=trial.seed, data=data)
    if "n_steps" in settings:
        changes["n_steps"] = trial.n_steps
    network = dict(settings["network"])
    if network.get("theta") == old_steps:
        network["theta"] = trial.n_steps
        changes["network"] = network
    if trial.kind == HYBRID:
        schedule = parse_schedule(trial.schedule)
        spelled = schedule.to_dict()
        if "end" not in spelled:  # constant: the network is built at its precision
            spelled = {"type": "Geometric", "start": trial.precision,
                       "end": trial.precision}  # fmt: skip
        changes["schedule"] = spelled
    return recipe.with_settings(**changes)


def read_trial(folder):
    """A trial folder's ``trial.json`` (``None`` if missing or unreadable)."""
    path = pathlib.Path(folder) / TRIAL_JSON
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if record.get("format") == TRIAL_FORMAT else None


def is_finished(folder):
    record = read_trial(folder)
    return record is not None and record.get("status") == "done"


def _write_trial(folder, record):
    nio.atomic_write_json(pathlib.Path(folder) / TRIAL_JSON, record)


def _clean_temporary(folder):
    """Remove temporary files that a killed writer left (`nengo_hybrid.io`)."""
    for path in list(pathlib.Path(folder).rglob(".*.tmp")):
        with contextlib.suppress(OSError):
            path.unlink()


def limit_threads(threads):
    """Run TensorFlow (and OpenMP) with ``threads`` threads in this process."""
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(threads)
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already started: the environment decided
        pass


def _checkpoint_epochs(path):
    if not path.exists():
        return 0
    try:
        meta, _ = nio.read_npz(path)
        return int(meta.get("epochs_done", 0))
    except Exception:  # noqa: BLE001 (an unreadable checkpoint is reported by train)
        return None


def _stage_done(folder, stage):
    from nengo_hybrid import report as reporting

    result = reporting.read_stage(folder, stage, required=False)
    return result is not None and "error" not in result


def _versions():
    packages = nio.environment_info()["packages"]
    return {k: v for k, v in packages.items() if v is not None}


def _run_hybrid(trial, folder):
    from nengo_hybrid import report as reporting
    from nengo_hybrid.pipeline import record_failure
    from nengo_hybrid.pipeline.evaluate import evaluate
    from nengo_hybrid.pipeline.specs import parse_schedule
    from nengo_hybrid.pipeline.train import train

    recipe = trial_recipe(trial)
    stage = "train"
    try:
        if not (_stage_done(folder, "train") and (folder / "frozen.npz").exists()):
            train(recipe, data=trial.data, out=folder, epochs=trial.epochs,
                  schedule=parse_schedule(trial.schedule), n_train=trial.n_train,
                  progress=False)  # fmt: skip
        stage = "evaluate"
        if not _stage_done(folder, "evaluate"):
            evaluate(folder, n_test=trial.n_test, progress=False)
        checked = None
        if trial.check or trial.deploy:
            from nengo_hybrid.pipeline.check import check

            stage = "check"
            checked = check(run=folder)
        if trial.deploy and checked["ok"]:
            from nengo_hybrid.pipeline.deploy import deploy

            stage = "deploy"
            deploy(folder, check_result=checked, progress=False)
    except Exception as err:
        if folder.is_dir():
            record_failure(folder, stage, err)
        raise
    if trial.report:
        from nengo_hybrid.pipeline.report import report

        report(folder)
    trained = reporting.read_stage(folder, "train")
    evaluated = reporting.read_stage(folder, "evaluate")
    epochs = trained["history"]["epochs"]
    result = {
        "test_accuracy": evaluated["accuracy"],
        "val_accuracy": trained.get("val_accuracy"),
        "activity_bits": evaluated["activity_bits"],
        "significant_bits": evaluated["significant_bits"],
        "precision": evaluated["precision"],
        "epochs": len(epochs),
        "train_seconds": float(sum(e.get("seconds", 0.0) for e in epochs)),
        "n_train": trained["n_train"],
        "n_test": evaluated["n_test"],
        "data": evaluated["data"],
    }
    if checked is not None:
        result["check_ok"] = checked["ok"]
    return result


def _run_baseline(trial, folder, budget=None):
    from nengo_hybrid import baselines
    from nengo_hybrid.pipeline.runs import load_data

    recipe = trial_recipe(trial)
    dataset = load_data(recipe, trial.data)
    result = baselines.train(
        trial.kind,
        recipe,
        dataset,
        epochs=trial.epochs,
        budget_seconds=budget
        if trial.budget_seconds == MATCH
        else trial.budget_seconds,
        max_epochs=trial.max_epochs,
        checkpoint=folder / BASELINE_CHECKPOINT,
        n_train=trial.n_train,
        n_test=trial.n_test,
    )
    result["data"] = dataset.description
    result["dataset"] = dataset.to_dict()
    if trial.budget_seconds is not None:
        result["budget_seconds"] = (
            budget if trial.budget_seconds == MATCH else trial.budget_seconds
        )
    return result


def run_trial(trial, folder, threads=None, budget=None):
    """Run (or resume) one trial in ``folder``; returns its ``trial.json`` record.

    Errors are recorded (``status: failed`` with the error and traceback), not
    raised, so a sweep goes on; a ``KeyboardInterrupt`` is recorded as
    ``interrupted`` and raised. This is what a sweep's Ray task runs.

    Parameters
    ----------
    trial : Trial or dict
    folder : str or pathlib.Path
        The trial's folder (created; it resumes from what is there).
    threads : int, optional
        TensorFlow threads (default: leave TensorFlow's setting alone).
    budget : float, optional
        The resolved ``budget_seconds`` of a ``match`` trial.
    """
    if isinstance(trial, dict):
        trial = Trial.from_dict(trial)
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _clean_temporary(folder)
    if threads:
        limit_threads(int(threads))
    record = read_trial(folder) or {"format": TRIAL_FORMAT, "attempts": []}
    checkpoint = folder / (
        "checkpoint.npz" if trial.kind == HYBRID else BASELINE_CHECKPOINT
    )
    record.update(
        id=trial.id, label=trial.label, trial=trial.to_dict(), status="running"
    )
    for key in ("error", "traceback", "result"):
        record.pop(key, None)
    record["attempts"].append(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "resumed_from_epoch": _checkpoint_epochs(checkpoint),
            "threads": threads,
        }
    )
    _write_trial(folder, record)
    tic = time.perf_counter()
    try:
        if trial.budget_seconds == MATCH and not budget:
            raise ValueError("no training time to match: the hybrid trials failed")
        with open(folder / TRIAL_LOG, "a", encoding="utf-8") as log:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                if trial.kind == HYBRID:
                    result = _run_hybrid(trial, folder)
                else:
                    result = _run_baseline(trial, folder, budget)
        result.update(seed=trial.seed, versions=_versions())
        record.update(status="done", result=result)
    except KeyboardInterrupt:
        record.update(status="interrupted")
        record["attempts"][-1]["seconds"] = time.perf_counter() - tic
        _write_trial(folder, record)
        raise
    except Exception as err:  # noqa: BLE001 (recorded; the sweep goes on)
        record.update(
            status="failed",
            error=f"{type(err).__name__}: {err}",
            traceback=traceback.format_exc(),
        )
    record["attempts"][-1]["seconds"] = time.perf_counter() - tic
    _write_trial(folder, record)
    return record


# --------------------------------------------------------------- sweep: run


def _ray_task(trial, folder, threads, budget):  # runs in a Ray worker
    return run_trial(trial, folder, threads=threads, budget=budget)


def _matched_budget(sweep, out, trial, waiting):
    """``(ready, seconds)``: the longest training time of the matching hybrids.

    Ready when no matching hybrid trial is still to run (``waiting``: trials
    queued or running); ``seconds`` is None if none of them is done.
    """
    times = []
    for other in sweep.trials:
        if trial.matches(other):
            if other in waiting:
                return False, None
            record = read_trial(sweep.folder(out, other)) or {}
            if record.get("status") not in ("done", "failed"):
                return False, None
            if record.get("status") == "done":
                times.append(record["result"]["train_seconds"])
    return True, (max(times) if times else None)


@contextlib.contextmanager
def _ray(address, cpus):
    """Connect to Ray: a new local instance, or ``address``; disconnect after."""
    import logging

    try:
        import ray
    except ImportError as err:
        raise SweepError(
            f"sweeps run on Ray, which is not installed ({err})",
            hint="pip install 'nengo-hybrid[sweep]'",
        ) from err
    if ray.is_initialized():  # the caller's Ray (e.g. tests): keep it
        yield ray
        return
    options = dict(
        log_to_driver=False, logging_level=logging.WARNING, configure_logging=True
    )
    if address is None:
        # a new local instance enables token authentication, and says so
        logging.getLogger(
            "ray._private.authentication.authentication_token_setup"
        ).setLevel(logging.ERROR)
        # "local": always a new instance, never someone else's cluster
        ray.init(address="local", num_cpus=cpus, include_dashboard=False,
                 object_store_memory=200 * 2**20, **options)  # fmt: skip
    else:
        try:
            ray.init(address=address, **options)
        except ConnectionError as err:
            raise SweepError(
                f"cannot join the Ray cluster at {address}: {err}",
                hint="start one with `ray start --head` (and `ray start --address "
                "HEAD:6379` on the other nodes), or leave out --address to run here",
            ) from err
    try:
        yield ray
    finally:
        ray.shutdown()


def pending(sweep, out):
    """The trials of ``sweep`` not finished in ``out`` (in grid order)."""
    return [t for t in sweep.trials if not is_finished(sweep.folder(out, t))]


def run(sweep, out, workers=None, address=None, max_retries=2, progress=True):
    """Run the unfinished trials of ``sweep`` as Ray tasks; aggregate the results.

    Parameters
    ----------
    sweep : Sweep
    out : str or pathlib.Path
        Sweep folder: ``trials/ID`` per trial, ``sweep.json``, ``sweep.md``,
        ``plots/``.
    workers : int, optional
        Trials at once (default: one per core of the local machine, or of the
        cluster). Locally each trial gets ``cores // workers`` TensorFlow
        threads (at least 1).
    address : str, optional
        ``"auto"`` or ``HOST:PORT`` of a Ray cluster (default: start Ray here).
    max_retries : int
        Times Ray re-runs a trial whose worker process died (it resumes from
        its checkpoint).
    progress : bool
        Show a progress bar: done, running, failed, ETA.

    Returns
    -------
    dict
        ``trials``, ``skipped`` (finished before), ``started``, ``done``,
        ``failed``, ``seconds`` (wall time of this call), ``workers``.
    """
    from nengo_hybrid import sweep_report

    out = pathlib.Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    nio.atomic_write_json(out / SPEC_JSON, sweep.spec)
    todo = pending(sweep, out)
    tic = time.perf_counter()
    summary = dict(
        trials=len(sweep.trials), skipped=len(sweep.trials) - len(todo), started=0,
        done=0, failed=0, workers=workers, address=address,
    )  # fmt: skip
    if todo:
        cores = os.cpu_count() or 1
        local = address is None
        cpus = max(cores, workers or 0) if local else None
        with _ray(address, cpus) as ray:
            if workers is None:
                workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
            threads = max(1, cores // workers) if local else 1
            summary.update(workers=workers, threads_per_trial=threads)
            _run_tasks(ray, sweep, out, todo, workers, threads, max_retries,
                       progress, summary)  # fmt: skip
    summary["seconds"] = time.perf_counter() - tic
    sweep_report.aggregate(sweep, out, session=summary)
    return summary


def _run_tasks(ray, sweep, out, todo, workers, threads, max_retries, progress, summary):
    from tqdm.auto import tqdm

    # max_calls=1: a fresh worker process (and TensorFlow) per trial
    task = ray.remote(
        num_cpus=threads, max_retries=max_retries, retry_exceptions=False, max_calls=1
    )(_ray_task)
    queue = list(todo)
    inflight = {}
    bar = tqdm(total=len(sweep.trials), initial=summary["skipped"], desc="sweep",
               unit="trial", disable=not progress, file=sys.stderr, smoothing=0)  # fmt: skip
    try:
        while queue or inflight:
            for trial in list(queue):
                if len(inflight) >= workers:
                    break
                budget = None
                if trial.budget_seconds == MATCH:  # after its hybrids
                    waiting = set(queue) | set(inflight.values())
                    ready, budget = _matched_budget(sweep, out, trial, waiting)
                    if not ready:
                        continue
                queue.remove(trial)
                folder = sweep.folder(out, trial)
                args = (trial.to_dict(), str(folder), threads, budget)
                inflight[task.remote(*args)] = trial
                summary["started"] += 1
            bar.set_postfix_str(f"running {len(inflight)}, failed {summary['failed']}")
            if not inflight:  # match trials wait only for hybrids in this queue
                raise RuntimeError("sweep: trials wait for hybrids that never run")
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            for ref in ready:
                trial = inflight.pop(ref)
                record = _result(ray, ref, trial, sweep.folder(out, trial))
                summary["done" if record["status"] == "done" else "failed"] += 1
                if record["status"] != "done":
                    bar.write(f"trial {trial.id} failed: {record.get('error')}")
                bar.update(1)
        bar.set_postfix_str(f"running 0, failed {summary['failed']}")
    except KeyboardInterrupt:
        # cancel: a KeyboardInterrupt in each running trial, whose atomic
        # writers then leave no partial files; their checkpoints stay
        for ref in inflight:
            ray.cancel(ref)
        with contextlib.suppress(Exception):
            ray.wait(list(inflight), num_returns=len(inflight), timeout=30)
        raise
    finally:
        bar.close()


def _result(ray, ref, trial, folder):
    """The record a finished task returned (written on the head node too)."""
    try:
        record = ray.get(ref)
    except Exception as err:  # noqa: BLE001 (worker died past its retries, ...)
        record = read_trial(folder) or {"format": TRIAL_FORMAT, "attempts": []}
        record.update(
            id=trial.id, label=trial.label, trial=trial.to_dict(), status="failed",
            error=f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
        )  # fmt: skip
    # on a cluster without a shared filesystem this is the head's copy
    _write_trial(folder, record)
    return record
