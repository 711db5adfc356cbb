"""The pytest plugin, run as a user would: a repository with mynet.py and a short test file."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MYNET = (ROOT / "tests" / "test_conformance.py").read_text().split("\n\n\nclass Wrong")[0]
MYNET = MYNET.replace("class NumpyMLP", "class MyMLP").replace(
    '"optimizers": ["sgd"]}', '"optimizers": ["sgd"]}\n    BUG = False').replace(
    "return (z > 0).astype(z.dtype) if self.act == \"relu\" else 1 - a * a",
    "return (z > 0).astype(z.dtype) if self.act == \"relu\" else 1 - a * (1 if self.BUG else a)")

USER_TESTS = '''\
import pytest
from harness.testing import assert_equivalent, parametrize_with_checks
from mynet import MyMLP


@parametrize_with_checks([MyMLP])
def test_mynet(network, check):
    check(network)


def test_fixtures(nnh_reference, nnh_candidate, nnh_data):
    X, y = nnh_data("iris", n_samples=12)
    assert_equivalent(nnh_reference, nnh_candidate, X, y, dims=(4, 5, 3), activation="tanh")
'''


def plugin_args() -> list[str]:
    """``-p harness.testing.plugin`` unless the installed entry point loads it already."""
    names = {e.value for e in importlib.metadata.entry_points(group="pytest11")}
    return [] if "harness.testing.plugin" in names else ["-p", "harness.testing.plugin"]


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(cwd)])}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rfs", *plugin_args(), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _repo(tmp_path: Path, bug: bool) -> Path:
    (tmp_path / "mynet.py").write_text(MYNET.replace("BUG = False", f"BUG = {bug}"))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_mynet.py").write_text(USER_TESTS)
    return tmp_path


def test_a_users_repository_gets_one_case_per_check_and_explained_failures(tmp_path):
    repo = _repo(tmp_path, bug=True)
    out = _pytest(repo, "tests", "--nnh-backend", "mynet:MyMLP", "-k",
                  "tanh-float64 or relu-float64 or contract or fixtures or gelu-float64")
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    summary = text.split("short test summary info")[1]
    failed = {line.split("::")[1].split(" ")[0] for line in summary.splitlines()
              if line.startswith("FAILED")}
    assert failed == {"test_mynet[MyMLP-gradients-tanh-float64]", "test_fixtures"}, text
    assert "MyMLP does not declare activation 'gelu'" in summary
    # the harness's own message at the user's line, not pytest's traceback of its internals
    failures = text.split("= FAILURES =")[1].split("short test summary")[0]
    assert "tests/test_mynet.py:8: HarnessAssertionError" in failures
    assert "grads['W0']" in failures and "quantities differ" in failures
    assert "conformance.py" not in failures and "def __call__" not in failures

def test_the_template_runs_green():
    out = _pytest(ROOT, str(ROOT / "examples" / "test_mynet_template.py"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert " passed" in out.stdout and " skipped" in out.stdout
    assert "no candidate backend: pass --nnh-backend" in out.stdout
    out = _pytest(ROOT, str(ROOT / "examples" / "test_mynet_template.py"), "--nnh-backend",
                  "mynet:MyMLP", "-k", "command_line")
    assert out.returncode == 0 and "1 passed" in out.stdout, out.stdout + out.stderr


def test_the_entry_point_is_declared():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["entry-points"]["pytest11"] == {"nn_harness": "harness.testing.plugin"}
