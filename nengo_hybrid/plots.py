"""Plots for the run report (matplotlib figures, no display needed).

Each function takes plain arrays (no simulator objects), draws one figure and
writes it atomically as PNG: to a temporary file, then `os.replace`.
"""

import io
import pathlib

import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from nengo_hybrid.io import atomic_write_bytes

# Figures are made with matplotlib.figure.Figure, not pyplot: no global backend
# is chosen or changed, so importing this module never affects the user's plots.


def _subplots(ncols=1, **kwargs):
    fig = Figure(**kwargs)
    axes = fig.subplots(1, ncols)
    return fig, axes


def _save(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return pathlib.Path(path)


def _finite(values):
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def accuracy_vs_bits(epochs, accuracy, bits, path, precision=None):
    """Validation accuracy against activity bits, one point per epoch.

    Parameters
    ----------
    epochs : sequence of int
        Epoch numbers (1-based).
    accuracy : sequence of float
        Validation accuracy after each epoch (0-1).
    bits : sequence of float
        Activity bits on validation data after each epoch.
    path : str or pathlib.Path
        Output PNG.
    precision : sequence of float, optional
        Precision at the end of each epoch, used to label the points.
    """
    epochs, accuracy, bits = list(epochs), _finite(accuracy), _finite(bits)
    if not (len(epochs) == len(accuracy) == len(bits)):
        raise ValueError(
            f"epochs, accuracy and bits must have the same length, got "
            f"{len(epochs)}, {len(accuracy)}, {len(bits)}"
        )
    fig, (ax0, ax1) = _subplots(2, figsize=(10, 4))
    ax0.plot(bits, 100 * accuracy, "-", color="0.6", zorder=1)
    points = ax0.scatter(bits, 100 * accuracy, c=epochs, cmap="viridis", zorder=2)
    for i, epoch in enumerate(epochs):
        label = f"{epoch}" if precision is None else f"{epoch} (p={precision[i]:.3g})"
        ax0.annotate(
            label,
            (bits[i], 100 * accuracy[i]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    fig.colorbar(points, ax=ax0, label="epoch")
    ax0.set_xlabel("activity bits (validation)")
    ax0.set_ylabel("validation accuracy (%)")
    ax0.set_title("accuracy vs activity bits over training")
    ax1.plot(epochs, 100 * accuracy, "o-", label="accuracy (%)")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("validation accuracy (%)")
    twin = ax1.twinx()
    twin.plot(epochs, bits, "s--", color="C1", label="activity bits")
    twin.set_ylabel("activity bits", color="C1")
    ax1.set_title("per epoch")
    return _save(fig, path)


def precision_schedule(steps, precision, path, epoch_steps=None):
    """The precision the neurons used at each training step (log scale).

    Parameters
    ----------
    steps : sequence of int
        Training step (batch) numbers.
    precision : sequence of float
        Precision at each step.
    path : str or pathlib.Path
        Output PNG.
    epoch_steps : sequence of int, optional
        Steps at which epochs start; drawn as vertical lines.
    """
    steps, precision = np.asarray(steps), _finite(precision)
    if steps.shape != precision.shape:
        raise ValueError("steps and precision must have the same length")
    fig, ax = _subplots(figsize=(6, 3.5))
    ax.plot(steps, precision, "-", drawstyle="steps-post")
    if np.all(precision[np.isfinite(precision)] > 0):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    for s in epoch_steps or ():
        ax.axvline(s, color="0.8", lw=0.8, zorder=0)
    ax.set_xlabel("training step (batch)")
    ax.set_ylabel("precision p")
    ax.set_title(
        "precision schedule (high p: close to the rate network; last: deployed)"
    )
    return _save(fig, path)


def spike_raster(counts, path, dt=0.001, max_neurons=64, title="hidden layer"):
    """Spike raster of one example: a mark for every nonzero count.

    Multi-bit counts are shown by marker colour and size.

    Parameters
    ----------
    counts : array_like (n_steps, n_neurons)
        Integer spike counts per step of one example.
    path : str or pathlib.Path
        Output PNG.
    dt : float
        Simulator step, for the time axis.
    max_neurons : int
        Show at most this many neurons (the first ones).
    title : str
        Which layer this is.
    """
    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise ValueError(
            f"counts must be (n_steps, n_neurons), got shape {counts.shape}"
        )
    counts = counts[:, :max_neurons]
    t_idx, n_idx = np.nonzero(counts)
    values = counts[t_idx, n_idx]
    fig, ax = _subplots(figsize=(8, 4))
    if values.size:
        vmax = max(1, int(np.abs(values).max()))
        points = ax.scatter(
            t_idx * dt,
            n_idx,
            c=values,
            s=4 + 6 * np.abs(values),
            marker="|",
            cmap="plasma",
            vmin=min(0, values.min()),
            vmax=vmax,
        )
        fig.colorbar(points, ax=ax, label="spikes per step")
    ax.set_xlim(0, counts.shape[0] * dt)
    ax.set_ylim(-0.5, counts.shape[1] - 0.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("neuron")
    ax.set_title(
        f"spike raster, {title} ({counts.shape[1]} neurons shown, "
        f"max {int(np.abs(counts).max()) if counts.size else 0} spikes/step)"
    )
    return _save(fig, path)


def core_utilisation(cores, path, title="per-core utilisation"):
    """Per-core use of each limited resource, as a percentage of the limit.

    Parameters
    ----------
    cores : sequence of dict
        One dict per core: ``{"core": label, RESOURCE: fraction, ...}`` with
        fractions of the limit (1.0 = full; above 1 is a violation).
    path : str or pathlib.Path
        Output PNG.
    title : str
        Plot title (e.g. with the profile name).
    """
    cores = list(cores)
    resources = sorted({k for c in cores for k in c if k != "core"})
    fig, ax = _subplots(
        figsize=(max(5, 1 + 0.6 * len(cores) * max(1, len(resources)) / 2), 4)
    )
    if not cores or not resources:
        ax.text(0.5, 0.5, "no cores mapped", ha="center", va="center")
    else:
        width = 0.8 / len(resources)
        x = np.arange(len(cores))
        for j, res in enumerate(resources):
            vals = 100 * _finite([c.get(res) for c in cores])
            ax.bar(x + j * width - 0.4 + width / 2, vals, width, label=res)
        ax.axhline(100, color="red", lw=1, ls="--", label="limit")
        ax.set_xticks(x)
        ax.set_xticklabels(
            [str(c.get("core", i)) for i, c in enumerate(cores)],
            rotation=45 if len(cores) > 8 else 0,
        )
        ax.set_xlabel("core")
        ax.set_ylabel("% of limit")
        ax.legend(fontsize=7, loc="upper right")
    ax.set_title(title)
    return _save(fig, path)
