"""Loihi 2 semantics: the batched emulator against Lava, and against Nengo, on mnist_dense.

The ``mnist_dense`` recipe network (``models/mnist_dense.py``; untrained
weights unless ``--run`` gives a run folder with a frozen network) is mapped
onto a Loihi 2 program (`nengo_hybrid.hardware.loihi2_mapping.from_network`,
profile ``loihi2``: every layer, the 784-neuron input layer included, as
graded-spike HybridSpiking neurons; pixels sent as 8-bit host payloads).
Embedded MNIST test digits, each held for the recipe's presentation steps.

* **Lava** (``.venv-lava``, ``Loihi2SimCfg(select_tag="fixed_pt")``): the
  first ``--lava-samples`` digits in one Lava run (block-diagonal copies of
  the network). Wall time of the whole bridge call (file, process start-up,
  compile, run) and Lava's own build+run time.
* **Batched emulator** (`nengo_hybrid.hardware.loihi2.run`): the same digits
  (every payload of every layer on every step must equal Lava's:
  ``bit_identical``), then ``--samples`` digits for throughput (best of
  ``--repeats``).
* **Nengo reference simulator** on the first ``--reference-samples`` digits
  (one simulator, reset between digits): the fraction of digits whose
  predicted class (argmax of the scores averaged over the recipe's last score
  steps) is the same on the emulator, and both accuracies.

Results: ``benchmarks/results/loihi2_lava.{json,md}``.

Usage::

    python benchmarks/loihi2_lava.py [--samples 1000] [--lava-samples 4]
        [--reference-samples 100] [--run RUN] [--quick]
"""

import argparse
import os
import sys
import time
from pathlib import Path

import nengo
import numpy as np

from nengo_hybrid import zoo
from nengo_hybrid.hardware import loihi2, loihi2_mapping
from nengo_hybrid.hardware.lava import run_lava
from nengo_hybrid.io import (
    atomic_write_json,
    atomic_write_text,
    environment_info,
    markdown_table,
)

RESULTS = Path(__file__).parent / "results"


def network(run):
    """The recipe's network (trained if ``run`` has a frozen file) and its recipe."""
    recipe = zoo.read("mnist_dense")
    if run is None:
        return recipe.build(), recipe, "untrained (recipe's initial weights)"
    from nengo_hybrid.frozen import FrozenNetwork
    from nengo_hybrid.pipeline.runs import FROZEN

    frozen = FrozenNetwork.read(Path(run) / FROZEN)
    return frozen.build(recipe), recipe, f"trained run {run}"


