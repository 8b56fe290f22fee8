"""The pipeline behind the ``nengo-hybrid`` command: one module per stage.

Data flows one way, each stage reading what the earlier ones left in a *run
folder* (`nengo_hybrid.pipeline.runs`) and writing its own results there:

=========  ==================================================  ====================
stage      does                                                writes
=========  ==================================================  ====================
train      trains the recipe's network in NengoDL while        ``train.json``,
           annealing the precision, then freezes it            ``checkpoint.npz``
freeze     the trained network as a framework-free file        ``frozen.npz``,
           (`nengo_hybrid.frozen`)                              ``freeze.json``
evaluate   NengoDL inference of the frozen network: accuracy,  ``evaluate.json``,
           bits, synaptic events, energy                       ``raster.npz``
check      the frozen network against a hardware profile and   ``check.json``
           deployment plan (no TensorFlow)
deploy     the frozen network on an emulator or chip, against  ``deploy.json``
           the reference simulator (no TensorFlow)
report     ``report.json``, ``report.md`` and ``plots/``       ``report.*``
=========  ==================================================  ====================

Only ``train``, ``freeze`` (standalone) and ``evaluate`` import TensorFlow. The
recipes come from the model zoo (`nengo_hybrid.zoo`); the CLI's string grammars
(schedules, strategies, data sources) are parsed in `nengo_hybrid.pipeline.specs`
only, and the stage functions take objects.

Each stage is a function of the same name in its module:
``from nengo_hybrid.pipeline.train import train``.
"""

from nengo_hybrid.pipeline.runs import PipelineUsageError, record_failure

__all__ = ["PipelineUsageError", "record_failure"]
