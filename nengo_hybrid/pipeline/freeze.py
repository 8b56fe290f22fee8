"""Stage ``freeze``: the trained network as a framework-free file.

Writes ``frozen.npz`` (`nengo_hybrid.frozen`) and ``freeze.json``. ``train``
freezes from its live simulator; run on its own (`freeze`) it restores the
checkpoint into a NengoDL simulator first (one graph build).

Besides the trained parameters, the file records what deployment needs to know
about the data: the full scale of every host signal that is sent to the chip as
exact encoder spikes (`nengo_hybrid.hardware.encode_node_inputs`), measured on
training sequences, so that deploying needs no training data.
"""

import pathlib
import time

import numpy as np

from nengo_hybrid import report as reporting
from nengo_hybrid.pipeline.runs import (
    CHECKPOINT,
    FROZEN,
    PipelineUsageError,
    dataset_of,
    recipe_of,
    train_config,
)

#: host-to-chip encoder of signals like the LMU's memory: spikes per sign,
#: dimension and step, and full scale relative to the largest magnitude on (up
#: to) `SCALE_SAMPLES` training sequences
INPUT_LEVELS = 8
INPUT_MARGIN = 1.25
SCALE_SAMPLES = 1000


def input_scales(net, x):
    """``{node label: full scale per dimension}`` of ``net.encoded_inputs``."""
    if not net.encoded_inputs:
        return {}
    values = net.inputs(x[:SCALE_SAMPLES])
    return {
        node.label: INPUT_MARGIN
        * np.maximum(np.abs(values[node]).max(axis=(0, 1)), 1e-3)
        for node in net.encoded_inputs
    }


def restore(run, recipe):
    """A NengoDL simulator of the run's network with its trained checkpoint.

    The weights are those training kept (``train.json``'s ``config.keep``).
    """
    from nengo_hybrid import training
    from nengo_hybrid.pipeline.train import compile_classifier, simulator

    checkpoint = pathlib.Path(run) / CHECKPOINT
    if not checkpoint.exists():
        raise PipelineUsageError(
            f"{checkpoint} is missing",
            hint=f"train first: `nengo-hybrid train --out {run}`",
        )
    config = train_config(run)
    net = recipe.build(mode="train")
    sim = simulator(net, config["batch_size"], config["seed"])
    try:
        compile_classifier(sim, net, config["learning_rate"])
        training.load_checkpoint(sim, checkpoint, keep=config.get("keep", "last"))
    except training.CheckpointError as err:
        sim.close()
        raise PipelineUsageError(
            f"cannot load the trained parameters of {run}: {err}",
            hint="if the file is corrupt, train again into a new folder; if the recipe "
            f"changed since, restore it (`nengo-hybrid train --model {recipe.path} "
            "--out NEW_DIR` trains afresh)",
        ) from err
    except BaseException:
        sim.close()
        raise
    return net, sim


def freeze(run, recipe=None, sim=None, net=None, dataset=None):
    """Freeze a trained run into ``frozen.npz``; write ``freeze.json``.

    Parameters
    ----------
    run : str or pathlib.Path
        Run folder.
    recipe : nengo_hybrid.zoo.Recipe, optional
        Default: the one ``train.json`` records.
    sim, net : optional
        The trained NengoDL simulator and its network (from ``train``);
        default: restored from the run's checkpoint.
    dataset : optional
        The training data (for the input scales); default: the run's.

    Returns
    -------
    dict
        The content of ``freeze.json``.
    """
    run = pathlib.Path(run)
    recipe = recipe or recipe_of(run)
    if sim is None:
        net, sim = restore(run, recipe)
        with sim:
            return _freeze(run, recipe, sim, net, dataset)
    return _freeze(run, recipe, sim, net, dataset)


def _freeze(run, recipe, sim, net, dataset):
    from nengo_hybrid import dl, training
    from nengo_hybrid.frozen import FrozenNetwork

    tic = time.perf_counter()
    dataset = dataset or dataset_of(run, recipe)
    trained = {
        str(e.label): float(np.mean(p)) for e, p in dl.get_precision(sim).items()
    }
    trained_thresholds = {
        str(e.label): float(np.mean(t)) for e, t in dl.get_threshold(sim).items()
    }
    training.freeze(sim, net)
    final = trained.get(str(net.layers[0].label))  # None: not a HybridSpiking layer
    deployed = recipe.task.deploy_precisions(recipe.settings, trained)
    scales = input_scales(net, dataset.x_train)
    meta = {
        "model": recipe.name,
        "recipe": {
            "name": recipe.name,
            "path": str(recipe.path),
            "settings": recipe.settings,
        },
        "data": dataset.description,
        "seed": int(recipe["seed"]),
        "final_precision": final,
        "input_levels": INPUT_LEVELS,
        "input_scales": scales,
    }
    frozen = FrozenNetwork.from_network(net, meta)
    frozen.set_precisions(deployed)
    frozen.set_thresholds(
        recipe.task.deploy_thresholds(recipe.settings, trained_thresholds)
    )
    frozen.write(run / FROZEN)
    result = {
        "model": recipe.name,
        "data": dataset.description,
        "seed": meta["seed"],
        "file": FROZEN,
        "final_precision": final,
        "deploy_precision": deployed.get(str(net.layers[0].label)),
        "precisions": frozen.precisions,
        "thresholds": frozen.thresholds,
        "input_scales": scales,
        "seconds": time.perf_counter() - tic,
    }
    reporting.write_stage(run, "freeze", result)
    return result
