"""Image data: the (N, C, H, W) layout, reshaping a tabular set, a seeded synthetic set.

A batch of images is an array of shape (N, C, H, W): samples, channels, height, width
(torch's layout, and cs231n's). A tabular data set of N x D features becomes images of
shape (C, H, W) with ``C * H * W == D`` by a C-order reshape: feature ``d`` goes to
channel ``d // (H * W)``, row ``(d // W) % H``, column ``d % W`` (the bundled digits'
64 pixels, stored row by row, are the 1 x 8 x 8 images they were scanned as).
"""

from __future__ import annotations

import math

import numpy as np

from harness.errors import DataError
from harness.runtime.values import check_int

#: the layout every message about an image batch names
IMAGE_LAYOUT = "(N, C, H, W)"

#: the synthetic image set's size and shape when none is given
SYNTHETIC_IMAGE_DEFAULTS = {"n_samples": 1000, "input_shape": (1, 8, 8), "n_classes": 3}


def image_shape(value) -> tuple[int, int, int] | None:
    """The (C, H, W) of ``value`` when it describes images, else None.

    ``value`` may be a shape (a tuple of three ints; one int or one entry is a tabular
    width), a :class:`~harness.model.specs.ModelSpec` (its ``input_shape``), or a model
    that keeps one (``model.spec``) or says its own (``model.input_shape``).
    """
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        shape = tuple(value)
        if len(shape) == 3 and all(isinstance(d, (int, np.integer)) for d in shape):
            return tuple(int(d) for d in shape)
        return None
    for attr in ("input_shape", "spec"):
        inner = getattr(value, attr, None)
        if inner is not None and inner is not value:
            found = image_shape(inner)
            if found is not None:
                return found
    return None


def check_input_shape(shape, what: str = "input_shape") -> tuple[int, int, int]:
    """``shape`` as a tuple (C, H, W) of positive ints, or a DataError naming the rule."""
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if (dims is None or len(dims) != 3
            or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                       and d >= 1 for d in dims)):
        raise DataError(f"`{what}` must be three positive integers C,H,W (channels, height, "
                        f"width) of images {IMAGE_LAYOUT}, got {shape!r}")
    return tuple(int(d) for d in dims)


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """``"1,8,8"`` -> (1, 8, 8); DataError naming the flag and the form otherwise."""
    try:
        dims = tuple(int(t) for t in str(text).split(","))
    except ValueError:
        dims = None
    if dims is None or len(dims) != 3 or min(dims) < 1:
        raise DataError(f"`--input-shape` must be C,H,W: three positive integers (channels, "
                        f"height, width) of images {IMAGE_LAYOUT}, e.g. 1,8,8; got {text!r}")
    return dims


def as_images(X: np.ndarray, shape, *, source: str = "the data") -> np.ndarray:
    """Tabular rows (N, D) as images (N, C, H, W), C-order; images of ``shape`` pass.

    Raises
    ------
    DataError
        ``C * H * W`` is not ``D``, naming both; images of another shape.
    """
    c, h, w = check_input_shape(shape)
    X = np.asarray(X)
    if X.ndim == 4:
        if X.shape[1:] != (c, h, w):
            raise DataError(f"{source} holds images of shape {tuple(X.shape[1:])} (C, H, W), "
                            f"not the input shape {c},{h},{w}")
        return X
    if X.ndim != 2:
        raise DataError(f"{source} must be tabular (N, F) or images {IMAGE_LAYOUT}, got "
                        f"shape {X.shape}")
    if c * h * w != X.shape[1]:
        raise DataError(f"input shape {c},{h},{w} holds C*H*W = {c * h * w} values, but "
                        f"{source} has {X.shape[1]} features per sample; they must be equal")
    return np.ascontiguousarray(X).reshape(X.shape[0], c, h, w)


def flatten_images(X: np.ndarray) -> np.ndarray:
    """Images (N, C, H, W) as rows (N, C*H*W), C-order (as ``nn.Flatten``); rows pass."""
    X = np.asarray(X)
    return X if X.ndim == 2 else X.reshape(X.shape[0], -1)


def pixel_names(shape) -> list[str]:
    """``c{c}_y{i}_x{j}`` for every pixel of ``shape`` (C, H, W), in C order."""
    c, h, w = shape
    return [f"c{k}_y{i}_x{j}" for k in range(c) for i in range(h) for j in range(w)]


# ------------------------------------------------------------------ synthetic
def _smooth_pattern(rng: np.random.Generator, shape) -> np.ndarray:
    """A random pattern of ``shape`` (C, H, W): blobs at random places, unit peak."""
    c, h, w = shape
    rows, cols = np.mgrid[0:h, 0:w]
    pattern = np.zeros(shape)
    width = max(1.0, min(h, w) / 4)
    for k in range(c):
        for _ in range(2):  # two blobs per channel, one bright and one dark
            ci, cj = rng.uniform(0, h - 1), rng.uniform(0, w - 1)
            sign = 1.0 if _ == 0 else -1.0
            pattern[k] += sign * np.exp(-((rows - ci) ** 2 + (cols - cj) ** 2)
                                        / (2 * width ** 2))
    return pattern


def make_synthetic_images(n_samples: int = 1000, input_shape=(1, 8, 8), n_classes: int = 3,
                          *, seed: int = 0, noise: float = 0.5):
    """A seeded image set (N, C, H, W) whose classes a small convolutional net can learn.

    Every class has its own pattern (two Gaussian blobs per channel, one bright, one
    dark, at places drawn from ``seed``); a sample is its class's pattern at a random
    brightness in [0.7, 1.3], shifted by up to one pixel each way (wrapping round),
    plus Gaussian noise of standard deviation ``noise``. Classes are balanced (as many
    of each as ``n_samples`` allows, in a seeded order).

    Returns
    -------
    Dataset named ``synthetic_images`` with X of float64, shape (n_samples, C, H, W)
    """
    from harness.data.datasets import Dataset

    n_samples = check_int("n_samples", n_samples, 2, error=DataError, one_rule=True)
    n_classes = check_int("n_classes", n_classes, 2, error=DataError, one_rule=True)
    shape = check_input_shape(input_shape)
    if n_samples < 2 * n_classes:
        raise DataError(f"synthetic images need at least 2 samples per class: `n_samples` "
                        f"must be >= {2 * n_classes} for {n_classes} classes, got {n_samples}")
    rng = np.random.default_rng([seed, 7])
    patterns = np.stack([_smooth_pattern(rng, shape) for _ in range(n_classes)])
    y = rng.permutation(np.arange(n_samples) % n_classes).astype(np.int64)
    X = patterns[y] * rng.uniform(0.7, 1.3, size=(n_samples, 1, 1, 1))
    if shape[1] > 2 and shape[2] > 2:
        shifts = rng.integers(-1, 2, size=(n_samples, 2))
        for i, (di, dj) in enumerate(shifts):
            X[i] = np.roll(X[i], (int(di), int(dj)), axis=(1, 2))
    X = X + noise * rng.standard_normal(X.shape)
    return Dataset("synthetic_images", np.ascontiguousarray(X, dtype=np.float64), y,
                   [str(k) for k in range(n_classes)], pixel_names(shape))


def n_pixels(shape) -> int:
    """C * H * W."""
    return int(math.prod(shape))


__all__ = ["IMAGE_LAYOUT", "SYNTHETIC_IMAGE_DEFAULTS", "as_images", "check_input_shape",
           "flatten_images", "image_shape", "make_synthetic_images", "n_pixels",
           "parse_input_shape", "pixel_names"]
