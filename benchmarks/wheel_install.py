"""Install the wheel into a fresh virtual environment and run it from an empty folder.

What a user who runs ``pip install nengo-hybrid`` gets, outside the
repository: builds the wheel from this checkout, creates a new venv (package
index as configured for pip; its cache makes repeats fast), installs the wheel,
and from an empty temporary folder runs

* ``nengo-hybrid --help``,
* ``nengo-hybrid check --model lmu_quick`` (the recipe and plan ship inside),
* ``nengo-hybrid run --epochs 1`` (the main job on the embedded data),
* ``nengo -b nengo_hybrid`` is not run (it starts a server); the entry point
  and the ``Simulator`` it loads are checked instead.

Writes ``results/wheel_install.{json,md}`` with each command's exit code and
wall time. Example::

    python benchmarks/wheel_install.py              # about 5-10 minutes
    python benchmarks/wheel_install.py --epochs 1 --keep /tmp/wheel-venv
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nengo_hybrid.io import (
    atomic_write_json,
    atomic_write_text,
    environment_info,
    markdown_table,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"


def run(command, cwd, log):
    """Run ``command``; record its exit code, time and output tail."""
    tic = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - tic
    row = {
        "command": " ".join(str(c) for c in command),
        "exit_code": proc.returncode,
        "seconds": seconds,
        "output_tail": (proc.stdout + proc.stderr)[-2000:],
    }
    log.append(row)
    print(f"[{proc.returncode}] {seconds:7.1f} s  {row['command']}", flush=True)
    return proc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--keep", metavar="DIR", help="keep the venv here")
    parser.add_argument(
        "--no-results", action="store_true", help="do not write results/ (tests)"
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="nengo-hybrid-wheel-"))
    venv = Path(args.keep) if args.keep else work / "venv"
    empty = work / "empty"
    empty.mkdir()
    log = []
    try:
        dist = work / "dist"
        run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", dist, ROOT],
            work,
            log,
        )
        wheel = next(dist.glob("nengo_hybrid-*.whl"))
        run([sys.executable, "-m", "venv", "--clear", venv], work, log)
        py, exe = venv / "bin" / "python", venv / "bin" / "nengo-hybrid"
        run([py, "-m", "pip", "install", "--quiet", f"{wheel}[gui]"], work, log)
        run([exe, "--help"], empty, log)
        run([exe, "check", "--model", "lmu_quick"], empty, log)
        run(
            [exe, "run", "--epochs", str(args.epochs), "--out", "runs/quick"],
            empty,
            log,
        )
        entry = (
            "from importlib.metadata import entry_points; "
            "(ep,) = entry_points(group='nengo.backends', name='nengo_hybrid'); "
            "import nengo_hybrid; "
            "print(ep.load().__name__, nengo_hybrid.Simulator is ep.load())"
        )
        run([py, "-c", entry], empty, log)
        report = empty / "runs" / "quick" / "report.md"
        ok = all(r["exit_code"] == 0 for r in log) and report.is_file()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    record = {
        "benchmark": "wheel_install",
        "date": time.strftime("%Y-%m-%d"),
        "ok": ok,
        "machine": environment_info(),
        "steps": log,
    }
    if not args.no_results:
        RESULTS.mkdir(exist_ok=True)
        atomic_write_json(RESULTS / "wheel_install.json", record)
        columns = [
            ("command", "command (venv/bin, from an empty folder)", ""),
            ("exit_code", "exit", "d"),
            ("seconds", "seconds", ".1f"),
        ]
        text = (
            "# Wheel installed outside the checkout\n\n"
            f"All steps succeeded: {'yes' if ok else 'NO'}. Script: "
            "`benchmarks/wheel_install.py`.\n\n"
            + markdown_table(
                [
                    {**r, "command": r["command"].replace(str(work), "$TMP")}
                    for r in log
                ],
                columns,
            )
        )
        atomic_write_text(RESULTS / "wheel_install.md", text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
