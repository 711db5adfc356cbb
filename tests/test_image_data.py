"""Image data (N, C, H, W): reshaping, the synthetic image set, per-channel
standardisation, validation of image batches, CV folds and --input-shape."""

from __future__ import annotations

import numpy as np
import pytest

from harness.cli import main
from harness.compare.equivalence import validate_batch
from harness.data.datasets import fit_standardizer, load_dataset, split_validation, standardize
from harness.data.images import (as_images, flatten_images, image_shape,
                                 make_synthetic_images, parse_input_shape)
from harness.errors import ConfigError, DataError


# ------------------------------------------------------------------ reshaping
def test_digits_as_images_is_a_c_order_reshape_of_the_pixels():
    rows = load_dataset("digits")
    images = rows.as_images((1, 8, 8))
    assert images.X.shape == (1797, 1, 8, 8) and images.image_shape == (1, 8, 8)
    assert images.n_features == 64 and rows.image_shape is None
    r, c = 3, 5  # pixel_3_5 is column 3 * 8 + 5 of the rows
    assert rows.feature_names[r * 8 + c] == "pixel_3_5"
    np.testing.assert_array_equal(images.X[:, 0, r, c], rows.X[:, r * 8 + c])
    np.testing.assert_array_equal(images.flattened().X, rows.X)


def test_several_channels_take_consecutive_blocks_of_features():
    X = np.arange(2 * 12, dtype=float).reshape(2, 12)
    images = as_images(X, (3, 2, 2))
    np.testing.assert_array_equal(images[1, 2], [[20, 21], [22, 23]])
    np.testing.assert_array_equal(flatten_images(images), X)


def test_a_shape_that_does_not_hold_the_features_is_refused_naming_both():
    with pytest.raises(DataError, match=r"input shape 1,8,7 holds C\*H\*W = 56 values, but "
                                        r"digits has 64 features"):
        load_dataset("digits").as_images((1, 8, 7))
    with pytest.raises(DataError, match=r"three positive integers C,H,W .* \(N, C, H, W\)"):
        as_images(np.zeros((2, 4)), (4, 1))
    with pytest.raises(DataError, match="images of shape"):
        as_images(np.zeros((2, 1, 2, 2)), (1, 4, 1))


def test_parse_input_shape():
    assert parse_input_shape("3,32,32") == (3, 32, 32)
    for bad in ("1,8", "1,8,x", "0,8,8", "1,8,8,1"):
        with pytest.raises(DataError, match=r"`--input-shape` must be C,H,W"):
            parse_input_shape(bad)


def test_image_shape_reads_shapes_specs_and_models():
    assert image_shape((1, 8, 8)) == (1, 8, 8)
    assert image_shape((64,)) is None and image_shape(None) is None

    class Keeps:
        spec = type("S", (), {"input_shape": (3, 4, 5)})()
    assert image_shape(Keeps()) == (3, 4, 5)
    assert image_shape(type("M", (), {"spec": [("linear", {})]})()) is None


# ------------------------------------------------------------------ synthetic images
def test_synthetic_images_shape_seed_and_balance():
    a = load_dataset("synthetic_images", input_shape=(3, 6, 5), n_samples=41, n_classes=4,
                     seed=2)
    assert a.X.shape == (41, 3, 6, 5) and a.X.dtype == np.float64
    assert a.name == "synthetic_images" and a.class_names == ["0", "1", "2", "3"]
    assert len(a.feature_names) == 90 and a.feature_names[0] == "c0_y0_x0"
    assert sorted(np.bincount(a.y)) == [10, 10, 10, 11]
    b = load_dataset("synthetic_images", input_shape=(3, 6, 5), n_samples=41, n_classes=4,
                     seed=2)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    c = load_dataset("synthetic_images", input_shape=(3, 6, 5), n_samples=41, n_classes=4,
                     seed=3)
    assert not np.allclose(a.X, c.X)
    default = load_dataset("synthetic_images")
    assert default.X.shape == (1000, 1, 8, 8) and default.n_classes == 3


