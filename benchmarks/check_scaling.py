"""Wall time and peak memory of ``nengo_hybrid.hardware.check`` against network size.

Each network is two ensembles of N hybrid-spiking ReLU neurons joined by a
dense N x N neuron-to-neuron connection (N^2 weights, uniform in +-1e-5;
seed 0), for N = 1000, 3000, 5000 and 10000. ``check`` runs against the Loihi 1
profile (the default; its cores take at most 4096 input axons, so from
N = 4097 on the shapes alone decide that the network does not fit) and
against Loihi 2 up to ``--max-loihi2``: graded spikes, planned from the shapes
(`nengo_hybrid.hardware.graded`). The baseline, in the same run, is the
Loihi 2 profile checked the old way, through nengo-loihi's Loihi 1 build and
core split (`check_with_nengo_loihi`), up to ``--baseline-up-to``; the table
gives the ratio of the two (tracemalloc only up to ``--trace-up-to``: it slows
the largest runs by many minutes).

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


def baseline_check(net, profile):
    """``check`` on ``profile`` through nengo-loihi's build (the old Loihi 2 path)."""
    import nengo_hybrid.hardware.check  # noqa: F401 (the module, not the function)
    from nengo_hybrid.hardware.findings import Report
    from nengo_hybrid.hardware.profiles import load_profile
    from nengo_hybrid.hardware.strategies import OneBit

    checks = sys.modules["nengo_hybrid.hardware.check"]
    report = Report(load_profile(profile), OneBit())
    if checks.pre_build(net, report):
        checks.check_with_nengo_loihi(net, report, OneBit())
    return report


def measure_one(n, profile, traced):
    """Run ``check`` once in this process; return a dict of results."""
    import tracemalloc

    from nengo_hybrid.hardware import check

    method = "graded" if profile == "loihi2" else "nengo-loihi"
    if profile.endswith("+baseline"):
        profile, method = profile.split("+")[0], "nengo-loihi (baseline)"
        check = baseline_check  # noqa: F811

    net = network(n)
    import nengo_hybrid.hardware.check  # noqa: F401 (imports nengo-loihi first)

    before = rss_bytes()
    if traced:
        tracemalloc.start()
    tic = time.perf_counter()
    report = check(net, profile=profile)
    seconds = time.perf_counter() - tic
    out = {"n": n, "profile": profile, "method": method}
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
    parser.add_argument("--baseline-up-to", type=int, default=10000,
                        help="largest N checked on loihi2 through nengo-loihi "
                        "(the old path: minutes and ~9 GB at 10000)")  # fmt: skip
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
    configs += [
        (n, "loihi2+baseline")
        for n in args.sizes
        if n <= min(args.max_loihi2, args.baseline_up_to)
    ]
    rows = []
    load = [os.getloadavg()]
    for n, profile in configs:
        row = run_child(n, profile, False, args.timeout)
        traced = (
            run_child(n, profile, True, args.timeout)
            if n <= args.trace_up_to or profile == "loihi1"
            else {}
        )
        row["tracemalloc_peak_bytes"] = traced.get("tracemalloc_peak_bytes")
        rows.append(summarize(row, n))
        load.append(os.getloadavg())
        print(json.dumps(row), flush=True)
    ratios(rows)
    record = {
        "benchmark": "check_scaling",
        "date": time.strftime("%Y-%m-%d"),
        "load_average": os.getloadavg(),
        "load_average_1min_range": [min(x[0] for x in load), max(x[0] for x in load)],
        "machine": environment_info(),
        "network": NETWORK,
        "rows": rows,
    }
    write(record)


def ratios(rows):
    """Graded rows: time and RSS above start as ratios to the baseline's (same N)."""
    base = {r["n"]: r for r in rows if r.get("method") == "nengo-loihi (baseline)"}
    for r in rows:
        b = base.get(r["n"])
        if r.get("method") != "graded" or b is None or "seconds" not in b:
            continue
        if "seconds" in r:
            r["time_ratio_to_baseline"] = r["seconds"] / b["seconds"]
            r["rss_added_ratio_to_baseline"] = r["rss_added_gb"] / max(
                b["rss_added_gb"], 1e-9
            )


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
        ("method", "mapping", ""),
        ("seconds", "check wall time (s)", ".3g"),
        ("tracemalloc_peak_gb", "peak allocated by check (GB, tracemalloc)", ".2f"),
        ("rss_added_gb", "peak RSS above start (GB)", ".2f"),
        ("rss_peak_gb", "peak RSS of the process (GB)", ".2f"),
        ("n_cores", "cores planned", ""),
        ("time_ratio_to_baseline", "time / baseline", ".3f"),
        ("rss_added_ratio_to_baseline", "RSS added / baseline", ".2f"),
        ("result", "result", ""),
        ("violation_kinds", "violations", ""),
        ("build_skipped", "build skipped (shapes decide)", ""),
    ]
    text = (
        "# `hardware.check` against network size\n\n"
        f"{record['network']}. Each row is a fresh Python; the peak RSS includes "
        "the network itself (N x N float64 weights) and Python with nengo-loihi "
        "loaded. Load average (1 min) at the end "
        f"{record['load_average'][0]:.2f}, between "
        f"{record.get('load_average_1min_range', [0, 0])[0]:.2f} and "
        f"{record.get('load_average_1min_range', [0, 0])[1]:.2f} during the run "
        "(other work shares the machine); "
        f"{record['machine']['cpu_count']} CPUs, "
        f"Python {record['machine']['python']}. Script: "
        "`benchmarks/check_scaling.py`.\n\n"
        "On Loihi 1 a core takes at most 4096 input axons: from N = 4097 on, "
        "`check` reports that from the shapes alone, before building any weight. "
        "Loihi 2 spikes are graded: each hybrid neuron is one graded-spike neuron, "
        "and `check` plans its cores from the shapes and weight statistics "
        "(mapping `graded`, `nengo_hybrid.hardware.graded`). The baseline "
        "(mapping `nengo-loihi (baseline)`, same run) checks the same profile the "
        "old way, through nengo-loihi's Loihi 1 build and core split, which "
        "represents every (presynaptic neuron, core) pair as a Python object "
        "(about 17 million at N = 10000). The two plan different core counts: "
        "graded rounds each axon's weights into a core up to 64-bit words with "
        "no per-axon header; nengo-loihi adds its Loihi 1 synapse headers and "
        "index bits.\n\n"
        + markdown_table(record["rows"], columns)
        + "\nn/a: not measured under tracemalloc (it slows that run by many minutes); "
        "the ratios are given on the graded rows only (graded / baseline, same N, "
        "same run).\n"
    )
    atomic_write_text(RESULTS / "check_scaling.md", text)
    print(text)


if __name__ == "__main__":
    main()
