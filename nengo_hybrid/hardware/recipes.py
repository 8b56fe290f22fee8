"""Deployment recipes: which profile, which strategy, what runs where.

A recipe is a JSON file (see ``deploy/README.md`` in the repository)::

    {"profile": "loihi1", "dt": 0.001, "target": "auto",
     "strategy": {"default": "onebit", "hidden1": "expand:4"},
     "host": {"input": "why it runs on the host"}, "chip": ["hidden1"]}

`apply_recipe` marks the ``host`` ensembles off-chip and resolves the
per-label strategies to ``{ensemble: Strategy}`` for `.check` and `.Simulator`.
"""

import json
import os

import nengo
from nengo.exceptions import ValidationError

from nengo_hybrid.hardware.profiles import load_profile
from nengo_hybrid.hardware.strategies import as_strategy

REQUIRED = ("profile", "strategy", "host", "chip")


def load_recipe(path):
    """Read and validate a recipe JSON file."""
    with open(path) as fh:
        recipe = json.load(fh)
    missing = [key for key in REQUIRED if key not in recipe]
    if missing:
        raise ValidationError(
            f"Recipe {os.fspath(path)!r} lacks {missing}", attr="recipe"
        )
    load_profile(recipe["profile"])  # fail early on an unknown profile
    for _label, strategy in recipe["strategy"].items():
        as_strategy(strategy)
    return recipe


def _by_label(network):
    found = {}
    for obj in network.all_ensembles + network.all_nodes:
        if obj.label is not None:
            found.setdefault(obj.label, []).append(obj)
    return found


def apply_recipe(network, recipe):
    """Apply ``recipe`` to ``network``.

    Marks the recipe's ``host`` ensembles ``on_chip = False`` (nengo-loihi
    config) and returns the keyword arguments for `.check` / `.Simulator`.

    Returns
    -------
    dict
        ``profile``, ``strategy`` (``{ensemble: Strategy}``), ``dt``.
    """
    import nengo_loihi

    if isinstance(recipe, (str, os.PathLike)):
        recipe = load_recipe(recipe)
    labels = _by_label(network)
    for label in list(recipe["host"]) + list(recipe["chip"]):
        if label not in labels:
            raise ValidationError(
                f"Recipe names {label!r}, but the network has no ensemble or node "
                f"with that label (labels: {sorted(labels)})",
                attr="recipe",
            )
    nengo_loihi.add_params(network)
    for label in recipe["host"]:
        for obj in labels[label]:
            if isinstance(obj, nengo.Ensemble):
                network.config[obj].on_chip = False

    default = as_strategy(recipe["strategy"].get("default"))
    strategies = {}
    for ens in network.all_ensembles:
        label_strategy = recipe["strategy"].get(ens.label)
        strategies[ens] = (
            default if label_strategy is None else as_strategy(label_strategy)
        )
    return {
        "profile": load_profile(recipe["profile"]),
        "strategy": strategies,
        "dt": recipe.get("dt", 0.001),
    }
