"""Non-spiking baselines for psMNIST: Keras LSTM and GRU, and the rate LMU.

The hybrid-spiking LMU of a recipe is compared with these, trained on the same
split with the recipe's hidden size, minibatch size, optimizer (Adam) and
learning rate:

* ``lstm``, ``gru``: a Keras recurrent layer with ``n_hidden`` units and a
  dense readout of its last state;
* ``rate_lmu``: the recipe's LMU with non-spiking ReLU hidden units, in NengoDL
  (`nengo_hybrid.networks.build_classifier` with ``spiking=False``).

`train` runs either for a number of epochs or for a wall-time budget, shuffles
each epoch with ``RandomState(seed + epoch)`` (as `nengo_hybrid.training.fit`
does), and after every epoch writes a checkpoint (weights, optimizer state,
history; atomically) from which a later call resumes. Non-spiking models send
32-bit floats: their activity bits are `FLOAT_BITS`.
"""

import time
from pathlib import Path

import numpy as np

from nengo_hybrid.io import read_npz, write_npz

KINDS = ("lstm", "gru", "rate_lmu")
FLOAT_BITS = 32
CHECKPOINT_FORMAT = "nengo-hybrid-baseline-checkpoint-1"
#: epochs a budget-limited run may take at most
MAX_EPOCHS = 1000


class BaselineCheckpointError(ValueError):
    """A baseline checkpoint is unreadable or belongs to another run."""


def keras_rnn(cell, n_hidden, n_steps, n_classes=10):
    """A Keras LSTM or GRU classifier: ``(N, n_steps, 1)`` -> ``(N, n_classes)`` logits."""
    import tensorflow as tf

    layer = {"lstm": tf.keras.layers.LSTM, "gru": tf.keras.layers.GRU}[cell]
    return tf.keras.Sequential(
        [
            tf.keras.Input((n_steps, 1)),
            layer(n_hidden),
            tf.keras.layers.Dense(n_classes),
        ]
    )


