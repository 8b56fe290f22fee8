"""Deployment plans: how a model is placed on a hardware target (``deploy/*.json``).

A plan is prescriptive: ``check`` and ``deploy`` apply its profile, its
strategy per ensemble, its host/chip placement and its target. Its narrative
(why this strategy, what was measured) is kept apart, under ``notes``, and
never read as configuration. A plan file::

    {
      "model": "mnist_dense",
      "profile": "loihi1",
      "target": "emulator",              // emulator | lava | chip | auto | check-only
      "strategy": {"default": "onebit", "hidden2": "expand:2"},
      "host": ["input"],                 // ensembles that run on the host
      "notes": {"why_strategy": "...", "alternatives": {...}}
    }

Strategy spellings are those of `nengo_hybrid.pipeline.specs.parse_strategy`
(``auto`` chooses from the measured spike counts). Plans are searched in
``./deploy``, in the folders of ``NENGO_HYBRID_DEPLOY`` and in the plans shipped
with the package (`nengo_hybrid.deploy`); ``find_plan("mnist_dense",
"loihi1")`` reads ``mnist_dense_loihi1.json``.
"""

import json
import pathlib

from nengo_hybrid import io
from nengo_hybrid.io import UserError

ENV_DEPLOY = "NENGO_HYBRID_DEPLOY"
TARGETS = ("emulator", "lava", "chip", "auto", "check-only")
KEYS = {"model", "profile", "target", "dt", "strategy", "host", "notes"}


class PlanError(UserError):
    """A deployment plan is malformed or does not fit its network."""


def search_path():
    """The folders searched for plans, in order."""
    return io.search_path("deploy", ENV_DEPLOY, "nengo_hybrid.deploy")


def find_plan(model, profile):
    """The plan file for ``model`` on ``profile``, or None."""
    for folder in search_path():
        path = folder / f"{model}_{profile}.json"
        if path.is_file():
            return path
    return None


class Plan:
    """A parsed, validated deployment plan.

    Attributes
    ----------
    path : pathlib.Path
    model, profile, target : str
    dt : float
    strategies : dict of {str: Strategy or None}
        Per ensemble label, with ``"default"``; None means ``auto``.
    host : list of str
        Ensemble labels placed on the host.
    notes : dict
        Narrative only.
    """

    def __init__(self, path, data):
        from nengo_hybrid.pipeline.specs import parse_strategy

        self.path = pathlib.Path(path)
        unknown = sorted(set(data) - KEYS)
        if unknown:
            raise PlanError(
                f"deployment plan {self.path} has unknown keys {', '.join(unknown)}",
                hint=f"a plan takes {', '.join(sorted(KEYS))}; narrative goes under "
                "'notes'",
            )
        for key in ("model", "profile"):
            if not isinstance(data.get(key), str):
                raise PlanError(
                    f"deployment plan {self.path} needs {key!r} (a string)",
                    hint="see deploy/README.md",
                )
        self.model = data["model"]
        self.profile = data["profile"]
        self.target = data.get("target", "auto")
        if self.target not in TARGETS:
            raise PlanError(
                f"deployment plan {self.path}: unknown target {self.target!r}",
                hint=f"use one of {', '.join(TARGETS)}",
            )
        self.dt = float(data.get("dt", 0.001))
        strategy = data.get("strategy", {})
        if not isinstance(strategy, dict):
            raise PlanError(
                f"deployment plan {self.path}: 'strategy' must map ensemble labels "
                "(and 'default') to strategies",
                hint='e.g. {"default": "onebit", "hidden": "expand:2"}',
            )
        try:
            self.strategies = {
                label: parse_strategy(
                    spec, where=f"strategy for {label!r} in {self.path}"
                )
                for label, spec in strategy.items()
            }
        except Exception as err:
            raise PlanError(str(err), hint=getattr(err, "hint", None)) from err
        self.host = data.get("host", [])
        if not isinstance(self.host, list) or not all(
            isinstance(x, str) for x in self.host
        ):
            raise PlanError(
                f"deployment plan {self.path}: 'host' must be a list of ensemble labels"
            )
        self.notes = dict(data.get("notes", {}))

    @classmethod
    def read(cls, path):
        """Read and validate a plan file."""
        path = pathlib.Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise PlanError(
                f"cannot read deployment plan {path}: {err}",
                hint="fix the JSON, or pass another plan",
            ) from err
        if not isinstance(data, dict):
            raise PlanError(f"deployment plan {path} must be a JSON object")
        return cls(path, data)

    def resolve(self, network):
        """Apply the plan to ``network``: placement, and strategies by ensemble.

        Unknown labels (in ``strategy`` or ``host``) are errors. Ensembles in
        ``host`` are marked ``on_chip = False`` (nengo-loihi's config).

        Returns
        -------
        dict of {nengo.Ensemble: Strategy or None}
            The strategy of every `.HybridSpiking` ensemble on the chip (None:
            ``auto``).
        """
        from nengo_hybrid.neurons import HybridSpiking

        by_label = {}
        for ens in network.all_ensembles:
            by_label.setdefault(str(ens.label), ens)
        named = [label for label in self.strategies if label != "default"] + self.host
        unknown = [label for label in named if label not in by_label]
        if unknown:
            raise PlanError(
                f"deployment plan {self.path} names ensembles {', '.join(unknown)}, "
                f"which {self.model} does not have",
                hint=f"its ensembles are {', '.join(sorted(by_label))}",
            )
        set_on_chip(network, [by_label[label] for label in self.host])
        default = self.strategies.get("default")
        return {
            ens: self.strategies.get(str(ens.label), default)
            for ens in network.all_ensembles
            if isinstance(ens.neuron_type, HybridSpiking)
            and str(ens.label) not in self.host
        }

    def to_dict(self):
        from nengo_hybrid.pipeline.specs import strategy_spec

        return {
            "path": str(self.path),
            "model": self.model,
            "profile": self.profile,
            "target": self.target,
            "strategy": {k: strategy_spec(v) for k, v in self.strategies.items()},
            "host": self.host,
            "description": self.notes.get("description"),
        }


def set_on_chip(network, host_ensembles):
    """Mark ``host_ensembles`` ``on_chip = False`` (nengo-loihi's config param)."""
    if not host_ensembles:
        return
    from nengo_hybrid.hardware.loihi import nengo_loihi  # imported without TensorFlow

    nengo_loihi.add_params(network)
    for ens in host_ensembles:
        network.config[ens].on_chip = False
