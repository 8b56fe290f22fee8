"""The pipeline behind the ``nengo-hybrid`` command, one function per stage.

Each stage reads what earlier stages left in a *run folder* and writes its own
``STAGE.json`` there (atomically, see `nengo_hybrid.report`):

========  ==========================================================  =================
stage     does                                                        writes
========  ==========================================================  =================
train     builds the recipe's network, trains it in NengoDL while     ``train.json``,
          annealing the precision (`nengo_hybrid.training.fit`)       ``checkpoint.npz``
evaluate  NengoDL inference on the test split: accuracy, activity     ``evaluate.json``,
          bits, significant bits, synaptic events, energy             ``raster.npz``
check     freezes the trained network and checks it against a         ``check.json``
          hardware profile (`nengo_hybrid.hardware.check`)
deploy    runs the frozen network on nengo-loihi's emulator (or a     ``deploy.json``
          chip) on a sample of the test split, against NengoDL
report    ``report.json``, ``report.md`` and ``plots/``               ``report.*``
========  ==========================================================  =================

A *recipe* is a Python file in ``models/`` (or any path) that Nengo GUI can
open (it defines ``model``) and that tells this pipeline how to train and
evaluate it; see `load_recipe` for what it must define.
"""

import contextlib
import importlib.util
import io
import pathlib
import time

import numpy as np

from nengo_hybrid import report as reporting

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parent
MODEL_DIRS = (pathlib.Path.cwd() / "models", PACKAGE_ROOT.parent / "models")
DEPLOY_DIRS = (pathlib.Path.cwd() / "deploy", PACKAGE_ROOT.parent / "deploy")
CHECKPOINT = "checkpoint.npz"
RASTER_FILE = "raster.npz"
#: host-to-chip encoder of the LMU's memory input (`nengo_hybrid.hardware.inputs`):
#: spikes per sign and dimension and step, and full scale relative to the largest
#: magnitude on (up to) 1000 training sequences
INPUT_LEVELS = 8
INPUT_MARGIN = 1.25
#: model steps by which the nengo-loihi emulator lags the reference simulator:
#: host spikes reach the chip one step late, chip spikes reach the host one step late
CHIP_LATENCY = 1
HOST_LATENCY = 2
SUPPORTED_TASKS = ("psmnist",)


class PipelineUsageError(Exception):
    """Bad input from the user (unknown model, missing data, bad schedule).

    Parameters
    ----------
    message : str
        What is wrong.
    hint : str, optional
        What to do about it.
    """

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint


# ---------------------------------------------------------------- recipes


def resolve_model(model):
    """Find a recipe file: a path, or a name in ``models/``.

    Parameters
    ----------
    model : str or pathlib.Path
        ``"lmu_quick"``, ``"lmu_quick.py"`` or a path to a ``.py`` file.

    Returns
    -------
    pathlib.Path
    """
    model = str(model)
    path = pathlib.Path(model).expanduser()
    if path.suffix == ".py" and path.is_file():
        return path.resolve()
    name = path.name if path.suffix == ".py" else path.name + ".py"
    for folder in MODEL_DIRS:
        if (folder / name).is_file():
            return (folder / name).resolve()
    known = sorted(
        {
            p.stem
            for d in MODEL_DIRS
            if d.is_dir()
            for p in d.glob("*.py")
            if not p.name.startswith("_")
        }
    )
    raise PipelineUsageError(
        f"unknown model recipe {model!r}",
        hint=f"use one of {', '.join(known) or '(none found)'} from models/, or a path "
        "to a recipe .py file",
    )


def load_recipe(model):
    """Import a recipe file and check it defines what the pipeline needs.

    A recipe module (see ``models/lmu_quick.py``) must define:

    ``model``
        A `nengo.Network` (for Nengo GUI).
    ``RECIPE``
        A dict: ``task`` (``"psmnist"``), ``data`` (keyword arguments of
        `nengo_hybrid.data.psmnist`), ``schedule`` (``Schedule.to_dict``),
        ``epochs``, ``minibatch_size``, ``learning_rate``, ``seed``; optionally
        ``n_samples`` (test examples for the emulator) and ``strategy``.
    ``build(precision=None, memory=None, spiking=True, gui=False)``
        Returns a `nengo_hybrid.networks.LMUClassifier`-like network with
        ``inp``, ``probe`` (class scores on the last step), ``lmu.hidden``,
        ``inputs(x)``, ``hidden_probe()`` and ``targets(y)``.

    Returns
    -------
    module
    """
    path = resolve_model(model)
    spec = importlib.util.spec_from_file_location(
        f"nengo_hybrid_recipe_{path.stem}", path
    )
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise PipelineUsageError(
            f"model recipe {path} failed to import: {type(err).__name__}: {err}",
            hint=f"fix the recipe file (open it in Nengo GUI: `nengo {path}`)",
        ) from err
    missing = [
        name for name in ("model", "RECIPE", "build") if not hasattr(module, name)
    ]
    if missing:
        raise PipelineUsageError(
            f"{path} is not a nengo-hybrid recipe: it lacks {', '.join(missing)}",
            hint="a recipe defines `model`, a `RECIPE` dict and `build(seed=...)`; see "
            "models/lmu_quick.py",
        )
    task = module.RECIPE.get("task", "psmnist")
    if task not in SUPPORTED_TASKS:
        raise PipelineUsageError(
            f"{path.name} is a {task!r} recipe; the nengo-hybrid pipeline runs "
            f"{', '.join(repr(t) for t in SUPPORTED_TASKS)} recipes",
            hint=f"use --model lmu_quick or lmu_paper (open {path.name} in Nengo GUI: "
            f"`nengo {path}`)",
        )
    module.RECIPE_PATH = path
    return module


