"""Aggregation of a sweep: ``sweep.json``, ``sweep.md`` and plots.

From the ``trial.json`` of every trial of a `nengo_hybrid.sweep.Sweep`:

* one row per trial (its data, package versions and seed);
* one group per configuration (the trial without its seed): test accuracy,
  activity bits and training time as mean and standard deviation over seeds,
  and whether the group is on the Pareto front of accuracy against activity
  bits (no other group of the same sequence length and data is at least as
  accurate with at most as many bits, and better in one);
* the paper's claim (arXiv:2002.03553: the hybrid LMU at <= 3.74 activity bits
  beats LSTM and GRU), per seed and over seeds, at equal epochs and at equal
  wall time (`claims`);
* ``plots/accuracy_vs_bits.png`` and ``plots/accuracy_vs_time.png``.

Training time is the sum of a trial's epoch times (validation included), so a
resumed trial counts only the epochs it trained. Trials that ran side by side
share the machine: compare times from one sweep, run with one setting of
workers.
"""

import datetime
import json
import pathlib

import matplotlib.ticker
import numpy as np

from nengo_hybrid import io as nio

SWEEP_JSON = "sweep.json"
SWEEP_MD = "sweep.md"
PLOTS = "plots"
PAPER_BITS = 3.74
#: a baseline "had equal wall time" if it trained at least this fraction of
#: the hybrid's training time
TIME_TOLERANCE = 0.95
SCHEMA = "nengo-hybrid-sweep/1"
SHORT_VERSIONS = (
    ("nengo-hybrid", "nengo-hybrid"),
    ("tensorflow", "tf"),
    ("nengo-dl", "nengo-dl"),
    ("nengo", "nengo"),
)


