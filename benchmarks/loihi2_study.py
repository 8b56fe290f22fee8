"""HybridSpiking against SigmaDelta on quick psMNIST: Loihi 1 versus Loihi 2, and Lava.

Two recipes that differ only in the hidden neuron: ``lmu_quick``
(`.HybridSpiking`, precision annealed from 64 to 2) and ``lmu_quick_sd``
(`.SigmaDelta`, threshold annealed from 0, the rate network, to the
recipe's). Each is trained with interpolation (or reused from ``--runs``),
then driven through the pipeline as a user would:

* ``evaluate``: NengoDL's accuracy on the whole test split;
* ``check`` on ``loihi1`` and on ``loihi2``: cores and compartments (a
  SigmaDelta layer has no Loihi 1 mapping: the row says why);
* ``deploy`` on ``loihi2``: the Loihi 2 emulator on the whole test split
  (accuracy, messages per sample, payload bits needed against available);
* ``deploy --target lava``: Lava's fixed-point CPU models
  (``Loihi2SimCfg(select_tag="fixed_pt")``) on ``--lava-samples`` samples,
  with the emulator on the same samples: whether every payload is equal, and
  Lava's accuracy.

Energy per sample is an estimate with Loihi 1's published per-operation costs
(``profiles/loihi1.json``; Intel publishes none for Loihi 2): on Loihi 1 as
``evaluate`` computes it (a count ``n`` costs ``|n|`` one-bit spikes), on
Loihi 2 one message per nonzero payload: ``messages x mean fan-out`` synaptic
operations, ``messages`` routed spikes and one update per neuron per step.

Writes ``results/loihi2_study.{json,md}``. Example::

    python benchmarks/loihi2_study.py --runs runs/loihi2_study --lava-samples 500
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ chatter

import numpy as np  # noqa: E402

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
from nengo_hybrid.pipeline.runs import FROZEN, read_frozen, recipe_of
from nengo_hybrid.pipeline.train import train

RESULTS = Path(__file__).parent / "results"
MODELS = {"HybridSpiking": "lmu_quick", "SigmaDelta": "lmu_quick_sd"}


def trained(name, runs, epochs):
    """The run folder of recipe ``name``, trained (and evaluated) if it is not yet."""
    run = runs / name
    tic = time.perf_counter()
    if not (run / FROZEN).exists():
        train(zoo.read(name), out=run, epochs=epochs)
    train_s = time.perf_counter() - tic
    return run, evaluate(run), train_s


def cores(run, profile):
    """``{"cores", "compartments"}`` of ``check`` on ``profile``, or why it failed."""
    try:
        checked = check(run=run, profile=profile)
    except Exception as err:  # noqa: BLE001  (the study records why it does not map)
        return {"ok": False, "why": f"{type(err).__name__}: {err}".splitlines()[0]}
    compartments = sum(core.get("compartments", 0) for core in checked["cores"])
    why = "; ".join(str(v.get("message", v)) for v in checked["violations"][:2])
    return {
        "ok": checked["ok"],
        "cores": checked["n_cores"],
        "compartments": compartments,
        "strategies": checked["strategies"],
        "why": why or None,
    }


def loihi2_energy(run, deployed):
    """Energy per sample (J) of the Loihi 2 deployment, Loihi 1's per-op costs."""
    from nengo_hybrid.hardware.loihi2_mapping import from_network
    from nengo_hybrid.metrics import device_costs, fan_out

    frozen = read_frozen(run)
    net = frozen.build(recipe_of(run))
    mapped = from_network(net, "loihi2", input_scales=frozen.meta["input_scales"])
    costs = device_costs("loihi1")
    joules = 0.0
    for ens, label in mapped.labels.items():
        layer = deployed["layers"][label]
        messages = layer["events_per_sample"]
        synapses = float(np.mean(fan_out(mapped.model, ens)))
        joules += (
            messages * synapses * costs.synaptic_op
            + messages * costs.spike_message
            + layer["neurons"] * deployed["steps_per_sample"] * costs.neuron_update
        ) * 1e-12
    return joules


