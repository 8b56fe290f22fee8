"""Batched emulator against nengo-loihi's on the same deployments, in one run.

For each trained run folder (``--runs``: e.g. the quick LMU, ``mnist_dense``
and the paper-size LMU), the frozen network is placed exactly as
``nengo-hybrid deploy`` places it (`nengo_hybrid.pipeline.deploy.Placement`)
and its test samples run, each from the initial state:

* nengo-loihi's emulator (``Simulator(emulator="nengo-loihi").run_samples``):
  one build and run per sample, for the first ``--official-samples``; the
  build and its chip run are timed separately (chip only: its
  ``EmulatorInterface`` steps, host excluded);
* the batched emulator (``Simulator(emulator="batched").run_samples``, host
  side included): ``--samples`` samples (default the whole split) per batch
  size, best of ``--repeats``; peak memory is the ``tracemalloc`` peak of one
  run (NumPy buffers, outputs included).

Every official sample's probe outputs are compared with the batched ones:
chip probes byte for byte, host outputs to 1e-12 relative. Ratios are
samples per second, batched over nengo-loihi, both with and without
nengo-loihi's per-sample build.

Writes ``results/emulator_throughput.{json,md}``. Example::

    python benchmarks/emulator_throughput.py \\
        --runs runs/lmu_quick runs/mnist_dense runs/lmu_paper --official-samples 5
"""

import argparse
import json
import os
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

from nengo_hybrid import report as reporting
from nengo_hybrid.io import (
    atomic_write_json,
    atomic_write_text,
    environment_info,
    markdown_table,
)

RESULTS = Path(__file__).parent / "results"


def placement(run, n_samples, allow_violations):
    """`Placement` of a checked run folder, and the violations its check found."""
    from nengo_hybrid.pipeline.deploy import Placement

    checked = reporting.read_stage(run, "check")
    violations = [v["message"] for v in checked.get("violations", [])]
    if violations and not allow_violations:
        raise SystemExit(
            f"{run}: its check failed ({'; '.join(violations)}); emulate it anyway "
            "with --allow-violations"
        )
    placed = Placement(run, checked, n_samples)
    placed.allow_violations = bool(violations)
    return placed, violations


def simulator(placed, emulator):
    from nengo_hybrid.hardware import Simulator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Simulator(
            placed.net, strategy=placed.strategies, profile=placed.profile,
            target="sim", seed=placed.seed, counts=placed.counts, emulator=emulator,
            allow_violations=placed.allow_violations,
        )  # fmt: skip


def host_steps(placed):
    from nengo_hybrid.hardware.loihi import substeps

    n_steps = next(iter(placed.values.values())).shape[1]
    extra = max(placed.latency.values(), default=0)
    return (n_steps + extra) * substeps(placed.strategies), substeps(placed.strategies)


def inputs(placed, start, stop, n_sub):
    return {
        node: np.repeat(np.asarray(x[start:stop]), n_sub, axis=1)
        for node, x in placed.values.items()
    }


def official(placed, n, steps, n_sub, probes):
    """nengo-loihi, one fresh simulator per sample: outputs, build and chip times."""
    outputs, build_s, chip_s = {p: [] for p in probes}, [], []
    for i in range(n):
        one = inputs(placed, i, i + 1, n_sub)
        t0 = time.perf_counter()
        sim = simulator(placed, "nengo-loihi")
        build_s.append(time.perf_counter() - t0)
        # feed the sample as run_samples does, then time the run alone
        t0 = time.perf_counter()
        out = sim.run_samples(one, steps, probes=probes)
        chip_s.append(time.perf_counter() - t0)
        for p in probes:
            outputs[p].append(out[p][0])
    return {p: np.stack(v) for p, v in outputs.items()}, build_s, chip_s


def measure_batched(placed, steps, n_sub, n_samples, batch_sizes, repeats, probes):
    sim = simulator(placed, "batched")
    assert sim.emulator == "batched", sim.emulator_fallback
    x = inputs(placed, 0, n_samples, n_sub)
    rows = []
    for batch in batch_sizes:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            sim.run_samples(x, steps, probes=[probes[0]], batch_size=batch)
            best = min(best, time.perf_counter() - t0)
        tracemalloc.start()
        sim.run_samples(x, steps, probes=[probes[0]], batch_size=batch)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append(
            {"batch": batch, "samples_per_s": n_samples / best, "peak_mb": peak / 2**20}
        )
    return sim, rows


def identical(sim, placed, reference, steps, n_sub, probes):
    """Official samples re-run batched: chip probes bytes, host outputs to 1e-12."""
    n = len(next(iter(reference.values())))
    out = sim.run_samples(inputs(placed, 0, n, n_sub), steps, probes=probes)
    chip = [p for p in probes if p is not placed.net.probe]
    bytes_equal = all(out[p].tobytes() == reference[p].tobytes() for p in chip)
    host_close = np.allclose(
        out[placed.net.probe], reference[placed.net.probe], rtol=1e-12, atol=1e-12
    )
    return bool(bytes_equal and host_close)


