"""Data sets: scikit-learn's bundled copies, seeded synthetic sets (tabular and images),
the user's own CSV or ``.npz`` file, label mapping and standardisation.

Every loader returns a :class:`Dataset` with finite float64 features (rows (N, D), or
images (N, C, H, W): :mod:`harness.data.images`) and labels mapped
to 0..C-1 (the original labels are kept as ``class_names``), or raises
:class:`~harness.errors.DataError` with a one-line message naming what is wrong and,
for a file, where (row and column).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.runtime.values import check_int

BUILTIN_DATASETS: tuple[str, ...] = ("digits", "iris", "wine", "breast_cancer", "synthetic",
                                     "synthetic_images")

#: the synthetic set's size when none is given
SYNTHETIC_DEFAULTS = {"n_samples": 1000, "n_features": 20, "n_classes": 3}

#: file suffixes :func:`load_data_file` reads (CSV may be compressed, as pandas infers)
CSV_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip")


@dataclass
class Dataset:
    """Features, integer labels 0..C-1 and the names behind them.

    Attributes
    ----------
    X : ndarray of float64, shape (N, D), or (N, C, H, W) for images
    y : ndarray of int64, shape (N,)
    class_names : list of str, length C; ``class_names[k]`` is the original label of class k
    feature_names : list of str, length D (C * H * W for images, in C order)
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    class_names: list[str]
    feature_names: list[str] = field(default_factory=list)

    @property
    def n_features(self) -> int:
        """Values per sample: D, or C * H * W for images."""
        return int(np.prod(self.X.shape[1:]))

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """(C, H, W) of image data, None for rows."""
        return tuple(int(d) for d in self.X.shape[1:]) if self.X.ndim == 4 else None

    def as_images(self, shape) -> Dataset:
        """This set as images of ``shape`` (C, H, W): rows reshaped in C order.

        Raises
        ------
        DataError
            ``C * H * W`` is not the number of features (naming both).
        """
        from harness.data.images import as_images

        X = as_images(self.X, shape, source=f"{self.name}")
        return Dataset(self.name, X, self.y, self.class_names, self.feature_names)

    def flattened(self) -> Dataset:
        """This set as rows (N, C*H*W), C order; rows pass unchanged."""
        from harness.data.images import flatten_images

        if self.X.ndim == 2:
            return self
        return Dataset(self.name, flatten_images(self.X), self.y, self.class_names,
                       self.feature_names)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.X.shape[0])


