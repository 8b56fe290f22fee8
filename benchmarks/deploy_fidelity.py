"""Deployment fidelity: a trained recipe in NengoDL against the emulator, per strategy.

Drives the pipeline stages on one run folder: ``train`` (skipped when the run
folder already holds a frozen network), ``evaluate`` (NengoDL, whole test split),
then for each strategy ``check`` and ``deploy`` on the first ``--n-samples``
test samples. ``plan`` means the model's deployment plan (``deploy/``); any
other value (``onebit``, ``expand:K``, ``substeps:K``, ``thermometer:K``) is
applied to every hybrid ensemble on the chip. Each row reports the emulator's
accuracy, the reference simulator's and NengoDL's on the same samples, the
drop, and the emulator's time per step.

Writes ``results/deploy_fidelity_MODEL.{json,md}``. Example::

    python benchmarks/deploy_fidelity.py --model mnist_dense --n-samples 300 \\
        --strategies plan substeps:2 expand:4
    python benchmarks/deploy_fidelity.py --model lmu_quick --n-samples 200
"""

import argparse
import math
import time
from pathlib import Path

from nengo_hybrid import zoo
from nengo_hybrid.io import (
    atomic_write_json,
    atomic_write_text,
    environment_info,
    markdown_table,
)
from nengo_hybrid.pipeline.check import check
from nengo_hybrid.pipeline.deploy import deploy
from nengo_hybrid.pipeline.evaluate import evaluate
from nengo_hybrid.pipeline.runs import FROZEN
from nengo_hybrid.pipeline.specs import parse_strategy
from nengo_hybrid.pipeline.train import train

RESULTS = Path(__file__).parent / "results"


def interval(p, n, z=1.96):
    """Half-width of the normal-approximation 95% interval of a proportion."""
    return z * math.sqrt(max(p * (1 - p), 1e-12) / n)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mnist_dense")
    parser.add_argument("--n-samples", type=int, default=300)
    parser.add_argument("--strategies", nargs="+", default=["plan"])
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--run", help="run folder (default: runs/fidelity-MODEL)")
    args = parser.parse_args(argv)

    recipe = zoo.read(args.model)
    run = Path(args.run or f"runs/fidelity-{recipe.name}")
    tic = time.perf_counter()
    if not (run / FROZEN).exists():
        train(recipe, out=run, epochs=args.epochs)
    evaluated = evaluate(run)
    rows = []
    for spec in args.strategies:
        strategy = None if spec == "plan" else parse_strategy(spec)
        checked = check(run=run, strategy=strategy)
        row = {"strategy": spec, "check_ok": checked["ok"], "cores": checked["n_cores"]}
        if checked["ok"]:
            deployed = deploy(run, n_samples=args.n_samples, check_result=checked)
            n = deployed["n_samples"]
            row.update(
                strategies=", ".join(
                    f"{k}: {v}" for k, v in checked["strategies"].items()
                ),
                n_samples=n,
                accuracy_emulator=deployed["accuracy"],
                interval_95=interval(deployed["accuracy"], n),
                accuracy_reference=deployed["accuracy_reference"],
                accuracy_nengo_dl=deployed.get("accuracy_nengo_dl_same_samples"),
                drop_pp=100
                * (
                    deployed.get("accuracy_nengo_dl_same_samples", float("nan"))
                    - deployed["accuracy"]
                ),  # fmt: skip
                emulator_ms_per_step=1000 * deployed["emulator_seconds_per_step"],
                compartments=deployed["compare"]["compartments"],
            )
        rows.append(row)
        print(row, flush=True)

    record = {
        "benchmark": "deploy_fidelity",
        "date": time.strftime("%Y-%m-%d"),
        "model": recipe.name,
        "data": evaluated["data"],
        "seed": evaluated["seed"],
        "run": str(run),
        "accuracy_nengo_dl_test_split": evaluated["accuracy"],
        "n_test": evaluated["n_test"],
        "emulator": "nengo-loihi 1.1 emulator (target='sim')",
        "rows": rows,
        "seconds": time.perf_counter() - tic,
        "machine": environment_info(),
    }
    RESULTS.mkdir(exist_ok=True)
    name = f"deploy_fidelity_{recipe.name}"
    atomic_write_json(RESULTS / f"{name}.json", record)
    columns = [
        ("strategy", "strategy", ""),
        ("strategies", "per ensemble", ""),
        ("n_samples", "samples", "d"),
        ("accuracy_nengo_dl", "NengoDL", ".3f"),
        ("accuracy_reference", "reference sim.", ".3f"),
        ("accuracy_emulator", "emulator", ".3f"),
        ("interval_95", "± 95%", ".3f"),
        ("drop_pp", "drop (pp)", ".1f"),
        ("cores", "cores", "d"),
        ("compartments", "compartments", "d"),
        ("emulator_ms_per_step", "emulator ms/step", ".2f"),
    ]
    text = (
        f"# Deployment fidelity: {recipe.name}\n\n"
        f"Data: {record['data']}; seed {record['seed']}. NengoDL accuracy on the "
        f"whole test split ({record['n_test']}): {record['accuracy_nengo_dl_test_split']:.3f}. "
        f"Emulator: {record['emulator']}. Script: `benchmarks/deploy_fidelity.py`; "
        f"total {record['seconds']:.0f} s on {record['machine']['cpu_count']} CPUs.\n\n"
        + markdown_table(rows, columns)
    )
    atomic_write_text(RESULTS / f"{name}.md", text)
    print(text)


if __name__ == "__main__":
    main()