def bench(run, n_samples, args):
    placed, violations = placement(run, n_samples, args.allow_violations)
    steps, n_sub = host_steps(placed)
    probes = [placed.net.probe] + list(placed.layer_probes)
    n_samples = len(placed.labels)
    print(f"{run}: {n_samples} samples, {steps} steps", flush=True)
    ref, build_s, chip_s = official(placed, args.official_samples, steps, n_sub, probes)
    sim, rows = measure_batched(
        placed, steps, n_sub, n_samples, args.batch_sizes, args.repeats, probes
    )
    best = max(rows, key=lambda r: r["samples_per_s"])
    official_chip = 1 / float(np.median(chip_s))
    official_total = 1 / float(np.median(np.add(build_s, chip_s)))
    return {
        "run": str(run),
        "model": placed.recipe.name,
        "check_violations": violations,
        "strategies": {str(e.label): repr(s) for e, s in _items(placed.strategies)},
        "compartments": int(
            sum(b.compartment.n_compartments for b in sim.model.blocks)
        ),
        "cores": len(sim.model.blocks),
        "steps_per_sample": steps,
        "samples": n_samples,
        "official_samples": args.official_samples,
        "official_build_s": float(np.median(build_s)),
        "official_run_s": float(np.median(chip_s)),
        "official_samples_per_s": official_chip,
        "official_samples_per_s_with_build": official_total,
        "batched_samples_per_s": best["samples_per_s"],
        "best_batch": best["batch"],
        "peak_mb": best["peak_mb"],
        "ratio": best["samples_per_s"] / official_chip,
        "ratio_with_build": best["samples_per_s"] / official_total,
        "identical": identical(sim, placed, ref, steps, n_sub, probes),
        "batch_sizes": rows,
    }


def _items(strategies):
    if isinstance(strategies, dict):
        return strategies.items()
    return [("all hybrid ensembles", strategies)]


def markdown(record):
    """The results file's markdown (also rebuilt from the JSON with ``--markdown-only``)."""
    rows = record["rows"]
    columns = [
        ("model", "model", ""),
        ("compartments", "compartments", "d"),
        ("cores", "cores", "d"),
        ("steps_per_sample", "steps/sample", "d"),
        ("samples", "batched samples", "d"),
        ("official_samples_per_s", "nengo-loihi samples/s (run)", ".3g"),
        (
            "official_samples_per_s_with_build",
            "nengo-loihi samples/s (build+run)",
            ".3g",
        ),
        ("batched_samples_per_s", "batched samples/s", ".1f"),
        ("ratio", "ratio (run)", ".0f"),
        ("ratio_with_build", "ratio (build+run)", ".0f"),
        ("best_batch", "best batch", "d"),
        ("peak_mb", "peak MB", ".0f"),
        ("identical", "identical", ""),
    ]
    text = (
        "# Batched emulator throughput vs nengo-loihi's emulator\n\n"
        f"Date: {record['date']}. Machine: {record['machine']['platform']}, "
        f"{record['machine']['cpu_count']} CPUs, load average "
        f"{record['load_average'][0]:.1f} (shared with other work: timings are "
        f"noisy, the ratios are measured in the same run). Command: "
        f"`{record['command']}`.\n\n"
        "Each deployment is placed as `nengo-hybrid deploy` places it; every sample "
        "starts from the initial state. nengo-loihi: one simulator per sample "
        "(it has no reset); *run* is `run_samples` on the built simulator (host and "
        "chip), *build+run* adds the build. Batched: `Simulator.run_samples` with its "
        "NumPy host side, best of the repeats over the batch sizes. *identical*: "
        "the official samples' chip probes byte for byte and host outputs to 1e-12.\n\n"
        + markdown_table(rows, columns)
    )
    for row in rows:
        if row["check_violations"]:
            text += (
                f"\n* `{row['model']}` does not fit the profile (emulated with "
                f"allow_violations): {'; '.join(row['check_violations'])}\n"
            )
        text += (
            f"\n* `{row['model']}` ({row['run']}): strategies {row['strategies']}; "
            "batch sizes: "
            + ", ".join(
                f"{r['batch']}: {r['samples_per_s']:.1f}/s ({r['peak_mb']:.0f} MB)"
                for r in row["batch_sizes"]
            )
            + "\n"
        )
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", help="checked run folders")
    parser.add_argument(
        "--markdown-only",
        action="store_true",
        help="rewrite the markdown from results/emulator_throughput.json",
    )
    parser.add_argument(
        "--samples",
        type=int,
        nargs="+",
        help="batched samples per run, in the order of --runs (default: the whole "
        "test split)",
    )
    parser.add_argument(
        "--allow-violations",
        action="store_true",
        help="emulate runs whose hardware check failed (recorded in the results)",
    )
    parser.add_argument("--official-samples", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 256])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    if args.markdown_only:
        record = json.loads((RESULTS / "emulator_throughput.json").read_text())
        atomic_write_text(RESULTS / "emulator_throughput.md", markdown(record))
        return
    if not args.runs:
        parser.error("give --runs")
    tic = time.perf_counter()
    samples = args.samples or [None] * len(args.runs)
    if len(samples) != len(args.runs):
        parser.error("give one --samples value per run")
    rows = [bench(Path(run), n, args) for run, n in zip(args.runs, samples)]
    record = {
        "benchmark": "emulator_throughput",
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
        "command": "python benchmarks/emulator_throughput.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "load_average": os.getloadavg(),
        "seconds": time.perf_counter() - tic,
        "machine": environment_info(),
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "emulator_throughput.json", record)
    text = markdown(record)
    atomic_write_text(RESULTS / "emulator_throughput.md", text)
    print(text)


if __name__ == "__main__":
    main()