def test_synthetic_images_have_learnable_class_structure():
    """Nearest class mean, fitted on one half, scores far above chance on the other."""
    data = make_synthetic_images(400, (2, 10, 10), 5, seed=0)
    X = data.X.reshape(len(data), -1)
    train, test = slice(0, 200), slice(200, 400)
    means = np.stack([X[train][data.y[train] == k].mean(axis=0) for k in range(5)])
    dist = ((X[test][:, None, :] - means[None]) ** 2).sum(axis=2)
    accuracy = float(np.mean(dist.argmin(axis=1) == data.y[test]))
    assert accuracy > 0.8  # chance is 0.2


@pytest.mark.parametrize("kw, match", [
    ({"n_samples": 5, "n_classes": 3}, r"at least 2 samples per class"),
    ({"input_shape": (1, 0, 8)}, r"three positive integers"),
    ({"n_features": 10}, r"`n_features` does not size synthetic_images"),
])
def test_synthetic_images_refusals(kw, match):
    with pytest.raises(DataError, match=match):
        load_dataset("synthetic_images", **kw)


def test_input_shape_sizes_only_the_synthetic_images():
    with pytest.raises(DataError, match=r"`input_shape` sizes the synthetic_images data set, "
                                        r"not 'digits'"):
        load_dataset("digits", input_shape=(1, 8, 8))


