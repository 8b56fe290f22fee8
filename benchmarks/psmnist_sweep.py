"""The psMNIST sweep with 1 and 2 workers: results and the speed-up.

Runs ``nengo-hybrid sweep SPEC --workers N --out OUT/wN`` for each N (fresh
folders, one after the other), then writes ``benchmarks/results/psmnist_sweep``
``.json`` and ``.md``: what was run, the wall time of each sweep and the
speed-up, and the aggregated results (``sweep.md``) of the run with the most
workers, with its plots.

Usage::

    python benchmarks/psmnist_sweep.py [--spec sweeps/quick.yaml] [--workers 1,2]
        [--out runs/bench-sweep] [--reuse]

``--reuse`` takes sweeps already run into ``OUT/wN`` (same commands) instead of
running them again.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"


def run_sweep(spec, workers, out):
    """Run the sweep in a fresh folder; ``(seconds, load averages before, after)``."""
    if out.exists():
        shutil.rmtree(out)
    load = os.getloadavg()
    command = [sys.executable, "-m", "nengo_hybrid.cli", "sweep", str(spec),
               "--workers", str(workers), "--out", str(out)]  # fmt: skip
    tic = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - tic, load, os.getloadavg()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "sweeps" / "quick.yaml"))
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-sweep"))
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--results", default=str(RESULTS / "psmnist_sweep"))
    parser.add_argument(
        "--note", default="", help="a paragraph added under the timing table"
    )
    parser.add_argument(
        "--title",
        default="psMNIST sweep (quick recipe): hybrid LMU vs GRU, 1 and 2 workers",
    )
    args = parser.parse_args(argv)

    from nengo_hybrid.io import atomic_write_bytes, atomic_write_json, atomic_write_text

    counts = [int(w) for w in args.workers.split(",")]
    out = Path(args.out)
    runs = []
    for n in counts:
        folder = out / f"w{n}"
        command_seconds, load_before, load_after = (
            (None, None, None) if args.reuse else run_sweep(args.spec, n, folder)
        )
        record = json.loads((folder / "sweep.json").read_text())
        (session,) = [s for s in record["sessions"] if s["started"]]
        runs.append(
            dict(
                workers=n,
                folder=str(folder),
                sweep_seconds=session["seconds"],
                command_seconds=command_seconds,
                load_average_before=load_before,
                load_average_after=load_after,
                threads_per_trial=session.get("threads_per_trial"),
                status=record["status"],
                record=record,
            )
        )
    base = runs[0]["sweep_seconds"]
    for run in runs:
        run["speedup"] = base / run["sweep_seconds"]
    last = runs[-1]
    spec_text = Path(args.spec).read_text()
    result = dict(
        note=args.note,
        spec=spec_text,
        spec_path=str(Path(args.spec).resolve().relative_to(ROOT)),
        runs=[{k: v for k, v in r.items() if k != "record"} for r in runs],
        sweep=last["record"],
    )
    results = Path(args.results)
    atomic_write_json(results.with_suffix(".json"), result)
    plots = {}
    for name in last["record"]["plots"]:
        target = results.parent / f"{results.name}_{name}"
        atomic_write_bytes(target, (Path(last["folder"]) / "plots" / name).read_bytes())
        plots[f"plots/{name}"] = target.name
    body = (Path(last["folder"]) / "sweep.md").read_text()
    for old, new in plots.items():
        body = body.replace(f"]({old})", f"]({new})")
    # trial folders are not committed: their names without links
    body = re.sub(r"\[([^\]]*)\]\(trials/[^)]*\)", r"\1", body)
    lines = [
        f"# {args.title}",
        "",
        f"Produced by `nengo-hybrid sweep {result['spec_path']} --workers N --out "
        "OUT/wN` for N in " + ", ".join(map(str, counts)) + " on this machine, one "
        "after the other in fresh folders (`benchmarks/psmnist_sweep.py`). The spec:",
        "",
        "```yaml",
        spec_text.rstrip(),
        "```",
        "",
        "| workers | TF threads per trial | trials done | wall time of the sweep (s) "
        "| speed-up | machine load (1, 5, 15 min) before / after |",
        "| --- | --- | --- | --- | --- | --- |",
    ]

    def load(values):
        return "n/a" if values is None else ", ".join(f"{v:.1f}" for v in values)

    for run in runs:
        lines.append(
            f"| {run['workers']} | {run['threads_per_trial']} | "
            f"{run['status']['done']}/{run['status']['trials']} | "
            f"{run['sweep_seconds']:.0f} | {run['speedup']:.2f} | "
            f"{load(run['load_average_before'])} / {load(run['load_average_after'])} |"
        )
    lines += [
        "",
        "The wall time is that of `nengo_hybrid.sweep.run` (Ray start-up, all trials, "
        "aggregation). The machine has 2 cores shared with other jobs, so times are "
        "indicative. Below: the aggregated results of the "
        f"{last['workers']}-worker sweep (its `sweep.md`; trial folders not committed).",
        "",
        args.note,
        "",
        body.replace("# Sweep", "## Sweep", 1).replace("\n## ", "\n### "),
    ]
    atomic_write_text(results.with_suffix(".md"), "\n".join(lines))
    print("\n".join(lines[:20]))


if __name__ == "__main__":
    main()
