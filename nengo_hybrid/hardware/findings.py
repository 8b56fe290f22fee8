"""The result of a hardware check, as data: `Violation` and `Report`.

Pure Python and NumPy (no nengo-loihi): a report can be built, read,
printed and written to JSON (`Report.to_dict`) without the checks that
fill it (`nengo_hybrid.hardware.check`).
"""

import math

import numpy as np
from nengo.exceptions import BuildError

from nengo_hybrid.hardware.strategies import Strategy


class Violation:
    """One thing that does not fit (``severity="error"``) or loses precision.

    Parameters
    ----------
    kind : str
        What is checked, e.g. ``"compartments"``, ``"spike_bits"``.
    obj : str
        The ensemble, connection or core concerned.
    limit : number or str
        The profile's limit.
    value : number or str
        The network's value.
    fix : str
        A concrete change that makes it fit.
    severity : {"error", "warning"}
    detail : str, optional
        Extra explanation.
    """

    def __init__(self, kind, obj, limit, value, fix, severity="error", detail=""):
        self.kind = kind
        self.obj = str(obj)
        self.limit = limit
        self.value = value
        self.fix = fix
        self.severity = severity
        self.detail = detail

    @property
    def message(self):
        text = f"{self.obj}: {self.kind} = {self.value} (limit: {self.limit})"
        if self.detail:
            text += f" ({self.detail})"
        return f"{text}. Fix: {self.fix}"

    def __str__(self):
        return f"[{self.severity}] {self.message}"

    __repr__ = __str__

    def to_dict(self):
        return {
            "severity": self.severity,
            "kind": self.kind,
            "object": self.obj,
            "limit": _jsonable(self.limit),
            "value": _jsonable(self.value),
            "detail": self.detail,
            "fix": self.fix,
            "message": self.message,
        }


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _strategy_repr(strategy):
    if strategy is None:
        return "OneBit()"
    return repr(strategy) if isinstance(strategy, Strategy) else str(strategy)


