"""Data sources: built-ins, synthetic of any size, CSV and .npz files, label mapping."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data.datasets import encode_labels, load_data_file, load_dataset, make_synthetic
from harness.errors import DataError


# ------------------------------------------------------------------- built-ins
@pytest.mark.parametrize("name, shape, classes, first_class", [
    ("digits", (1797, 64), 10, "0"),
    ("iris", (150, 4), 3, "setosa"),
    ("wine", (178, 13), 3, "class_0"),
    ("breast_cancer", (569, 30), 2, "malignant"),
])
def test_builtin_datasets(name, shape, classes, first_class):
    data = load_dataset(name)
    assert data.X.shape == shape and data.X.dtype == np.float64
    assert data.y.dtype == np.int64 and set(np.unique(data.y)) == set(range(classes))
    assert data.n_classes == classes and data.class_names[0] == first_class
    assert len(data.feature_names) == shape[1]
    assert np.all(np.isfinite(data.X))


def test_synthetic_default_size_and_seeding():
    a = load_dataset("synthetic", seed=3)
    assert a.X.shape == (1000, 20) and a.class_names == ["0", "1", "2"]
    b = load_dataset("synthetic", seed=3)
    c = load_dataset("synthetic", seed=4)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)


@pytest.mark.parametrize("n, d, c", [(37, 3, 4), (5000, 2, 2), (200, 1, 2), (60, 40, 7)])
def test_synthetic_any_size(n, d, c):
    data = load_dataset("synthetic", n_samples=n, n_features=d, n_classes=c, seed=1)
    assert data.X.shape == (n, d)
    assert data.n_classes == c and set(np.unique(data.y)) == set(range(c))


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_classes=1), "`n_classes` must be an integer >= 2, got 1"),
    (dict(n_samples=5, n_classes=3), "`n_samples` must be >= 6 for 3 classes, got 5"),
    (dict(n_features=1, n_classes=3), "with 3 classes needs at least 2 features"),
    (dict(n_features=0), "`n_features` must be an integer >= 1, got 0"),
    (dict(n_samples=2.5), "`n_samples` must be an integer >= 2, got 2.5"),
])
def test_synthetic_bad_sizes(kwargs, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_synthetic(**{"n_samples": 100, "n_features": 5, "n_classes": 3, **kwargs})


def test_size_applies_to_synthetic_only():
    with pytest.raises(DataError, match="`n_samples` applies to the synthetic data set only"):
        load_dataset("iris", n_samples=10)


# ---------------------------------------------------------------- label mapping
def test_encode_labels_strings_and_arbitrary_integers():
    y, names = encode_labels(["dog", "cat", "emu", "cat"])
    assert names == ["cat", "dog", "emu"] and y.tolist() == [1, 0, 2, 0]
    y, names = encode_labels([10, -3, 7, 10, 100])  # numeric order, not text order
    assert names == ["-3", "7", "10", "100"] and y.tolist() == [2, 0, 1, 2, 3]
    y, names = encode_labels(np.array([2.0, 5.0, 2.0]))
    assert names == ["2", "5"] and y.tolist() == [0, 1, 0]
    y, names = encode_labels(np.array([1, "a", 1], dtype=object))
    assert names == ["1", "a"] and y.tolist() == [0, 1, 0]


# ------------------------------------------------------------------------ CSV
def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_string_labels_target_in_the_middle(tmp_path):
    path = write(tmp_path, "a,species,b\n1.5,versicolor,2\n-1,setosa,3e2\n0,versicolor,4\n")
    data = load_data_file(path, target="species")
    assert data.name == "data"
    assert data.feature_names == ["a", "b"]
    np.testing.assert_array_equal(data.X, [[1.5, 2], [-1, 300], [0, 4]])
    assert data.class_names == ["setosa", "versicolor"] and data.y.tolist() == [1, 0, 1]


def test_csv_default_target_is_the_last_column_and_integer_labels_are_remapped(tmp_path):
    path = write(tmp_path, "x,y,label\n1,2,7\n3,4,-1\n5,6,7\n7,8,12\n")
    data = load_data_file(path)
    assert data.feature_names == ["x", "y"]
    assert data.class_names == ["-1", "7", "12"] and data.y.tolist() == [1, 0, 1, 2]


def test_csv_whole_number_float_labels(tmp_path):
    data = load_data_file(write(tmp_path, "x,t\n1,1.0\n2,3.0\n3,1.0\n"), target="t")
    assert data.class_names == ["1", "3"] and data.y.tolist() == [0, 1, 0]


@pytest.mark.parametrize("text, target, message", [
    ("a,b,label\n1,2,x\n3,4,y\n", "class",
     "data.csv: no target column 'class'; the columns are 'a', 'b', 'label'"),
    ("a,b,label\n1,2,x\n3,,y\n5,6,x\n", "label",
     "data.csv: missing value (NaN) in data row 2, column 'b'"),
    ("a,b,label\n1,2,x\n3,4,y\n5,inf,x\n", "label",
     "data.csv: infinite value 'inf' in data row 3, column 'b'"),
    ("a,b,label\n1,2,x\n3,-Infinity,y\n", "label",
     "data.csv: infinite value '-inf' in data row 2, column 'b'"),
    ("a,b,label\n1,2,x\nseven,4,y\n5,NaN,x\n", "label",
     "data.csv: non-numeric value 'seven' in data row 2, column 'a'; features must be finite "
     "numbers (1 more bad cell)"),
    ("a,b,label\n1,2,x\n3,4,x\n", "label",
     "data.csv (target column 'label') has a single class ('x')"),
    ("a,b,label\n1,2,x\n3,4,\n", "label", "data.csv: missing label in data row 2, column 'label'"),
    ("a,label\n1,0.5\n2,1\n", "label",
     "data.csv: data row 1, column 'label' is the label 0.5; labels must be integers or strings"),
    ("a,b,label\n", "label", "data.csv: has a header but no data rows"),
    ("label\nx\ny\n", "label", "data.csv: no feature columns besides the target column 'label'"),
    ("a,b,label\n1,2,x\n3,4,y,9,9\n", "label", "data.csv: not a well-formed CSV file"),
])
def test_csv_bad_input_names_row_and_column(tmp_path, text, target, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as info:
        load_data_file(path, target=target)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_empty_files(tmp_path):
    for name in ("empty.csv", "empty.npz"):
        path = write(tmp_path, "", name)
        with pytest.raises(DataError, match=f"data file '.*{name}' is empty"):
            load_data_file(path)
    path = write(tmp_path, "\n\n", "blank.csv")
    with pytest.raises(DataError, match="is empty"):
        load_data_file(path)


def test_missing_folder_and_unsupported_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data_file(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a folder, not a file"):
        load_data_file(tmp_path)
    with pytest.raises(DataError, match="unsupported type; give a .csv file"):
        load_data_file(write(tmp_path, "a,b\n1,2\n", "data.xlsx"))


# ------------------------------------------------------------------------ npz
def test_npz_with_string_labels_and_feature_names(tmp_path):
    path = tmp_path / "mine.npz"
    X = np.arange(12.0).reshape(4, 3)
    np.savez(path, X=X, y=np.array(["b", "a", "b", "c"]),
             feature_names=np.array(["p", "q", "r"]))
    data = load_data_file(path)
    assert data.name == "mine"
    np.testing.assert_array_equal(data.X, X)
    assert data.class_names == ["a", "b", "c"] and data.y.tolist() == [1, 0, 1, 2]
    assert data.feature_names == ["p", "q", "r"]


def test_npz_integer_features_and_arbitrary_integer_labels(tmp_path):
    path = tmp_path / "ints.npz"
    np.savez(path, X=np.array([[1, 2], [3, 4], [5, 6]], dtype=np.int32), y=np.array([40, 2, 40]))
    data = load_data_file(path)
    assert data.X.dtype == np.float64 and data.class_names == ["2", "40"]
    assert data.y.tolist() == [1, 0, 1] and data.feature_names == ["x0", "x1"]


@pytest.mark.parametrize("arrays, message", [
    (dict(X=np.ones((3, 2))), "must hold arrays X and y; y missing (found: X)"),
    (dict(X=np.ones((3, 2)), y=np.array([0, 1])), "y must have shape (3,) to match X, got (2,)"),
    (dict(X=np.array([[0.0, 1.0], [2.0, np.nan]]), y=np.array([0, 1])),
     "X[1, 1] is NaN (row 1, column 1)"),
    (dict(X=np.array([[0.0, np.inf], [2.0, 3.0]]), y=np.array([0, 1])),
     "X[0, 1] is infinite (row 0, column 1)"),
    (dict(X=np.ones((3, 2)), y=np.array([4, 4, 4])), "has a single class ('4')"),
    (dict(X=np.ones(3), y=np.array([0, 1, 0])), "X must be 2-D (samples x features)"),
    (dict(X=np.array([["a", "b"]]), y=np.array([0])), "X must hold numbers, got dtype <U1"),
    (dict(X=np.ones((2, 2)), y=np.array([0.0, np.nan])), "y[1] is a missing label (NaN)"),
    (dict(X=np.ones((2, 2)), y=np.array([{"a": 1}, 2], dtype=object)),
     "an array holds Python objects, which are not read (allow_pickle=False)"),
])
def test_npz_bad_input(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as info:
        load_data_file(path)
    assert message in str(info.value)


def test_npz_refuses_target_and_garbage(tmp_path):
    path = tmp_path / "ok.npz"
    np.savez(path, X=np.ones((2, 2)), y=np.array([0, 1]))
    with pytest.raises(DataError, match="`--target` applies to CSV files only"):
        load_data_file(path, target="y")
    garbage = write(tmp_path, "not a zip archive", "garbage.npz")
    with pytest.raises(DataError, match="not a readable .npz file"):
        load_data_file(garbage)


def test_digits_read_directly_equal_scikit_learns_load_digits():
    from sklearn.datasets import load_digits

    ours, theirs = load_dataset("digits"), load_digits()
    np.testing.assert_array_equal(ours.X, theirs.data)
    np.testing.assert_array_equal(ours.y, theirs.target)
    assert ours.X.dtype == np.float64 and ours.y.dtype == np.int64
    assert ours.class_names == [str(k) for k in theirs.target_names]
    assert ours.feature_names == list(theirs.feature_names)


def test_digits_fall_back_to_scikit_learn_when_the_bundled_file_is_not_found(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sklearn" else real(name, *a))
    from harness.data import datasets as data
    assert data._read_bundled_digits() is None
    d = load_dataset("digits")
    assert d.X.shape == (1797, 64) and d.class_names[9] == "9"