def _mean_sd(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def short_versions(versions):
    """``"nengo-hybrid 0.1, tf 2.12.1, ..."`` from an `environment_info` packages dict."""
    versions = versions or {}
    return ", ".join(
        f"{short} {versions[name]}"
        for name, short in SHORT_VERSIONS
        if versions.get(name)
    )


def trial_rows(sweep, out):
    """One dict per trial of ``sweep`` (status, result, where it is)."""
    from nengo_hybrid.sweep import read_trial

    rows = []
    for trial in sweep.trials:
        folder = sweep.folder(out, trial)
        record = read_trial(folder) or {}
        result = record.get("result") or {}
        rows.append(
            dict(
                id=trial.id,
                label=trial.label,
                group=json.dumps(trial.group, sort_keys=True),
                kind=trial.kind,
                model=trial.model,
                n_steps=trial.n_steps,
                pool=trial.pool,
                precision=trial.precision,
                schedule=trial.schedule,
                epochs=trial.epochs,
                budget_seconds=trial.budget_seconds,
                seed=trial.seed,
                data=result.get("data") or trial.data,
                status=record.get("status", "not run"),
                error=record.get("error"),
                attempts=len(record.get("attempts", [])),
                test_accuracy=result.get("test_accuracy"),
                activity_bits=result.get("activity_bits"),
                significant_bits=result.get("significant_bits"),
                train_seconds=result.get("train_seconds"),
                epochs_trained=result.get("epochs"),
                n_train=result.get("n_train"),
                n_test=result.get("n_test"),
                versions=result.get("versions"),
                folder=str(pathlib.Path(folder).relative_to(out)),
            )
        )
    return rows


def groups(rows):
    """Rows of finished trials grouped by configuration, with means and sds."""
    found = {}
    for row in rows:
        if row["status"] == "done":
            found.setdefault(row["group"], []).append(row)
    out = []
    for key, members in found.items():
        first = members[0]
        acc, acc_sd = _mean_sd([r["test_accuracy"] for r in members])
        bits, bits_sd = _mean_sd([r["activity_bits"] for r in members])
        secs, secs_sd = _mean_sd([r["train_seconds"] for r in members])
        out.append(
            dict(
                group=key,
                label=first["label"],
                kind=first["kind"],
                model=first["model"],
                n_steps=first["n_steps"],
                precision=first["precision"],
                schedule=first["schedule"],
                epochs=first["epochs"],
                budget_seconds=first["budget_seconds"],
                data=sorted({r["data"] for r in members}),
                n_train=sorted({r.get("n_train") for r in members if r.get("n_train")}),
                n_test=sorted({r.get("n_test") for r in members if r.get("n_test")}),
                seeds=sorted(r["seed"] for r in members),
                n=len(members),
                accuracy_mean=acc,
                accuracy_sd=acc_sd,
                bits_mean=bits,
                bits_sd=bits_sd,
                train_seconds_mean=secs,
                train_seconds_sd=secs_sd,
                versions=sorted({short_versions(r["versions"]) for r in members}),
            )
        )
    _mark_pareto(out)
    out.sort(key=lambda g: (g["n_steps"], g["kind"] != "hybrid", g["label"]))
    return out


def _mark_pareto(found):
    """``pareto``: no group of the same steps and data dominates it (bits, accuracy)."""
    for g in found:
        g["pareto"] = not any(
            o is not g
            and o["n_steps"] == g["n_steps"]
            and o["data"] == g["data"]
            and o["bits_mean"] <= g["bits_mean"]
            and o["accuracy_mean"] >= g["accuracy_mean"]
            and (
                o["bits_mean"] < g["bits_mean"]
                or o["accuracy_mean"] > g["accuracy_mean"]
            )
            for o in found
        )


# ------------------------------------------------------------------ the claim


CELLS = ("lstm", "gru")
CELL_NAMES = {"lstm": "LSTM", "gru": "GRU"}


def _verdict(hybrid, others):
    """``holds`` if ``hybrid`` beats every one of ``others``; n/a if one is missing."""
    if hybrid is None or not others or any(o is None for o in others):
        return "n/a"
    return "holds" if all(hybrid > o for o in others) else "fails"


def _equal_time_match(hybrid_row, candidates):
    """The baseline trial that trained about as long as the hybrid (not shorter)."""
    need = TIME_TOLERANCE * hybrid_row["train_seconds"]
    long_enough = [r for r in candidates if r["train_seconds"] >= need]
    return min(long_enough, key=lambda r: r["train_seconds"]) if long_enough else None


def claims(rows, found):
    """The paper's claim per sequence length and data, at equal epochs and time.

    For each sequence length, data and epoch count, the hybrid configuration
    is the one with the best mean accuracy among those with at most
    `PAPER_BITS` activity bits on average over seeds (each seed's bits are
    listed). Per seed it is compared with the LSTM and GRU of that seed:

    * equal epochs: the baselines trained for the same number of epochs;
    * equal wall time: of the baseline trials of that seed (by epochs or by
      budget), the one that trained the shortest time that is still at least
      `TIME_TOLERANCE` of the hybrid's training time.

    The claim holds for a seed if the hybrid is more accurate than both; over
    seeds, if its mean accuracy is above both baselines' means.
    """
    done = [r for r in rows if r["status"] == "done"]
    results = []
    keys = sorted({(g["n_steps"], tuple(g["data"])) for g in found})
    for n_steps, data in keys:
        same = [r for r in done if r["n_steps"] == n_steps and r["data"] in data]
        hybrid_groups = [
            g
            for g in found
            if g["kind"] == "hybrid"
            and g["n_steps"] == n_steps
            and tuple(g["data"]) == data
        ]
        for epochs in sorted({g["epochs"] for g in hybrid_groups}):
            eligible = [
                g
                for g in hybrid_groups
                if g["epochs"] == epochs and g["bits_mean"] <= PAPER_BITS
            ]
            base = dict(n_steps=n_steps, data=list(data), epochs=epochs)
            if not eligible:
                results.append(
                    dict(
                        base,
                        comparison="equal epochs",
                        verdict="n/a",
                        note=f"no hybrid configuration at <= {PAPER_BITS} activity "
                        "bits (mean over seeds)",
                    )  # fmt: skip
                )
                continue
            best = max(eligible, key=lambda g: g["accuracy_mean"])
            hybrid = {r["seed"]: r for r in same if r["group"] == best["group"]}
            for comparison in ("equal epochs", "equal wall time"):
                results.append(_claim(comparison, base, best, hybrid, same, epochs))
    return results


def _claim(comparison, base, best, hybrid, same, epochs):
    # the baselines the sweep has (the claim is about both LSTM and GRU)
    cells = [c for c in CELLS if any(r["kind"] == c for r in same)]
    per_seed = []
    for seed, h in sorted(hybrid.items()):
        entry = dict(
            seed=seed,
            hybrid_accuracy=h["test_accuracy"],
            hybrid_bits=h["activity_bits"],
            hybrid_seconds=h["train_seconds"],
        )
        for cell in CELLS:
            candidates = [r for r in same if r["kind"] == cell and r["seed"] == seed]
            if comparison == "equal epochs":
                match = next((r for r in candidates if r["epochs"] == epochs), None)
            else:
                match = _equal_time_match(h, candidates)
            entry[f"{cell}_accuracy"] = match["test_accuracy"] if match else None
            entry[f"{cell}_seconds"] = match["train_seconds"] if match else None
            entry[f"{cell}_epochs"] = match["epochs_trained"] if match else None
            entry[f"{cell}_trial"] = match["id"] if match else None
        entry["verdict"] = _verdict(
            entry["hybrid_accuracy"], [entry[f"{c}_accuracy"] for c in cells]
        )
        per_seed.append(entry)
    complete = [e for e in per_seed if e["verdict"] != "n/a"]
    overall = dict(n_seeds=len(complete))
    for name in ("hybrid",) + CELLS:
        mean, sd = _mean_sd([e[f"{name}_accuracy"] for e in complete])
        overall[f"{name}_mean"], overall[f"{name}_sd"] = mean, sd
    overall["verdict"] = (
        _verdict(overall["hybrid_mean"], [overall[f"{c}_mean"] for c in cells])
        if complete
        else "n/a"
    )
    notes = []
    missing = [CELL_NAMES[c] for c in CELLS if c not in cells]
    if missing and cells:
        notes.append(
            f"compared with {' and '.join(CELL_NAMES[c] for c in cells)} only: the "
            f"sweep has no {' or '.join(missing)} trials (the claim is about both)"
        )
    ratios = [
        e[f"{c}_seconds"] / e["hybrid_seconds"]
        for e in complete
        for c in cells
        if e["hybrid_seconds"]
    ]
    if comparison == "equal wall time" and ratios and max(ratios) > 1.25:
        notes.append(
            f"the baselines trained up to {max(ratios):.1f}x as long as this hybrid "
            "(a matched budget is the longest training time of the hybrids of its "
            "seed), which favours them"
        )
    if not cells:
        notes.append("the sweep has no LSTM or GRU trials")
    elif len(complete) < len(per_seed):
        notes.append(
            f"{len(per_seed) - len(complete)} seed(s) without "
            + (
                "baselines of these epochs"
                if comparison == "equal epochs"
                else "baselines trained as long as the hybrid (give "
                "baselines.budget_seconds at least the hybrid's training time)"
            )
        )
    return dict(
        base,
        comparison=comparison,
        hybrid=best["label"],
        hybrid_group=best["group"],
        compared_with=cells,
        per_seed=per_seed,
        overall=overall,
        verdict=overall["verdict"],
        note="; ".join(notes) or None,
    )


# ----------------------------------------------------------------- plots


def _plot_styles(found):
    steps = sorted({g["n_steps"] for g in found})
    colors = ["C0", "C3", "C2", "C4", "C5"]
    return {s: colors[i % len(colors)] for i, s in enumerate(steps)}


MARKERS = {"hybrid": "o", "rate_lmu": "s", "lstm": "D", "gru": "^"}
#: the non-spiking models all send 32-bit floats: drawn slightly apart
SPREAD = {"lstm": 0.92, "gru": 1.0, "rate_lmu": 1.08}


def plot_accuracy_vs_bits(found, path):
    """Accuracy against activity bits, mean ± sd over seeds; Pareto front marked."""
    from nengo_hybrid.plots import _save, _subplots

    fig, ax = _subplots(figsize=(7, 4.5))
    color = _plot_styles(found)
    seen = set()
    for g in found:
        if g["bits_mean"] is None or g["accuracy_mean"] is None:
            continue
        kind_name = "hybrid LMU" if g["kind"] == "hybrid" else g["label"].split(",")[0]
        label = f"{kind_name}, {g['n_steps']} steps"
        ax.errorbar(
            g["bits_mean"] * SPREAD.get(g["kind"], 1.0),
            100 * g["accuracy_mean"],
            xerr=g["bits_sd"] or 0,
            yerr=100 * (g["accuracy_sd"] or 0),
            fmt=MARKERS.get(g["kind"], "o"),
            color=color[g["n_steps"]],
            capsize=2,
            label=None if label in seen else label,
        )
        seen.add(label)
        ax.annotate(
            f"p={g['precision']:g}" if g["kind"] == "hybrid" else _short(g),
            (g["bits_mean"] * SPREAD.get(g["kind"], 1.0), 100 * g["accuracy_mean"]),
            fontsize=7,
            xytext=(4, -9) if g["kind"] == "hybrid" else (-6, -9),
            ha="left" if g["kind"] == "hybrid" else "right",
            textcoords="offset points",
        )
    for steps, c in color.items():
        front = sorted(
            (g for g in found if g["pareto"] and g["n_steps"] == steps),
            key=lambda g: g["bits_mean"],
        )
        if front:
            xs = [g["bits_mean"] * SPREAD.get(g["kind"], 1.0) for g in front]
            ys = [100 * g["accuracy_mean"] for g in front]
            ax.step(xs, ys, where="post", color=c, alpha=0.4, linewidth=1)
            ax.scatter(xs, ys, s=160, facecolors="none", edgecolors=c, linewidths=1.2,
                       label="Pareto front" if steps == min(color) else None)  # fmt: skip
    ax.axvline(PAPER_BITS, color="0.6", linestyle=":", linewidth=1)
    ax.text(PAPER_BITS, ax.get_ylim()[0], f" {PAPER_BITS} bits (paper)", fontsize=7,
            color="0.4", va="bottom")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel(
        "activity bits (mean ± sd over seeds; non-spiking: 32-bit floats, drawn apart)"
    )
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _short(g):
    name = {"lstm": "LSTM", "gru": "GRU", "rate_lmu": "LMU"}.get(g["kind"])
    name = name or f"p={g['precision']:g}"
    budget = g["budget_seconds"]
    budget = (
        f"{g['epochs']} ep"
        if g["epochs"]
        else "hybrid's time"
        if budget == "match"
        else f"{budget:g} s"
    )
    return f"{name}, {budget}"


def _kind_legend(ax, found, color):
    names = {"hybrid": "hybrid LMU", "lstm": "LSTM", "gru": "GRU", "rate_lmu": "LMU"}
    shown = sorted({(g["kind"], g["n_steps"]) for g in found}, key=lambda k: k[1])
    for kind, steps in shown:
        ax.plot([], [], MARKERS.get(kind, "o"), color=color[steps],
                label=f"{names.get(kind, kind)}, {steps} steps")  # fmt: skip
    ax.legend(fontsize=7, loc="best")


def plot_accuracy_vs_time(found, path):
    """Accuracy against training time, mean ± sd over seeds."""
    from nengo_hybrid.plots import _save, _subplots

    fig, ax = _subplots(figsize=(7, 4.5))
    color = _plot_styles(found)
    for g in found:
        if g["train_seconds_mean"] is None or g["accuracy_mean"] is None:
            continue
        ax.errorbar(
            g["train_seconds_mean"],
            100 * g["accuracy_mean"],
            xerr=g["train_seconds_sd"] or 0,
            yerr=100 * (g["accuracy_sd"] or 0),
            fmt=MARKERS.get(g["kind"], "o"),
            color=color[g["n_steps"]],
            capsize=2,
        )
        ax.annotate(
            _short(g),
            (g["train_seconds_mean"], 100 * g["accuracy_mean"]),
            fontsize=6,
            xytext=(4, 3),
            textcoords="offset points",
        )
    _kind_legend(ax, found, color)
    times = [g["train_seconds_mean"] for g in found if g["train_seconds_mean"]]
    if times and max(times) > 10 * min(times):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("training time (s, mean ± sd over seeds)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


# ------------------------------------------------------------------ writing


def _pm(mean, sd, scale=1.0, spec=".3f"):
    if mean is None:
        return "n/a"
    return f"{format(scale * mean, spec)} ± {format(scale * (sd or 0), spec)}"


def _fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


def _legend(values, prefix):
    return {v: f"{prefix}{i + 1}" for i, v in enumerate(sorted(values))}


def render_markdown(record):
    """``sweep.md`` from the ``sweep.json`` record."""
    lines = [f"# Sweep `{record['name']}`", ""]
    status = record["status"]
    data = _legend(record["data"], "D")
    versions = _legend(
        {short_versions(r["versions"]) for r in record["trials"] if r["versions"]}, "V"
    )
    lines.append(
        f"{status['trials']} trials: {status['done']} done, {status['failed']} failed, "
        f"{status['not_run']} not run or unfinished."
    )
    lines.append("")
    lines += [f"* {key}: {text}" for text, key in data.items()]
    lines += [f"* {key}: {text}" for text, key in versions.items()]
    lines.append("")

    def data_cell(texts, n_train, n_test):
        cell = ", ".join(data.get(t, t) for t in texts)
        if n_train:
            cell += f" (train {'/'.join(map(str, n_train))}"
            cell += f", test {'/'.join(map(str, n_test))})" if n_test else ")"
        return cell

    def as_list(value):
        return [] if value is None else value if isinstance(value, list) else [value]

    for session in record["sessions"]:
        if not session["started"]:
            lines.append(
                f"* session {session['finished']}: nothing to run "
                f"({session['skipped']} trials finished before)"
            )
            continue
        lines.append(
            f"* session {session['finished']}: {session['started']} trials started, "
            f"{session['skipped']} finished before, {session['done']} done, "
            f"{session['failed']} failed, {session['workers']} worker(s), "
            f"{session['seconds']:.0f} s wall time"
        )
    lines += ["", "## Configurations (mean ± sd over seeds)", ""]
    lines.append(
        "| configuration | steps | seeds | test accuracy | activity bits | training "
        "time (s) | Pareto | data | versions |"
    )
    lines.append("|" + " --- |" * 9)
    for g in record["groups"]:
        lines.append(
            f"| {g['label']} | {g['n_steps']} | {','.join(map(str, g['seeds']))} | "
            f"{_pm(g['accuracy_mean'], g['accuracy_sd'])} | "
            f"{_pm(g['bits_mean'], g['bits_sd'], spec='.2f')} | "
            f"{_pm(g['train_seconds_mean'], g['train_seconds_sd'], spec='.0f')} | "
            f"{'yes' if g['pareto'] else ''} | "
            f"{data_cell(g['data'], g['n_train'], g['n_test'])} | "
            f"{', '.join(versions.get(v, v) for v in g['versions'])} |"
        )
    lines += ["", "## The paper's claim", ""]
    lines.append(
        f"Claim (arXiv:2002.03553): the hybrid LMU at <= {PAPER_BITS} activity bits "
        "beats LSTM and GRU. The hybrid configuration is the most accurate one with "
        f"<= {PAPER_BITS} activity bits on average over seeds (each seed's bits are in "
        "the table); equal wall time compares it with the "
        "LSTM/GRU trial of the same seed that trained the shortest time still >= "
        f"{TIME_TOLERANCE:.0%} of the hybrid's."
    )
    lines.append("")
    for c in record["claims"]:
        head = (
            f"**{c['n_steps']} steps, {c['epochs']} epochs, {c['comparison']}**: "
            f"{c['verdict']}"
        )
        if c.get("hybrid") and c["overall"]["n_seeds"]:
            o = c["overall"]
            parts = [f"{c['hybrid']}: {_pm(o['hybrid_mean'], o['hybrid_sd'])}"]
            parts += [
                f"{CELL_NAMES[cell]} {_pm(o[cell + '_mean'], o[cell + '_sd'])}"
                for cell in c["compared_with"]
            ]
            held = sum(e["verdict"] == "holds" for e in c["per_seed"])
            head += (
                f" over {o['n_seeds']} seed(s) by mean accuracy ({'; '.join(parts)}); "
                f"per seed it holds for {held} of {len(c['per_seed'])}"
            )
        if c.get("note"):
            head += f". {c['note'][0].upper()}{c['note'][1:]}"
        lines += [head, ""]
        if c.get("per_seed"):
            lines.append(
                "| seed | hybrid acc | bits | hybrid s | LSTM acc | LSTM s (epochs) "
                "| GRU acc | GRU s (epochs) | verdict |"
            )
            lines.append("|" + " --- |" * 9)
            for e in c["per_seed"]:
                lines.append(
                    f"| {e['seed']} | {_fmt(e['hybrid_accuracy'], '.3f')} | "
                    f"{_fmt(e['hybrid_bits'], '.2f')} | "
                    f"{_fmt(e['hybrid_seconds'], '.0f')} | "
                    f"{_fmt(e['lstm_accuracy'], '.3f')} | "
                    f"{_fmt(e['lstm_seconds'], '.0f')} ({_fmt(e['lstm_epochs'], 'd')}) | "
                    f"{_fmt(e['gru_accuracy'], '.3f')} | "
                    f"{_fmt(e['gru_seconds'], '.0f')} ({_fmt(e['gru_epochs'], 'd')}) | "
                    f"{e['verdict']} |"
                )
            lines.append("")
    lines += ["## Trials", ""]
    lines.append(
        "| trial | seed | status | test accuracy | activity bits | epochs | training "
        "time (s) | data | versions |"
    )
    lines.append("|" + " --- |" * 9)
    for r in record["trials"]:
        status = r["status"] if not r.get("error") else f"{r['status']}: {r['error']}"
        lines.append(
            f"| [{r['label']}]({r['folder']}) | {r['seed']} | {status} | "
            f"{_fmt(r['test_accuracy'], '.3f')} | {_fmt(r['activity_bits'], '.2f')} | "
            f"{_fmt(r['epochs_trained'], 'd')} | {_fmt(r['train_seconds'], '.0f')} | "
            f"{data_cell([r['data']], as_list(r['n_train']), as_list(r['n_test']))} | "
            f"{versions.get(short_versions(r['versions']), '')} |"
        )
    lines += ["", "## Plots", ""]
    for name, caption in record["plots"].items():
        lines.append(f"![{caption}]({PLOTS}/{name})")
    lines.append("")
    return "\n".join(lines)


def aggregate(sweep, out, session=None):
    """Write ``sweep.json``, ``sweep.md`` and ``plots/`` for ``sweep`` in ``out``.

    Parameters
    ----------
    sweep : nengo_hybrid.sweep.Sweep
    out : str or pathlib.Path
        The sweep folder.
    session : dict, optional
        This invocation's summary (`nengo_hybrid.sweep.run`), appended to the
        sessions recorded in ``sweep.json``.

    Returns
    -------
    dict
        The ``sweep.json`` record.
    """
    out = pathlib.Path(out)
    rows = trial_rows(sweep, out)
    found = groups(rows)
    previous = {}
    try:
        previous = json.loads((out / SWEEP_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    sessions = (
        list(previous.get("sessions", [])) if previous.get("name") == sweep.name else []
    )
    if session is not None:
        session = dict(
            session, finished=datetime.datetime.now().isoformat("T", "seconds")
        )
        sessions.append(session)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "failed")}
    plots = {}
    if found:
        (out / PLOTS).mkdir(exist_ok=True)
        plot_accuracy_vs_bits(found, out / PLOTS / "accuracy_vs_bits.png")
        plot_accuracy_vs_time(found, out / PLOTS / "accuracy_vs_time.png")
        plots = {
            "accuracy_vs_bits.png": "test accuracy vs activity bits (Pareto front "
            "circled)",
            "accuracy_vs_time.png": "test accuracy vs training time",
        }
    record = dict(
        schema=SCHEMA,
        name=sweep.name,
        spec=sweep.spec,
        status=dict(
            trials=len(rows),
            done=counts["done"],
            failed=counts["failed"],
            not_run=len(rows) - counts["done"] - counts["failed"],
        ),
        data=sorted({r["data"] for r in rows}),
        machine=nio.environment_info(),
        sessions=sessions,
        groups=found,
        claims=claims(rows, found),
        trials=rows,
        plots=plots,
    )
    nio.atomic_write_json(out / SWEEP_JSON, record)
    nio.atomic_write_text(out / SWEEP_MD, render_markdown(record))
    return record
