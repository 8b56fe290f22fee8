"""The run folder: stage results as JSON, and the report built from them.

A run folder holds one JSON file per pipeline stage (``train.json``,
``evaluate.json``, ``check.json``, ``deploy.json``), written by the stage
that produced it, and the report assembled from them: ``report.json`` (all
stage results in one document) and ``report.md`` (the same numbers for a
person, rendered from ``report.json`` only), plus the plots in ``plots/``.

Every file is written atomically: to a temporary file in the same folder, then
moved into place with `os.replace`, so a reader never sees a half-written file
and an interrupted run leaves the previous version intact.
"""

import datetime
import json
import pathlib

from nengo_hybrid.io import atomic_write_bytes, atomic_write_json, to_jsonable  # noqa: F401

SCHEMA = "nengo-hybrid-report/1"
STAGES = ("train", "freeze", "evaluate", "check", "deploy")
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PLOTS_DIR = "plots"


class RunFolderError(Exception):
    """A run folder is missing, unreadable, or lacks a stage's results."""


def write_atomic(path, data):
    """Write ``data`` (str or bytes) to ``path`` atomically.

    Parameters
    ----------
    path : str or pathlib.Path
        Destination; its folder is created if needed.
    data : str or bytes
        Content; ``str`` is encoded as UTF-8.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    atomic_write_bytes(path, data)


def write_json(path, obj):
    """Write ``obj`` as indented JSON, atomically. Returns the path."""
    return atomic_write_json(path, obj, sort_keys=True)


def read_json(path):
    """Read a JSON file, with an error that says which file and what to do."""
    path = pathlib.Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(f"{path} does not exist") from None
    except (OSError, ValueError) as err:
        raise RunFolderError(
            f"{path} is not readable JSON ({err}); re-run the stage that writes it"
        ) from None


def stage_path(run_dir, stage):
    """Path of a stage's result file in ``run_dir``."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; one of {STAGES}")
    return pathlib.Path(run_dir) / f"{stage}.json"


def write_stage(run_dir, stage, result):
    """Write one stage's result dict to ``run_dir/STAGE.json`` atomically."""
    result = dict(result)
    result.setdefault("stage", stage)
    result.setdefault("finished", _now())
    return write_json(stage_path(run_dir, stage), result)


