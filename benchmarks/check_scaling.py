"""Wall time and peak memory of ``nengo_hybrid.hardware.check`` against network size.

Each network is two ensembles of N hybrid-spiking ReLU neurons joined by a
dense N x N neuron-to-neuron connection (N^2 weights, uniform in +-1e-5;
seed 0), for N = 1000, 3000, 5000 and 10000. ``check`` runs against the Loihi 1
profile (the default; its cores take at most 4096 input axons, so from
N = 4097 on the shapes alone decide that the network does not fit) and
against Loihi 2 (no input-axon limit: the full build and core plan run) up to
``--max-loihi2`` (tracemalloc only up to ``--trace-up-to``: it slows the
largest runs by many minutes).

Every measurement runs in a fresh Python (``--one``), twice: once timed, with
the peak resident memory of the process (``resource.getrusage``) and its
resident memory before ``check`` started; once under ``tracemalloc`` for the
peak of what ``check`` itself allocated (the traced run is slower; its time
is not reported). Writes ``results/check_scaling.{json,md}``.

Example::

    python benchmarks/check_scaling.py
    python benchmarks/check_scaling.py --sizes 1000 3000 --max-loihi2 3000
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from nengo_hybrid.io import (
    atomic_write_json,
    atomic_write_text,
    environment_info,
    markdown_table,
)

RESULTS = Path(__file__).parent / "results"
NETWORK = (
    "pre (N) -> post (N) HybridSpiking(RectifiedLinear) neurons, one dense N x N "
    "neuron-to-neuron connection, weights uniform in +-1e-5, seed 0"
)


def rss_bytes():
    """Resident memory of this process now (Linux ``/proc``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def network(n, seed=0):
    import nengo
    import numpy as np

    from nengo_hybrid import HybridSpiking

    rng = np.random.RandomState(seed)
    with nengo.Network(seed=seed) as net:
        kw = dict(neuron_type=HybridSpiking(nengo.RectifiedLinear()))
        pre = nengo.Ensemble(n, 1, label="pre", **kw)
        post = nengo.Ensemble(n, 1, label="post", **kw)
        nengo.Connection(
            pre.neurons, post.neurons, transform=rng.uniform(-1e-5, 1e-5, (n, n))
        )
    return net


def measure_one(n, profile, traced):
    """Run ``check`` once in this process; return a dict of results."""
    import tracemalloc

    from nengo_hybrid.hardware import check

    net = network(n)
    import nengo_hybrid.hardware.check  # noqa: F401 (imports nengo-loihi first)

    before = rss_bytes()
    if traced:
        tracemalloc.start()
    tic = time.perf_counter()
    report = check(net, profile=profile)
    seconds = time.perf_counter() - tic
    out = {"n": n, "profile": profile}
    if traced:
        out["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return out
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out.update(
        seconds=seconds,
        rss_before_bytes=before,
        rss_peak_bytes=peak,
        ok=report.ok,
        n_cores=report.n_cores,
        violations=sorted({v.kind for v in report.violations}),
        build_skipped=any(note.startswith("Build skipped") for note in report.notes),
    )
    return out


def run_child(n, profile, traced, timeout):
    command = [sys.executable, __file__, "--one", str(n), profile]
    if traced:
        command.append("--traced")
    tic = time.perf_counter()
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=True
        )
    except subprocess.TimeoutExpired:
        return {"n": n, "profile": profile, "timeout_s": timeout}
    except subprocess.CalledProcessError as err:
        return {"n": n, "profile": profile, "error": err.stderr[-500:]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - tic
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1000, 3000, 5000, 10000]
    )
    parser.add_argument("--max-loihi2", type=int, default=10000,
                        help="largest N also checked against loihi2")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--trace-up-to", type=int, default=5000,
                        help="largest N also measured under tracemalloc (slow)")  # fmt: skip
    parser.add_argument(
        "--one", nargs=2, metavar=("N", "PROFILE"), help=argparse.SUPPRESS
    )
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--render",
        action="store_true",
        help="rewrite both results files from the measurements in the JSON",
    )
    args = parser.parse_args()

    if args.one:
        print(json.dumps(measure_one(int(args.one[0]), args.one[1], args.traced)))
        return
    if args.render:
        record = json.loads((RESULTS / "check_scaling.json").read_text())
        record["rows"] = [summarize(row, row["n"]) for row in record["rows"]]
        write(record)
        return

    configs = [(n, "loihi1") for n in args.sizes]
    configs += [(n, "loihi2") for n in args.sizes if n <= args.max_loihi2]
    rows = []
    for n, profile in configs:
        row = run_child(n, profile, False, args.timeout)
        traced = (
            run_child(n, profile, True, args.timeout)
            if n <= args.trace_up_to or profile == "loihi1"
            else {}
        )
        row["tracemalloc_peak_bytes"] = traced.get("tracemalloc_peak_bytes")
        rows.append(summarize(row, n))
        print(json.dumps(row), flush=True)
    record = {
        "benchmark": "check_scaling",
        "date": time.strftime("%Y-%m-%d"),
        "load_average": os.getloadavg(),
        "machine": environment_info(),
        "network": NETWORK,
        "rows": rows,
    }
    write(record)


