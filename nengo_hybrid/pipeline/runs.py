"""The run folder: where each stage finds its inputs and leaves its results.

==================  =========================================================
file                written by
==================  =========================================================
``checkpoint.npz``  train (`nengo_hybrid.training.fit`; resumes from it)
``train.json``      train: settings, history, the recipe, the data
``frozen.npz``      freeze (`nengo_hybrid.frozen`): the trained network,
                    framework-free; every later stage reads only this
``evaluate.json``   evaluate (NengoDL), with ``raster.npz``
``check.json``      check (hardware profile)
``deploy.json``     deploy (emulator, Lava or chip)
``report.*``        report, with ``plots/``
==================  =========================================================

Stage files are read and written by `nengo_hybrid.report` (atomic JSON).
"""

import pathlib
import sys

from nengo_hybrid import report as reporting
from nengo_hybrid.io import UserError

CHECKPOINT = "checkpoint.npz"
FROZEN = "frozen.npz"
RASTER = "raster.npz"


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


def usage_error(err):
    """A `PipelineUsageError` for a library error that means bad input, else None."""
    from nengo_hybrid import data, frozen
    from nengo_hybrid.hardware import profiles

    if isinstance(err, PipelineUsageError):
        return err
    if isinstance(err, UserError):  # recipes, plans
        return PipelineUsageError(str(err), hint=err.hint)
    if isinstance(err, (frozen.FrozenError, profiles.ProfileError, data.DataError)):
        return PipelineUsageError(str(err))
    if "nengo_hybrid.training" in sys.modules:  # loaded only where TensorFlow is
        from nengo_hybrid.training import CheckpointError

        if isinstance(err, CheckpointError):
            return PipelineUsageError(str(err))
    return None


def run_path(run):
    """``run`` as a path to an existing folder (a usage error otherwise)."""
    run = pathlib.Path(run)
    if not run.is_dir():
        raise PipelineUsageError(
            f"run folder {run} does not exist",
            hint="give the --out folder of a previous `nengo-hybrid train` or `run`",
        )
    return run


def train_config(run):
    """The settings ``train`` recorded (``train.json``'s ``config``)."""
    return reporting.read_stage(run, "train")["config"]


def recipe_of(run):
    """The recipe a run was trained with (the settings it recorded, seed included)."""
    from nengo_hybrid import zoo

    config = train_config(run)
    path = pathlib.Path(config["model_path"])
    if not path.is_file():
        path = zoo.find(path.stem)
    return zoo.Recipe(path, config["recipe"])


def dataset_of(run, recipe=None):
    """The dataset a run was trained on (``--data`` as recorded)."""
    recipe = recipe or recipe_of(run)
    return load_data(recipe, train_config(run)["data"])


def load_data(recipe, data="embedded"):
    """Load a recipe's dataset from a ``--data`` spelling, with a usage error."""
    from nengo_hybrid.pipeline.specs import parse_data

    source, path = parse_data(data)
    try:
        return recipe.load_data(source=source, path=path)
    except (FileNotFoundError, ValueError) as err:
        raise PipelineUsageError(
            f"cannot load data {data!r}: {err}",
            hint="use --data embedded (offline), --data mnist (Keras cache), or "
            "--data PATH to mnist.npz or a folder with the four MNIST IDX files",
        ) from err


def read_frozen(run):
    """The run's frozen network (`nengo_hybrid.frozen.FrozenNetwork`)."""
    from nengo_hybrid import frozen

    return frozen.read(pathlib.Path(run) / FROZEN)


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