def read_stage(run_dir, stage, required=True):
    """Read a stage's result; ``None`` if absent and not ``required``."""
    path = stage_path(run_dir, stage)
    if not path.exists():
        if required:
            option = "--out" if stage == "train" else "--run"
            raise RunFolderError(
                f"{path} is missing: run `nengo-hybrid {stage} {option} {run_dir}` first"
            )
        return None
    return read_json(path)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def collect(run_dir, plots=None):
    """Assemble ``report.json``'s content from the stage files in ``run_dir``.

    Parameters
    ----------
    run_dir : str or pathlib.Path
        The run folder.
    plots : dict of {str: str}, optional
        Plot names to paths relative to ``run_dir``.

    Returns
    -------
    dict
        ``schema``, ``created``, ``run_dir``, one entry per stage (``None``
        when the stage has not run), ``summary`` (the headline numbers the
        markdown shows) and ``plots``.
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(
            f"run folder {run_dir} does not exist; give the folder a previous "
            "`nengo-hybrid train` or `run` wrote (its --out)"
        )
    stages = {stage: read_stage(run_dir, stage, required=False) for stage in STAGES}
    if all(v is None for v in stages.values()):
        raise RunFolderError(
            f"{run_dir} has none of {', '.join(s + '.json' for s in STAGES)}; is it a "
            "run folder? Run `nengo-hybrid run --out DIR` to make one"
        )
    report = {
        "schema": SCHEMA,
        "created": _now(),
        "run_dir": str(run_dir),
        **stages,
        "plots": dict(plots or {}),
    }
    report["summary"] = summarize(report)
    return report


def _get(d, *keys):
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def summarize(report):
    """The headline numbers of a report, each ``None`` when not measured.

    Returns
    -------
    dict
        ``model``, ``data``, ``seed``, ``epochs``, ``accuracy_nengo_dl``,
        ``accuracy_emulator``, ``accuracy_drop``, ``activity_bits``,
        ``significant_bits``, ``synaptic_events_per_sample``,
        ``energy_per_sample_j``, ``cores``, ``violations``, ``check_ok``,
        ``emulator_samples``; for a run whose layers are `.SigmaDelta`
        (``neuron="sigma_delta"``) also ``threshold``, ``messages_per_sample``
        (nonzero deltas), ``message_fraction`` (of steps times neurons) and
        ``payload_bits`` (widest message, sign included).
    """
    train, evaluate = report.get("train"), report.get("evaluate")
    check, deploy = report.get("check"), report.get("deploy")
    first = next((s for s in (train, evaluate, check, deploy) if s), {})
    acc_emu = _get(deploy, "accuracy")
    acc_ref = _get(deploy, "accuracy_reference")
    violations = _get(check, "violations")
    summary = {
        "model": first.get("model"),
        "data": first.get("data"),
        "seed": first.get("seed"),
        "epochs": _get(train, "epochs"),
        "final_precision": _get(train, "final_precision"),
        "accuracy_nengo_dl": _get(evaluate, "accuracy"),
        "accuracy_emulator": acc_emu,
        "accuracy_emulator_reference": acc_ref,
        "accuracy_nengo_dl_sample": _get(deploy, "accuracy_nengo_dl_same_samples"),
        "accuracy_drop": None
        if acc_emu is None or acc_ref is None
        else acc_ref - acc_emu,
        "activity_bits": _get(evaluate, "activity_bits"),
        "significant_bits": _get(evaluate, "significant_bits"),
        "synaptic_events_per_sample": _get(evaluate, "synaptic_events_per_sample"),
        "energy_per_sample_j": _get(evaluate, "energy_per_sample_j"),
        "cores": _get(check, "n_cores"),
        "check_ok": _get(check, "ok"),
        "violations": None if violations is None else len(violations),
        "emulator_samples": _get(deploy, "n_samples"),
        "errors": {
            stage: report[stage]["error"]
            for stage in STAGES
            if isinstance(report.get(stage), dict) and report[stage].get("error")
        },
    }
    if _get(evaluate, "neuron") == "sigma_delta":
        summary.update(
            neuron="sigma_delta",
            threshold=_get(evaluate, "threshold"),
            messages_per_sample=_get(evaluate, "messages_per_sample"),
            message_fraction=_get(evaluate, "message_fraction"),
            payload_bits=_get(evaluate, "payload_bits"),
        )
    return summary


def _fmt(value, spec="{:.4g}", missing="not run"):
    if value is None:
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return spec.format(value)
    return str(value)


def _pct(value):
    return _fmt(value, "{:.2%}")


def _pp(value):
    return _fmt(value if value is None else 100 * value, "{:.2f} percentage points")


# (label, summary key, formatter) rows of the headline table in report.md
HEADLINE = [
    ("Accuracy, NengoDL (test set)", "accuracy_nengo_dl", _pct),
    ("Accuracy, emulator (sample)", "accuracy_emulator", _pct),
    ("Accuracy, NengoDL (same sample)", "accuracy_nengo_dl_sample", _pct),
    (
        "Accuracy, Nengo reference simulator (same sample, same frozen network)",
        "accuracy_emulator_reference",
        _pct,
    ),
    ("Accuracy drop, reference simulator to emulator", "accuracy_drop", _pp),
    ("Activity bits (mean over neurons)", "activity_bits", lambda v: _fmt(v, "{:.3f}")),
    (
        "Significant bits per weight multiply",
        "significant_bits",
        lambda v: _fmt(v, "{:.3f}"),
    ),
    (
        "Synaptic events per sample",
        "synaptic_events_per_sample",
        lambda v: _fmt(v, "{:.4g}"),
    ),
    (
        "Energy estimate per sample (J)",
        "energy_per_sample_j",
        lambda v: _fmt(v, "{:.3e}"),
    ),
    ("Cores used", "cores", _fmt),
    ("Hardware check passed", "check_ok", _fmt),
    ("Violations", "violations", _fmt),
]


#: rows of the spike measures that a sigma-delta run replaces by `SIGMA_DELTA_ROWS`
SPIKE_ONLY = ("activity_bits", "significant_bits", "energy_per_sample_j")
SIGMA_DELTA_ROWS = [
    (
        "Messages per sample (nonzero deltas, all layers)",
        "messages_per_sample",
        lambda v: _fmt(v, "{:.4g}"),
    ),
    ("Messages per step and neuron (first layer)", "message_fraction", _pct),
    ("Payload bits (widest message, sign included)", "payload_bits", _fmt),
]


def headline_rows(summary):
    """``[(label, formatted value)]`` of the headline table, from a summary.

    A sigma-delta run (``summary["neuron"] == "sigma_delta"``) sends deltas,
    not spikes: its rows of spike measures say so, and its messages and
    payload bits follow the synaptic events.
    """
    sigma_delta = summary.get("neuron") == "sigma_delta"
    rows = []
    for label, key, fmt in HEADLINE:
        if sigma_delta and key in SPIKE_ONLY:
            rows.append((label, "n/a (sigma-delta layers send deltas, not spikes)"))
            continue
        rows.append((label, fmt(summary.get(key))))
        if sigma_delta and key == "synaptic_events_per_sample":
            rows += [(lab, f(summary.get(k))) for lab, k, f in SIGMA_DELTA_ROWS]
    return rows


def render_markdown(report):
    """Render ``report.md`` from the content of ``report.json`` (only).

    Parameters
    ----------
    report : dict
        As returned by `collect`.

    Returns
    -------
    str
    """
    s = report["summary"]
    lines = [
        f"# nengo-hybrid run: {_fmt(s['model'], missing='unknown model')}",
        "",
        f"- Data: {_fmt(s['data'], missing='unknown')}",
        f"- Seed: {_fmt(s['seed'], missing='unknown')}; epochs: {_fmt(s['epochs'])}; "
        + (
            f"sigma-delta threshold: {_fmt(s['threshold'])}"
            if s.get("neuron") == "sigma_delta"
            else f"final precision: {_fmt(s['final_precision'])}"
        ),
        f"- Run folder: `{report['run_dir']}`; report created {report['created']}",
        "- Numbers behind this page: `report.json` (schema "
        f"`{report['schema']}`). Bit metrics use nengo-hybrid's definitions "
        "(see `nengo_hybrid.metrics`), not necessarily the paper's.",
        "",
        "## Results",
        "",
        "| measure | value |",
        "| --- | --- |",
    ]
    lines += [f"| {label} | {value} |" for label, value in headline_rows(s)]
    if s.get("errors"):
        lines += ["", "## Errors", ""]
        lines += [
            f"- **{stage} failed**: {error}" for stage, error in s["errors"].items()
        ]
    lines += _stage_sections(report)
    if report.get("plots"):
        lines += ["", "## Plots", ""]
        for name, rel in sorted(report["plots"].items()):
            lines += [f"### {name.replace('_', ' ')}", "", f"![{name}]({rel})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _sigma_delta_layers(evaluate):
    """Report lines of the `.SigmaDelta` layers ``evaluate`` measured."""
    lines = []
    for label, layer in (evaluate.get("layers") or {}).items():
        updates = layer.get("updates_per_sample") or 0
        fraction = layer["messages_per_sample"] / updates if updates else None
        lines.append(
            f"- Layer {label}: {layer.get('neuron_type', '?')}; "
            f"{_fmt(layer.get('messages_per_sample'), '{:.1f}')} messages (nonzero "
            f"deltas) per sample of {updates} neuron updates ({_pct(fraction)}); "
            f"payload bits {_fmt(layer.get('payload_bits'))} (sign included, one "
            f"unit {_fmt(layer.get('payload_resolution'), '{:g}')} of the "
            "activation, as mapped onto Loihi 2)"
        )
    return lines


def _stage_sections(report):
    lines = []
    train = _ok(report.get("train"))
    if train:
        lines += ["", "## Training", ""]
        lines += [
            f"- Schedule: `{_fmt(train.get('schedule_repr'), missing='?')}`",
            f"- Training examples: {_fmt(train.get('n_train'))}; validation: "
            f"{_fmt(train.get('n_validation'))}; wall time: "
            f"{_fmt(train.get('seconds'), '{:.1f}')} s",
        ]
        kept = train.get("kept")
        if kept and "epoch" in kept:
            lines.append(
                f"- Kept: epoch {kept['epoch'] + 1} of {_fmt(train.get('epochs'))} "
                f"(`--keep {kept.get('keep', 'last')}`: {kept.get('reason', '?')})"
                + (
                    ""
                    if kept.get("value") is None
                    else f"; its {kept.get('metric')}: {_fmt(kept['value'])}"
                )
            )
    evaluate = _ok(report.get("evaluate"))
    if evaluate:
        lines += ["", "## Evaluation (NengoDL)", ""]
        lines += [
            f"- Test examples: {_fmt(evaluate.get('n_test'))}; "
            f"loss: {_fmt(evaluate.get('loss'))}",
        ]
        if evaluate.get("neuron") == "sigma_delta":
            lines += _sigma_delta_layers(evaluate)
        else:
            device = _fmt(evaluate.get("energy_device"), missing="?")
            lines.append(f"- Energy device costs: {device}")
    check = _ok(report.get("check"))
    if check:
        lines += [
            "",
            f"## Hardware check ({_fmt(check.get('profile'), missing='?')})",
            "",
        ]
        plan = check.get("plan")
        if plan:
            lines += [
                f"Deployment plan `{plan['path']}` (target "
                f"{_fmt(plan.get('target'), missing='?')}): "
                f"{_fmt(plan.get('description'), missing='')}",
                "",
            ]
        lines += [f"Strategies: {_strategies(check)}.", ""]
        violations = check.get("violations") or []
        if not violations:
            lines.append("No violations.")
        for v in violations:
            lines.append(f"- **{_violation_text(v)}**")
        table = check.get("table")
        if table:
            lines += ["", "```", str(table).rstrip(), "```"]
    deploy = _ok(report.get("deploy"))
    if deploy:
        lines += ["", f"## Deployment ({_fmt(deploy.get('target'), missing='?')})", ""]
        timing = deploy.get("emulator_seconds") or {}
        interval = deploy.get("accuracy_interval95") or (None, None)
        lines += [
            f"- Accuracy: {_fmt(deploy.get('accuracy'), '{:.2%}')} (95% interval "
            f"{_fmt(interval[0], '{:.2%}')} to {_fmt(interval[1], '{:.2%}')}) on "
            f"{_fmt(deploy.get('n_samples'))} test samples, each from the initial "
            f"state; NengoDL on the same samples: "
            f"{_fmt(deploy.get('accuracy_nengo_dl_same_samples'), '{:.2%}')}",
            f"- Emulator: {_fmt(deploy.get('emulator'), missing='the chip')}"
            + (
                f" (fell back: {deploy['emulator_fallback']})"
                if deploy.get("emulator_fallback")
                else ""
            )
            + f"; {_fmt(timing.get('per_sample'), '{:.3g}')} s per sample, "
            f"{_fmt(timing.get('per_step'), '{:.3g}')} s per step "
            f"({_fmt(deploy.get('steps_per_sample'))} steps per sample)",
            f"- Strategies: {_strategies(deploy)}; on the first "
            f"{_fmt(deploy.get('n_reference_samples'))} samples, predictions equal "
            f"to the reference simulator's: {_fmt(deploy.get('prediction_agreement'), '{:.2%}')}",
        ]
        lines += _lava_lines(deploy)
        for label, layer in sorted((deploy.get("layers") or {}).items()):
            if "payload_bits_needed" in layer:  # graded spikes (Loihi 2)
                lines.append(
                    f"- Layer `{label}`: {layer['neurons']} "
                    + (
                        "sigma-delta neurons (messages are deltas); "
                        if layer.get("kind") == "sigma_delta"
                        else "graded-spike neurons; "
                    )
                    + f"payload bits needed {layer['payload_bits_needed']} (sign "
                    f"included, largest payload {layer['max_payload']}) of "
                    f"{layer['payload_bits_available']} available; "
                    f"{_fmt(layer.get('events_per_sample'), '{:.0f}')} events per sample"
                )
                continue
            lines.append(
                f"- Layer `{label}`: spikes on the emulator / reference "
                f"{_fmt(layer.get('total_ratio'), '{:.3f}')} "
                f"({layer.get('total_emulator')} / {layer.get('total_reference')}); "
                f"(step, neuron) counts equal: "
                f"{_fmt(layer.get('fraction_equal_step_neuron'), '{:.1%}')}; largest count "
                f"{layer.get('max_count_emulator')} vs {layer.get('max_count_reference')}"
            )
        if deploy.get("note"):
            lines.append(f"- Note: {deploy['note']}")
    return lines


def _lava_lines(deploy):
    """Lava's run (``--target lava`` or a Loihi 2 chip) against the emulator's."""
    lava = deploy.get("lava")
    if not lava:
        return []
    seconds = lava.get("seconds") or {}
    same = lava.get("payloads_equal_emulator")
    return [
        f"- Lava ({_fmt(lava.get('config'))}, lava-nc {_fmt(lava.get('version'))}): "
        f"every payload equal to the Loihi 2 emulator's: "
        f"{'yes' if same else 'NO, first difference ' + str(lava.get('first_mismatch'))}"
        f"; emulator accuracy on the same samples "
        f"{_fmt(deploy.get('accuracy_emulator'), '{:.2%}')}; "
        f"{_fmt(seconds.get('per_sample'), '{:.3g}')} s per sample on Lava"
    ]


def _strategies(stage):
    found = stage.get("strategies") or stage.get("strategy")
    if isinstance(found, dict):
        if not found:
            return "none (no HybridSpiking ensembles)"
        return ", ".join(f"{label}: `{spec}`" for label, spec in found.items())
    return _fmt(found, missing="?")


def _ok(stage):
    """A stage's result, or ``None`` if it is missing or recorded a failure."""
    return None if not stage or stage.get("error") else stage


def _violation_text(v):
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        for key in ("message", "text", "description"):
            if key in v:
                return str(v[key])
        return "; ".join(f"{k}: {val}" for k, val in v.items())
    return str(v)


def write_report(run_dir, plots=None):
    """Write ``report.json`` then ``report.md`` into ``run_dir``.

    Returns
    -------
    dict
        The report (content of ``report.json``).
    """
    run_dir = pathlib.Path(run_dir)
    report = to_jsonable(collect(run_dir, plots=plots))
    write_json(run_dir / REPORT_JSON, report)
    write_atomic(run_dir / REPORT_MD, render_markdown(report))
    return report