def summarize(row, n):
    """Derived columns of one measurement (sizes, GB, a readable result)."""
    row["neurons"] = 2 * n
    row["weights"] = n * n
    if "seconds" in row:
        added = max(0, row["rss_peak_bytes"] - row["rss_before_bytes"])
        row["rss_added_gb"] = added / 1e9
        row["rss_peak_gb"] = row["rss_peak_bytes"] / 1e9
        row["violation_kinds"] = ", ".join(row["violations"]) or "none"
        row["result"] = "fits" if row["ok"] else "does not fit"
    if row.get("tracemalloc_peak_bytes") is not None:
        row["tracemalloc_peak_gb"] = row["tracemalloc_peak_bytes"] / 1e9
    return row


def write(record):
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "check_scaling.json", record)
    columns = [
        ("n", "N per ensemble", ""),
        ("weights", "weights", ".2g"),
        ("profile", "profile", ""),
        ("seconds", "check wall time (s)", ".3g"),
        ("tracemalloc_peak_gb", "peak allocated by check (GB, tracemalloc)", ".2f"),
        ("rss_added_gb", "peak RSS above start (GB)", ".2f"),
        ("rss_peak_gb", "peak RSS of the process (GB)", ".2f"),
        ("n_cores", "cores planned", ""),
        ("result", "result", ""),
        ("violation_kinds", "violations", ""),
        ("build_skipped", "build skipped (shapes decide)", ""),
    ]
    text = (
        "# `hardware.check` against network size\n\n"
        f"{record['network']}. Each row is a fresh Python; the peak RSS includes "
        "the network itself (N x N float64 weights) and Python with nengo-loihi "
        "loaded. Load average "
        f"{record['load_average'][0]:.2f}; {record['machine']['cpu_count']} CPUs, "
        f"Python {record['machine']['python']}. Script: "
        "`benchmarks/check_scaling.py`.\n\n"
        "On Loihi 1 a core takes at most 4096 input axons: from N = 4097 on, "
        "`check` reports that from the shapes alone, before building any weight. "
        "Loihi 2 has no input-axon limit in its profile, so the whole build and "
        "core plan run: nengo-loihi represents every (presynaptic neuron, core) "
        "pair as a Python object, about 17 million of them at N = 10000.\n\n"
        + markdown_table(record["rows"], columns)
        + "\nn/a: not measured under tracemalloc (it slows that run by many minutes).\n"
    )
    atomic_write_text(RESULTS / "check_scaling.md", text)
    print(text)


if __name__ == "__main__":
    main()