def reference(net, values, out_node):
    """Nengo reference simulator: ``(B, n_steps, size)`` outputs, reset per sample."""
    current = {"x": values[0]}

    def stimulus(t):
        return current["x"][min(int(round(t / 0.001)) - 1, len(current["x"]) - 1)]

    net.inp.output = stimulus
    with net:
        probe = nengo.Probe(out_node, synapse=None)
    outs = []
    with nengo.Simulator(net, progress_bar=False) as sim:
        for x in values:
            sim.reset()
            current["x"] = x
            sim.run_steps(len(x))
            outs.append(sim.data[probe].copy())
    return np.stack(outs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--lava-samples", type=int, default=4)
    parser.add_argument("--reference-samples", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--run", default=None, help="run folder with a frozen network")
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--out", default=str(RESULTS / "loihi2_lava"))
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.lava_samples, args.reference_samples = 50, 2, 10
        args.repeats = 1
    started = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())

    net, recipe, weights = network(args.run)
    data = recipe.load_data()
    n = max(args.samples, args.reference_samples, args.lava_samples)
    values = net.inputs(data.x_test[:n])[net.inp]  # (n, steps, 784)
    labels = np.asarray(data.y_test[:n]).ravel()
    mapped = loihi2_mapping.from_network(net, input_scales={"image": 1.0})
    program = mapped.program
    payloads = mapped.encode({net.inp: values})["image"]

    k = args.lava_samples
    t0 = time.perf_counter()
    lava = run_lava(program, {"image": payloads[:k]})
    lava_wall = time.perf_counter() - t0
    emu_k = loihi2.run(program, {"image": payloads[:k]})
    identical = all(
        np.array_equal(lava.payloads[p.label], emu_k.payloads[p.label])
        for p in program.populations
    )

    best = np.inf
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        emu = loihi2.run(
            program, {"image": payloads[: args.samples]}, batch_size=args.batch_size
        )
        best = min(best, time.perf_counter() - t0)
    scores = net.scores(mapped.decode(emu.payloads)[net.output])
    emu_pred = scores.argmax(axis=1)

    m = args.reference_samples
    t0 = time.perf_counter()
    ref_out = reference(net, values[:m], net.output)
    ref_seconds = time.perf_counter() - t0
    ref_pred = net.scores(ref_out).argmax(axis=1)
    agree = float(np.mean(ref_pred == emu_pred[:m]))

    n_steps = values.shape[1]
    result = {
        "network": "mnist_dense",
        "weights": weights,
        "neurons": int(sum(p.n for p in program.populations)),
        "steps_per_sample": int(n_steps),
        "projections": [
            {"label": p.label, "exp": p.exp, "shape": list(p.mantissa.shape)}
            for p in program.projections
        ],
        "frac_bits": {p.label: int(p.params["frac_bits"]) for p in program.populations},
        "lava_samples": k,
        "lava_wall_s": lava_wall,
        "lava_build_run_s": lava.meta["seconds"],
        "lava_s_per_sample": lava_wall / k,
        "bit_identical": identical,
        "emulator_samples": args.samples,
        "emulator_s": best,
        "emulator_samples_per_s": args.samples / best,
        "ratio_vs_lava": (args.samples / best) / (k / lava_wall),
        "events_per_sample": {
            p.label: float(emu.events(p.label).mean()) for p in program.populations
        },
        "payload_overflow": emu.overflow,
        "reference_samples": m,
        "reference_s_per_sample": ref_seconds / m,
        "prediction_agreement": agree,
        "accuracy_reference": float(np.mean(ref_pred == labels[:m])),
        "accuracy_emulator_same_samples": float(np.mean(emu_pred[:m] == labels[:m])),
        "accuracy_emulator": float(np.mean(emu_pred == labels[: args.samples])),
    }
    record = {
        "benchmark": "loihi2_lava",
        "date": started,
        "load_average_at_end": os.getloadavg(),
        "command": "python benchmarks/loihi2_lava.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": environment_info(),
        "lava": lava.meta,
        "result": result,
    }
    atomic_write_json(args.out + ".json", record)
    atomic_write_text(args.out + ".md", markdown(record))
    print(markdown(record))


def markdown(record):
    r = record["result"]
    columns = [
        ("what", "", ""),
        ("value", "", ""),
    ]
    rows = [
        {"what": "neurons (graded-spike, on chip)", "value": r["neurons"]},
        {"what": "steps per sample", "value": r["steps_per_sample"]},
        {
            "what": f"Lava, {r['lava_samples']} samples, one run (wall s)",
            "value": f"{r['lava_wall_s']:.1f}",
        },
        {"what": "Lava s per sample", "value": f"{r['lava_s_per_sample']:.2f}"},
        {"what": "emulator = Lava, every payload", "value": r["bit_identical"]},
        {
            "what": f"emulator samples/s ({r['emulator_samples']} samples)",
            "value": f"{r['emulator_samples_per_s']:.1f}",
        },
        {"what": "emulator / Lava throughput", "value": f"{r['ratio_vs_lava']:.0f}"},
        {
            "what": f"class agreement with Nengo ({r['reference_samples']} samples)",
            "value": f"{100 * r['prediction_agreement']:.1f}%",
        },
        {
            "what": "accuracy Nengo / emulator (same samples)",
            "value": f"{100 * r['accuracy_reference']:.1f}% / "
            f"{100 * r['accuracy_emulator_same_samples']:.1f}%",
        },
        {
            "what": f"accuracy emulator ({r['emulator_samples']} samples)",
            "value": f"{100 * r['accuracy_emulator']:.1f}%",
        },
        {
            "what": "payload overflow (24 bits)",
            "value": r["payload_overflow"] or "none",
        },
    ]
    machine = record["machine"]
    return "\n".join(
        [
            "# Loihi 2 semantics: batched emulator vs Lava vs Nengo (mnist_dense)",
            "",
            f"Date: {record['date']}. Machine: {machine['platform']}, "
            f"{machine['cpu_count']} CPUs, shared (load average at the end "
            f"{', '.join(f'{x:.1f}' for x in record['load_average_at_end'])}). "
            f"lava-nc {record['lava'].get('lava_version')}, "
            f"`Loihi2SimCfg(select_tag='fixed_pt')`. Weights: {r['weights']}. "
            f"Command: `{record['command']}`.",
            "",
            markdown_table(rows, columns),
            "",
            f"Events per sample (nonzero payloads): {r['events_per_sample']}. "
            f"State fraction bits: {r['frac_bits']}.",
            "",
        ]
    )


if __name__ == "__main__":
    main()
