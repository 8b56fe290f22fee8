"""Tests of the non-spiking baselines (`nengo_hybrid.baselines`) on tiny data."""

import numpy as np
import pytest
from test_cli import write_recipe

from nengo_hybrid import baselines, zoo
from nengo_hybrid.pipeline.runs import load_data


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    recipe = zoo.read(write_recipe(tmp_path_factory.mktemp("recipes")))
    return recipe, load_data(recipe, "embedded")


def interrupted_once(monkeypatch, epochs_before_stop):
    """Make the next `baselines.train` stop after some epochs, as if killed."""
    original = baselines._stop

    def stop(history, *args):
        if len(history) >= epochs_before_stop:
            monkeypatch.setattr(baselines, "_stop", original)
            raise KeyboardInterrupt
        return original(history, *args)

    monkeypatch.setattr(baselines, "_stop", stop)


@pytest.mark.parametrize(
    "kind", ["gru", pytest.param("rate_lmu", marks=pytest.mark.slow)]
)
def test_resumed_baseline_equals_uninterrupted(setup, tmp_path, monkeypatch, kind):
    recipe, data = setup
    options = dict(epochs=2, n_train=100, n_test=100)
    reference = baselines.train(kind, recipe, data, checkpoint=tmp_path / "a.npz",
                                **options)  # fmt: skip
    interrupted_once(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        baselines.train(kind, recipe, data, checkpoint=tmp_path / "b.npz", **options)
    resumed = baselines.train(kind, recipe, data, checkpoint=tmp_path / "b.npz",
                              **options)  # fmt: skip
    assert resumed["epochs"] == reference["epochs"] == 2
    assert resumed["test_accuracy"] == reference["test_accuracy"]
    for key in ("loss", "val_accuracy"):
        assert [e[key] for e in resumed["history"]] == [
            e[key] for e in reference["history"]
        ]
    assert resumed["activity_bits"] == baselines.FLOAT_BITS


def test_budget_stops_before_overrunning(setup):
    recipe, data = setup
    result = baselines.train("gru", recipe, data, budget_seconds=1e-3, n_train=100,
                             n_test=100)  # fmt: skip
    assert result["epochs"] == 1  # at least one epoch, then the budget is spent
    history = [{"seconds": 2.0}] * 3
    assert not baselines._stop(history, None, 6.5, 100)  # 6 s < 6.5 s: one more
    assert baselines._stop(history, None, 6.0, 100)
    assert baselines._stop(history, None, 1e9, 3)  # max_epochs


def test_checkpoint_of_another_run_is_refused(setup, tmp_path):
    recipe, data = setup
    path = tmp_path / "c.npz"
    baselines.train("gru", recipe, data, epochs=1, n_train=100, n_test=100,
                    checkpoint=path)  # fmt: skip
    with pytest.raises(baselines.BaselineCheckpointError, match="not a checkpoint"):
        baselines.train("lstm", recipe, data, epochs=1, n_train=100, n_test=100,
                        checkpoint=path)  # fmt: skip


def test_keras_baseline_is_repeatable(setup):
    recipe, data = setup
    weights = [
        baselines._Keras("gru", recipe, 16).model.get_weights() for _ in range(2)
    ]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
