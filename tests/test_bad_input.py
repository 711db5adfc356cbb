"""Bad input everywhere: docs/bad-input.md's table, run row by row, is what the CLI says.

Each row's command runs in a folder holding the files the page lists; it must exit
with 2, print exactly the row's message as one line on stderr, nothing on stdout,
no traceback, and leave the folder as it was (no output, partial or temporary file).
All rows run in-process through ``harness.cli.main`` (the console entry point is
``sys.exit(main())``); a few also run as real processes.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bad-input.md"


# ------------------------------------------------------------------ the files
def _net(dims=(4, 8, 3), dtype="float64"):
    rng = np.random.default_rng(0)
    params = {}
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        params[f"W{i}"] = rng.uniform(-0.5, 0.5, (a, b)).astype(dtype)
        params[f"b{i}"] = rng.uniform(-0.5, 0.5, b).astype(dtype)
    return params


def _safetensors(path: Path, params) -> None:
    from harness.data.weights import weights_bytes

    path.write_bytes(weights_bytes(params, "safetensors"))


def _without(params, name):
    return {k: v for k, v in params.items() if k != name}


def _with(params, **changes):
    return {**params, **changes}


def _nan_w1(params):
    w1 = params["W1"].copy()
    w1[2, 1] = np.nan
    return _with(params, W1=w1)


FIXTURES = {
    "good.csv": lambda p: p.write_text(
        "a,b,label\n" + "".join(f"{i % 7}.5,{i % 3},{'xy'[i % 2]}\n" for i in range(20))),
    "empty.csv": lambda p: p.write_text(""),
    "header-only.csv": lambda p: p.write_text("a,b,label\n"),
    "nan.csv": lambda p: p.write_text("a,b,label\n1,2,x\n3,,y\n5,6,x\n7,8,y\n"),
    "text.csv": lambda p: p.write_text("a,b,label\n1,2,x\n3,four,y\n5,6,x\n7,8,y\n"),
    "one-class.csv": lambda p: p.write_text("a,b,label\n1,2,x\n3,4,x\n"),
    "binary.csv": lambda p: p.write_bytes(b"a,b,label\n\xff\xfe\x00\x01,2,x\n"),
    "huge.csv": lambda p: p.write_text("a,b,label\n1e300,1,x\n-1e300,2,y\n3e300,3,x\n"),
    "huge-label.csv": lambda p: p.write_text("a,label\n1,1\n2,1e300\n3,2\n"),
    "ambiguous.csv": lambda p: p.write_text(
        "a;b\tlabel\n" + "".join(f"{i % 7};{i % 3}\t{'xy'[i % 2]}\n" for i in range(20))),
    "broken.npz": lambda p: p.write_text("not a zip"),
    "notes.txt": lambda p: p.write_text("hello\n"),
    "taken/": lambda p: (p.mkdir(), (p / "keep.txt").write_text("mine\n")),
    "bad.toml": lambda p: p.write_text("[sweep]\nmode = 'grid'\n[grid]\nlr = [-1]\n"),
    "w.safetensors": lambda p: _safetensors(p, _net()),
    "w32.safetensors": lambda p: _safetensors(p, _net(dtype="float32")),
    "w-missing.safetensors": lambda p: _safetensors(p, _without(_net(), "b1")),
    "w-extra.safetensors": lambda p: _safetensors(p, _with(_net(), momentum=np.zeros(3))),
    "w-shape.safetensors": lambda p: _safetensors(p, _with(_net(), b0=np.zeros(7))),
    "w-f16.safetensors": lambda p: _safetensors(
        p, {k: v.astype(np.float16) for k, v in _net().items()}),
    "w-nan.safetensors": lambda p: _safetensors(p, _nan_w1(_net())),
    "w-trunc.safetensors": lambda p: (_safetensors(p, _net()),
                                      p.write_bytes(p.read_bytes()[:p.stat().st_size // 2])),
    "w-corrupt.npz": lambda p: p.write_bytes(b"PK\x03\x04" + b"garbage" * 10),
    "w-object.npz": lambda p: np.savez(p, **_with(_net(), b1=np.array(["a", "b", "c"],
                                                                       dtype=object))),
    "w.pt": lambda p: p.write_bytes(b"x"),
}


def make_fixtures(folder: Path) -> Path:
    for name, make in FIXTURES.items():
        make(folder / name.rstrip("/"))
    return folder


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every path under ``folder`` (hidden ones too) with its size and modification time."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root) / name
            st = p.lstat()
            out[str(p.relative_to(folder))] = (p.is_dir(), st.st_size, st.st_mtime_ns)
    return out


# ------------------------------------------------------------------ the page
def _code(cell: str) -> str:
    cell = cell.strip()
    if cell.startswith("`` ") and cell.endswith(" ``"):
        return cell[3:-3]
    if cell.startswith("`") and cell.endswith("`") and not cell.startswith("``"):
        return cell[1:-1]
    raise AssertionError(f"not a code span: {cell!r}")


def table_rows() -> list[tuple[str, str, str]]:
    """(what, command, message) for every row of the page's table."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## The table", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        m = re.fullmatch(r"\| (.+?) \| (`.+?`) \| (`.+`) \|", line.strip())
        if m:
            rows.append((m.group(1), _code(m.group(2)), _code(m.group(3))))
    return rows


