"""Peak memory of ``nengo-hybrid train`` against the number of training sequences.

Each measurement is a fresh process running ``python -m nengo_hybrid.cli train``
(the quick recipe by default) on synthetic MNIST-format IDX files (60,000
training and 10,000 test images: the 5,000 embedded digits, each shifted by a
random pixel offset; psMNIST takes the first N training images and validates
on the 10,000 after the first 50,000), for ``--epochs`` epochs. Its peak
resident set size is the kernel's ``ru_maxrss`` of that process (``os.wait4``).

Two versions of the code run, interleaved per size so that both see the same
machine load: *before*, an earlier commit (``--before``, default the merge base
with ``main``), and *after* (``--after``, default ``HEAD``), each unpacked with
``git archive`` and run from its own tree (``PYTHONPATH`` and working folder),
so each trains its own recipe and editing the working tree meanwhile changes
nothing. One epoch, or its first ``--max-batches`` batches (the process is
then stopped), is enough for the memory curve: the old code makes its
whole-dataset arrays before the first batch (but for the validation tensors
Keras makes at the end of the epoch, which this leaves out of the old peak),
and every later batch repeats the same allocations. The time per batch, read
from the progress bar after the second batch, is reported too. ``--embedded``
adds one run of the after version on the embedded digits with the recipe's
epochs (the default ``nengo-hybrid train``), also stopped by ``--max-batches``.

Writes ``results/training_memory.{json,md}``.

Example::

    python benchmarks/training_memory.py --sizes 4000 20000 50000 --max-batches 20
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from nengo_hybrid.io import (
    atomic_write_json,
    atomic_write_text,
    environment_info,
    markdown_table,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
GOAL_BYTES = 2 * 1024**3  # the goal at 50k training sequences
IDX_SIZES = {"train": 60000, "test": 10000}


def write_idx(folder, seed=0):
    """Synthetic MNIST in the four IDX files (shifted embedded digits)."""
    from nengo_hybrid.data import IDX_FILES, embedded_mnist

    images, labels = embedded_mnist()
    images = np.round(images.reshape(-1, 28, 28) * 255).astype(np.uint8)
    rng = np.random.RandomState(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in IDX_SIZES.items():
        index = rng.randint(len(images), size=n)
        shifts = rng.randint(-2, 3, size=(n, 2))
        x = np.stack(
            [np.roll(images[i], tuple(s), axis=(0, 1)) for i, s in zip(index, shifts)]
        )
        y = labels[index].astype(np.uint8)
        _write_idx_file(folder / IDX_FILES[f"x_{split}"], x)
        _write_idx_file(folder / IDX_FILES[f"y_{split}"], y)
    return folder


def _write_idx_file(path, array):
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def unpack(rev, folder):
    """The tree of commit ``rev`` in ``folder`` (``git archive``); its full hash."""
    folder.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return _git("rev-parse", rev)


def _git(*args):
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def train_once(tree, out, args, data, n_train=None, epochs=None, max_batches=None):
    """Run ``nengo-hybrid train`` from ``tree`` in a fresh process; its numbers.

    ``n_train``, ``epochs``: default the recipe's. With ``max_batches`` the
    process is stopped (SIGTERM) once its progress bar shows that many
    training batches done.
    """
    command = [
        sys.executable, "-m", "nengo_hybrid.cli", "train", "--model", args.model,
        "--data", str(data), "--out", str(out),
    ]  # fmt: skip
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    if n_train is not None:
        command += ["--n-train", str(n_train)]
    env = dict(os.environ, PYTHONPATH=str(tree))
    load_before = os.getloadavg()
    log = out.with_suffix(".log")
    tic = time.perf_counter()
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            command, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        status, usage, stopped = _wait(proc, log, max_batches)
    wall = time.perf_counter() - tic
    if not stopped and os.waitstatus_to_exitcode(status) != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(command)} failed in {tree}:\n{tail}")
    progress = _progress(log)
    row = {
        "peak_rss_bytes": usage.ru_maxrss * 1024,  # Linux: kilobytes
        "wall_s": wall,
        "stopped_after_batches": progress[-1][0] if stopped else None,
        "s_per_batch": _steady_rate(progress),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    if not stopped:
        train = json.loads((out / "train.json").read_text())
        row.update(
            train_s=train["seconds"],
            epoch_s=[e["seconds"] for e in train["history"]["epochs"]],
            val_accuracy=train.get("val_accuracy"),
            n_train=train["n_train"],
            epochs=len(train["history"]["epochs"]),
            data=train["data"],
        )
    return row


def _wait(proc, log, max_batches):
    """``(status, rusage, stopped)`` of ``proc``, stopped after ``max_batches``."""
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return status, usage, False
        progress = _progress(log) if max_batches else []
        if progress and progress[-1][0] >= max_batches:
            proc.terminate()
            _, status, usage = os.wait4(proc.pid, 0)
            return status, usage, True
        time.sleep(0.5)


#: a tqdm progress line: ``training:  12%|...| 60/500 [01:23<...``
_BAR = re.compile(r"training:.*?\| *(\d+)/(\d+) \[(?:(\d+):)?(\d+):(\d+)[<\]]")


def _progress(log):
    """``[(batches done, seconds elapsed)]`` read from the progress bar's log."""
    text = log.read_text(errors="replace").replace("\r", "\n")
    seen = {}
    for match in _BAR.finditer(text):
        done, _, hours, minutes, seconds = match.groups()
        elapsed = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
        seen.setdefault(int(done), elapsed)
    return sorted(seen.items())


