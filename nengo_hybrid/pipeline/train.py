"""Stage ``train``: interpolation training in NengoDL, ending with a freeze.

Writes ``checkpoint.npz`` (resumable), ``train.json`` and, from the trained
simulator, the frozen network file (`nengo_hybrid.pipeline.freeze`), so the
TensorFlow graph is built once for training and never again for freezing.
"""

import contextlib
import io
import pathlib
import time

from nengo_hybrid import report as reporting
from nengo_hybrid.pipeline.runs import CHECKPOINT, PipelineUsageError, load_data


@contextlib.contextmanager
def quiet():
    """Silence NengoDL's build messages on stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def simulator(net, batch_size, seed):
    """A NengoDL simulator for a classifier network (one graph build)."""
    import nengo_dl

    from nengo_hybrid import dl

    dl.configure_classifier(net)
    with quiet():
        return nengo_dl.Simulator(
            net, minibatch_size=batch_size, seed=seed, progress_bar=False
        )


def compile_classifier(sim, net, learning_rate):
    import tensorflow as tf

    sim.compile(
        optimizer=tf.optimizers.Adam(learning_rate),
        loss={net.probe: tf.losses.SparseCategoricalCrossentropy(from_logits=True)},
        metrics={net.probe: "accuracy"},
    )


def subset(x, y, n, batch_size, name):
    """The first ``n`` examples (default all), cut to a multiple of the batch."""
    n = len(y) if n is None else min(n, len(y))
    n -= n % batch_size
    if n < 1:
        raise PipelineUsageError(
            f"fewer {name} examples than one minibatch of {batch_size}",
            hint="lower --batch-size or use more examples",
        )
    return x[:n], y[:n]


def accuracy_key(record):
    """The validation accuracy key of a history record (NengoDL names it by probe)."""
    keys = [k for k in record if k.startswith("val_") and k.endswith("accuracy")]
    return keys[0] if keys else None


def kept_accuracy(history):
    """The validation accuracy of the epoch whose weights were kept (else the last)."""
    epochs = history["epochs"]
    if not epochs:
        return None
    kept = (history.get("kept") or {}).get("epoch", epochs[-1]["epoch"])
    record = next((r for r in epochs if r["epoch"] == kept), epochs[-1])
    key = accuracy_key(record)
    return record.get(key) if key else None


def check_schedule(schedule, net):
    """A usage error unless ``schedule`` can drive every annealed ensemble of ``net``.

    E.g. ``constant:0`` is a valid threshold schedule for `.SigmaDelta` layers,
    but no precision for `.HybridSpiking` ones.
    """
    from nengo.exceptions import ValidationError

    from nengo_hybrid import training
    from nengo_hybrid.pipeline.specs import SCHEDULE_FORMS

    for ens in training.hybrid_ensembles(net).values():
        try:
            schedule.check_values(ens.neuron_type)
        except ValidationError as err:
            raise PipelineUsageError(
                f"bad schedule for this model: {err}",
                hint=f"use {SCHEDULE_FORMS}, with precisions > 0 for HybridSpiking "
                "and thresholds >= 0 for SigmaDelta layers",
            ) from None


def train(
    recipe,
    data="embedded",
    out="runs/run",
    epochs=None,
    schedule=None,
    batch_size=None,
    n_train=None,
    progress=True,
    keep="last",
):
    """Train a recipe with interpolation, then freeze; write ``train.json``.

    If ``out`` already holds a checkpoint of the same run, training resumes.
    Inputs derived from the data (the LMU's precomputed memory) are made one
    minibatch at a time, so memory grows with the minibatch, not the dataset.

    Parameters
    ----------
    recipe : nengo_hybrid.zoo.Recipe
        The model (its ``seed`` seeds weights, shuffling and simulator).
    data : str
        ``"embedded"``, ``"mnist"`` or a path (see `.specs.parse_data`).
    out : str or pathlib.Path
        Run folder.
    epochs, batch_size, n_train : int, optional
        Override the recipe (``n_train``: first N training examples).
    schedule : nengo_hybrid.schedules.Schedule, optional
        Override the recipe's schedule.
    progress : bool
        Show a progress bar and a line per epoch.
    keep : {"last", "best"}
        Freeze the last epoch, or the epoch with the best validation accuracy
        among those at the final precision (`nengo_hybrid.training.fit`).
        ``train.json`` names the kept epoch (``kept``).

    Returns
    -------
    dict
        The content of ``train.json``.
    """
    from nengo_hybrid import training
    from nengo_hybrid.pipeline import freeze as freeze_stage
    from nengo_hybrid.pipeline.specs import parse_schedule

    seed = int(recipe["seed"])
    sched = schedule or parse_schedule(recipe.task.schedule(recipe.settings))
    epochs = int(epochs or recipe["epochs"])
    batch_size = int(batch_size or recipe["minibatch_size"])
    learning_rate = float(recipe["learning_rate"])
    dataset = load_data(recipe, data)
    x_train, y_train = subset(
        dataset.x_train, dataset.y_train, n_train, batch_size, "training"
    )
    x_val, y_val = subset(dataset.x_val, dataset.y_val, None, batch_size, "validation")

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    net = recipe.build(mode="train")
    check_schedule(sched, net)
    tic = time.perf_counter()
    with simulator(net, batch_size, seed) as sim:
        compile_classifier(sim, net, learning_rate)
        try:
            history = training.fit(
                sim,
                x_train,
                {net.probe: net.targets(y_train)},
                schedule=sched,
                epochs=epochs,
                validation_data=(x_val, {net.probe: net.targets(y_val)}),
                checkpoint=out / CHECKPOINT,
                seed=seed,
                progress=progress,
                inputs=net.inputs,
                keep=keep,
            )
        except training.CheckpointError as err:
            raise PipelineUsageError(
                str(err), hint="use a new --out folder, or the settings of that run"
            ) from err
        seconds = time.perf_counter() - tic
        history = history.to_dict()
        result = {
            "model": recipe.name,
            "data": dataset.description,
            "seed": seed,
            "epochs": epochs,
            "schedule": sched.to_dict(),
            "schedule_repr": repr(sched),
            "n_train": len(y_train),
            "n_validation": len(y_val),
            "val_accuracy": kept_accuracy(history),
            "kept": history["kept"],
            "seconds": seconds,
            "history": history,
            "config": {
                "model_path": str(recipe.path),
                "data": str(data),
                "seed": seed,
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "keep": keep,
                "recipe": recipe.settings,
                "dataset": dataset.to_dict(),
            },
        }
        frozen = freeze_stage.freeze(out, recipe, sim=sim, net=net, dataset=dataset)
    result["final_precision"] = frozen["final_precision"]
    if frozen["thresholds"]:  # SigmaDelta layers: their deployment thresholds
        result["thresholds"] = frozen["thresholds"]
    reporting.write_stage(out, "train", result)
    return result