def page_files() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## The files the commands refer to", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)


ROWS = table_rows()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_fixtures(tmp_path_factory.mktemp("bad-input"))


def run_in_process(argv: list[str]) -> tuple[int, str, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------ tests
def test_the_page_lists_its_files_and_enough_rows():
    assert sorted(page_files()) == sorted(FIXTURES)
    assert len(ROWS) >= 80
    commands = {shlex.split(cmd)[1] for _, cmd, _ in ROWS}
    from harness.cli import SUBCOMMANDS

    every = {name.rsplit(".", 1)[1] for name in SUBCOMMANDS}
    assert every <= commands, every - commands
    for _what, cmd, message in ROWS:
        assert cmd.startswith("nn-harness "), cmd
        assert message.startswith("nn-harness"), message
    assert len({cmd for _, cmd, _ in ROWS}) == len(ROWS)  # no row twice
    assert (ROOT / "README.md").read_text().count("docs/bad-input.md") >= 1


@pytest.mark.parametrize("what, command, message", ROWS, ids=[r[1][11:] for r in ROWS])
def test_each_row_exits_2_with_its_message_and_writes_nothing(folder, monkeypatch, what,
                                                              command, message):
    monkeypatch.chdir(folder)
    before = snapshot(folder)
    code, out, err = run_in_process(shlex.split(command)[1:])
    err = err.replace(os.getcwd(), "<cwd>")  # the page shows the run's folder so
    assert code == 2, (command, err)
    assert err == message + "\n", f"{command}\n  page: {message}\n  real: {err.strip()}"
    assert out == ""
    assert "Traceback" not in err
    assert snapshot(folder) == before


def test_rows_behave_the_same_in_a_real_process(folder):
    """The console entry point: exit status, stderr and nothing written, as in-process."""
    picks = [ROWS[0]] + [r for r in ROWS if "--init-from w-nan" in r[1]
                         or "--data nan.csv" in r[1] or "--out taken" in r[1]][:3]
    assert len(picks) == 4
    before = snapshot(folder)
    for _, command, message in picks:
        proc = subprocess.run([sys.executable, "-m", "harness", *shlex.split(command)[1:]],
                              cwd=folder, capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 2, (command, proc.stderr)
        assert proc.stderr == message + "\n"
        assert proc.stdout == ""
    assert snapshot(folder) == before


# ------------------------------------------------------------------ flags
def _subparsers():
    from harness.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def _flags(sub) -> dict[str, object]:
    return {flag: action for action in sub._actions for flag in action.option_strings}


#: flags whose default differs between subcommands on purpose, and why
DEFAULT_DIFFERS = {
    "--out": "each command writes its own kind of output (a folder, a file, a run folder)",
    "--min-agreement": "cv only reports agreement unless asked; report's CV check needs a bar",
}


def test_shared_flags_have_the_same_default_everywhere():
    choices = _subparsers()
    seen: dict[str, tuple] = {}
    for name, sub in choices.items():
        for flag, action in _flags(sub).items():
            if flag in ("-h", "--help") or flag in DEFAULT_DIFFERS:
                continue
            if name == "bench" and action.default is None and flag in (
                    "--optimizer", "--lr", "--momentum", "--weight-decay",
                    "--weight-decay-in", "--weight-decay-on", "--loss-reduction"):
                continue  # None so that a --config file can set them; checked below
            if name == "conformance" and action.default is None and flag != "--reference":
                assert "(default here: as the class's nnh_capabilities declares" in action.help
                continue  # None: not given, so the class's declared terms hold
            if flag in seen:
                assert action.default == seen[flag][0], (flag, name, seen[flag][1])
            else:
                seen[flag] = (action.default, name)
    # bench's --optimizer/--lr fall back to the same defaults as everywhere else
    from harness.cli import bench

    train = _flags(choices["train"])
    assert (bench.DEFAULT_OPTIMIZER, bench.DEFAULT_LR, bench.DEFAULT_MOMENTUM,
            bench.DEFAULT_WEIGHT_DECAY) == (train["--optimizer"].default, train["--lr"].default,
                                            train["--momentum"].default,
                                            train["--weight-decay"].default)
    args = build_parser_args(["bench", "--quick", "--no-save"])
    config = bench.build_config(args)
    assert (config.optimizer, config.lr, config.momentum, config.weight_decay) == (
        "adam", 1e-3, 0.0, 1e-4)
    assert "(default: adam" in _flags(choices["bench"])["--optimizer"].help
    for flag in ("--dtypes", "--dims"):  # plural or repeatable: bench measures a grid
        assert "grid" in _flags(choices["bench"])[flag].help


def build_parser_args(argv):
    from harness.cli import build_parser

    return build_parser().parse_args(argv)


def test_every_command_that_computes_takes_threads_and_the_model_builders_init_from():
    choices = _subparsers()
    for name in ("check", "gradcheck", "train", "cv", "report", "bench"):
        assert "--threads" in _flags(choices[name]), name
    for name in ("check", "gradcheck", "train", "cv", "report", "export"):
        assert "--init-from" in _flags(choices[name]), name
    # singular where one model is built, plural where backends are compared
    for name in ("gradcheck", "export"):
        help_text = _flags(choices[name])["--backend"].help
        assert "one" in help_text and "--backends" not in _flags(choices[name])
    for name in ("check", "train", "cv", "report", "bench"):
        assert "--backends" in _flags(choices[name]) and "--backend" not in _flags(choices[name])
    cv_help = choices["cv"].format_help()
    assert "(default: 50)" in cv_help and "(default: 64)" in cv_help


def test_a_file_that_cannot_be_written_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    import harness.data.atomic

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "w.safetensors"))

    monkeypatch.setattr(harness.data.atomic, "atomic_write_bytes", disk_full)
    code = main(["export", "--dims", "4,3,2", "--out", str(tmp_path / "w.safetensors")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "No space left on device" in err
    assert list(tmp_path.iterdir()) == []


def test_messages_name_the_flag_but_keep_a_config_files_key(tmp_path):
    """The library names its parameter (`weight_decay`); the CLI names the flag the user
    can fix (`--weight-decay`), unless the value may have come from a file."""
    code, _, err = run_in_process(["bench", "--weight-decay", "-1", "--no-save"])
    assert code == 2 and "`--weight-decay` must be >= 0, got -1" in err
    path = tmp_path / "bench.toml"
    path.write_text("weight_decay = -1.0\n")
    code, _, err = run_in_process(["bench", "--config", str(path), "--no-save"])
    assert code == 2 and "`weight_decay` must be >= 0, got -1" in err
    code, _, err = run_in_process(["check", "--rtol", "1e-5"])  # --atol was not typed
    assert code == 2 and "give both `--rtol` and `--atol` or neither" in err