def load_data(recipe, data="embedded"):
    """Load the recipe's dataset from ``data``.

    Parameters
    ----------
    recipe : module
        From `load_recipe`.
    data : str
        ``"embedded"`` (offline default), ``"mnist"`` (the Keras cache) or a path
        to ``mnist.npz`` / a folder with the MNIST IDX files.

    Returns
    -------
    nengo_hybrid.data.PSMNIST
    """
    from nengo_hybrid import data as datasets

    kwargs = dict(recipe.RECIPE.get("data", {}))
    if data == "embedded":
        kwargs.update(source="embedded")
    elif data == "mnist":
        kwargs.update(source="full")
    else:
        kwargs.update(source="full", path=data)
    try:
        return datasets.psmnist(**kwargs)
    except (FileNotFoundError, ValueError) as err:
        raise PipelineUsageError(
            f"cannot load data {data!r}: {err}",
            hint="use --data embedded (offline), --data mnist (Keras cache), or "
            "--data PATH to mnist.npz or a folder with the four MNIST IDX files",
        ) from err


# ---------------------------------------------------------------- schedules

SCHEDULE_KINDS = ("constant", "linear", "geometric", "cosine", "stepwise")


def parse_schedule(spec):
    """Turn a schedule spec into a `nengo_hybrid.training` schedule.

    Parameters
    ----------
    spec : str or dict or schedule
        ``"KIND:START:END"`` (linear, geometric, cosine), ``"constant:P"``,
        ``"stepwise:P1,P2,..."``, a path to a JSON file or a dict as written
        by ``Schedule.to_dict``, or a schedule object (returned as is).

    Returns
    -------
    schedule
    """
    from nengo_hybrid import schedules

    if isinstance(spec, dict):
        return _schedule_from_dict(spec)
    if not isinstance(spec, str):
        return spec
    if spec.endswith(".json"):
        try:
            return _schedule_from_dict(reporting.read_json(spec))
        except reporting.RunFolderError as err:
            raise PipelineUsageError(
                f"cannot read schedule file: {err}",
                hint="give a JSON file written by Schedule.to_dict, or KIND:START:END",
            ) from err
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    bad = PipelineUsageError(
        f"bad schedule {spec!r}",
        hint="use constant:P, linear:START:END, geometric:START:END, cosine:START:END, "
        "stepwise:P1,P2,... or a .json file (see `nengo-hybrid train --help`)",
    )
    if kind not in SCHEDULE_KINDS:
        raise bad
    try:
        if kind == "stepwise":
            return schedules.Stepwise(_stepwise_values(rest))
        numbers = [float(v) for v in rest.split(":")] if rest else []
        if kind == "constant":
            if len(numbers) != 1:
                raise ValueError("constant takes one value")
            return schedules.Constant(numbers[0])
        if len(numbers) != 2:
            raise ValueError(f"{kind} takes START:END")
        return schedules.Schedule.registry[kind.capitalize()](numbers[0], numbers[1])
    except PipelineUsageError:
        raise
    except Exception as err:  # ValueError, ValidationError from the schedule
        bad.args = (f"bad schedule {spec!r}: {err}",)
        raise bad from err


def _stepwise_values(text):
    """``"100,10,1"`` -> ``{0: 100, 1: 10, 2: 1}``; ``"0=100,5=4"`` -> ``{0: 100, 5: 4}``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError("stepwise needs at least one precision")
    if all("=" in item for item in items):
        pairs = [item.split("=", 1) for item in items]
        return {int(epoch): float(value) for epoch, value in pairs}
    return {epoch: float(value) for epoch, value in enumerate(items)}


def _schedule_from_dict(d):
    from nengo_hybrid import schedules

    try:
        return schedules.Schedule.from_dict(d)
    except Exception as err:
        raise PipelineUsageError(
            f"bad schedule {d!r}: {err}",
            hint="give a dict/JSON written by Schedule.to_dict",
        ) from err


# ---------------------------------------------------------------- simulators


def _set_seed(recipe, seed):
    """Override the recipe's seed (weights, shuffling, simulator); return it."""
    if seed is not None:
        recipe.RECIPE = {**recipe.RECIPE, "seed": int(seed)}
    return int(recipe.RECIPE.get("seed", 0))


