"""The bridge to Lava (Loihi 2): run a `.loihi2.Program` as Lava processes.

Lava (lava-nc 0.10.0) needs Python 3.10 and lives in its own environment,
``.venv-lava`` (``make lava``). The main stack never imports it: `run_lava`
writes the program and its inputs to a file, runs ``lava_runner.py`` (a
script needing only numpy and lava-nc) with that environment's Python, and
reads the payloads back.

The Lava environment's Python is, in order: ``$NENGO_HYBRID_LAVA_PYTHON``,
``.venv-lava/bin/python`` in the current folder, then in the source checkout
this package is in.
"""

import os
import pathlib
import shutil
import subprocess
import tempfile

import numpy as np

from nengo_hybrid.hardware.loihi2 import Loihi2Output, input_payloads, overflowing
from nengo_hybrid.io import UserError, read_npz

ENV_VAR = "NENGO_HYBRID_LAVA_PYTHON"
RUNNER = pathlib.Path(__file__).with_name("lava_runner.py")
TARGETS = ("sim", "chip")
LAVA_BATCH = 32  # samples per Lava run (block-diagonal copies)


class LavaError(UserError):
    """Lava is missing, or a Lava run failed (the message says which and why)."""


def lava_python():
    """Path of the Lava environment's Python; `LavaError` saying ``make lava`` if absent."""
    override = os.environ.get(ENV_VAR)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise LavaError(
                f"${ENV_VAR} is {override!r}, which is not an executable file",
                hint="point it at the Python of an environment with lava-nc 0.10.0",
            )
        return pathlib.Path(override)
    checkout = pathlib.Path(__file__).resolve().parents[2]
    candidates = [
        pathlib.Path.cwd() / ".venv-lava" / "bin" / "python",
        checkout / ".venv-lava" / "bin" / "python",
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise LavaError(
        "the Lava environment (.venv-lava, Python 3.10 + lava-nc 0.10.0) is missing: "
        f"looked for {', '.join(str(p) for p in candidates)}",
        hint=f"create it with `make lava` in the source checkout, or set ${ENV_VAR}",
    )


def run_lava(
    program,
    inputs=None,
    n_steps=None,
    n_samples=None,
    target="sim",
    batch_size=LAVA_BATCH,
    progress=None,
):
    """Run ``program`` on Lava; same arguments and result as `.loihi2.run`.

    The samples run ``batch_size`` at a time, each batch one Lava run of
    block-diagonal copies of the network (``lava_runner.py``): Lava's cost per
    run is mostly its start-up, and a block-diagonal ``Dense`` grows with the
    square of the batch.

    Parameters
    ----------
    program : nengo_hybrid.hardware.loihi2.Program
    inputs, n_steps, n_samples
        As `.loihi2.run`.
    target : {"sim", "chip"}
        ``"sim"``: ``Loihi2SimCfg(select_tag="fixed_pt")`` on the CPU;
        ``"chip"``: ``Loihi2HwCfg`` (needs lava-loihi and a Loihi 2 system).
    batch_size : int
        Samples per Lava run.
    progress : tqdm-like, optional
        Its ``update(n)`` is called with the samples of each finished run.

    Returns
    -------
    Loihi2Output
        With ``meta``: Lava's own build and run time summed over the runs
        (``seconds``), its version, the target and the number of runs.

    Raises
    ------
    LavaError
        If Lava is missing or a run fails (with Lava's own message).
    """
    if target not in TARGETS:
        raise LavaError(f"unknown Lava target {target!r}", hint=f"use one of {TARGETS}")
    if int(batch_size) < 1:
        raise LavaError(f"batch_size={batch_size} must be at least 1")
    python = lava_python()
    payloads, given, n_steps = input_payloads(program, inputs, n_steps)
    n_samples = n_samples or given
    full = {
        label: np.zeros((n_samples, n_steps, size), dtype=np.int64)
        for label, size in program.inputs.items()
    }
    for label, x in payloads.items():
        full[label] = np.broadcast_to(x, (n_samples, n_steps, x.shape[2]))
    runs = []
    for b0 in range(0, n_samples, int(batch_size)):
        b1 = min(b0 + int(batch_size), n_samples)
        chunk = {f"input_{k}": v[b0:b1, :n_steps] for k, v in full.items()}
        runs.append(_run_once(python, program, chunk, b1 - b0, n_steps, target))
        if progress is not None:
            progress.update(b1 - b0)
    out = {
        p.label: np.concatenate([arrays[f"payload_{p.label}"] for _, arrays in runs])
        for p in program.populations
    }
    result = Loihi2Output(out, overflowing(out, program.payload_bits))
    result.meta = dict(runs[0][0], runs=len(runs))
    result.meta["seconds"] = float(sum(meta.get("seconds", 0.0) for meta, _ in runs))
    return result


def _run_once(python, program, inputs, n_samples, n_steps, target):
    """One Lava run of ``n_samples`` samples: ``(meta, arrays)`` of its output file."""
    extra = dict(inputs, n_samples=np.int64(n_samples), n_steps=np.int64(n_steps))
    with tempfile.TemporaryDirectory(prefix="nengo-hybrid-lava-") as folder:
        folder = pathlib.Path(folder)
        # Lava searches the runner's folder for process models: give it its own
        runner = folder / RUNNER.name
        shutil.copyfile(RUNNER, runner)
        program.write(folder / "program.npz", extra)
        cmd = [
            str(python),
            str(runner),
            "program.npz",
            "output.npz",
            "--target",
            target,
        ]
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            raise LavaError(
                f"the Lava run ({python} {RUNNER.name}) failed with exit code "
                f"{proc.returncode}:\n" + "\n".join(tail),
                hint="see Lava's message above",
            )
        return read_npz(folder / "output.npz")


def has_lava():
    """True if the Lava environment is found (tests skip without it)."""
    try:
        lava_python()
    except LavaError:
        return False
    return True
