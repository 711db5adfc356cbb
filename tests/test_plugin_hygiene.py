"""Plug-ins behave: their prints stay out of --json, a file named after one of the
project's packages is refused, a missing module says where it was looked for, a failing
constructor or import names the user's line, and gradcheck takes the optimizer flags."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from harness import ModelSpec, OptimizerSpec, ProtocolError, make_backend
from harness.cli import main
from harness.model.userframe import describe_exception, user_frame

IRIS = ["--dataset", "iris", "--dims", "4,8,3"]
SGD = ["--optimizer", "sgd", "--lr", "0.1", "--weight-decay", "0"]


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A fresh current folder for the user's files; their modules are forgotten after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("hyg_") or name == "scratch_user":
            del sys.modules[name]


def write(folder, name, source):
    (folder / name).write_text(textwrap.dedent(source).lstrip())


def test_prints_of_a_plug_in_go_to_stderr_and_json_stays_valid(here, capsys):
    write(here, "hyg_noisy.py", """
        print("hello from the import")
        from torch_impl import TorchClassifier

        class Net(TorchClassifier):
            def __init__(self, spec, optimizer):
                print("building")
                super().__init__(spec, optimizer)

            def forward(self, x):
                print("forward!")
                return super().forward(x)

            def train_step(self, x, y):
                print("step!")
                return super().train_step(x, y)
    """)
    code = main(["check", *IRIS, *SGD, "--backends", "torch,hyg_noisy:Net", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)  # nothing else on stdout
    assert result["passed"] is True
    for text in ("hello from the import", "building", "forward!", "step!"):
        assert text in captured.err
    print("after")  # stdout is itself again once the command is done
    assert capsys.readouterr().out == "after\n"


def test_a_user_file_named_after_a_project_package_is_refused(here, capsys):
    write(here, "scratch.py", """
        class MyMLP:
            def __init__(self, spec, optimizer):
                self.dims = spec.dims
    """)
    code = main(["check", *IRIS, "--backends", "torch,scratch:MyMLP"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == ("nn-harness check: error: backend 'scratch:MyMLP': your scratch.py in the "
                   "current folder has the name of nn-harness's own package 'scratch', which "
                   "it would hide (or be hidden by); rename it, e.g. to my_scratch.py, and "
                   "give 'my_scratch:MyMLP'\n")


def test_a_project_package_prefix_without_the_class_says_to_rename(here):
    with pytest.raises(ProtocolError, match="has no attribute 'MyMLP'; 'scratch' is one of "
                                            "nn-harness's own packages"):
        make_backend("scratch:MyMLP", ModelSpec((4, 3)))


def test_the_projects_own_classes_keep_working_as_plug_ins(here):
    model = make_backend("torch_impl:TorchClassifier", ModelSpec((4, 3)))
    assert model.dims == (4, 3)


def test_a_missing_module_names_where_it_was_looked_for(here, capsys):
    code = main(["check", *IRIS, "--backends", "torch,hyg_nowhere:Net"])
    err = capsys.readouterr().err
    assert code == 2
    assert (f"cannot import module 'hyg_nowhere' for backend 'hyg_nowhere:Net': no "
            f"hyg_nowhere.py or package hyg_nowhere/ was found; looked in the current folder "
            f"({here}), the folders on PYTHONPATH and the installed packages; run nn-harness "
            f"from the folder that holds it, or add that folder to PYTHONPATH") in err


def test_a_constructor_that_raises_names_the_users_line_and_exits_2(here, capsys):
    write(here, "hyg_angry.py", """
        class Net:
            def __init__(self, spec, optimizer):
                if optimizer.name != "sgd":
                    raise ValueError("only plain SGD, please")
                self.dims = spec.dims
    """)
    code = main(["check", *IRIS, "--backends", "torch,hyg_angry:Net"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == ("nn-harness check: error: could not build `hyg_angry:Net`: ValueError: "
                   "only plain SGD, please (at hyg_angry.py:4: `raise ValueError(\"only plain "
                   "SGD, please\")`)\n")


def test_the_users_innermost_line_not_numpys(here):
    write(here, "hyg_numpy.py", """
        import numpy as np

        class Net:
            def __init__(self, spec, optimizer):
                self.W = np.zeros((spec.dims[0], -1))
    """)
    with pytest.raises(ProtocolError) as err:
        make_backend("hyg_numpy:Net", ModelSpec((4, 3)))
    message = str(err.value)
    assert message.startswith("could not build `hyg_numpy:Net`: ValueError: negative dimensions")
    assert message.endswith("(at hyg_numpy.py:5: `self.W = np.zeros((spec.dims[0], -1))`)")
    assert user_frame(err.value.__cause__).lineno == 5


def test_an_import_that_fails_inside_the_users_module_names_its_line(here):
    write(here, "hyg_deps.py", """
        import math
        import hyg_not_installed_anywhere
    """)
    with pytest.raises(ProtocolError) as err:
        make_backend("hyg_deps:Net", ModelSpec((4, 3)))
    assert str(err.value) == (
        "cannot import module 'hyg_deps' for backend 'hyg_deps:Net': ModuleNotFoundError: No "
        "module named 'hyg_not_installed_anywhere' (at hyg_deps.py:2: `import "
        "hyg_not_installed_anywhere`)")


def test_describe_exception_skips_the_harness_frames_and_needs_no_traceback():
    try:
        OptimizerSpec(lr=-1)  # raised in harness/model/specs.py: the caller here is the user
    except ValueError as exc:
        assert describe_exception(exc).startswith("ConfigError: `lr` must be > 0, got -1 (at ")
        assert user_frame(exc).line == "OptimizerSpec(lr=-1)  # raised in harness/model/specs.py: " \
                                       "the caller here is the user"
    assert describe_exception(ValueError("two\n  lines")) == "ValueError: two lines"


ADAMW_ONLY = """
    from scratch import MLP
    from scratch.optimizers import make_optimizer

    class Net(MLP):
        def __init__(self, spec, optimizer):
            if optimizer.name != "adamw":
                raise ValueError(f"this network trains with AdamW only, got {optimizer.name}")
            super().__init__(spec.dims, spec.activation, spec.dtype, spec.seed,
                             optimizer=make_optimizer(**optimizer.to_dict()))
"""


def test_gradcheck_takes_the_optimizer_flags(here, capsys):
    write(here, "hyg_adamw.py", ADAMW_ONLY)
    argv = ["gradcheck", *IRIS, "--backend", "hyg_adamw:Net", "--samples", "16"]
    assert main(argv) == 2  # undeclared: built with sgd, the optimizer every class takes
    assert "this network trains with AdamW only, got sgd" in capsys.readouterr().err
    assert main(argv + ["--optimizer", "adam"]) == 2  # a flag given is what it is built with
    assert "this network trains with AdamW only, got adam" in capsys.readouterr().err
    assert main(argv + ["--optimizer", "adamw", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["passed"] is True and out["config"]["optimizer"]["name"] == "adamw"
