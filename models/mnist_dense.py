"""Small hybrid-spiking dense classifier of static MNIST digits (deployable on Loihi).

Open in Nengo GUI (``nengo models/mnist_dense.py``): the file defines ``model``,
the network presenting embedded MNIST test digits, one every
``presentation_steps`` steps, with the displays of its layout
``mnist_dense.py.cfg`` (untrained, or the trained network of
``$NENGO_HYBRID_RUN``, see `nengo_hybrid.tasks.gui_model`).

Architecture (784 -> 128 -> 64 -> 10), `nengo_hybrid.networks.DenseClassifier`::

    Node (image)  ->  input layer: 784 HybridSpiking(ReLU) [host]
        -> dense -> hidden1: 128 HybridSpiking(ReLU) [chip]
        -> dense -> hidden2: 64 HybridSpiking(ReLU) [chip]
        -> dense -> output Node (10 class scores) [host]

The input layer turns pixels into 1-bit spikes on the host (nengo-loihi sends
host-to-chip spikes as single events, so it must stay 1-bit); the two hidden
layers run on the chip (``deploy/mnist_dense_loihi1.json``); the last dense layer
reads the chip's spikes on the host.

Recipe format (task ``"mnist_static"``, `nengo_hybrid.tasks.StaticClassification`)
----------------------------------------------------------------------------------
``data``              keyword arguments of `nengo_hybrid.data.mnist_images`:
                      ``n_train`` digits for training (the last ``n_val`` of them
                      validate), the rest of the embedded 5,000 for testing.
``network``           keyword arguments of `DenseClassifier` at deployment:
                      hidden sizes, ``input_rate`` and ``rate_scale`` (Hz per unit
                      of pixel intensity and of hidden activation), ``synapse``
                      (lowpass on the hidden layers' inputs; training uses none),
                      ``presentation_steps`` per image and the last
                      ``score_steps`` whose scores are averaged.
``train_precision``   precision while training (rate-like, one step per image).
``precision``         deployment precision of the hidden layers.
``input_precision``   deployment precision of the input layer (1-bit spikes).
``epochs``, ``minibatch_size``, ``learning_rate``, ``seed``  training budget.

The command line reads ``RECIPE`` without running this file (`nengo_hybrid.zoo`).
"""

import nengo  # noqa: F401 (Nengo GUI expects a Nengo script)

from nengo_hybrid.tasks import gui_model

RECIPE = dict(
    task="mnist_static",
    data=dict(n_train=4000, n_val=400),
    network=dict(
        n_hidden=[128, 64],
        input_rate=200.0,
        rate_scale=100.0,
        synapse=0.005,
        presentation_steps=40,
        score_steps=20,
    ),
    train_precision=1000.0,
    precision=1.0,
    input_precision=1.0,
    epochs=15,
    minibatch_size=100,
    learning_rate=1e-3,
    seed=0,
)

model = gui_model(RECIPE)
