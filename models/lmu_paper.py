"""The paper configuration: hybrid-spiking LMU on full psMNIST (784 steps).

As in *A Spike in Performance* (arXiv:2002.03553) and the original LMU: 212
hidden units, order 256, theta 784, one pixel per step, 10-class readout --
101,770 trainable parameters (keras-lmu's LMU has 101,771: its trainable input
encoder scalar is fixed to 1 here). Hidden neurons are hybrid-spiking ReLUs
(`nengo_hybrid.networks.hybrid_relu`), annealed from precision 64 (close to the
rate network) to 2 over training; the memory is linear and, for training speed,
precomputed (identical to the step-by-step memory; use ``memory="linear"`` or a
`HybridSpiking` type for on-chip deployment).

Training this on full psMNIST (50k/10k/10k) is a GPU-scale job (the original LMU
used 10+ epochs); on a 2-core CPU one epoch takes hours. Use ``lmu_quick.py``
for a run in minutes.

Open in Nengo GUI (``nengo models/lmu_paper.py``): the file defines ``model``
(linear step-by-step memory, input playing embedded test digits, layout
``lmu_paper.py.cfg``; untrained, or the trained network of
``$NENGO_HYBRID_RUN``, see `nengo_hybrid.tasks.gui_model`).

The ``RECIPE`` format is documented in ``models/lmu_quick.py``.
"""

import nengo  # noqa: F401 (Nengo GUI expects a Nengo script)

from nengo_hybrid.tasks import gui_model

RECIPE = dict(
    task="psmnist",
    data=dict(source="auto", pool=1),
    n_steps=784,
    network=dict(n_hidden=212, order=256, theta=784, memory="precomputed"),
    schedule=dict(type="Geometric", start=64.0, end=2.0),
    epochs=10,
    minibatch_size=100,
    learning_rate=1e-3,
    seed=0,
)

model = gui_model(RECIPE)
