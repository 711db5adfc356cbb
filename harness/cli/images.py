"""--input-shape: a data set as images (N, C, H, W), and the synthetic_images set."""

from __future__ import annotations

from harness.errors import ConfigError, DataError


def input_shape_arg(args) -> tuple[int, int, int] | None:
    """--input-shape as (C, H, W), or None; refused without --layers."""
    text = getattr(args, "input_shape", None)
    if text is None:
        return None
    from harness.data.images import parse_input_shape

    shape = parse_input_shape(text)
    if getattr(args, "layers", None) is None:
        raise ConfigError("`--input-shape` goes with --layers (a network of conv2d, pool and "
                          "flatten layers on images (N, C, H, W)); --dims networks take rows")
    return shape


def shaped_data(data, shape):
    """``data`` as images of ``shape`` (C, H, W), or unchanged when ``shape`` is None.

    Refused (DataError) when C*H*W is not its number of features, naming both.
    """
    if shape is None:
        return data
    c, h, w = shape
    if c * h * w != data.n_features:
        raise DataError(f"`--input-shape` {c},{h},{w} holds C*H*W = {c * h * w} values per "
                        f"sample, but {data.name} has {data.n_features} features; they must "
                        f"be equal")
    return data.as_images(shape)


def synthetic_images(args, size: dict, shape):
    """--dataset synthetic_images: images of --input-shape (N, C, H, W), sized by
    --n-samples and --n-classes; rows (N, C*H*W) of 1x8x8 images without --input-shape."""
    from harness.data.datasets import load_dataset

    if size["n_features"] is not None:
        raise ConfigError("`--n-features` sizes --dataset synthetic; the images of "
                          "synthetic_images have the C*H*W pixels of --input-shape")
    data = load_dataset("synthetic_images", seed=getattr(args, "seed", 0),
                        n_samples=size["n_samples"], n_classes=size["n_classes"],
                        input_shape=shape)
    return data if shape is not None else data.flattened()