# ------------------------------------------------------------------------- labels
def _label_name(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def encode_labels(labels) -> tuple[np.ndarray, list[str]]:
    """Map arbitrary labels (strings or integers) to 0..C-1, keeping the sorted originals.

    Integers sort numerically (``[10, 2, -1]`` becomes classes ``-1, 2, 10``), strings
    alphabetically; a float label that is a whole number is named without ``.0``.
    Labels of mixed kinds (e.g. ``1`` and ``"a"``) are compared as strings.

    Returns
    -------
    y : ndarray of int64, shape (N,)
    class_names : list of str, ``class_names[y[i]]`` is the i-th original label
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        labels = labels.reshape(-1)
    try:
        classes, y = np.unique(labels, return_inverse=True)
    except TypeError:  # mixed object labels such as 1 and "a"
        classes, y = np.unique(labels.astype(str), return_inverse=True)
    return y.astype(np.int64).reshape(-1), [_label_name(c) for c in classes]


def _require_two_classes(y: np.ndarray, class_names: list[str], source: str) -> None:
    if len(class_names) < 2:
        only = repr(class_names[0]) if class_names else "none"
        raise DataError(f"{source} has a single class ({only}); a classifier needs at "
                        f"least two")


# ---------------------------------------------------------------------- built-ins
def make_synthetic(n_samples: int = 1000, n_features: int = 20, n_classes: int = 3, *,
                   seed: int = 0) -> Dataset:
    """A seeded ``make_classification`` set of any size.

    Half of the features (at least enough to separate the classes) are informative,
    up to two are linear combinations of those, the rest noise; two Gaussian clusters
    per class where the informative dimensions allow it. The default size
    (1000 x 20, 3 classes) is the ``synthetic`` built-in.
    """
    n_samples = check_int("n_samples", n_samples, 2, error=DataError, one_rule=True)
    n_features = check_int("n_features", n_features, 1, error=DataError, one_rule=True)
    n_classes = check_int("n_classes", n_classes, 2, error=DataError, one_rule=True)
    if n_samples < 2 * n_classes:
        raise DataError(f"synthetic data needs at least 2 samples per class: `n_samples` "
                        f"must be >= {2 * n_classes} for {n_classes} classes, got {n_samples}")
    need = math.ceil(math.log2(n_classes))
    informative = min(n_features, max(n_features // 2, need, 1))
    if 2 ** informative < n_classes:
        raise DataError(f"synthetic data with {n_classes} classes needs at least {need} "
                        f"features, got `n_features` {n_features}")
    clusters = 2 if 2 ** informative >= 2 * n_classes else 1
    redundant = min(2, n_features - informative)
    from sklearn.datasets import make_classification

    X, labels = make_classification(
        n_samples=n_samples, n_features=n_features, n_informative=informative,
        n_redundant=redundant, n_classes=n_classes, n_clusters_per_class=clusters,
        random_state=seed)
    y, names = encode_labels(labels)
    _require_two_classes(y, names, "the synthetic set")
    return Dataset("synthetic", X.astype(np.float64), y, names,
                   [f"x{i}" for i in range(n_features)])


def load_dataset(name: str = "digits", *, seed: int = 0, n_samples: int | None = None,
                 n_features: int | None = None, n_classes: int | None = None,
                 input_shape=None) -> Dataset:
    """One of the built-in data sets, unstandardised.

    ``digits``, ``iris``, ``wine`` and ``breast_cancer`` are scikit-learn's bundled
    copies (no network). ``synthetic`` is :func:`make_synthetic`, seeded by ``seed``,
    with ``n_samples`` (default 1000), ``n_features`` (20) and ``n_classes`` (3).
    ``synthetic_images`` is :func:`harness.data.images.make_synthetic_images`: images
    (N, C, H, W) of ``input_shape`` (default (1, 8, 8)), ``n_samples`` (1000) and
    ``n_classes`` (3). The sizes apply to those two only; ``input_shape`` to
    ``synthetic_images`` only (reshape another set with :meth:`Dataset.as_images`).
    """
    if name not in BUILTIN_DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(BUILTIN_DATASETS)}")
    size = {"n_samples": n_samples, "n_features": n_features, "n_classes": n_classes}
    if name == "synthetic_images":
        return _synthetic_images(seed, size, input_shape)
    if input_shape is not None:
        raise DataError(f"`input_shape` sizes the synthetic_images data set, not {name!r}; "
                        f"reshape it with Dataset.as_images")
    if name == "synthetic":
        given = {k: v for k, v in size.items() if v is not None}
        return make_synthetic(**{**SYNTHETIC_DEFAULTS, **given}, seed=seed)
    for key, value in size.items():
        if value is not None:
            also = "" if key == "n_features" else " (or synthetic_images)"
            raise DataError(f"`{key}` applies to the synthetic data set only{also}, not "
                            f"{name!r}")
    if name == "digits":
        fast = _read_bundled_digits()
        if fast is not None:
            return fast
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    names = [str(n) for n in getattr(bunch, "target_names", np.unique(bunch.target))]
    features = [str(f) for f in getattr(bunch, "feature_names", [])] or [
        f"x{i}" for i in range(bunch.data.shape[1])]
    return Dataset(name, np.asarray(bunch.data, dtype=np.float64),
                   np.asarray(bunch.target, dtype=np.int64), names, features)


def _synthetic_images(seed: int, size: dict, input_shape) -> Dataset:
    from harness.data.images import SYNTHETIC_IMAGE_DEFAULTS, make_synthetic_images

    if size["n_features"] is not None:
        raise DataError("`n_features` does not size synthetic_images: its features are the "
                        "C*H*W pixels of `input_shape`")
    given = {k: v for k, v in (("n_samples", size["n_samples"]), ("n_classes", size["n_classes"]),
                               ("input_shape", input_shape)) if v is not None}
    return make_synthetic_images(**{**SYNTHETIC_IMAGE_DEFAULTS, **given}, seed=seed)


def _read_bundled_digits() -> Dataset | None:
    """scikit-learn's bundled digits file, read without importing scikit-learn.

    Importing ``sklearn.datasets`` takes about a second and the default of every
    command is the digits set; the file is where ``load_digits`` reads it, 64 pixel
    columns and the label. None when it is not there (``load_digits`` is used then).
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        return None
    data = np.loadtxt(path, delimiter=",")
    if data.ndim != 2 or data.shape[1] != 65:
        return None
    features = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    return Dataset("digits", np.ascontiguousarray(data[:, :-1], dtype=np.float64),
                   data[:, -1].astype(np.int64), [str(k) for k in range(10)], features)


# -------------------------------------------------------------------------- files
def load_data_file(path: str | os.PathLike, target: str | None = None) -> Dataset:
    """The user's own data: a CSV file with a header row, or an ``.npz`` file.

    CSV
        One column is the label (``target``; default: the last column), every other
        column a feature and must hold finite numbers. Labels may be strings or any
        integers; they are mapped to 0..C-1 (sorted) and kept as ``class_names``.
        Rows in error messages are data rows counted from 1, the header not counted.
    ``.npz``
        Arrays ``X`` (N, D) of numbers and ``y`` (N,) of labels, read with
        ``allow_pickle=False``; optional ``feature_names`` (D strings). ``target`` does
        not apply.

    Raises
    ------
    DataError
        Missing, empty or unreadable file; no such target column; a NaN, infinite or
        non-numeric feature value (naming row and column); fewer than two classes.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file {str(p)!r} does not exist")
    if p.is_dir():
        raise DataError(f"data file {str(p)!r} is a folder, not a file")
    lower = p.name.lower()
    if not (lower.endswith(".npz") or lower.endswith(CSV_SUFFIXES)):
        raise DataError(f"data file {str(p)!r}: unsupported type; give a .csv file (with "
                        f"--target COLUMN) or an .npz file with arrays X and y")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise DataError(f"data file {str(p)!r} cannot be read: {exc.strerror}") from None
    if size == 0:
        raise DataError(f"data file {str(p)!r} is empty")
    if lower.endswith(".npz"):
        if target is not None:
            raise DataError(f"`--target` applies to CSV files only; {str(p)!r} is an .npz "
                            f"file whose labels are the array y")
        return _load_npz(p)
    return _load_csv(p, target)


def _load_npz(p: Path) -> Dataset:
    import zipfile

    if not zipfile.is_zipfile(p):
        raise DataError(f"{p.name}: not a readable .npz file (not a zip archive as np.savez "
                        f"writes)")
    try:
        with np.load(p, allow_pickle=False) as archive:
            keys = set(archive.files)
            missing = [k for k in ("X", "y") if k not in keys]
            if missing:
                raise DataError(f"{p.name}: .npz file must hold arrays X and y; "
                                f"{' and '.join(missing)} missing (found: "
                                f"{', '.join(sorted(keys)) or 'nothing'})")
            X = archive["X"]
            labels = archive["y"]
            features = archive["feature_names"] if "feature_names" in keys else None
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"{p.name}: an array holds Python objects, which are not read "
                            f"(allow_pickle=False); save numbers and strings only") from None
        raise DataError(f"{p.name}: not a readable .npz file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{p.name}: not a readable .npz file ({exc})") from None

    if X.ndim != 2:
        raise DataError(f"{p.name}: X must be 2-D (samples x features), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{p.name}: X is empty (shape {X.shape})")
    if X.dtype.kind not in "fiub":
        raise DataError(f"{p.name}: X must hold numbers, got dtype {X.dtype}")
    if labels.ndim != 1 or labels.shape[0] != X.shape[0]:
        raise DataError(f"{p.name}: y must have shape ({X.shape[0]},) to match X, "
                        f"got {labels.shape}")
    X = X.astype(np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        what = "NaN" if np.isnan(X[r, c]) else "infinite"
        raise DataError(f"{p.name}: X[{r}, {c}] is {what} (row {r}, column {c}); "
                        f"{int(bad.sum())} non-finite value(s) in all")
    y, names = _encode_array_labels(labels, lambda i: f"{p.name}: y[{i}]")
    _require_two_classes(y, names, p.name)
    if features is not None and features.shape == (X.shape[1],):
        feature_names = [str(f) for f in features]
    else:
        feature_names = [f"x{i}" for i in range(X.shape[1])]
    return Dataset(p.stem, X, y, names, feature_names)


def _encode_array_labels(labels: np.ndarray, where) -> tuple[np.ndarray, list[str]]:
    """Labels from an array: integers, strings, or whole-number floats.

    ``where(i)`` describes the place of the i-th label in error messages.
    """
    if labels.dtype.kind == "f":
        nan = np.isnan(labels)
        if nan.any():
            raise DataError(f"{where(int(np.argmax(nan)))} is a missing label (NaN); every "
                            f"sample needs a label")
        frac = labels != np.round(labels)
        if frac.any():
            i = int(np.argmax(frac))
            raise DataError(f"{where(i)} is the label {labels[i]:g}; labels must be integers "
                            f"or strings, not fractional numbers")
        huge = ~(np.abs(labels) < 2.0**53)  # beyond, floats are no longer exact integers
        if huge.any():
            i = int(np.argmax(huge))
            raise DataError(f"{where(i)} is the label {labels[i]:g}, too large to be an "
                            f"integer class label; write labels as strings or small integers")
        labels = labels.astype(np.int64)
    elif labels.dtype.kind not in "iubUS":
        raise DataError(f"{where(0).split('[')[0]} must hold integer or string labels, "
                        f"got dtype {labels.dtype}")
    return encode_labels(labels)


def _load_csv(p: Path, target: str | None) -> Dataset:
    import pandas as pd

    try:
        df = pd.read_csv(p)
        if df.shape[1] == 1:  # maybe separated by something other than commas
            sep = _other_separator(p, str(df.columns[0]))
            if sep is not None:
                df = pd.read_csv(p, sep=sep)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {str(p)!r} is empty") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{p.name}: not a well-formed CSV file: "
                        f"{' '.join(str(exc).split())}") from None
    except UnicodeDecodeError:
        raise DataError(f"{p.name}: not a text CSV file (cannot decode it as UTF-8)") from None
    except OSError as exc:
        raise DataError(f"data file {str(p)!r} cannot be read: {exc}") from None

    columns = [str(c) for c in df.columns]
    df.columns = columns
    if target is None:
        target = columns[-1]
    elif target not in columns:
        shown = ", ".join(repr(c) for c in columns[:12]) + (", ..." if len(columns) > 12 else "")
        raise DataError(f"{p.name}: no target column {target!r}; the columns are {shown}")
    if len(df) == 0:
        raise DataError(f"{p.name}: has a header but no data rows")
    features = [c for c in columns if c != target]
    if not features:
        raise DataError(f"{p.name}: no feature columns besides the target column {target!r}")

    labels = df[target]
    missing = labels.isna().to_numpy()
    if missing.any():
        raise DataError(f"{p.name}: missing label in data row {int(np.argmax(missing)) + 1}, "
                        f"column {target!r}")
    values = labels.to_numpy()
    if labels.dtype.kind in "fiub":
        y, names = _encode_array_labels(
            np.asarray(values), lambda i: f"{p.name}: data row {i + 1}, column {target!r}")
    else:
        y, names = encode_labels(np.asarray(values, dtype=str))
    _require_two_classes(y, names, f"{p.name} (target column {target!r})")

    X = np.empty((len(df), len(features)), dtype=np.float64)
    problem = np.zeros(X.shape, dtype=np.int8)  # 1 non-numeric, 2 missing, 3 infinite
    for j, col in enumerate(features):
        s = df[col]
        if s.dtype.kind in "fiub":
            X[:, j] = s.to_numpy(dtype=np.float64)
        else:
            num = pd.to_numeric(s, errors="coerce")
            X[:, j] = num.to_numpy(dtype=np.float64, na_value=np.nan)
            problem[:, j] = np.where(num.isna().to_numpy() & s.notna().to_numpy(), 1, 0)
        nan = np.isnan(X[:, j]) & (problem[:, j] == 0)
        problem[nan, j] = 2
        problem[np.isinf(X[:, j]), j] = 3
    if problem.any():
        r, c = (int(i) for i in np.argwhere(problem)[0])  # first bad cell in file order
        col = features[c]
        kind = problem[r, c]
        if kind == 1:
            what = f"non-numeric value {str(df[col].iloc[r])!r}"
        elif kind == 2:
            what = "missing value (NaN)"
        else:
            what = f"infinite value {str(df[col].iloc[r])!r}"
        more = int(np.count_nonzero(problem)) - 1
        tail = f" ({more} more bad cell{'s' if more != 1 else ''})" if more else ""
        raise DataError(f"{p.name}: {what} in data row {r + 1}, column {col!r}; features "
                        f"must be finite numbers{tail}")
    return Dataset(_stem(p), X, y, names, features)


#: separators other than the comma that a CSV file is read with when its header has
#: no comma and exactly one of them
OTHER_SEPARATORS: tuple[str, ...] = (";", "\t", "|")


def _other_separator(p: Path, header: str) -> str | None:
    """The one separator of :data:`OTHER_SEPARATORS` in a comma-free ``header``, or None.

    A header with several of them is ambiguous: refused (DataError) with what it holds.
    """
    found = [sep for sep in OTHER_SEPARATORS if sep in header]
    if not found:
        return None
    if len(found) > 1:
        shown = " and ".join(repr(sep) for sep in found)
        raise DataError(f"{p.name} has one column; its header holds {shown}, so the "
                        f"separator is ambiguous; save it separated by commas")
    return found[0]


def _stem(p: Path) -> str:
    name = p.name
    for suffix in CSV_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return p.stem


# ---------------------------------------------------------------- standardisation
def fit_standardizer(X_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and scales of ``X_train``; a constant column gets scale 1.

    Images (N, C, H, W) are standardised per channel: mean and scale over N, H and W,
    returned with shape (C, 1, 1) so that ``(X - mean) / scale`` broadcasts.

    Raises
    ------
    DataError
        A column (a channel) whose values are so large (beyond about 1e150) that its
        standard deviation overflows float64: it would silently become zeros.
    """
    images = X_train.ndim == 4
    axes = (0, 2, 3) if images else 0
    with np.errstate(over="ignore", invalid="ignore"):
        mean = X_train.mean(axis=axes)
        std = X_train.std(axis=axes)
    bad = ~(np.isfinite(mean) & np.isfinite(std))
    if bad.any():
        j = int(np.argmax(bad))
        biggest = float(np.max(np.abs(X_train[:, j])))
        what = f"image channel {j}" if images else f"feature column {j}"
        raise DataError(f"{what} holds values up to {biggest:.3g}, too large to "
                        f"standardise in float64 (its variance overflows); rescale it")
    std[std == 0] = 1.0
    if images:
        return mean[:, None, None], std[:, None, None]
    return mean, std


def standardize(X_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Standardise ``X_train`` and ``others`` with statistics of ``X_train`` only."""
    mean, std = fit_standardizer(X_train)
    return [(X - mean) / std for X in (X_train, *others)]


def split_validation(X: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """Hold out ``ceil(fraction * N)`` samples for validation, stratified where possible.

    Returns ``(X_train, y_train, X_val, y_val, stratified)``; ``X_val`` and ``y_val``
    are None when ``fraction`` is 0. The split is scikit-learn's ``train_test_split``
    with ``random_state=seed``, stratified by ``y`` unless a class is too small to
    appear on both sides (then ``stratified`` is False).

    Raises
    ------
    DataError
        The fraction leaves no training samples.
    """
    if fraction == 0:
        return X, y, None, None, False
    n_val = math.ceil(fraction * len(y))
    if n_val >= len(y):
        raise DataError(f"`--val-fraction` {fraction:g} leaves no training samples out of "
                        f"{len(y)}")
    from sklearn.model_selection import train_test_split

    try:
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=n_val, random_state=seed,
                                                  stratify=y)
        stratified = True
    except ValueError:  # a class too small to appear on both sides
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=n_val, random_state=seed)
        stratified = False
    return X_tr, np.asarray(y_tr), X_va, np.asarray(y_va), stratified