class Report:
    """Result of `check`.

    Attributes
    ----------
    ok : bool
        True when there are no ``error`` violations.
    violations : list of Violation
        Errors: the network does not fit the profile as configured.
    warnings : list of Violation
        It fits, at a stated loss (weight bits, reset-to-zero approximation).
    cores : list of dict
        One row per core: block, ensemble, compartments, axons, synapse bits.
    ensembles : list of dict
        One row per on-chip ensemble: neuron type, strategy, spike bits.
    connections : list of dict
        One row per on-chip connection: weight range, bits lost.
    host : list of dict
        What runs on the host instead of the chip, and why.
    allow_violations : bool
        Set by `.Simulator` when it ran the network despite violations
        (``allow_violations=True``); shown in the text and in ``to_dict``.
    """

    def __init__(self, profile, strategy):
        self.profile = profile
        self.strategy = strategy
        self.violations = []
        self.warnings = []
        self.cores = []
        self.ensembles = []
        self.connections = []
        self.host = []
        self.notes = []
        self.allow_violations = False
        #: how the cores were planned: ``"nengo-loihi"`` (its build and core
        #: split, binary spikes) or ``"graded"`` (`nengo_hybrid.hardware.graded`)
        self.mapping = "nengo-loihi"

    @property
    def ok(self):
        return len(self.violations) == 0

    @property
    def n_cores(self):
        return len(self.cores)

    def add(self, violation):
        (self.violations if violation.severity == "error" else self.warnings).append(
            violation
        )

    def to_dict(self):
        n_chips = math.ceil(self.n_cores / self.profile["cores_per_chip"])
        return _jsonable(
            {
                "ok": self.ok,
                "profile": self.profile.name,
                "strategy": (
                    {str(k): _strategy_repr(v) for k, v in self.strategy.items()}
                    if isinstance(self.strategy, dict)
                    else _strategy_repr(self.strategy)
                ),
                "n_cores": self.n_cores,
                "n_chips": n_chips,
                "mapping": self.mapping,
                "allow_violations": self.allow_violations,
                "ran_despite_violations": self.allow_violations and not self.ok,
                "violations": [v.to_dict() for v in self.violations],
                "warnings": [v.to_dict() for v in self.warnings],
                "cores": self.cores,
                "ensembles": self.ensembles,
                "connections": self.connections,
                "host": self.host,
                "notes": self.notes,
            }
        )

    def __str__(self):
        lim = self.profile.limits
        lines = [
            f"Hardware check against {self.profile.name!r}: "
            f"{'OK' if self.ok else 'DOES NOT FIT'} -- {self.n_cores} cores, "
            f"{len(self.violations)} violations, {len(self.warnings)} warnings"
            + (
                " -- RUN ANYWAY (allow_violations=True)"
                if self.allow_violations and not self.ok
                else ""
            )
        ]
        if self.cores:
            payload = any("payload_bits_needed" in row for row in self.cores)
            header = (
                f"{'core':>4}  {'block':<38} {'compart.':>9} {'in-axons':>9} "
                f"{'out-axons':>9} {'synapse bits':>13}"
            ) + (f" {'payload bits':>12}" if payload else "")
            lines += ["", header, "-" * len(header)]
            for row in self.cores:
                lines.append(
                    f"{row['core']:>4}  {row['block'][:38]:<38} "
                    f"{row['compartments']:>9} {row['input_axons']:>9} "
                    f"{row['output_axons']:>9} {row['synapse_bits']:>13}"
                    + (f" {row.get('payload_bits_needed', '-'):>12}" if payload else "")
                )
            lines.append(
                f"{'max':>4}  {'':<38} {lim['compartments_per_core']:>9} "
                f"{str(lim['input_axons_per_core']):>9} "
                f"{str(lim['output_axons_per_core']):>9} "
                f"{lim['synapse_bits_per_core']:>13}"
                + (f" {lim['spike_payload_bits']:>12}" if payload else "")
            )
        hybrid = [r for r in self.ensembles if r["strategy"] != "sigma-delta"]
        sigma_delta = [r for r in self.ensembles if r["strategy"] == "sigma-delta"]
        if hybrid:
            lines += ["", "Hybrid ensembles:"]
            for row in hybrid:
                lines.append(
                    f"  {row['ensemble']}: {row['neuron_type']}, {row['n_neurons']} "
                    f"neurons -> {row['compartments']} compartments "
                    f"({row['strategy']}); spikes/step needed {row['max_count']} "
                    f"({row['count_source']}), representable {row['max_representable']}"
                    f"; {'exact' if row['exact'] else 'approximate'}"
                    + (
                        f"; payload bits needed {row['payload_bits_needed']} of "
                        f"{row['payload_bits']} (sign included)"
                        if "payload_bits_needed" in row
                        else ""
                    )
                )
        if sigma_delta:
            lines += ["", "Sigma-delta ensembles:"]
            lines += [_sigma_delta_line(row) for row in sigma_delta]
        lossy = [c for c in self.connections if c["bits_lost"] > 0]
        if self.connections:
            lines += [
                "",
                f"Connections: {len(self.connections)} on chip, {len(lossy)} lose "
                "weight bits",
            ]
        if self.host:
            lines += ["", "On the host:"]
            lines += [f"  {row['object']}: {row['reason']}" for row in self.host]
        for title, items in (
            ("Violations", self.violations),
            ("Warnings", self.warnings),
        ):
            if items:
                lines += ["", f"{title}:"]
                lines += [f"  - {v.message}" for v in items]
        for note in self.notes:
            lines.append(f"Note: {note}")
        return "\n".join(lines)


class HardwareCheckError(BuildError):
    """A network that `nengo_hybrid.hardware.check` refuses, refused by a build.

    `.Simulator` runs the same checks before it builds for the emulator or the
    chip, and raises this with the same messages (one per violation, each
    with its fix). ``allow_violations=True`` runs the network anyway and
    records that in ``sim.check_report``.

    Attributes
    ----------
    report : Report
        The full report (``report.violations``: what does not fit).
    """

    def __init__(self, report, what="the network"):
        self.report = report
        lines = [
            f"{what} does not fit the {report.profile.name!r} profile: "
            f"{len(report.violations)} violation(s) (the same as "
            "nengo_hybrid.hardware.check reports):"
        ]
        lines += [f"  - {v.message}" for v in report.violations]
        lines.append(
            "Fix them, or pass allow_violations=True to run anyway (spikes above a "
            "strategy's budget are then lost; sim.check_report records it)."
        )
        super().__init__("\n".join(lines))


def _sigma_delta_line(row):
    """A `.SigmaDelta` ensemble's row of the check table (graded deltas)."""
    line = (
        f"  {row['ensemble']}: {row['neuron_type']}, {row['n_neurons']} neurons -> "
        f"{row['compartments']} compartments ({row['mapping']}); payload unit "
        f"{row['payload_resolution']:g}"
    )
    if "payload_bits_needed" not in row:
        return line + "; payload bits not measured"
    return line + (
        f"; largest payload {row['max_payload']} ({row['count_source']}): payload "
        f"bits needed {row['payload_bits_needed']} of {row['payload_bits']} (sign "
        "included)"
    )
