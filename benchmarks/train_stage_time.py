"""The training stage of ``make run`` before and after a change: wall time, CPU time, peak RSS.

``make run`` trains the default recipe (``lmu_quick`` on the embedded digits,
10 epochs) with ``nengo-hybrid train``. This script runs exactly that command
with the code of two commits of this repository (each checked out in a
temporary git worktree and put first on ``PYTHONPATH``, with this
environment's packages), alternating them for ``--rounds`` rounds, and
measures each process (``os.wait4``: wall seconds, user + system CPU seconds,
peak RSS). Ratios are ``before / after`` in the same run; the load average is
recorded before and after each process.

Writes ``results/train_stage_time.{json,md}``. Example::

    python benchmarks/train_stage_time.py --before 22ca2ca --after HEAD --rounds 2
"""

import argparse
import json
import os
import statistics
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

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
COMMAND = ["train", "--model", "lmu_quick", "--data", "embedded"]


def _load():
    return [round(x, 2) for x in os.getloadavg()]


def _commit(ref):
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", ref],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def measure(source, out):
    """One ``nengo-hybrid train`` with the code in ``source``: its resource use."""
    env = dict(os.environ, PYTHONPATH=str(source), TF_CPP_MIN_LOG_LEVEL="2")
    argv = [sys.executable, "-m", "nengo_hybrid.cli", *COMMAND, "--out", str(out)]
    load = _load()
    log = Path(str(out) + ".log")  # a file, not a pipe: a full pipe would block it
    tic = time.perf_counter()
    with open(log, "wb") as err:
        # cwd: `python -m` puts the current folder first on sys.path
        proc = subprocess.Popen(argv, env=env, cwd=source, stdout=subprocess.DEVNULL,
                                stderr=err)  # fmt: skip
        # wait4 gives this child's own CPU time and peak RSS
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - tic
    if os.waitstatus_to_exitcode(status) != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(argv)} failed:\n{tail}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "load_before": load,
        "load_after": _load(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="commit before the change (required)")
    parser.add_argument("--after", default="HEAD", help="commit after it")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "train_stage_time"))
    parser.add_argument("--markdown-only", action="store_true",
                        help="rewrite OUT.md from OUT.json")  # fmt: skip
    args = parser.parse_args(argv)
    if args.markdown_only:
        rewrite_markdown(args.out)
        return
    if args.before is None:
        parser.error("--before COMMIT is required to measure")
    commits = {"before": _commit(args.before), "after": _commit(args.after)}
    runs = {name: [] for name in commits}
    with tempfile.TemporaryDirectory(prefix="nengo-hybrid-stage-") as tmp:
        tmp = Path(tmp)
        for name, commit in commits.items():
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach",
                            str(tmp / name), commit], check=True,
                           capture_output=True)  # fmt: skip
        try:
            for r in range(args.rounds):
                for name in commits:
                    result = measure(tmp / name, tmp / f"run-{name}-{r}")
                    runs[name].append(result)
                    print(name, r, result, flush=True)
        finally:
            for name in commits:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove",
                                "--force", str(tmp / name)])  # fmt: skip
    summary = {}
    for name, rows in runs.items():
        summary[name] = {
            key: statistics.median(row[key] for row in rows)
            for key in ("wall_s", "cpu_s", "peak_rss_mb")
        }
    ratios = {
        key: summary["before"][key] / summary["after"][key]
        for key in ("wall_s", "cpu_s", "peak_rss_mb")
    }
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
        "command": "nengo-hybrid " + " ".join(COMMAND) + " --out RUN",
        "commits": commits,
        "rounds": args.rounds,
        "environment": environment_info(),
        "runs": runs,
        "median": summary,
        "before_over_after": ratios,
    }
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), result)
    atomic_write_text(out.with_suffix(".md"), markdown(result))
    print(markdown(result))


def markdown(result):
    commits, summary, runs = result["commits"], result["median"], result["runs"]
    rows = [
        {"name": name, "commit": commits[name], **{
            "wall_s": f"{summary[name]['wall_s']:.1f}",
            "cpu_s": f"{summary[name]['cpu_s']:.1f}",
            "peak_rss_mb": f"{summary[name]['peak_rss_mb']:.0f}",
        }}
        for name in commits
    ]  # fmt: skip
    ratios = result["before_over_after"]
    rows.append({"name": "before / after", "commit": "", **{
        k: f"{v:.2f}" for k, v in ratios.items()}})  # fmt: skip
    loads = [row["load_before"][0] for rs in runs.values() for row in rs]
    loads += [row["load_after"][0] for rs in runs.values() for row in rs]
    env = result["environment"]
    columns = [("name", "", ""), ("commit", "commit", ""), ("wall_s", "wall s", ""),
               ("cpu_s", "CPU s", ""), ("peak_rss_mb", "peak RSS MB", "")]  # fmt: skip
    return "\n".join(
        [
            "# make run's training stage: before and after",
            "",
            f"Date: {result['date']}. Machine: {env['platform']}, {env['cpu_count']} "
            f"CPUs. Command: `{result['command']}` (recipe `lmu_quick`: 10 epochs, "
            "4,000 training sequences of 49 steps, seed 0), with the code of each "
            f"commit, alternating, {result['rounds']} rounds, medians. Load averages "
            f"(1 min) around the runs: {min(loads)} to {max(loads)}.",
            "",
            markdown_table(rows, columns),
            "",
        ]
    )


def rewrite_markdown(out):
    out = Path(out)
    result = json.loads(out.with_suffix(".json").read_text())
    atomic_write_text(out.with_suffix(".md"), markdown(result))


if __name__ == "__main__":
    main()