class _Keras:
    """An LSTM/GRU and how to run one epoch, predict and name its accuracy."""

    def __init__(self, cell, recipe, n_steps):
        import tensorflow as tf

        # Python, NumPy and TensorFlow seeds: Keras draws unseeded initializers
        # from Python's random module, which tf.random.set_seed leaves alone
        tf.keras.utils.set_random_seed(int(recipe["seed"]))
        self.model = keras_rnn(cell, int(recipe["network"]["n_hidden"]), n_steps)
        self.model.compile(
            optimizer=tf.optimizers.Adam(float(recipe["learning_rate"])),
            loss=tf.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        self.batch_size = int(recipe["minibatch_size"])

    def fit_epoch(self, x, y, validation):
        result = self.model.fit(
            x,
            y,
            batch_size=self.batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
            validation_data=validation,
        )
        return {k: float(v[-1]) for k, v in result.history.items()}

    def predict(self, x):
        logits = self.model.predict(x, batch_size=self.batch_size, verbose=0)
        return np.argmax(logits, axis=-1)

    def parameters(self):
        return int(sum(np.prod(w.shape) for w in self.model.trainable_weights))

    def close(self):
        pass


class _RateLMU:
    """The recipe's LMU with ReLU rate hidden units, trained in NengoDL."""

    def __init__(self, recipe):
        from nengo_hybrid.pipeline.train import compile_classifier, quiet, simulator

        self.net = recipe.build(mode="train", spiking=False)
        self.sim = simulator(self.net, int(recipe["minibatch_size"]), recipe["seed"])
        compile_classifier(self.sim, self.net, float(recipe["learning_rate"]))
        self.model = self.sim.keras_model
        self._quiet = quiet

    def fit_epoch(self, x, y, validation):
        net = self.net
        x_val, y_val = validation
        with self._quiet():
            result = self.sim.fit(
                net.inputs(x),
                {net.probe: net.targets(y)},
                epochs=1,
                shuffle=False,
                verbose=0,
                validation_data=(
                    net.inputs(x_val),
                    {net.probe: net.targets(y_val)},
                ),
            )
        # NengoDL names metrics by probe; keep the usual Keras names
        logs = {}
        for key, values in result.history.items():
            short = "val_" if key.startswith("val_") else ""
            short += "accuracy" if key.endswith("accuracy") else "loss"
            if key.endswith("loss") and key not in ("loss", "val_loss"):
                continue  # the per-probe copy of the total loss
            logs[short] = float(values[-1])
        return logs

    def predict(self, x):
        from nengo_hybrid.pipeline.evaluate import predict

        outputs = predict(self.sim, self.net.inputs(x), progress=False)
        return self.net.predictions(outputs[self.net.probe])

    def parameters(self):
        return int(self.net.lmu.trainable_parameters())

    def close(self):
        self.sim.close()


def _optimizer_variables(model):
    optimizer = model.optimizer
    if not optimizer.variables or len(optimizer.variables) <= 1:
        optimizer.build(model.trainable_variables)
    return list(optimizer.variables)


def _save(model, path, epochs_done, history, run_info):
    arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update(
        {f"optimizer_{i}": v.numpy() for i, v in enumerate(_optimizer_variables(model))}
    )
    meta = {
        "format": CHECKPOINT_FORMAT,
        "epochs_done": int(epochs_done),
        "run": run_info,
        "history": history,
    }
    write_npz(path, arrays, meta)


def _load(model, path, run_info):
    """Restore weights and optimizer state; ``(epochs_done, history)``."""
    try:
        meta, arrays = read_npz(path)
    except Exception as err:
        raise BaselineCheckpointError(
            f"baseline checkpoint {path} is unreadable ({err}); delete it to start "
            "afresh"
        ) from err
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("run") != run_info:
        raise BaselineCheckpointError(
            f"{path} is not a checkpoint of this baseline run (it has "
            f"{meta.get('run')!r}, this run is {run_info!r}); delete it or use "
            "another folder"
        )
    weights = [arrays[f"weight_{i}"] for i in range(len(model.get_weights()))]
    optimizer = _optimizer_variables(model)
    saved = [arrays.get(f"optimizer_{i}") for i in range(len(optimizer))]
    if any(s is None or s.shape != tuple(v.shape) for s, v in zip(saved, optimizer)):
        raise BaselineCheckpointError(f"{path}: optimizer state does not fit")
    model.set_weights(weights)
    for var, value in zip(optimizer, saved):
        var.assign(value)
    return int(meta["epochs_done"]), list(meta["history"])


def _stop(history, epochs, budget_seconds, max_epochs):
    """Whether to stop before the next epoch (epochs, or the time budget)."""
    done = len(history)
    if epochs is not None:
        return done >= epochs
    if done >= max_epochs:
        return True
    if done == 0:
        return False
    # at least the budget (the last epoch may overrun it): a baseline given
    # the hybrid's time is never given less
    return sum(record["seconds"] for record in history) >= budget_seconds


def train(
    kind,
    recipe,
    dataset,
    epochs=None,
    budget_seconds=None,
    max_epochs=MAX_EPOCHS,
    checkpoint=None,
    n_train=None,
    n_test=None,
):
    """Train and test one baseline; resumes from ``checkpoint`` if it exists.

    Parameters
    ----------
    kind : str
        ``"lstm"``, ``"gru"`` or ``"rate_lmu"``.
    recipe : nengo_hybrid.zoo.Recipe
        A ``psmnist`` recipe: its ``network.n_hidden``, ``minibatch_size``,
        ``learning_rate`` and ``seed`` are used (and, for ``rate_lmu``, its LMU).
    dataset : nengo_hybrid.data.PSMNIST
        The splits (the recipe's sequence length).
    epochs : int, optional
        Train this many epochs ...
    budget_seconds : float, optional
        ... or until the training time (the sum of the epochs' times,
        validation included) reaches this budget: the last epoch may overrun
        it (at least one epoch, at most ``max_epochs``).
    checkpoint : str or Path, optional
        Written after every epoch; resumed from if it exists.
    n_train, n_test : int, optional
        First N training / test examples (cut to a multiple of the minibatch).

    Returns
    -------
    dict
        ``test_accuracy``, ``activity_bits`` (`FLOAT_BITS`), ``epochs``,
        ``train_seconds`` (sum of epoch times), ``parameters``, ``history``.
    """
    from nengo_hybrid.pipeline.train import subset

    if kind not in KINDS:
        raise ValueError(f"unknown baseline {kind!r}; use one of {', '.join(KINDS)}")
    if (epochs is None) == (budget_seconds is None):
        raise ValueError("give either epochs or budget_seconds")
    batch = int(recipe["minibatch_size"])
    x, y = subset(dataset.x_train, dataset.y_train, n_train, batch, "training")
    x_val, y_val = subset(dataset.x_val, dataset.y_val, None, batch, "validation")
    x_test, y_test = subset(dataset.x_test, dataset.y_test, n_test, batch, "test")
    seed = int(recipe["seed"])
    runner = (
        _RateLMU(recipe) if kind == "rate_lmu" else _Keras(kind, recipe, x.shape[1])
    )
    run_info = {
        "kind": kind,
        "seed": seed,
        "n_train": len(y),
        "minibatch_size": batch,
        "epochs": epochs,
        "budget_seconds": budget_seconds,
        "weight_shapes": [list(w.shape) for w in runner.model.get_weights()],
    }
    history = []
    if checkpoint is not None and Path(checkpoint).exists():
        _, history = _load(runner.model, checkpoint, run_info)
    try:
        while not _stop(history, epochs, budget_seconds, max_epochs):
            epoch = len(history)
            order = np.random.RandomState(seed + epoch).permutation(len(y))
            tic = time.perf_counter()
            logs = runner.fit_epoch(x[order], y[order], (x_val, y_val))
            history.append(
                {"epoch": epoch, **logs, "seconds": time.perf_counter() - tic}
            )
            if checkpoint is not None:
                _save(runner.model, checkpoint, len(history), history, run_info)
        predictions = runner.predict(x_test)
        parameters = runner.parameters()
    finally:
        runner.close()
    return {
        "kind": kind,
        "test_accuracy": float(np.mean(predictions == y_test)),
        "val_accuracy": history[-1].get("val_accuracy") if history else None,
        "activity_bits": FLOAT_BITS,
        "significant_bits": None,
        "epochs": len(history),
        "train_seconds": float(sum(r["seconds"] for r in history)),
        "parameters": parameters,
        "n_train": len(y),
        "n_test": len(y_test),
        "history": history,
    }