def study(neuron, name, runs, epochs, lava_samples):
    run, evaluated, train_s = trained(name, runs, epochs)
    row = {
        "neuron": neuron,
        "model": name,
        "run": str(run),
        "train_seconds": train_s,
        "accuracy_nengo_dl": evaluated["accuracy"],
        "n_test": evaluated.get("n_test"),
        "energy_loihi1_j": evaluated.get("energy_per_sample_j"),
    }
    row["loihi1"] = cores(run, "loihi1")
    row["loihi2"] = cores(run, "loihi2")
    emulated = deploy(run, profile="loihi2", n_reference=200, progress=False)
    (label, layer), *_ = emulated["layers"].items()
    row.update(
        accuracy_loihi2_emulator=emulated["accuracy"],
        accuracy_loihi2_interval95=emulated["accuracy_interval95"],
        emulator_samples=emulated["n_samples"],
        reference_agreement=emulated.get("prediction_agreement"),
        layer=label,
        messages_per_sample=layer["events_per_sample"],
        payload_bits_needed=layer["payload_bits_needed"],
        payload_bits_available=layer["payload_bits_available"],
        energy_loihi2_j=loihi2_energy(run, emulated),
    )
    on_lava = deploy(run, profile="loihi2", target="lava", n_samples=lava_samples,
                     n_reference=0, progress=False)  # fmt: skip
    row.update(
        lava_samples=on_lava["n_samples"],
        accuracy_lava=on_lava["accuracy"],
        accuracy_lava_interval95=on_lava["accuracy_interval95"],
        lava_payloads_equal_emulator=on_lava["lava"]["payloads_equal_emulator"],
        lava_first_mismatch=on_lava["lava"]["first_mismatch"],
        lava_seconds_per_sample=on_lava["lava"]["seconds"]["per_sample"],
    )
    return row


def _cores_text(entry):
    if entry.get("ok"):
        return f"{entry['cores']} / {entry['compartments']}"
    why = str(entry.get("why")).split(" (limit")[0]  # the object and the reason
    return f"does not map ({why})"


def _microjoules(joules):
    return "n/a" if joules is None else f"{joules * 1e6:.2f}"


def markdown(result):
    rows = []
    for row in result["rows"]:
        lo, hi = row["accuracy_loihi2_interval95"]
        rows.append(
            dict(
                row,
                loihi2_acc=f"{row['accuracy_loihi2_emulator']:.1%} ({lo:.1%}-{hi:.1%})",
                lava=f"{row['accuracy_lava']:.1%} on {row['lava_samples']}, "
                + ("identical" if row["lava_payloads_equal_emulator"] else "DIFFERENT"),
                bits=f"{row['payload_bits_needed']} of {row['payload_bits_available']}",
                l1=_cores_text(row["loihi1"]),
                l2=_cores_text(row["loihi2"]),
                e1=_microjoules(row["energy_loihi1_j"]),
                e2=_microjoules(row["energy_loihi2_j"]),
            )
        )
    columns = [
        ("neuron", "hidden neuron", ""),
        ("accuracy_nengo_dl", "NengoDL", ".1%"),
        ("loihi2_acc", f"Loihi 2 emulator ({rows[0]['emulator_samples']} samples)", ""),
        ("reference_agreement", "same class as Nengo's simulator (200)", ".1%"),
        ("lava", "Lava fixed-point (payloads vs emulator)", ""),
        ("messages_per_sample", "messages / sample", ".0f"),
        ("bits", "payload bits needed", ""),
        ("e2", "energy / sample, Loihi 2 (uJ)", ""),
        ("e1", "energy / sample, Loihi 1 (uJ)", ""),
        ("l1", "Loihi 1 cores / compartments", ""),
        ("l2", "Loihi 2 cores / compartments", ""),
    ]
    env = result["environment"]
    return "\n".join(
        [
            "# HybridSpiking vs SigmaDelta on quick psMNIST (Loihi 1, Loihi 2, Lava)",
            "",
            f"Date: {result['date']}. Machine: {env['platform']}, {env['cpu_count']} "
            f"CPUs (load average at the end {result['load_average']}). Data: "
            f"{result['data']}. Seed {result['seed']}. Command: `{result['command']}`.",
            "",
            markdown_table(rows, columns),
            "",
            "Energy is an estimate with Loihi 1's published per-operation costs for "
            "both chips (none are published for Loihi 2); on Loihi 2 one message per "
            "nonzero payload. See the script's docstring.",
            "",
        ]
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="runs/loihi2_study", help="run folders")
    parser.add_argument("--epochs", type=int, help="default: the recipes'")
    parser.add_argument("--lava-samples", type=int, default=200)
    parser.add_argument("--neurons", nargs="+", choices=sorted(MODELS),
                        default=list(MODELS))  # fmt: skip
    parser.add_argument("--out", default=str(RESULTS / "loihi2_study"))
    parser.add_argument("--markdown-only", action="store_true",
                        help="rewrite OUT.md from OUT.json")  # fmt: skip
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.markdown_only:
        result = json.loads(out.with_suffix(".json").read_text())
        atomic_write_text(out.with_suffix(".md"), markdown(result))
        return
    runs = Path(args.runs)
    rows = [
        study(neuron, MODELS[neuron], runs, args.epochs, args.lava_samples)
        for neuron in args.neurons
    ]
    first = read_frozen(runs / MODELS[args.neurons[0]])
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
        "command": "python benchmarks/loihi2_study.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": environment_info(),
        "load_average": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        "data": zoo.read("lmu_quick").load_data().description,
        "seed": first.meta["seed"],
        "rows": rows,
    }
    atomic_write_json(out.with_suffix(".json"), result)
    atomic_write_text(out.with_suffix(".md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
