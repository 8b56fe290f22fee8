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
import os
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


def official_check(run, n, checked, batched):
    """The first ``n`` samples on nengo-loihi's emulator: equal predictions, time."""
    official = deploy(
        run, n_samples=n, check_result=checked, emulator="nengo-loihi", n_reference=0
    )
    return {
        "official_samples": n,
        "official_equal_predictions": official["predictions"]
        == batched["predictions"][:n],
        "official_s_per_sample": official["emulator_seconds"]["per_sample"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mnist_dense")
    parser.add_argument("--n-samples", type=int, help="default: the whole split")
    parser.add_argument("--reference-samples", type=int, default=200)
    parser.add_argument("--official-samples", type=int, default=0)
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
            deployed = deploy(
                run, n_samples=args.n_samples, check_result=checked,
                n_reference=args.reference_samples,
            )  # fmt: skip
            lo, hi = deployed["accuracy_interval95"]
            row.update(
                strategies=", ".join(
                    f"{k}: {v}" for k, v in checked["strategies"].items()
                ),
                n_samples=deployed["n_samples"],
                accuracy_emulator=deployed["accuracy"],
                interval_95=f"{lo:.3f}-{hi:.3f}",
                accuracy_nengo_dl=deployed.get("accuracy_nengo_dl_same_samples"),
                drop_pp=deployed.get("accuracy_drop_pp"),
                agreement_nengo_dl=deployed.get("prediction_agreement_nengo_dl"),
                n_reference=deployed["n_reference_samples"],
                accuracy_reference=deployed["accuracy_reference"],
                agreement_reference=deployed["prediction_agreement"],
                emulator=deployed["emulator"],
                emulator_s_per_sample=deployed["emulator_seconds"]["per_sample"],
                compartments=deployed["compartments"],
            )
            if args.official_samples:
                row.update(
                    official_check(run, args.official_samples, checked, deployed)
                )
                row["speedup"] = (
                    row["official_s_per_sample"] / row["emulator_s_per_sample"]
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
        "emulator": "batched (nengo_hybrid.hardware.samples), every sample from "
        "the initial state; official: nengo-loihi 1.1 emulator, one build per sample",
        "load_average": os.getloadavg(),
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
        ("accuracy_emulator", "emulator", ".3f"),
        ("interval_95", "95% interval", ""),
        ("drop_pp", "drop (pp)", ".1f"),
        ("agreement_nengo_dl", "same prediction as NengoDL", ".3f"),
        ("n_reference", "reference samples", "d"),
        ("accuracy_reference", "reference sim.", ".3f"),
        ("agreement_reference", "same as reference", ".3f"),
        ("cores", "cores", "d"),
        ("compartments", "compartments", "d"),
        ("emulator_s_per_sample", "batched s/sample", ".4f"),
        ("official_s_per_sample", "nengo-loihi s/sample", ".3f"),
        ("speedup", "speed-up", ".0f"),
        ("official_equal_predictions", "equal predictions", ""),
    ]
    text = (
        f"# Deployment fidelity: {recipe.name}\n\n"
        f"Data: {record['data']}; seed {record['seed']}. NengoDL accuracy on the "
        f"whole test split ({record['n_test']}): {record['accuracy_nengo_dl_test_split']:.3f}. "
        f"Emulator: {record['emulator']}. Script: `benchmarks/deploy_fidelity.py`; "
        f"total {record['seconds']:.0f} s on {record['machine']['cpu_count']} CPUs "
        f"(load average {record['load_average'][0]:.1f}: shared, times are noisy).\n\n"
        + markdown_table(rows, columns)
    )
    atomic_write_text(RESULTS / f"{name}.md", text)
    print(text)


if __name__ == "__main__":
    main()
