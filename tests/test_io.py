"""Nothing lost: atomic files, staged folders, partial results on Ctrl-C and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import harness.data.atomic as hio
from harness.cli import main
from harness.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def expected_mode(folder: bool) -> int:
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if folder else 0o666) & ~mask


# ------------------------------------------------------------------ files
def test_atomic_write_gives_normal_permissions_and_can_refuse_to_replace(tmp_path):
    path = hio.atomic_write_text(tmp_path / "a.txt", "one")
    assert path.stat().st_mode & 0o777 == expected_mode(False)
    hio.atomic_write_text(path, "two")
    assert path.read_text() == "two"
    with pytest.raises(FileExistsError):
        hio.atomic_write_text(path, "three", replace=False)
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary file left


@pytest.mark.parametrize("atomic", [True, False])
def test_rename_noreplace_never_replaces(tmp_path, monkeypatch, atomic):
    if not atomic:  # the fallback where renameat2 is missing or unsupported
        monkeypatch.setattr(hio, "_RENAMEAT2", None)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_text("new")
    dst.write_text("old")
    with pytest.raises(FileExistsError):
        hio.rename_noreplace(src, dst)
    assert dst.read_text() == "old" and src.read_text() == "new"
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    d1.mkdir()
    d2.mkdir()
    (d2 / "theirs").write_text("x")
    with pytest.raises(FileExistsError):
        hio.rename_noreplace(d1, d2)
    assert d1.is_dir() and (d2 / "theirs").exists()
    hio.rename_noreplace(d1, tmp_path / "d3")
    assert (tmp_path / "d3").is_dir() and not d1.exists()


# ------------------------------------------------------------------ staged folders
def test_a_staged_folder_appears_whole_with_normal_permissions(tmp_path):
    out = tmp_path / "out"
    with hio.staged_dir(out) as tmp:
        (tmp / "a.csv").write_text("1\n")
        assert not out.exists()
        assert tmp.stat().st_mode & 0o777 == expected_mode(True)
    assert files(out) == {"a.csv": "1\n"}
    assert out.stat().st_mode & 0o777 == expected_mode(True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("keep", [False, True])
def test_an_interruption_drops_or_keeps_what_was_written(tmp_path, keep):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt) as info:
        with hio.staged_dir(out, keep_partial=keep) as tmp:
            (tmp / "half.csv").write_text("fold\n1\n")
            raise KeyboardInterrupt
    assert not out.exists()
    partial = tmp_path / "out.partial"
    if keep:
        assert hio.partial_path_of(info.value) == partial
        assert files(partial) == {"half.csv": "fold\n1\n"}
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.partial"]
    else:
        assert hio.partial_path_of(info.value) is None
        assert list(tmp_path.iterdir()) == []


def test_a_dropped_run_leaves_no_folders_made_for_it(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with hio.staged_dir(tmp_path / "a" / "b" / "out") as tmp:
            (tmp / "x").write_text("x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with hio.staged_dir(tmp_path / "a" / "b" / "out") as tmp:
        (tmp / "x").write_text("x")
    assert files(tmp_path) == {"a/b/out/x": "x"}


def test_an_earlier_partial_folder_is_replaced_only_by_a_newer_one(tmp_path):
    out = tmp_path / "out"
    partial = tmp_path / "out.partial"
    partial.mkdir()
    (partial / "old.csv").write_text("old\n")
    for keep in (False, True):  # nothing written: the earlier partial stays as it was
        with pytest.raises(RuntimeError):
            with hio.staged_dir(out, keep_partial=keep):
                raise RuntimeError("boom")
        assert files(partial) == {"old.csv": "old\n"}
    with pytest.raises(RuntimeError):  # a dropped run never touches it either
        with hio.staged_dir(out, keep_partial=False) as tmp:
            (tmp / "new.csv").write_text("new\n")
            raise RuntimeError("boom")
    assert files(partial) == {"old.csv": "old\n"}
    with pytest.raises(RuntimeError):
        with hio.staged_dir(out, keep_partial=True) as tmp:
            (tmp / "new.csv").write_text("new\n")
            raise RuntimeError("boom")
    assert files(partial) == {"new.csv": "new\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.partial"]


@pytest.mark.parametrize("keep", [False, True])
def test_a_folder_filled_meanwhile_is_never_replaced(tmp_path, keep):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="was created by someone else while this run ran") \
            as info:
        with hio.staged_dir(out, keep_partial=keep) as tmp:
            (tmp / "mine.csv").write_text("mine\n")
            out.mkdir()
            (out / "theirs.txt").write_text("theirs\n")
    assert files(out) == {"theirs.txt": "theirs\n"}
    if keep:  # the finished results are not lost either
        assert files(tmp_path / "out.partial") == {"mine.csv": "mine\n"}
        assert hio.partial_path_of(info.value) == tmp_path / "out.partial"
    else:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_empty_folder_may_be_used_and_force_replaces_whole(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    with hio.staged_dir(out) as tmp:
        (tmp / "a").write_text("a")
    assert files(out) == {"a": "a"}
    with pytest.raises(ConfigError, match="already exists and is not empty"):
        with hio.staged_dir(out):
            pass
    with hio.staged_dir(out, force=True) as tmp:
        (tmp / "b").write_text("b")
    assert files(out) == {"b": "b"}
    # when the final move fails, the folder that was there is put back
    monkeypatch.setattr(hio, "rename_noreplace", lambda src, dst: (_ for _ in ()).throw(
        OSError(5, "Input/output error")))
    with pytest.raises(OSError):
        with hio.staged_dir(out, force=True) as tmp:
            (tmp / "c").write_text("c")
    assert files(out) == {"b": "b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ------------------------------------------------------------------ the CLI
class InterruptAt:
    """The scratch backend, but its Nth train_step raises KeyboardInterrupt (Ctrl-C)."""

    at = 5

    def __new__(cls, spec, optimizer):
        from scratch import MLP
        from scratch.optimizers import make_optimizer

        class Interrupted(MLP):
            steps = 0

            def train_step(self, x, y):
                self.steps += 1
                if self.steps == cls.at:
                    raise KeyboardInterrupt
                return super().train_step(x, y)

        return Interrupted(spec.dims, spec.activation, spec.dtype, spec.seed,
                           optimizer=make_optimizer(**optimizer.to_dict()))


def test_train_interrupted_keeps_the_finished_epochs_and_says_where(tmp_path, capsys,
                                                                   monkeypatch):
    import json

    import pandas as pd

    monkeypatch.setattr(InterruptAt, "at", 5)  # iris, 120 training rows, batch 50: 3 steps
    out = tmp_path / "run"
    code = main(["train", "--dataset", "iris", "--dims", "4,5,3", "--batch-size", "50",
                 "--epochs", "4", "--quiet", "--out", str(out),
                 "--backends", "scratch,tests.test_io:InterruptAt"])
    err = capsys.readouterr().err
    partial = tmp_path / "run.partial"
    assert code == 130
    assert err == f"nn-harness train: interrupted; partial results are in {partial}\n"
    assert not out.exists()
    history = pd.read_csv(partial / "history.csv")
    assert sorted(set(history["epoch"])) == [1]  # epoch 1 finished, epoch 2 did not
    assert set(history["backend"]) == {"scratch", "tests.test_io:InterruptAt", "difference"}
    summary = json.loads((partial / "summary.json").read_text())
    assert summary["complete"] is False and summary["epochs_done"] == 1
    assert summary["config"]["dataset"] == "iris"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.partial"]


def test_cv_interrupted_keeps_the_finished_folds(tmp_path, capsys, monkeypatch):
    import json

    import pandas as pd

    monkeypatch.setattr(InterruptAt, "at", 3)  # each fold trains a fresh model
    out = tmp_path / "cv"
    calls = {"n": 0}
    real_new = InterruptAt.__new__

    def second_fold_only(cls, spec, optimizer):
        calls["n"] += 1
        model = real_new(cls, spec, optimizer)
        if calls["n"] <= 2:  # the contract preflight's model, then fold 1's
            model.steps = -10**9  # fold 1 runs through
        return model

    monkeypatch.setattr(InterruptAt, "__new__", second_fold_only)
    code = main(["cv", "--dataset", "iris", "--dims", "4,5,3", "--folds", "3", "--epochs",
                 "2", "--batch-size", "50", "--quiet", "--out", str(out),
                 "--backends", "scratch,tests.test_io:InterruptAt"])
    err = capsys.readouterr().err
    partial = tmp_path / "cv.partial"
    assert code == 130
    assert err == f"nn-harness cv: interrupted; partial results are in {partial}\n"
    folds = pd.read_csv(partial / "folds.csv")
    assert list(folds["fold"]) == [1, 1]
    config = json.loads((partial / "config.json").read_text())
    assert config["complete"] is False and config["folds_done"] == 1
    assert not out.exists()


class SlowScratch:
    """The scratch backend, slowed down: 0.05 s per training step (for the signal test)."""

    def __new__(cls, spec, optimizer):
        from scratch import MLP
        from scratch.optimizers import make_optimizer

        class Slow(MLP):
            def train_step(self, x, y):
                time.sleep(0.05)
                return super().train_step(x, y)

        return Slow(spec.dims, spec.activation, spec.dtype, spec.seed,
                    optimizer=make_optimizer(**optimizer.to_dict()))


def test_sigterm_is_handled_like_ctrl_c_everywhere(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "train", "--dataset", "iris", "--dims", "4,5,3",
         "--batch-size", "40", "--epochs", "200", "--quiet", "--out", str(out),
         "--backends", "scratch,tests.test_io:SlowScratch"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until an epoch has been kept
            staged = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
            if staged and (staged[0] / "summary.json").exists():
                break
            time.sleep(0.05)
        else:
            pytest.fail("training did not get through an epoch")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = tmp_path / "run.partial"
    assert proc.returncode == 130, stderr
    assert stderr == f"nn-harness train: interrupted (SIGTERM); partial results are in " \
                     f"{partial}\n"
    assert (partial / "history.csv").exists() and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.partial"]


class NaNInFoldTwo:
    """The scratch backend; in the second model built, every loss is NaN."""

    built = 0

    def __new__(cls, spec, optimizer):
        from scratch import MLP
        from scratch.optimizers import make_optimizer

        cls.built += 1
        broken = cls.built == 2

        class Model(MLP):
            def train_step(self, x, y):
                loss = super().train_step(x, y)
                return float("nan") if broken else loss

        return Model(spec.dims, spec.activation, spec.dtype, spec.seed,
                     optimizer=make_optimizer(**optimizer.to_dict()))


def test_a_numerical_failure_in_cv_keeps_the_folds_before_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(NaNInFoldTwo, "built", -1)  # the contract preflight builds one first
    out = tmp_path / "cv"
    code = main(["cv", "--dataset", "iris", "--dims", "4,5,3", "--folds", "3", "--epochs",
                 "1", "--quiet", "--out", str(out), "--backends",
                 "scratch,tests.test_io:NaNInFoldTwo"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("nn-harness cv: numerical failure: fold 2 of 3:")
    assert err.endswith(f"; partial results are in {tmp_path / 'cv.partial'}\n")
    assert err.count("\n") == 1
    assert (tmp_path / "cv.partial" / "folds.csv").exists() and not out.exists()


def test_a_second_run_for_the_same_out_is_refused_when_it_starts(tmp_path):
    out = tmp_path / "reports" / "r"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out.parent.mkdir()
        hio.lock_path(out).write_text(f"{other.pid} report\n")
        ran = []
        with pytest.raises(ConfigError, match=rf"being written by another run \(process {other.pid}\)"):
            with hio.staged_dir(out, what="report"):
                ran.append(1)  # pragma: no cover - the claim is refused first
        assert ran == [] and not out.exists()
        assert hio.lock_path(out).read_text().startswith(str(other.pid))  # theirs, untouched
        assert sorted(p.name for p in out.parent.iterdir()) == [hio.lock_path(out).name]
    finally:
        other.kill()
        other.wait()
    # its process gone: the lock is stale and taken over; released when done
    with hio.staged_dir(out, what="report") as tmp:
        assert hio.lock_path(out).read_text().split()[0] == str(os.getpid())
        (tmp / "a.txt").write_text("x")
    assert (out / "a.txt").read_text() == "x" and not hio.lock_path(out).exists()


def test_the_report_command_refuses_a_claimed_out_before_any_stage(tmp_path, capsys):
    out = tmp_path / "r"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        hio.lock_path(out).write_text(f"{other.pid} report\n")
        code = main(["report", "--dataset", "iris", "--dims", "4,8,3", "--epochs", "1",
                     "--out", str(out)])
    finally:
        other.kill()
        other.wait()
    err = capsys.readouterr().err
    assert code == 2 and "being written by another run" in err
    assert "Traceback" not in err and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == [hio.lock_path(out).name]
    assert "[1/" not in err  # no stage started