@contextlib.contextmanager
def _quiet():
    """Silence NengoDL's build messages on stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _simulator(net, batch_size, seed):
    import nengo_dl

    with _quiet():
        return nengo_dl.Simulator(
            net, minibatch_size=batch_size, seed=seed, progress_bar=False
        )


def _compile(sim, net, learning_rate):
    import tensorflow as tf

    sim.compile(
        optimizer=tf.optimizers.Adam(learning_rate),
        loss={net.probe: tf.losses.SparseCategoricalCrossentropy(from_logits=True)},
        metrics={net.probe: "accuracy"},
    )


def _subset(x, y, n, batch_size, name):
    """The first ``n`` examples (default all), cut to a multiple of the batch."""
    n = len(y) if n is None else min(n, len(y))
    n -= n % batch_size
    if n < 1:
        raise PipelineUsageError(
            f"fewer {name} examples than one minibatch of {batch_size}",
            hint="lower --batch-size or use more examples",
        )
    return x[:n], y[:n]


def _build(recipe):
    """Build the recipe's network for NengoDL, with a probe on the hidden spikes."""
    net = recipe.build()
    hidden_probe = net.hidden_probe()
    return net, hidden_probe


def _restore(run_dir, config):
    """Rebuild a run's network and simulator and load its trained checkpoint."""
    from nengo_hybrid import training

    checkpoint = pathlib.Path(run_dir) / CHECKPOINT
    if not checkpoint.exists():
        raise PipelineUsageError(
            f"{checkpoint} is missing",
            hint=f"train first: `nengo-hybrid train --out {run_dir}`",
        )
    recipe = load_recipe(config["model_path"])
    seed = _set_seed(recipe, config["seed"])
    net, hidden_probe = _build(recipe)
    sim = _simulator(net, config["batch_size"], seed)
    try:
        _compile(sim, net, config["learning_rate"])
        training.load_checkpoint(sim, checkpoint)
    except training.CheckpointError as err:
        sim.close()
        raise PipelineUsageError(
            f"cannot load the trained parameters of {run_dir}: {err}",
            hint="the recipe or library changed since this run was trained; train "
            f"again (`nengo-hybrid train --model {config['model_path']} --out NEW_DIR`)",
        ) from err
    except BaseException:
        sim.close()
        raise
    return recipe, net, hidden_probe, sim


def _config(run_dir):
    train = reporting.read_stage(run_dir, "train")
    return train["config"]


def _precision(sim, ens):
    from nengo_hybrid import dl

    p = dl.get_precision(sim)[ens]
    return float(np.mean(p))


# ---------------------------------------------------------------- stages


def record_failure(run, stage, error):
    """Write ``STAGE.json`` saying the stage failed and why (for the report)."""
    previous = reporting.read_stage(run, "train", required=False) or {}
    reporting.write_stage(
        run,
        stage,
        {
            "error": f"{type(error).__name__}: {error}",
            "model": previous.get("model"),
            "data": previous.get("data"),
            "seed": previous.get("seed"),
        },
    )