# ------------------------------------------------------------------ standardisation
def test_images_are_standardised_per_channel():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3, 4, 4)) * np.array([1.0, 10.0, 0.1])[:, None, None] + \
        np.array([5.0, -2.0, 0.0])[:, None, None]
    X[:, 2] = 7.0  # a constant channel keeps scale 1
    mean, scale = fit_standardizer(X)
    assert mean.shape == scale.shape == (3, 1, 1)
    assert scale[2, 0, 0] == 1.0
    (Z,) = standardize(X)
    np.testing.assert_allclose(Z[:, :2].mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(Z[:, :2].std(axis=(0, 2, 3)), 1, atol=1e-12)
    np.testing.assert_array_equal(Z[:, 2], 0.0)
    # one statistic per channel, not per pixel: a pixel's own mean is not removed
    assert np.abs(Z[:, 0].mean(axis=0)).max() > 0.05


def test_validation_split_of_images_keeps_the_layout():
    data = load_dataset("digits").as_images((1, 8, 8))
    X_tr, y_tr, X_va, y_va, stratified = split_validation(data.X, data.y, 0.2, 0)
    assert X_tr.shape[1:] == X_va.shape[1:] == (1, 8, 8) and stratified
    assert len(y_tr) + len(y_va) == 1797


# ------------------------------------------------------------------ validation of a batch
def test_validate_batch_takes_images_of_the_network_input_shape():
    x = np.zeros((4, 1, 8, 8))
    y = np.array([0, 1, 2, 3])
    out, _ = validate_batch(x, y, (64, 10), (1, 8, 8))
    assert out.shape == (4, 1, 8, 8)
    with pytest.raises(ConfigError, match=r"images of shape \(C, H, W\) \(1, 8, 8\) but the "
                                          r"network's input shape is \(2, 4, 8\); layout "
                                          r"\(N, C, H, W\)"):
        validate_batch(x, y, (64, 10), (2, 4, 8))
    with pytest.raises(ConfigError, match=r"batch of images \(N, C, H, W\) of shape "
                                          r"\(N, 1, 8, 8\), got shape \(4, 64\)"):
        validate_batch(x.reshape(4, 64), y, (64, 10), (1, 8, 8))
    with pytest.raises(ConfigError, match=r"2-D array \(N, F\), got shape \(4, 1, 8, 8\) \(a "
                                          r"batch of images \(N, C, H, W\) needs"):
        validate_batch(x, y, (64, 10))


# ------------------------------------------------------------------ CV folds
def test_cv_refuses_images_for_a_network_on_rows():
    from harness.model.specs import ModelSpec, OptimizerSpec
    from harness.training.cv import cross_validate

    data = load_dataset("digits").as_images((1, 8, 8))
    with pytest.raises(ConfigError, match=r"the network takes rows \(N, F\); `X` has shape "
                                          r"\(120, 1, 8, 8\)"):
        cross_validate(("scratch", "torch"), data.X[:120], data.y[:120],
                       spec=ModelSpec((64, 16, 10)), optimizer=OptimizerSpec(), folds=2,
                       epochs=1, batch_size=32, quiet=True)


def test_cv_names_a_non_finite_pixel_by_channel_row_and_column():
    from harness.training.cv import _check_xy

    X = np.zeros((3, 2, 4, 4))
    X[1, 1, 2, 3] = np.nan
    with pytest.raises(DataError, match=r"X\[1, 1, 2, 3\] is NaN \(sample 1, channel 1, row 2, "
                                        r"column 3\)"):
        _check_xy(X, np.array([0, 1, 0]), None)
    X[1, 1, 2, 3] = 0
    out, _, _ = _check_xy(X, np.array([0, 1, 0]), None)
    assert out.shape == (3, 2, 4, 4)


# ------------------------------------------------------------------ the CLI
@pytest.mark.parametrize("argv, message", [
    (["--input-shape", "1,8,7", "--layers", "linear(10)"],
     "`--input-shape` 1,8,7 holds C*H*W = 56 values per sample, but digits has 64 features; "
     "they must be equal"),
    (["--input-shape", "1,8,8"], "`--input-shape` goes with --layers"),
    (["--input-shape", "8x8", "--layers", "linear(10)"], "`--input-shape` must be C,H,W"),
    (["--dataset", "synthetic_images", "--n-features", "9"],
     "`--n-features` sizes --dataset synthetic; the images of synthetic_images"),
])
@pytest.mark.parametrize("command", ["check", "gradcheck", "train", "cv", "report"])
def test_input_shape_refusals_are_one_line_exit_2(command, argv, message, capsys):
    assert main([command, *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err and captured.err.count("\n") == 1


def test_the_cli_reads_synthetic_images_as_rows_without_an_input_shape():
    from harness.cli import common

    class Args:
        dataset, data, target, seed, layers = "synthetic_images", None, None, 0, None
        n_samples, n_features, n_classes, input_shape = 30, None, 3, None
    rows = common.load_data(Args())
    assert rows.X.shape == (30, 64)
    Args.layers, Args.input_shape = "linear(3)", "2,3,4"
    images = common.load_data(Args())
    assert images.X.shape == (30, 2, 3, 4)


# ------------------------------------------------------------------ harness.testing
def test_nnh_data_gives_standardised_images(pytester=None):
    from harness.testing import plugin

    load = plugin.nnh_data.__wrapped__()
    X, y = load("digits", n_samples=50, input_shape=(1, 8, 8))
    assert X.shape == (50, 1, 8, 8) and y.shape == (50,)
    np.testing.assert_allclose(X.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    X, _ = load("synthetic_images", n_samples=12, input_shape=(2, 5, 5))
    assert X.shape == (12, 2, 5, 5)


# ------------------------------------------------------------------ sweep grids
CONV = "conv2d(4,3,padding=1),relu,maxpool2d(2),flatten,linear(10)"


def test_a_sweep_grid_takes_input_shape_with_layers():
    from harness.sweep.plan import plan_from_dict

    plan = plan_from_dict({"grid": {"dataset": "digits", "layers": [CONV],
                                    "input_shape": [1, 8, 8], "lr": [1e-3, 1e-2]}})
    assert len(plan.configs) == 2
    config = plan.configs[0]
    assert config["input_shape"] == "1,8,8" and config["dims"] == "64-256-10"
    assert config["n_params"] == 4 * 9 + 4 + 64 * 10 + 10  # the conv's, not the flat widths'
    rows = plan_from_dict({"grid": {"dataset": "digits", "layers": ["linear(10)"]}})
    assert rows.configs[0]["input_shape"] == "none"


@pytest.mark.parametrize("grid, match", [
    ({"dataset": "digits", "hidden": [[16]], "input_shape": [1, 8, 8]},
     r"grid.input_shape.* goes with `grid.layers`"),
    ({"dataset": "digits", "layers": [CONV], "input_shape": [1, 8, 7]},
     r"grid.input_shape\[0\].* \[1, 8, 7\] holds C\*H\*W = 56 values, but dataset 'digits' "
     r"has 64 features"),
    ({"dataset": "digits", "layers": [CONV], "input_shape": [[1, 8]]},
     r"grid.input_shape\[0\].* must be \[C, H, W\]"),
    ({"dataset": "digits", "layers": [CONV]}, r"grid.layers\[0\].* does not fit dataset "
                                              r"'digits' \(64 features"),
])
def test_sweep_grid_input_shape_refusals(grid, match):
    from harness.sweep.plan import plan_from_dict

    with pytest.raises(ConfigError, match=match):
        plan_from_dict({"grid": grid})