def _steady_rate(progress):
    """Seconds per batch after the first two (graph building), from the bar."""
    later = [(n, t) for n, t in progress if n >= 2]
    if len(later) < 2 or later[-1][0] == later[0][0]:
        return None
    (n0, t0), (n1, t1) = later[0], later[-1]
    return (t1 - t0) / (n1 - n0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 20000, 50000])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--model", default="lmu_quick")
    parser.add_argument(
        "--before", default=None, help="commit to compare with (default: merge base)"
    )
    parser.add_argument("--after", default="HEAD", help="commit measured as after")
    parser.add_argument(
        "--max-batches",
        type=int,
        default=None,
        help="stop each run after this many training batches (default: run it all)",
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="also train the recipe's epochs on the embedded digits (after only)",
    )
    args = parser.parse_args()
    before_rev = args.before or _git("merge-base", "HEAD", "main")

    rows = []
    with tempfile.TemporaryDirectory(prefix="training_memory_") as tmp:
        tmp = pathlib.Path(tmp)
        data = write_idx(tmp / "idx")
        trees = {"before": tmp / "before", "after": tmp / "after"}
        revs = {
            "before": unpack(before_rev, trees["before"]),
            "after": unpack(args.after, trees["after"]),
        }
        for n in args.sizes:
            for version, tree in trees.items():
                out = tmp / f"{version}-{n}"
                row = train_once(
                    tree, out, args, data, n_train=n, epochs=args.epochs,
                    max_batches=args.max_batches,
                )  # fmt: skip
                row.update(version=version, rev=revs[version], sequences=n)
                rows.append(row)
                print(_line(row), flush=True)
        embedded = None
        if args.embedded:
            embedded = train_once(
                trees["after"], tmp / "embedded", args, "embedded",
                max_batches=args.max_batches,
            )  # fmt: skip
            print("embedded:", _line(embedded), flush=True)
    ratios = _ratios(rows)
    record = {
        "benchmark": "training_memory",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "model": args.model,
        "epochs": args.epochs,
        "max_batches": args.max_batches,
        "sizes": args.sizes,
        "revisions": revs,
        "seed": "the recipe's (lmu_quick: 0); synthetic IDX files: seed 0",
        "data": "synthetic MNIST IDX (60k/10k): the 5,000 embedded digits, random "
        "+-2 pixel shifts; psMNIST 50k/10k/10k protocol, first N training images",
        "goal_bytes_at_50k": GOAL_BYTES,
        "machine": environment_info(),
        "rows": rows,
        "ratios_after_to_before": ratios,
        "embedded": embedded,
    }
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "training_memory.json", record)
    text = render(record)
    atomic_write_text(RESULTS / "training_memory.md", text)
    print(text)


def _line(row):
    rate = row["s_per_batch"]
    return (
        f"{row.get('version', '')} {row.get('sequences', row.get('n_train'))} "
        f"sequences: peak RSS {row['peak_rss_bytes'] / 1024**3:.2f} GB, "
        f"{row['wall_s']:.0f} s wall, "
        + ("n/a" if rate is None else f"{rate:.2f}")
        + " s per batch"
    )


