"""Per-object hardware options through `nengo.Config` (as `nengo_loihi.add_params`).

`add_params` adds a ``strategy`` option to `nengo.Ensemble` in a network's
config, so one ensemble can get its own multi-bit strategy::

    with nengo.Network() as net:
        nengo_hybrid.hardware.add_params(net)
        hidden = nengo.Ensemble(100, 1, neuron_type=HybridSpiking(precision=4))
        net.config[hidden].strategy = Expand(4)

`.check`, `.Simulator` and `.Model` read it: an explicit ``strategy={ens: ...}``
argument wins, then the network config, then the ``strategy`` argument's
default (`.OneBit` unless given). Pure Nengo: no nengo-loihi import.
"""

import nengo
from nengo.config import InstanceParams
from nengo.exceptions import ConfigError, ValidationError
from nengo.params import Parameter

from nengo_hybrid.hardware.strategies import Strategy, Substeps


class StrategyParam(Parameter):
    """A `.Strategy` for one ensemble (``None``: the simulator's default)."""

    equatable = True

    def coerce(self, instance, value):
        if value is None:
            return super().coerce(instance, value)
        obj = instance._configures if isinstance(instance, InstanceParams) else None
        if not isinstance(value, Strategy):
            raise ValidationError(
                f"must be a Strategy such as OneBit(), Expand(4) or Thermometer(5), "
                f"got {value!r}",
                attr=self.name,
                obj=obj,
            )
        if isinstance(value, Substeps):
            raise ValidationError(
                f"{value!r} changes the simulation step of the whole network; pass "
                "it as the strategy argument of check / Simulator, not per ensemble",
                attr=self.name,
                obj=obj,
            )
        return super().coerce(instance, value)


def add_params(network):
    """Add nengo-hybrid's hardware config options to ``network``.

    The following options are added:

    `nengo.Ensemble`
      * ``strategy``: the `.Strategy` mapping the ensemble's `.HybridSpiking`
        neurons onto compartments (default ``None``: the ``strategy`` given to
        `.check` / `.Simulator`, `.OneBit` if none).

    The option is read from the config of the network that is built and from
    its subnetworks' configs (see `config_strategies` for which one wins).
    Calling this twice is safe.

    Examples
    --------
    >>> import nengo
    >>> from nengo_hybrid.hardware import Expand, add_params
    >>> with nengo.Network() as net:
    ...     add_params(net)
    ...     ens = nengo.Ensemble(10, 1)
    ...     net.config[ens].strategy = Expand(4)
    >>> net.config[ens].strategy
    Expand(K=4)
    """
    ens_cfg = network.config[nengo.Ensemble]
    if "strategy" not in ens_cfg._extra_params:
        ens_cfg.set_param(
            "strategy", StrategyParam("strategy", default=None, optional=True)
        )


def _lookup(config, ens):
    """``(value set on ens, class default)`` of the ``strategy`` option in ``config``."""
    cls_params = config[nengo.Ensemble]
    try:
        param = cls_params.get_param("strategy")
    except (ConfigError, AttributeError):  # add_params not called on this config
        return None, None
    params = config[ens]
    return (params.strategy if params in param else None), cls_params.strategy


def config_strategies(network):
    """``{ensemble: Strategy}`` set through ``network.config`` (and subnetworks').

    A value set on the ensemble itself wins over a default set on
    ``config[nengo.Ensemble]``; among values set on the ensemble the outermost
    network's wins (as nengo-loihi reads ``on_chip`` from the top-level
    config); among defaults the innermost wins (as Nengo's config defaults).
    Ensembles with neither are left out.
    """
    found = {}

    def visit(net, configs):
        configs = configs + [net.config]
        for ens in net.ensembles:
            looked_up = [_lookup(config, ens) for config in configs]
            set_on_ens = [value for value, _ in looked_up if value is not None]
            defaults = [default for _, default in looked_up if default is not None]
            if set_on_ens or defaults:
                found[ens] = set_on_ens[0] if set_on_ens else defaults[-1]
        for sub in net.networks:
            visit(sub, configs)

    visit(network, [])
    return found
