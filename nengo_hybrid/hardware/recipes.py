"""Deprecated names for deployment plans (`nengo_hybrid.hardware.plans`).

``load_recipe`` and ``apply_recipe`` are kept for one release; use
`.plans.Plan.read` and `.plans.Plan.resolve`.
"""

import warnings

from nengo_hybrid.hardware.plans import Plan


def load_recipe(path):
    """Deprecated: `.plans.Plan.read`."""
    warnings.warn(
        "load_recipe is deprecated; use nengo_hybrid.hardware.plans.Plan.read",
        DeprecationWarning,
        stacklevel=2,
    )
    return Plan.read(path)


def apply_recipe(network, recipe):
    """Deprecated: `.plans.Plan.resolve`; returns ``profile``, ``strategy``, ``dt``."""
    warnings.warn(
        "apply_recipe is deprecated; use nengo_hybrid.hardware.plans.Plan.resolve",
        DeprecationWarning,
        stacklevel=2,
    )
    plan = recipe if isinstance(recipe, Plan) else Plan.read(recipe)
    return {"profile": plan.profile, "strategy": plan.resolve(network), "dt": plan.dt}
