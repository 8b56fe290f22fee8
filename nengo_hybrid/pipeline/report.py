"""Stage ``report``: ``report.json``, ``report.md`` and ``plots/`` of a run folder.

Reads only the stage files (``*.json``, ``raster.npz``): no simulator, no
TensorFlow (`nengo_hybrid.report` renders, `nengo_hybrid.plots` draws).
"""

import pathlib

import numpy as np

from nengo_hybrid import report as reporting
from nengo_hybrid.pipeline.check import checked_profile
from nengo_hybrid.pipeline.runs import RASTER, PipelineUsageError
from nengo_hybrid.pipeline.train import accuracy_key

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
            limits = checked_profile(check_result).limits
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
    if (run / RASTER).exists():
        with np.load(run / RASTER) as raster:
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
            title=f"per-core utilisation ({checked.get('profile')}, "
            + ", ".join(
                f"{k}: {v}" for k, v in (checked.get("strategies") or {}).items()
            )
            + ")",
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