def _ratios(rows):
    by = {(r["version"], r["sequences"]): r for r in rows}
    out = []
    for n in sorted({r["sequences"] for r in rows}):
        before, after = by.get(("before", n)), by.get(("after", n))
        if before and after:
            rates = before["s_per_batch"], after["s_per_batch"]
            out.append(
                {
                    "sequences": n,
                    "peak_rss": after["peak_rss_bytes"] / before["peak_rss_bytes"],
                    "time_per_batch": None if None in rates else rates[1] / rates[0],
                }
            )
    return out


def render(record):
    table_rows = [
        {
            "version": r["version"],
            "sequences": r["sequences"],
            "rss": r["peak_rss_bytes"] / 1024**3,
            "batches": r["stopped_after_batches"] or "all",
            "rate": r["s_per_batch"],
            "wall": r["wall_s"],
            "load": f"{r['load_average_before'][0]:.1f} / "
            f"{r['load_average_after'][0]:.1f}",
        }
        for r in record["rows"]
    ]
    columns = [
        ("version", "version", ""),
        ("sequences", "training sequences", ""),
        ("rss", "peak RSS (GB)", ".2f"),
        ("batches", "stopped after batches", ""),
        ("rate", "s per batch (after the 2nd)", ".2f"),
        ("wall", "process wall time (s)", ".0f"),
        ("load", "load avg before / after", ""),
    ]
    ratio_columns = [
        ("sequences", "training sequences", ""),
        ("peak_rss", "peak RSS after / before", ".2f"),
        ("time_per_batch", "time per batch after / before", ".2f"),
    ]
    after_50k = [
        r for r in record["rows"] if r["version"] == "after" and r["sequences"] == 50000
    ]
    goal = ""
    if after_50k:
        peak = after_50k[0]["peak_rss_bytes"]
        goal = (
            f"Goal: at most {record['goal_bytes_at_50k'] / 1024**3:.0f} GB at 50k "
            f"training sequences; measured {peak / 1024**3:.2f} GB: "
            f"{'met' if peak <= record['goal_bytes_at_50k'] else 'NOT met'}.\n\n"
        )
    revs = record["revisions"]
    stop = record.get("max_batches")
    text = (
        "# Peak memory of `nengo-hybrid train` against the training set size\n\n"
        f"`nengo-hybrid train --model {record['model']} --data IDX --n-train N "
        f"--epochs {record['epochs']}`, each in a fresh process"
        + (
            f", stopped after {stop} training batches (the old code makes its "
            "whole-dataset arrays before the first batch; later batches repeat "
            "the same allocations)"
            if stop
            else ""
        )
        + "; peak RSS is the process's `ru_maxrss`. Data: "
        f"{record['data']}. Seeds: {record['seed']}. Before: `{revs['before'][:10]}`; "
        f"after: `{revs['after'][:10]}`. "
        f"{record['machine']['cpu_count']} CPUs, Python {record['machine']['python']}, "
        f"TensorFlow {record['machine']['packages'].get('tensorflow')}, NengoDL "
        f"{record['machine']['packages'].get('nengo-dl')}; run {record['date']}. "
        "Times are from the progress bar, on a shared machine (see the load "
        "averages). Script: `benchmarks/training_memory.py`.\n\n"
        + goal
        + markdown_table(table_rows, columns)
        + "\nRatios (after / before, same run):\n\n"
        + markdown_table(record["ratios_after_to_before"], ratio_columns)
    )
    embedded = record.get("embedded")
    if embedded:
        text += (
            "\nThe default `nengo-hybrid train` (after; the embedded digits, "
            "4,000 training sequences, the recipe's epochs"
            + (
                f", stopped after {embedded['stopped_after_batches']} batches"
                if embedded["stopped_after_batches"]
                else f": {embedded['train_s']:.0f} s of training"
            )
            + f"): peak RSS {embedded['peak_rss_bytes'] / 1024**3:.2f} GB, "
            f"{embedded['s_per_batch']:.2f} s per batch; load average "
            f"{embedded['load_average_before'][0]:.1f} before, "
            f"{embedded['load_average_after'][0]:.1f} after.\n"
        )
    return text


if __name__ == "__main__":
    main()
