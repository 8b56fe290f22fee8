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


def run_lava(program, inputs=None, n_steps=None, n_samples=None, target="sim"):
    """Run ``program`` on Lava; same arguments and result as `.loihi2.run`.

    Parameters
    ----------
    program : nengo_hybrid.hardware.loihi2.Program
    inputs, n_steps, n_samples
        As `.loihi2.run`.
    target : {"sim", "chip"}
        ``"sim"``: ``Loihi2SimCfg(select_tag="fixed_pt")`` on the CPU;
        ``"chip"``: ``Loihi2HwCfg`` (needs lava-loihi and a Loihi 2 system).

    Returns
    -------
    Loihi2Output
        With ``meta`` (Lava's run time in seconds, version, target).

    Raises
    ------
    LavaError
        If Lava is missing or the run fails (with Lava's own message).
    """
    if target not in TARGETS:
        raise LavaError(f"unknown Lava target {target!r}", hint=f"use one of {TARGETS}")
    python = lava_python()
    payloads, given, n_steps = input_payloads(program, inputs, n_steps)
    n_samples = n_samples or given
    extra = {
        f"input_{label}": np.zeros((n_samples, n_steps, size), dtype=np.int64)
        for label, size in program.inputs.items()
    }
    for label, x in payloads.items():
        extra[f"input_{label}"] = np.broadcast_to(x, (n_samples, n_steps, x.shape[2]))
    extra["n_samples"], extra["n_steps"] = np.int64(n_samples), np.int64(n_steps)

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
        meta, arrays = read_npz(folder / "output.npz")
    out = {p.label: arrays[f"payload_{p.label}"] for p in program.populations}
    result = Loihi2Output(out, overflowing(out, program.payload_bits))
    result.meta = meta
    return result


def has_lava():
    """True if the Lava environment is found (tests skip without it)."""
    try:
        lava_python()
    except LavaError:
        return False
    return True
