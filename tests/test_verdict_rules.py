"""docs/verdicts.md names the constants of every verdict rule: each must exist in the code
with the value the page states, and every rule module's constant must be on the page."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "verdicts.md"
NAMED = re.compile(r"`(harness(?:\.\w+)+)\.(\w+(?:\.\w+)?) = ([^`]+)`")


def _named():
    return NAMED.findall(PAGE.read_text())


def test_the_page_names_constants():
    assert len(_named()) >= 15


@pytest.mark.parametrize("module,name,value", _named(), ids=lambda v: str(v))
def test_each_named_constant_has_the_stated_value(module, name, value):
    parts = f"{module}.{name}".split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the longest prefix that is a module
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
            break
        except ImportError:
            continue
    for part in parts[cut:]:
        obj = getattr(obj, part)
    assert obj == ast.literal_eval(value), f"{module}.{name} is {obj!r}, the page says {value}"


def test_the_rule_constants_of_the_code_are_all_on_the_page():
    from harness.compare import closeness, dropout, excusal, stress
    from harness.training import trajectory

    text = PAGE.read_text()
    for module, names in ((closeness, ["ARBITER_MULTIPLIER", "ARBITER_FLOOR_ULPS"]),
                          (excusal, ["EXCUSED_SHARE_LIMIT"]), (dropout, ["DRAWS", "SIGMAS"]),
                          (stress, ["LARGE_LOGIT", "TINY_GRADIENT", "LARGE_NORM",
                                    "BASE_SPREAD_MULTIPLIER"]),
                          (trajectory, ["SPREAD_MULTIPLIER", "SPREAD_WINDOW", "PARAM_WINDOW",
                                        "WITNESSES", "DECORRELATED"])):
        for name in names:
            assert f"`{module.__name__}.{name} = " in text, f"{module.__name__}.{name}"