def train(
    model="lmu_quick",
    data="embedded",
    out="runs/run",
    epochs=None,
    schedule=None,
    batch_size=None,
    n_train=None,
    seed=None,
    progress=True,
):
    """Train a recipe with interpolation and write ``train.json``.

    Calls `nengo_hybrid.training.fit` with a checkpoint in the run folder: if
    ``out`` already holds a checkpoint of the same run, training resumes from it.

    Parameters
    ----------
    model : str
        Recipe name in ``models/`` or path.
    data : str
        ``"embedded"``, ``"mnist"`` or a path (see `load_data`).
    out : str or pathlib.Path
        Run folder.
    epochs, batch_size, n_train, seed : int, optional
        Override the recipe (``n_train``: first N training examples).
    schedule : str or dict, optional
        Override the recipe's schedule (see `parse_schedule`).
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        The content of ``train.json``.
    """
    from nengo_hybrid import training

    recipe = load_recipe(model)
    seed = _set_seed(recipe, seed)
    sched = parse_schedule(recipe.RECIPE["schedule"] if schedule is None else schedule)
    epochs = int(epochs or recipe.RECIPE["epochs"])
    batch_size = int(batch_size or recipe.RECIPE["minibatch_size"])
    learning_rate = float(recipe.RECIPE.get("learning_rate", 1e-3))
    dataset = load_data(recipe, data)
    x_train, y_train = _subset(
        dataset.x_train, dataset.y_train, n_train, batch_size, "training"
    )
    x_val, y_val = _subset(dataset.x_val, dataset.y_val, None, batch_size, "validation")

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    net, _ = _build(recipe)
    tic = time.perf_counter()
    with _simulator(net, batch_size, seed) as sim:
        _compile(sim, net, learning_rate)
        try:
            history = training.fit(
                sim,
                net.inputs(x_train),
                {net.probe: net.targets(y_train)},
                schedule=sched,
                epochs=epochs,
                validation_data=(net.inputs(x_val), {net.probe: net.targets(y_val)}),
                checkpoint=out / CHECKPOINT,
                seed=seed,
                progress=progress,
            )
        except training.CheckpointError as err:
            raise PipelineUsageError(
                str(err), hint="use a new --out folder, or the settings of that run"
            ) from err
        final_precision = _precision(sim, net.lmu.hidden)
    history = history.to_dict()
    result = {
        "model": recipe.RECIPE_PATH.stem,
        "data": dataset.description,
        "seed": seed,
        "epochs": epochs,
        "schedule": sched.to_dict(),
        "schedule_repr": repr(sched),
        "final_precision": final_precision,
        "n_train": len(y_train),
        "n_validation": len(y_val),
        "val_accuracy": _last(history, "accuracy"),
        "seconds": time.perf_counter() - tic,
        "history": history,
        "config": {
            "model_path": str(recipe.RECIPE_PATH),
            "data": str(data),
            "seed": seed,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "recipe": recipe.RECIPE,
            "dataset": dataset.to_dict(),
        },
    }
    reporting.write_stage(out, "train", result)
    return result


def accuracy_key(record):
    """The validation accuracy key of a history record (NengoDL names it by probe)."""
    keys = [k for k in record if k.startswith("val_") and k.endswith("accuracy")]
    return keys[0] if keys else None


def _last(history, what):
    if not history["epochs"]:
        return None
    record = history["epochs"][-1]
    key = accuracy_key(record)
    return record.get(key) if key else None


def evaluate(run, n_test=None, progress=True):
    """Evaluate a trained run in NengoDL and write ``evaluate.json`` and ``raster.npz``.

    Measures test accuracy and, from the hidden layer's spike counts, activity
    bits, significant bits, synaptic events and energy (`nengo_hybrid.metrics`).

    Parameters
    ----------
    run : str or pathlib.Path
        Run folder with ``train.json`` and the checkpoint.
    n_test : int, optional
        First N test examples (default all, cut to a multiple of the batch).

    Returns
    -------
    dict
        The content of ``evaluate.json``.
    """
    from nengo_hybrid import metrics

    run = pathlib.Path(run)
    config = _config(run)
    train_info = reporting.read_stage(run, "train")
    recipe, net, hidden_probe, sim = _restore(run, config)
    dataset = load_data(recipe, config["data"])
    x, y = _subset(dataset.x_test, dataset.y_test, n_test, config["batch_size"], "test")
    with sim:
        ens = net.lmu.hidden
        precision = _precision(sim, ens)
        outputs = _predict(sim, net.inputs(x), progress)
        logits = outputs[net.probe][:, -1, :]
        counts = metrics.spike_counts(
            outputs[hidden_probe], ens.neuron_type, sim.dt, precision=precision
        )
        fan_out = metrics.fan_out(sim.model, ens)
        dt = sim.dt
    energy = metrics.energy(counts, fan_out, device="loihi1")
    result = {
        "model": train_info["model"],
        "data": dataset.description,
        "seed": config["seed"],
        "n_test": len(y),
        "accuracy": float(np.mean(np.argmax(logits, axis=-1) == y)),
        "predictions": np.argmax(logits, axis=-1).tolist(),
        "loss": _cross_entropy(logits, y),
        "precision": precision,
        "activity_bits": metrics.activity_bits(counts),
        "significant_bits": metrics.significant_bits(counts),
        "max_count": int(np.abs(counts).max()),
        "synaptic_events_per_sample": metrics.synaptic_events(counts, fan_out) / len(y),
        "energy_per_sample_j": energy["total"] / len(y),
        "energy_parts_per_sample_j": {
            k: v / len(y) for k, v in energy.items() if k not in ("total", "device")
        },
        "energy_device": energy["device"]["source"],
        "n_hidden": int(ens.n_neurons),
        "steps_per_sample": int(counts.shape[1]),
        "dt": dt,
    }
    buf = io.BytesIO()
    np.savez(buf, counts=counts[0].astype(np.int32), dt=dt, label=y[0])
    reporting.write_atomic(run / RASTER_FILE, buf.getvalue())
    reporting.write_stage(run, "evaluate", result)
    return result


