"""Start-up stays light: heavy libraries load only where a command needs them.

Checked in a fresh interpreter through ``sys.modules`` (never by timing).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["torch", "pandas", "matplotlib", "sklearn", "scipy"]


def loaded_after(code: str) -> set[str]:
    """Top-level module names loaded by ``code`` in a fresh interpreter."""
    probe = (f"{code}\nimport sys, json\n"
             f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_scratch_never_imports_torch():
    loaded = loaded_after("import scratch, scratch.model, scratch.reference, "
                          "scratch.activations, scratch.losses, scratch.optimizers")
    assert "torch" not in loaded
    assert not loaded & {"pandas", "matplotlib", "sklearn"}


@pytest.mark.parametrize("code", [
    "import harness",
    "import harness\nfrom harness.cli import build_parser\nbuild_parser()",
    "import harness.bench",
    "import harness.cli.bench",
])
def test_the_parser_and_harness_import_no_heavy_library(code):
    loaded = loaded_after(code)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_help_loads_no_heavy_library():
    code = ("from harness.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "try:\n    main(['bench', '--help'])\nexcept SystemExit:\n    pass")
    loaded = loaded_after(code)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_a_training_step_of_the_scratch_backend_loads_no_torch():
    code = ("import numpy as np\n"
            "from harness import ModelSpec, make_backend\n"
            "m = make_backend('scratch', ModelSpec((4, 3, 2)))\n"
            "m.train_step(np.zeros((5, 4)), np.zeros(5, dtype=int))")
    assert "torch" not in loaded_after(code)


def test_the_default_data_set_loads_without_importing_scikit_learn():
    """`check`, `train` and `report` default to digits; its bundled file is read
    directly (scikit-learn's import alone takes about a second)."""
    loaded = loaded_after("from harness.data.datasets import load_dataset\nload_dataset('digits')")
    assert not loaded & {"sklearn", "scipy", "pandas", "torch"}
