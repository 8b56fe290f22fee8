"""Start-up time of the command line: ``nengo-hybrid --help`` against ``python -c pass``.

Runs each command ``--repeats`` times, interleaved so that all see the same
machine load, and reports the median wall time, the ratio to a bare Python
start, and which heavy packages each command imported (read from
``python -X importtime``). Writes ``results/cli_startup.{json,md}``.

Example::

    python benchmarks/cli_startup.py --repeats 7
"""

import argparse
import os
import statistics
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
EXE = Path(sys.executable).with_name("nengo-hybrid")
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import nengo_hybrid'": [sys.executable, "-c", "import nengo_hybrid"],
    "nengo-hybrid --help": [str(EXE), "--help"],
    "nengo-hybrid check --help": [str(EXE), "check", "--help"],
}
HEAVY = ("tensorflow", "nengo_dl", "nengo_loihi", "matplotlib")


def imported(command):
    """Which of `HEAVY` the command imports (``python -X importtime``)."""
    if command[0] == str(EXE):
        command = [sys.executable, "-m", "nengo_hybrid.cli", *command[1:]]
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    return [name for name in HEAVY if name in names]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    times = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, command in COMMANDS.items():
            tic = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            times[name].append(time.perf_counter() - tic)
    base = statistics.median(times["python -c pass"])
    rows = [
        {
            "command": name,
            "median_s": statistics.median(values),
            "min_s": min(values),
            "ratio_to_python": statistics.median(values) / base,
            "imports": ", ".join(imported(COMMANDS[name])) or "none of them",
        }
        for name, values in times.items()
    ]
    record = {
        "benchmark": "cli_startup",
        "date": time.strftime("%Y-%m-%d"),
        "repeats": args.repeats,
        "load_average": os.getloadavg(),
        "machine": environment_info(),
        "rows": rows,
        "times_s": times,
    }
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "cli_startup.json", record)
    columns = [
        ("command", "command", ""),
        ("median_s", "median (s)", ".3f"),
        ("min_s", "min (s)", ".3f"),
        ("ratio_to_python", "x python -c pass", ".1f"),
        ("imports", f"imports of {', '.join(HEAVY)}", ""),
    ]
    text = (
        "# Command-line start-up\n\n"
        f"Median of {args.repeats} interleaved runs; load average "
        f"{record['load_average'][0]:.2f}; {record['machine']['cpu_count']} CPUs, "
        f"Python {record['machine']['python']}. Script: `benchmarks/cli_startup.py`.\n\n"
        + markdown_table(rows, columns)
    )
    atomic_write_text(RESULTS / "cli_startup.md", text)
    print(text)


if __name__ == "__main__":
    main()
