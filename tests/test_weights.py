"""Weight files: export, --init-from, both formats, both backends, and every way a file is wrong."""

from __future__ import annotations

import json
import pickle
import struct
import zipfile

import numpy as np
import pytest

from harness.cli import main
from harness.errors import WeightsError
from harness.model.specs import ModelSpec
from harness.data.weights import fit_weights, load_weights, read_weights, save_weights, weights_bytes


def net(dims=(4, 8, 3), dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        out[f"W{i}"] = rng.normal(size=(a, b)).astype(dtype)
        out[f"b{i}"] = rng.normal(size=b).astype(dtype)
    return out


def write_st(path, params, metadata=None):
    path.write_bytes(weights_bytes(params, "safetensors", metadata=metadata))
    return path


def write_npz(path, params):
    np.savez(path, **params)
    return path


# ------------------------------------------------------------------ export
@pytest.mark.parametrize("suffix", ["safetensors", "npz"])
def test_export_writes_the_backends_initial_parameters(tmp_path, capsys, suffix):
    from harness.model.registry import make_backend

    out = tmp_path / f"w.{suffix}"
    assert main(["export", "--backend", "scratch", "--dims", "4,8,8,3", "--seed", "7",
                 "--out", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dims"] == [4, 8, 8, 3] and info["dtype"] == "float64"
    assert info["tensors"] == ["W0", "b0", "W1", "b1", "W2", "b2"]
    expected = make_backend("scratch", ModelSpec((4, 8, 8, 3), seed=7)).get_params()
    loaded = load_weights(out)
    assert list(loaded) == list(expected)
    for name in expected:
        assert loaded[name].dtype == np.float64
        np.testing.assert_array_equal(loaded[name], expected[name])
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # normal permissions
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary left


def test_safetensors_file_is_plain_header_and_data_with_metadata(tmp_path, capsys):
    out = tmp_path / "w.safetensors"
    assert main(["export", "--dims", "4,5,3", "--dtype", "float32", "--activation", "tanh",
                 "--seed", "2", "--out", str(out)]) == 0
    raw = out.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])  # a JSON header, then raw little-endian numbers
    meta = header.pop("__metadata__")
    assert meta["format"] == "nn-harness-weights" and meta["dims"] == "4,5,3"
    assert meta["dtype"] == "float32" and meta["activation"] == "tanh" and meta["seed"] == "2"
    assert {k: (v["dtype"], v["shape"]) for k, v in header.items()} == {
        "W0": ("F32", [4, 5]), "b0": ("F32", [5]), "W1": ("F32", [5, 3]), "b1": ("F32", [3])}
    assert len(raw) == 8 + n + 4 * (20 + 5 + 15 + 3)
    assert b"pickle" not in raw and not raw.startswith(b"\x80")


def test_the_same_flags_give_the_same_bytes(tmp_path, capsys):
    for suffix in ("safetensors", "npz"):
        a, b = tmp_path / f"a.{suffix}", tmp_path / f"b.{suffix}"
        for path in (a, b):
            assert main(["export", "--dims", "4,6,3", "--seed", "1", "--out", str(path)]) == 0
        assert a.read_bytes() == b.read_bytes(), suffix


def test_export_refuses_an_existing_file_unless_force_and_converts(tmp_path, capsys):
    src = write_npz(tmp_path / "src.npz", net((4, 6, 3)))
    out = tmp_path / "w.safetensors"
    out.write_text("precious")
    assert main(["export", "--init-from", str(src), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "precious"
    assert main(["export", "--init-from", str(src), "--out", str(out), "--force"]) == 0
    got = load_weights(out)
    for name, value in net((4, 6, 3)).items():
        np.testing.assert_array_equal(got[name], value)  # dims from the file, values as is
    assert read_weights(out).metadata["init_from"] == str(src)


def test_save_weights_never_replaces_without_being_asked(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(path, net())
    with pytest.raises(WeightsError, match="already exists"):
        save_weights(path, net(seed=1))
    np.testing.assert_array_equal(load_weights(path)["W0"], net()["W0"])
    save_weights(path, net(seed=1), replace=True)
    np.testing.assert_array_equal(load_weights(path)["W0"], net(seed=1)["W0"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]
    with pytest.raises(WeightsError, match="float32 or all float64"):
        save_weights(tmp_path / "mixed.npz", {**net(), "b0": net()["b0"].astype(np.float32)})


# ------------------------------------------------------------------ both backends
@pytest.mark.parametrize("suffix", ["safetensors", "npz"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_both_backends_read_a_file_exactly(tmp_path, suffix, dtype):
    from harness.model.registry import make_backend

    params = net((5, 7, 4), dtype=dtype)
    path = tmp_path / f"w.{suffix}"
    save_weights(path, params)
    spec = ModelSpec((5, 7, 4), dtype=dtype, seed=3)
    for name in ("scratch", "torch"):
        model = make_backend(name, spec)
        model.set_params(load_weights(path, dims=spec.dims, dtype=dtype))
        got = model.get_params()
        for key, value in params.items():
            assert got[key].dtype == np.dtype(dtype)
            np.testing.assert_array_equal(got[key], value, err_msg=f"{name} {key}")


def _train_json(capsys, *extra):
    assert main(["train", "--dataset", "iris", "--dims", "4,6,3", "--epochs", "1",
                 "--batch-size", "50", "--quiet", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_init_from_is_where_training_starts(tmp_path, capsys):
    """From the file of seed 5, training with --seed 5 is unchanged; from seed 0 it is not."""
    w5, w0 = tmp_path / "w5.safetensors", tmp_path / "w0.npz"
    for path, seed in ((w5, "5"), (w0, "0")):
        assert main(["export", "--dims", "4,6,3", "--seed", seed, "--out", str(path)]) == 0
    capsys.readouterr()
    plain = _train_json(capsys, "--seed", "5")
    same = _train_json(capsys, "--seed", "5", "--init-from", str(w5))
    other = _train_json(capsys, "--seed", "5", "--init-from", str(w0))
    assert same["config"]["init_from"] == str(w5)
    assert same["final"] == plain["final"]
    assert other["final"] != plain["final"]
    assert other["passed"] and same["passed"]  # both backends still agree


def test_init_from_takes_dims_from_the_file_and_applies_everywhere(tmp_path, capsys):
    path = tmp_path / "w.safetensors"
    save_weights(path, net((4, 5, 3)))
    assert main(["check", "--dataset", "iris", "--init-from", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["dims"] == [4, 5, 3] and out["passed"]
    assert main(["gradcheck", "--dataset", "iris", "--init-from", str(path), "--backend",
                 "torch", "--max-entries", "5", "--samples", "20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["dims"] == [4, 5, 3]
    assert main(["cv", "--dataset", "iris", "--init-from", str(path), "--folds", "2",
                 "--epochs", "1", "--quiet", "--json"]) == 0
    cv = json.loads(capsys.readouterr().out)
    assert cv["config"]["initialisation"] == "given parameters"
    assert cv["config"]["model"]["dims"] == [4, 5, 3]


def test_cross_validate_starts_every_fold_from_the_given_parameters():
    from harness.training.cv import cross_validate
    from harness.data.datasets import load_dataset
    from harness.model.specs import OptimizerSpec

    data = load_dataset("iris")
    params = net((4, 5, 3))
    seen = []

    class Spy:
        def __init__(self, spec, optimizer):
            from harness.model.registry import make_backend

            self.inner = make_backend("scratch", spec, optimizer)
            self.dims = self.inner.dims

        def set_params(self, p):
            seen.append({k: v.copy() for k, v in p.items()})
            self.inner.set_params(p)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    import sys
    import types

    mod = types.ModuleType("spy_backend_for_weights")
    mod.Spy = Spy
    sys.modules["spy_backend_for_weights"] = mod
    try:
        cross_validate(["spy_backend_for_weights:Spy"], data.X, data.y,
                       spec=ModelSpec((4, 5, 3)),
                       optimizer=OptimizerSpec("sgd", lr=0.01, weight_decay=0.0), folds=3,
                       epochs=1, batch_size=50, init_params=params, quiet=True)
    finally:
        del sys.modules["spy_backend_for_weights"]
    assert len(seen) == 3  # once per fold
    for p in seen:
        for k in params:
            np.testing.assert_array_equal(p[k], params[k])


# ------------------------------------------------------------------ what is refused
CASES = {
    "missing": (lambda p: {k: v for k, v in p.items() if k != "W1"}, "tensor 'W1' is missing"),
    "extra": (lambda p: {**p, "lr": np.ones(1)}, "unexpected tensor 'lr'"),
    "gap": (lambda p: {**p, "W3": np.ones((3, 3)), "b3": np.ones(3)},
            "tensor 'W2' is missing"),
    "w-1d": (lambda p: {**p, "W0": np.ones(4)}, "tensor 'W0' must be 2-D"),
    "chain": (lambda p: {**p, "W1": np.ones((7, 3))}, "tensor 'W1' has shape (7, 3): 7 inputs, "
                                                       "but 'W0' has 8 outputs"),
    "bias": (lambda p: {**p, "b1": np.ones((3, 1))}, "tensor 'b1' must have shape (3,)"),
    "int": (lambda p: {k: v.astype(np.int32) for k, v in p.items()},
            "tensor 'W0' has dtype int32; weights must be float32 or float64"),
    "mixed": (lambda p: {**p, "b0": p["b0"].astype(np.float32)},
              "tensor 'b0' is float32 but 'W0' is float64"),
    "inf": (lambda p: {**p, "b1": np.array([0.0, -np.inf, 1.0])},
            "tensor 'b1' has a non-finite value -inf at index (1,)"),
    "empty-dim": (lambda p: {"W0": np.ones((4, 0)), "b0": np.ones(0)},
                  "tensor 'W0' has an empty shape (4, 0)"),
}


@pytest.mark.parametrize("suffix", ["safetensors", "npz"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_tensor_is_named(tmp_path, suffix, case):
    change, message = CASES[case]
    path = tmp_path / f"w.{suffix}"
    params = change(net())
    if suffix == "npz":
        write_npz(path, params)
    else:
        write_st(path, params)
    with pytest.raises(WeightsError) as info:
        load_weights(path)
    text = str(info.value)
    assert text.startswith(f"weights file {str(path)!r}") and message in text, text
    assert "\n" not in text


def test_a_file_that_does_not_fit_the_model_is_named(tmp_path):
    path = write_st(tmp_path / "w.safetensors", net())
    with pytest.raises(WeightsError, match=r"dims 4,8,3, but the model has dims 4,9,3: tensor "
                                           r"'W0' has shape \(4, 8\), expected \(4, 9\)"):
        load_weights(path, dims=(4, 9, 3), dtype="float64")
    with pytest.raises(WeightsError, match=r"model has dims 4,8,3,3: tensor 'W2' is missing"):
        load_weights(path, dims=(4, 8, 3, 3), dtype="float64")
    with pytest.raises(WeightsError, match=r"model has dims 4,3: tensor 'W0'"):
        load_weights(path, dims=(4, 3), dtype="float64")
    with pytest.raises(WeightsError, match="float64 tensors but the model is float32"):
        load_weights(path, dims=(4, 8, 3), dtype="float32")
    w = read_weights(path)
    fitted = fit_weights(w, (4, 8, 3), "float64")
    fitted["W0"][0, 0] = 99.0  # a copy: the file's arrays are untouched
    assert w.params["W0"][0, 0] != 99.0


def test_empty_missing_and_headerless_files(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(tmp_path / "nope.npz")
    (tmp_path / "e.safetensors").write_bytes(b"")
    with pytest.raises(WeightsError, match="is empty"):
        load_weights(tmp_path / "e.safetensors")
    write_st(tmp_path / "none.safetensors", {})
    with pytest.raises(WeightsError, match="holds no tensors"):
        load_weights(tmp_path / "none.safetensors")
    with zipfile.ZipFile(tmp_path / "none.npz", "w"):
        pass
    with pytest.raises(WeightsError, match="holds no tensors"):
        load_weights(tmp_path / "none.npz")


@pytest.mark.parametrize("suffix", ["safetensors", "npz"])
def test_every_truncation_is_a_clean_error(tmp_path, suffix):
    good = tmp_path / f"good.{suffix}"
    save_weights(good, net((3, 2, 2)))
    raw = good.read_bytes()
    bad = tmp_path / f"bad.{suffix}"
    for cut in range(1, len(raw)):
        bad.write_bytes(raw[:cut])
        with pytest.raises(WeightsError, match="not a readable"):
            load_weights(bad)


def test_npz_never_unpickles(tmp_path):
    marker = tmp_path / "ran"

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.npz"
    arr = np.empty(1, dtype=object)
    arr[0] = Boom()
    with zipfile.ZipFile(path, "w") as zf:
        for name, value in net((2, 2, 2)).items():
            if name != "b1":
                with zf.open(f"{name}.npy", "w") as fh:
                    np.lib.format.write_array(fh, value)
        with zf.open("b1.npy", "w") as fh:  # b1: a pickled object array
            np.lib.format.write_array(fh, arr, allow_pickle=True)
    with pytest.raises(WeightsError, match="Python objects"):
        load_weights(path)
    assert not marker.exists()
    pickle.loads(pickle.dumps(Boom())).close()  # what unpickling it would have done
    assert marker.exists()


def test_npz_byte_order_and_memory_layout_do_not_matter(tmp_path):
    params = net((3, 4, 2))
    odd = {k: np.asfortranarray(v.astype(">f8")) for k, v in params.items()}
    path = write_npz(tmp_path / "odd.npz", odd)
    got = load_weights(path, dims=(3, 4, 2), dtype="float64")
    for k, v in params.items():
        np.testing.assert_array_equal(got[k], v)
        assert got[k].flags.c_contiguous and got[k].dtype.isnative
