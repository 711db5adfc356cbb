"""Fuzzing: whatever the arguments, CSV file or weight file, a clean exit 0, 1 or 2.

Hypothesis draws command lines from every flag of check, gradcheck, train, cv and
export (valid values, near misses and garbage), CSV files of arbitrary text, and
weight files mutated from valid ones (truncated, bytes flipped, inserted or
overwritten). Each run goes through ``harness.cli.main`` in-process: an uncaught
exception (a traceback) fails the test, and so does any exit code but 0, 1 or 2, a
message of more than one line, or a file written by a run that exited 2. Sizes are
bounded (iris, a few epochs) so that every example takes milliseconds.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


def run(argv: list[str]) -> tuple[int, str, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def assert_clean(code, out, err, argv):
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("nn-harness"), (argv, err)


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    """A folder with a valid and a broken weight file, a CSV file and an occupied folder."""
    from harness.data.weights import weights_bytes

    folder = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    params = {"W0": rng.normal(size=(4, 3)), "b0": rng.normal(size=3),
              "W1": rng.normal(size=(3, 3)), "b1": rng.normal(size=3)}
    (folder / "w.safetensors").write_bytes(weights_bytes(params, "safetensors"))
    (folder / "w.npz").write_bytes(weights_bytes(params, "npz"))
    (folder / "w32.safetensors").write_bytes(weights_bytes(
        {k: v.astype(np.float32) for k, v in params.items()}, "safetensors"))
    (folder / "bad.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{oops")
    (folder / "d.csv").write_text("a,b,c,d,label\n" + "".join(
        f"{i % 5},{i % 3}.5,{i % 7},{i},{'pq'[i % 2]}\n" for i in range(30)))
    (folder / "taken").mkdir()
    (folder / "taken" / "x").write_text("x")
    return folder


# ------------------------------------------------------------------ arguments
def ints(*valid):
    return st.sampled_from([*map(str, valid), "0", "-1", "x", "1.5", "", "1e3", " 2"])


def floats(*valid):
    return st.sampled_from([*map(str, valid), "0", "-1", "nan", "inf", "-inf", "x", "",
                            "1e-300", "1e300"])


COMMON = {
    "--backends": st.sampled_from(["scratch,torch", "torch,scratch", "scratch", "scratch,jax",
                                   "scratch,scratch", ",", "a:b", "scratch,torch,scratch",
                                   "scratch,tests.user_models:NoSuchClass"]),
    "--dataset": st.sampled_from(["iris", "wine", "mnist", "synthetic", ""]),
    "--data": st.sampled_from(["d.csv", "missing.csv", "w.npz", "taken", "d.csv.gz", ""]),
    "--target": st.sampled_from(["label", "a", "nope", ""]),
    "--n-samples": ints(40, 60),
    "--n-features": ints(3, 4),
    "--n-classes": ints(2, 3),
    "--dims": st.sampled_from(["4,3,3", "4,3", "4,1,3", "13,3,3", "4,0,3", "4,-2,3", "4",
                               "x", "4,,3", "4,3,3,3", "64,32,10", "4,3,2", ""]),
    "--activation": st.sampled_from(["relu", "tanh", "gelu", "sigmoid", "leaky_relu", "swish",
                                     ""]),
    "--dtype": st.sampled_from(["float32", "float64", "float16", "int", ""]),
    "--seed": ints(0, 3, 2**31),
    "--device": st.sampled_from(["cpu", "tpu", ""]),
    "--init-from": st.sampled_from(["w.safetensors", "w.npz", "w32.safetensors",
                                    "bad.safetensors", "missing.npz", "taken", "d.csv"]),
    "--threads": ints(1, 2),
    "--optimizer": st.sampled_from(["sgd", "adam", "adamw", "rmsprop", "adagrad", "lamb", ""]),
    "--lr": floats(0.01, 1e-3),
    "--weight-decay": floats(1e-4, 0.0),
    "--momentum": floats(0.9, 0.5, 1.0),
    "--betas": st.sampled_from(["0.9,0.999", "0.9", "1,1", "0.5,0.5,0.5", "x,y", ""]),
    "--eps": floats(1e-8),
    "--rtol": floats(1e-5),
    "--atol": floats(1e-8),
}
FLAGS = {
    "check": COMMON,
    "gradcheck": {**{k: v for k, v in COMMON.items() if k not in (
        "--backends", "--optimizer", "--lr", "--weight-decay", "--momentum", "--betas",
        "--eps")},
        "--backend": st.sampled_from(["scratch", "torch", "jax", ""]),
        "--samples": ints(5, 20), "--max-entries": ints(3, 10), "--fd-eps": floats(1e-6)},
    "train": {**COMMON, "--epochs": ints(1, 2), "--batch-size": ints(16, 200),
              "--val-fraction": floats(0.2, 0.5, 0.99, 1.0),
              "--out": st.sampled_from(["taken", "d.csv", "d.csv/sub", ""])},
    "cv": {**COMMON, "--epochs": ints(1, 2), "--batch-size": ints(16, 200),
           "--folds": ints(2, 3, 151), "--split-seed": ints(0, 7),
           "--min-agreement": floats(0.5, 1.0, 1.5),
           "--out": st.sampled_from(["taken", "d.csv", ""])},
    "export": {"--backend": st.sampled_from(["scratch", "torch", "jax"]),
               "--dims": COMMON["--dims"], "--dtype": COMMON["--dtype"],
               "--seed": COMMON["--seed"], "--activation": COMMON["--activation"],
               "--init-from": COMMON["--init-from"],
               "--out": st.sampled_from(["new.safetensors", "new.npz", "w.safetensors",
                                         "taken", "x.txt", "taken/x/y.npz", ""])},
}
SWITCHES = {"check": ["--nesterov", "--json"], "gradcheck": ["--json"],
            "train": ["--nesterov", "--json", "--no-shuffle", "--force", "--quiet"],
            "cv": ["--nesterov", "--json", "--no-stratify", "--no-shuffle", "--quiet"],
            "export": ["--json", "--force"]}


@st.composite
def command_lines(draw, command):
    argv = [command]
    flags = FLAGS[command]
    chosen = draw(st.lists(st.sampled_from(sorted(flags)), max_size=6, unique=True))
    for flag in chosen:
        argv += [flag, draw(flags[flag])]
    argv += draw(st.lists(st.sampled_from(SWITCHES[command]), max_size=2, unique=True))
    if command in ("check", "train", "cv") and "--dataset" not in chosen \
            and "--data" not in chosen:
        argv += ["--dataset", "iris"]  # keep the default work small
    if command in ("train", "cv") and "--epochs" not in chosen:
        argv += ["--epochs", "1"]
    if command == "gradcheck":
        argv += ["--dataset", "iris"] if "--dataset" not in chosen and "--data" not in chosen \
            else []
        argv += [] if "--max-entries" in chosen else ["--max-entries", "4"]
        argv += [] if "--samples" in chosen else ["--samples", "16"]
    if command == "export" and "--out" not in chosen:
        argv += ["--out", "new.safetensors"]
    return argv


def _fuzz_command(place, argv):
    cwd = os.getcwd()
    os.chdir(place)
    before = listing(place)
    try:
        code, out, err = run(argv)
    finally:
        os.chdir(cwd)
    assert_clean(code, out, err, argv)
    after = listing(place)
    if code == 2:
        assert after == before, (argv, after ^ before)
    for made in after - before:  # keep the place as it was for the next example
        p = place / made
        if p.is_file():
            p.unlink()


@pytest.mark.parametrize("command", sorted(FLAGS))
def test_any_command_line_ends_cleanly(place, command):
    @FUZZ
    @given(argv=command_lines(command))
    def check(argv):
        _fuzz_command(place, argv)

    check()


# ------------------------------------------------------------------ CSV files
CELLS = st.one_of(
    st.integers(-5, 5).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "x", "1e309", '"a,b"', '"', "1,5",
                     " ", "\t", "None", "true", "0x10", "١٢", "é"]),
    st.text(max_size=4))


NUMBERS = st.one_of(st.integers(-3, 3).map(str),
                    st.floats(-1e6, 1e6, allow_nan=False).map(repr),
                    st.sampled_from(["1e-300", "1e300", "-0.0", "0", "7", "7"]))
LABELS = st.sampled_from(["x", "y", "z", "1", "2", "-7", "1e300", "2.5", "", "x"])


@st.composite
def csv_texts(draw):
    """Mostly well-formed numeric tables (so that many load and train), some wild ones."""
    n_cols = draw(st.integers(1, 5))
    wild = draw(st.integers(0, 3)) == 0
    names = ["a", "b", "c", "d", "e"][:n_cols - 1] + ["label"]
    header = draw(st.lists(st.sampled_from(["a", "b", "label", "", "x y", '"q"']),
                           min_size=n_cols, max_size=n_cols)) if wild else names
    n_rows = draw(st.integers(0, 14))
    rows = []
    for _ in range(n_rows):
        if wild:
            rows.append(draw(st.lists(CELLS, min_size=0, max_size=n_cols + 1)))
        else:
            cells = [draw(NUMBERS) for _ in range(n_cols - 1)] + [draw(LABELS)]
            if draw(st.integers(0, 9)) == 0:  # now and then one odd cell
                cells[draw(st.integers(0, n_cols - 1))] = draw(CELLS)
            rows.append(cells)
    text = "\n".join([",".join(header)] + [",".join(r) for r in rows])
    if draw(st.booleans()):
        text += "\n"
    return text


def test_any_csv_file_ends_cleanly(place):
    @FUZZ
    @given(text=csv_texts(), binary=st.binary(max_size=40),
           use_binary=st.integers(0, 4).map(lambda k: k == 0),
           target=st.sampled_from([None, "label", "a"]))
    def check(text, binary, use_binary, target):
        path = place / "fuzz.csv"
        if use_binary:
            path.write_bytes(binary)
        else:
            path.write_text(text, encoding="utf-8")
        argv = ["check", "--data", "fuzz.csv"] + (["--target", target] if target else [])
        _fuzz_command(place, argv)
        path.unlink()

    check()


def test_csv_files_that_load_also_cross_validate_cleanly(place):
    @FUZZ
    @given(text=csv_texts())
    def check(text):
        (place / "cv.csv").write_text(text, encoding="utf-8")
        _fuzz_command(place, ["cv", "--data", "cv.csv", "--folds", "2", "--epochs", "1",
                              "--no-stratify", "--quiet"])
        (place / "cv.csv").unlink()

    check()


# ------------------------------------------------------------------ weight files
@st.composite
def mutated(draw, raw: bytes):
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "overwrite", "header"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if kind == "truncate":
            del data[i:]
        elif kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[i:i + len(chunk)] = chunk
        else:  # the first bytes: the header length and the start of the header or zip
            j = draw(st.integers(0, min(40, len(data) - 1)))
            data[j] = draw(st.integers(0, 255))
    return bytes(data)


@pytest.mark.parametrize("suffix", ["safetensors", "npz"])
def test_any_weight_file_ends_cleanly(place, suffix):
    from harness.errors import WeightsError
    from harness.data.weights import load_weights

    raw = (place / f"w.{suffix}").read_bytes()

    @FUZZ
    @given(data=mutated(raw))
    def check(data):
        path = place / f"fuzz.{suffix}"
        path.write_bytes(data)
        try:
            params = load_weights(path)
        except WeightsError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("weights file")
        else:  # what loads is canonical, one float dtype, finite
            assert all(np.isfinite(v).all() for v in params.values())
            assert len({v.dtype for v in params.values()}) == 1
        _fuzz_command(place, ["check", "--dataset", "iris", "--init-from", path.name])
        path.unlink()

    check()