def _predict(sim, inputs, progress):
    """``sim.predict`` batch by batch with a progress bar; outputs concatenated."""
    from tqdm.auto import tqdm

    n = len(next(iter(inputs.values())))
    batch = sim.minibatch_size
    parts = []
    for start in tqdm(
        range(0, n, batch), desc="evaluating", unit="batch", disable=not progress
    ):
        chunk = {k: v[start : start + batch] for k, v in inputs.items()}
        parts.append(sim.predict_on_batch(chunk))
    return {p: np.concatenate([part[p] for part in parts]) for p in parts[0]}


def _cross_entropy(logits, y):
    logits = logits - logits.max(axis=-1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    return float(-np.mean(log_p[np.arange(len(y)), y]))


def choose_strategy(strategy, max_count):
    """The multi-bit strategy for the hidden layer.

    Parameters
    ----------
    strategy : str or None
        ``"auto"``/``None`` (from the measured spike counts: `Thermometer`
        with ``K`` one more than the largest count; `OneBit` when no counts
        were measured), ``"onebit"``, ``"expand:K"``, ``"substeps:K"`` or
        ``"thermometer:K"``.
    max_count : int or None
        Largest spike count per step measured by `evaluate`.

    Returns
    -------
    Strategy
    """
    from nengo_hybrid.hardware.strategies import OneBit, Thermometer, as_strategy

    if strategy in (None, "auto"):
        # Thermometer, not Expand: Loihi 1 compartments reset to zero and clip
        # negative voltages, which destroys the residual a HybridSpiking neuron
        # carries; memoryless rounding levels run exactly (measured on the quick
        # LMU: Expand(18) 8.5%, Thermometer(18) ~NengoDL; deploy_fidelity.md).
        # One level more than the reference's largest count: rounding up.
        return OneBit() if max_count is None else Thermometer(int(max_count) + 1)
    try:
        return as_strategy(strategy)
    except Exception as err:
        raise PipelineUsageError(
            f"bad strategy {strategy!r}: {err}",
            hint="use auto, onebit, expand:K, substeps:K or thermometer:K",
        ) from err


def strategy_spec(strategy):
    """``"onebit"``, ``"expand:K"`` or ``"substeps:K"``: the CLI spelling of a strategy."""
    k = getattr(strategy, "K", None)
    return "onebit" if k is None else f"{type(strategy).__name__.lower()}:{k}"


def deploy_recipe(model, profile):
    """The deployment recipe ``deploy/MODEL_PROFILE.json`` if there is one.

    Returns
    -------
    dict or None
        ``path``, ``target``, ``description`` and ``status`` of the recipe.
    """
    for folder in DEPLOY_DIRS:
        path = folder / f"{model}_{profile}.json"
        if path.is_file():
            data = reporting.read_json(path)
            return {
                "path": str(path),
                "target": data.get("target"),
                "description": data.get("description"),
                "status": data.get("status"),
            }
    return None


def _profile(profile):
    from nengo_hybrid.hardware import load_profile

    try:
        return load_profile(profile)
    except Exception as err:
        raise PipelineUsageError(
            str(err), hint="use --profile loihi1, --profile loihi2 or a profile .json"
        ) from err


def frozen_network(run):
    """The trained network of a run folder, frozen for Nengo / nengo-loihi.

    Returns
    -------
    recipe : module
    net : nengo.Network
        The recipe's network with trained weights and final precision
        (`nengo_hybrid.training.freeze`).
    """
    from nengo_hybrid import training

    recipe, net, hidden_probe, sim = _restore(run, _config(run))
    with sim:
        training.freeze(sim, net)
    # the probe was only for measuring spikes in NengoDL; callers add their own
    net.probes.remove(hidden_probe)
    net._hidden_probe = None
    return recipe, net


def deployable_network(run):
    """The frozen network of a run as it is deployed, with its host input encoder.

    The LMU's precomputed memory (a host Node feeding the hidden neurons every
    step) is sent to the chip as exact spike counts of host encoder neurons
    (`nengo_hybrid.hardware.inputs.encode_node_inputs`, ``INPUT_LEVELS`` per
    sign and dimension, full scale ``INPUT_MARGIN`` times the largest magnitude
    on training sequences) instead of nengo-loihi's 1-bit, 5 ms-filtered node
    encoder.

    Returns
    -------
    recipe : module
    net : nengo.Network
    dataset : the run's data
    encoding : dict
        ``levels``, ``scale`` (list), ``input_axons`` of the memory encoder;
        empty if the network has no precomputed memory node.
    """
    from nengo_hybrid.hardware.inputs import encode_node_inputs

    recipe, net = frozen_network(run)
    dataset = load_data(recipe, _config(run)["data"])
    memory = getattr(getattr(net, "lmu", None), "memory", None)
    values = (
        net.inputs(dataset.x_train[:1000]).get(memory) if memory is not None else None
    )
    if values is None:
        return recipe, net, dataset, {}
    scale = INPUT_MARGIN * np.maximum(np.abs(values).max(axis=(0, 1)), 1e-3)
    (done,) = encode_node_inputs(net, {memory: scale}, levels=INPUT_LEVELS)
    encoding = {
        "node": str(memory.label),
        "levels": INPUT_LEVELS,
        "scale": [float(v) for v in scale],
        "input_axons": done["input_axons"],
    }
    return recipe, net, dataset, encoding


def check(run=None, model=None, profile="loihi1", strategy="auto"):
    """Check a trained run (or an untrained recipe) against a hardware profile.

    With ``run``, the frozen trained network is checked with the spike counts
    `evaluate` measured, and ``check.json`` is written to the run folder.

    Parameters
    ----------
    run : str or pathlib.Path, optional
        Run folder (trained).
    model : str, optional
        Recipe to check untrained (when ``run`` is not given).
    profile : str
        ``"loihi1"``, ``"loihi2"`` or a profile JSON path.
    strategy : str
        See `choose_strategy`.

    Returns
    -------
    dict
        ``Report.to_dict()`` plus ``table`` (the readable report), ``model``,
        ``data``, ``seed`` and the ``strategy`` used.
    """
    from nengo_hybrid import hardware

    prof = _profile(profile)
    evaluated = (
        None if run is None else reporting.read_stage(run, "evaluate", required=False)
    )
    max_count = None if evaluated is None else evaluated.get("max_count")
    encoding = None
    if run is not None:
        recipe, net, _, encoding = deployable_network(run)
        info = reporting.read_stage(run, "train")
    else:
        recipe = load_recipe(model)
        net = recipe.build()
        info = {
            "model": recipe.RECIPE_PATH.stem,
            "data": None,
            "seed": recipe.RECIPE.get("seed"),
        }
    strat = choose_strategy(strategy, max_count)
    counts = None if max_count is None else {net.lmu.hidden: max_count}
    tic = time.perf_counter()
    report = hardware.check(net, profile=prof, strategy=strat, counts=counts)
    result = report.to_dict()
    result.update(
        table=str(report),
        model=info["model"],
        data=info.get("data"),
        seed=info.get("seed"),
        strategy=repr(strat),
        strategy_spec=strategy_spec(strat),
        counts_source="measured by evaluate" if max_count else "estimated",
        limits=dict(prof.limits),
        deploy_recipe=deploy_recipe(info["model"], prof.name),
        input_encoding=encoding,
        seconds=time.perf_counter() - tic,
    )
    if run is not None:
        reporting.write_stage(run, "check", result)
    return result


# resources of a core: (key in check.json's cores, key of the profile limit)
CORE_RESOURCES = (
    ("compartments", "compartments_per_core"),
    ("input_axons", "input_axons_per_core"),
    ("output_axons", "output_axons_per_core"),
    ("synapse_bits", "synapse_bits_per_core"),
)


def core_fractions(check_result):
    """Per-core use of each resource as a fraction of the profile's limit."""
    limits = check_result.get("limits")
    if not limits and check_result.get("profile"):
        try:
            limits = _profile(check_result["profile"]).limits
        except PipelineUsageError:
            limits = {}
    rows = []
    for row in check_result.get("cores") or []:
        fractions = {"core": row.get("core")}
        for key, limit in CORE_RESOURCES:
            if key in row and limits.get(limit):
                fractions[key] = row[key] / limits[limit]
        rows.append(fractions)
    return rows


def make_plots(run):
    """Draw the report's plots from the run folder's stage files.

    Returns
    -------
    dict of {str: str}
        Plot name to path relative to the run folder (only plots whose data
        exist).
    """
    from nengo_hybrid import plots

    run = pathlib.Path(run)
    folder = run / reporting.PLOTS_DIR
    made = {}
    train_info = reporting.read_stage(run, "train", required=False)
    if train_info and train_info.get("history", {}).get("epochs"):
        epochs = train_info["history"]["epochs"]
        key = accuracy_key(epochs[-1])
        precision = [_mean_value(r.get("precision")) for r in epochs]
        plots.accuracy_vs_bits(
            [r["epoch"] + 1 for r in epochs],
            [r.get(key) for r in epochs],
            [r.get("activity_bits_mean") for r in epochs],
            folder / "accuracy_vs_bits.png",
            precision=precision,
        )
        made["accuracy_vs_bits"] = f"{reporting.PLOTS_DIR}/accuracy_vs_bits.png"
        batches = train_info["history"]["batches"]
        if batches:
            steps = np.arange(len(batches))
            starts = [i for i, b in enumerate(batches) if b["batch"] == 0]
            plots.precision_schedule(
                steps,
                [_mean_value(b["precision"]) for b in batches],
                folder / "precision_schedule.png",
                epoch_steps=starts,
            )
            made["precision_schedule"] = f"{reporting.PLOTS_DIR}/precision_schedule.png"
    if (run / RASTER_FILE).exists():
        with np.load(run / RASTER_FILE) as raster:
            plots.spike_raster(
                raster["counts"],
                folder / "spike_raster.png",
                dt=float(raster["dt"]),
                title=f"hidden layer, test digit {int(raster['label'])}",
            )
        made["spike_raster"] = f"{reporting.PLOTS_DIR}/spike_raster.png"
    checked = reporting.read_stage(run, "check", required=False)
    if checked and not checked.get("error"):
        plots.core_utilisation(
            core_fractions(checked),
            folder / "core_utilisation.png",
            title=f"per-core utilisation ({checked.get('profile')}, {checked.get('strategy')})",
        )
        made["core_utilisation"] = f"{reporting.PLOTS_DIR}/core_utilisation.png"
    return made


def _mean_value(value):
    if isinstance(value, dict):
        values = [v for v in value.values() if v is not None]
        return float(np.mean(values)) if values else None
    return value


def report(run):
    """Write ``plots/``, ``report.json`` and ``report.md`` for a run folder.

    Returns
    -------
    dict
        The content of ``report.json``.
    """
    run = pathlib.Path(run)
    if not run.is_dir():
        raise reporting.RunFolderError(f"run folder {run} does not exist")
    return reporting.write_report(run, plots=make_plots(run))


def _present(frozen, x):
    """Make the frozen network's input nodes play the sequences ``x`` one after another.

    The pixels go to the input node and, for a precomputed memory, the memory
    (`nengo_hybrid.networks.memory_response` of each sequence) to the memory
    node, one step per value, as NengoDL feeds them.
    """
    import nengo

    n, steps = x.shape[:2]
    for node, values in frozen.inputs(x).items():
        flat = np.asarray(values).reshape(n * steps, -1)
        node.output = nengo.processes.PresentInput(flat, presentation_time=0.001)
        node.size_out = flat.shape[1]
    return n * steps


def compare_in_chunks(
    frozen,
    x,
    y,
    strategy,
    layer_probes=(),
    target="sim",
    seed=0,
    chunk=25,
    progress=True,
    latency=0,
):
    """`nengo_hybrid.hardware.compare` over ``x`` in chunks, with a progress bar.

    Each chunk of sequences is played back to back (see `_present`); the class
    is read from the output on the last step of each sequence.

    Returns
    -------
    dict
        Sample-weighted ``accuracy_emulator``, ``accuracy_reference``,
        ``prediction_agreement``; ``emulator_s_per_step``, ``cores``,
        ``compartments``; and ``chunks`` (each chunk's `compare` result).
    """
    from tqdm.auto import tqdm

    from nengo_hybrid import hardware

    results = []
    with tqdm(
        total=len(y), desc=f"emulator ({target})", unit="sample", disable=not progress
    ) as bar:
        for start in range(0, len(y), chunk):
            xs, ys = x[start : start + chunk], y[start : start + chunk]
            n_steps = _present(frozen, xs)
            results.append(
                hardware.compare(
                    frozen,
                    n_steps,
                    frozen.probe,
                    layer_probes=layer_probes,
                    labels=ys,
                    presentation_steps=xs.shape[1],
                    score_steps=1,
                    strategy=strategy,
                    target=target,
                    seed=seed,
                    latency=latency,
                )
            )
            bar.update(len(ys))
            bar.set_postfix(accuracy=f"{_weighted(results, 'accuracy_emulator'):.3f}")
    steps = sum(r["n_steps"] for r in results)
    return {
        "n_samples": int(len(y)),
        "accuracy_emulator": _weighted(results, "accuracy_emulator"),
        "accuracy_reference": _weighted(results, "accuracy_reference"),
        "prediction_agreement": _weighted(results, "prediction_agreement"),
        "emulator_s_per_step": sum(
            r["emulator_ms_per_step"] * r["n_steps"] for r in results
        )
        / steps
        / 1000,
        "layers": _merge_layers(results),
        "cores": results[0].get("cores"),
        "compartments": results[0].get("compartments"),
        "chunks": results,
    }


def _merge_layers(results):
    """Per-layer spike agreement over all chunks (totals summed, fractions weighted)."""
    merged = {}
    for label in results[0].get("layers", {}):
        parts = [(r["n_steps"], r["layers"][label]) for r in results]
        ref = sum(p["total_reference"] for _, p in parts)
        emu = sum(p["total_emulator"] for _, p in parts)
        steps = sum(n for n, _ in parts)
        merged[label] = {
            "total_reference": ref,
            "total_emulator": emu,
            "total_ratio": emu / ref if ref else None,
            "fraction_equal_step_neuron": sum(
                n * p["fraction_equal_step_neuron"] for n, p in parts
            )
            / steps,
            "max_count_reference": max(p["max_count_reference"] for _, p in parts),
            "max_count_emulator": max(p["max_count_emulator"] for _, p in parts),
        }
    return merged


def _weighted(results, key):
    total = sum(r["n_samples"] for r in results)
    return sum(r[key] * r["n_samples"] for r in results) / total


def deploy(
    run,
    target="emulator",
    profile="loihi1",
    n_samples=None,
    strategy=None,
    check_result=None,
):
    """Run a trained run's network on nengo-loihi's emulator (or a chip).

    The frozen network plays ``n_samples`` test sequences back to back; the
    class is read from the output on the last step of each. The same network
    also runs in the Nengo reference simulator (`nengo_hybrid.hardware.compare`),
    and the NengoDL predictions of `evaluate` on the same samples are compared.

    Parameters
    ----------
    run : str or pathlib.Path
        Trained (and evaluated) run folder.
    target : {"emulator", "chip"}
        ``"chip"`` needs NxSDK (a clear error otherwise).
    profile : str
        Hardware profile (used to plan the cores).
    n_samples : int, optional
        Test examples (default: the recipe's ``n_samples``, else 200).
    strategy : str, optional
        Multi-bit strategy (default: the one `check` chose).
    check_result : dict, optional
        The `check` result; read from ``check.json`` when not given. If the
        check failed nothing is run and ``check_ok`` is False.

    Returns
    -------
    dict
        The content of ``deploy.json``.
    """
    from nengo_hybrid import hardware

    run = pathlib.Path(run)
    if target not in ("emulator", "chip"):
        raise PipelineUsageError(
            f"unknown target {target!r}", hint="use emulator or chip"
        )
    if target == "chip" and not hardware.HAS_NXSDK:
        raise PipelineUsageError(
            "--target chip needs Intel's NxSDK, which is not importable here",
            hint="run on the emulator (--target emulator), or on a machine with a "
            "Loihi board and NxSDK installed",
        )
    checked = check_result or reporting.read_stage(run, "check", required=False)
    stale = (
        checked is None
        or checked.get("error")
        or checked.get("profile") != _profile(profile).name
        or strategy == "auto"
        or (strategy is not None and checked.get("strategy_spec") != strategy)
    )
    if stale and check_result is None:
        checked = check(run=run, profile=profile, strategy=strategy or "auto")
    if not checked["ok"]:
        return {"check_ok": False, "check": checked}
    from nengo_hybrid.hardware.inputs import input_clip_fraction
    from nengo_hybrid.hardware.strategies import Substeps

    config = _config(run)
    recipe, frozen, dataset, encoding = deployable_network(run)
    n = int(n_samples or recipe.RECIPE.get("n_samples", 200))
    x, y = dataset.x_test[:n], dataset.y_test[:n]
    strat = choose_strategy(
        checked.get("strategy_spec") if strategy in (None, "auto") else strategy, None
    )
    layer_probes = [frozen.hidden_probe()]
    # Substeps runs host and chip at dt/K: the one-step latencies are sub-steps
    latency = (
        {}
        if isinstance(strat, Substeps)
        else {frozen.probe: HOST_LATENCY, layer_probes[0]: CHIP_LATENCY}
    )
    if encoding:
        values = frozen.inputs(x)[frozen.lmu.memory]
        encoding = dict(
            encoding,
            clip_fraction=input_clip_fraction(values, np.asarray(encoding["scale"])),
        )
    tic = time.perf_counter()
    compared = compare_in_chunks(
        frozen,
        x,
        y,
        strategy=strat,
        layer_probes=layer_probes,
        target="sim" if target == "emulator" else "loihi",
        seed=config["seed"],
        latency=latency,
    )
    evaluated = reporting.read_stage(run, "evaluate", required=False) or {}
    dl_pred = evaluated.get("predictions")
    result = {
        "model": checked.get("model"),
        "data": dataset.description,
        "seed": config["seed"],
        "target": target,
        "profile": checked.get("profile"),
        "strategy": repr(strat),
        "n_samples": int(len(y)),
        "steps_per_sample": int(x.shape[1]),
        "accuracy": compared["accuracy_emulator"],
        "accuracy_reference": compared["accuracy_reference"],
        "accuracy_reference_source": "Nengo reference simulator, same frozen network "
        "and samples played back to back",
        "prediction_agreement": compared.get("prediction_agreement"),
        "input_encoding": encoding,
        "latency_steps": {
            "output": latency.get(frozen.probe, 0),
            "hidden": latency.get(layer_probes[0], 0),
        },
        "seconds_per_step": compared["emulator_s_per_step"],
        "layers": compared["layers"],
        "seconds": time.perf_counter() - tic,
        "compare": compared,
    }
    if dl_pred is not None and len(dl_pred) >= len(y):
        result["accuracy_nengo_dl_same_samples"] = float(
            np.mean(np.asarray(dl_pred[: len(y)]) == y)
        )
    reporting.write_stage(run, "deploy", result)
    return result
