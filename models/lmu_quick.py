"""Quick hybrid-spiking LMU on psMNIST: trains in minutes on a 2-core CPU.

Open in Nengo GUI (``nengo models/lmu_quick.py``, or ``nengo-hybrid gui --run
RUN`` for a trained run): the file defines ``model``, the LMU classifier playing
embedded psMNIST test digits one pixel per step, one sequence each, with the
linear memory simulated step by step (restarted at each sequence) and the
displays that the layout ``lmu_quick.py.cfg`` shows (`nengo_hybrid.tasks.gui_model`):
untrained, or the trained network of ``$NENGO_HYBRID_RUN``.

What makes it quick (versus the paper configuration in ``lmu_paper.py``):
**shorter sequences** -- each image is 4x4 average-pooled to 7x7 = 49 pixels
before the fixed psMNIST permutation (so 49 steps, not 784) -- and a **smaller
LMU**: 64 hidden units, order 32, theta 49 (6,922 trainable parameters).

Recipe format
-------------
``RECIPE`` is a plain dict the CLI (and ``benchmarks/psmnist_study.py``) reads:

``task``
    ``"psmnist"`` (sequence classification, logits on the last step).
``data``
    Keyword arguments of `nengo_hybrid.data.psmnist` (``source``, ``pool``).
``n_steps``
    Sequence length implied by ``data`` (checked when loading).
``network``
    Keyword arguments of `nengo_hybrid.networks.LMUClassifier` / `LMU`, except
    the hidden neuron type, which ``build`` makes from ``precision``.
``schedule``
    A `nengo_hybrid.schedules.Schedule` as a dict (``Schedule.from_dict``):
    the precision annealed from ``start`` (close to the rate network) to
    ``end`` (the deployment precision).
``epochs``, ``minibatch_size``, ``learning_rate``, ``seed``
    Training budget (Adam), and the seed of weights, shuffling and simulator.

The command line reads ``RECIPE`` without running this file
(`nengo_hybrid.zoo`), and the task (`nengo_hybrid.tasks.SequenceClassification`)
builds the `LMUClassifier` from it, at the schedule's final precision.
"""

import nengo  # noqa: F401 (Nengo GUI expects a Nengo script)

from nengo_hybrid.tasks import gui_model

RECIPE = dict(
    task="psmnist",
    data=dict(source="auto", pool=4),
    n_steps=49,
    network=dict(n_hidden=64, order=32, theta=49, memory="precomputed"),
    schedule=dict(type="Geometric", start=64.0, end=2.0),
    epochs=10,
    minibatch_size=100,
    learning_rate=3e-3,
    seed=0,
)

model = gui_model(RECIPE)
