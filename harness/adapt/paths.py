"""Where an array lives in someone else's code, written as the code itself reads it.

A path is the expression after ``self``: ``weights[0]``, ``net.biases[2]``,
``layers[3].W``, ``params['W1']`` (or ``params[W1]``), ``['W1']`` for the item of the
object the path starts from (a dict of gradients a method returned). A trailing ``.T``
says the code stores the transpose of the canonical array (``(out, in)`` weights).

:func:`parse` turns the text into steps, :func:`read` and :func:`write` follow them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import ConfigError

_STEP = re.compile(r"""\.?([A-Za-z_]\w*)|\[\s*(-?\d+|'[^']*'|"[^"]*"|[A-Za-z_]\w*)\s*\]""")


@dataclass(frozen=True)
class Path:
    """A parsed path: ``steps`` of ``("attr", name)`` or ``("item", key)``, and whether the
    code keeps the array transposed (a trailing ``.T``)."""

    text: str
    steps: tuple[tuple[str, object], ...]
    transposed: bool = False


def parse(text: str) -> Path:
    """The steps of ``text`` (``layers[2].W``, ``params['W1']``, ``weights[0].T``).

    Raises
    ------
    ConfigError
        When ``text`` is not a chain of attributes and ``[index]`` items.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"a parameter's path must be text such as `weights[0]` or "
                          f"`params['W1']`, got {text!r}")
    body, transposed = text.strip(), False
    if body.endswith(".T"):
        body, transposed = body[:-2], True
    steps, at = [], 0
    while at < len(body):
        match = _STEP.match(body, at)
        if match is None or (match.group(1) and at > 0 and body[at] != "."):
            raise ConfigError(f"cannot read the path {text!r} at {body[at:]!r}: a path is "
                              f"attributes and [index] items, e.g. `layers[2].W`, "
                              f"`params['W1']`")
        name, key = match.groups()
        if name is not None:
            steps.append(("attr", name))
        elif key[0] in "'\"":
            steps.append(("item", key[1:-1]))
        else:
            steps.append(("item", int(key) if key.lstrip("-").isdigit() else key))
        at = match.end()
    if not steps:
        raise ConfigError(f"the path {text!r} names no attribute or item")
    return Path(text, tuple(steps), transposed)


def _step(obj, kind: str, key):
    return getattr(obj, key) if kind == "attr" else obj[key]


def read(root, path: Path):
    """The object at ``path`` from ``root`` (as the code holds it, not transposed)."""
    obj = root
    for kind, key in path.steps:
        obj = _step(obj, kind, key)
    return obj


def write(root, path: Path, value) -> None:
    """Put ``value`` at ``path`` from ``root``: ``setattr`` or item assignment on the
    object the last step belongs to (a list entry, a dict entry, an attribute)."""
    obj = root
    for kind, key in path.steps[:-1]:
        obj = _step(obj, kind, key)
    kind, key = path.steps[-1]
    if kind == "attr":
        setattr(obj, key, value)
    else:
        obj[key] = value
