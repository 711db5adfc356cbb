"""The one complete command that passes: the flags given, with the convention search's
setting applied (:mod:`harness.diagnose.search`)."""

from __future__ import annotations

import argparse


def command_line(args, command: str, overrides: dict | None = None) -> str:
    """``nn-harness COMMAND ...``: the flags of ``args`` that differ from their defaults,
    with ``overrides`` (argparse destinations) applied, the backends and the optimizer's
    name, lr and weight decay always spelt out: a command that can be pasted."""
    parser = getattr(args, "command_parser", None)  # set by the subcommand's register()
    if parser is None:
        return f"nn-harness {command} (with the settings above)"
    overrides = dict(overrides or {})
    always = {"backends", "optimizer", "lr", "weight_decay"}
    words = ["nn-harness", command]
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "func", "command_parser"):
            continue
        value = overrides.pop(action.dest, getattr(args, action.dest, action.default))
        if isinstance(action, argparse._StoreTrueAction):
            words += [action.option_strings[0]] if value else []
        elif isinstance(action, argparse._StoreFalseAction):
            words += [action.option_strings[0]] if value is False else []
        elif value is not None and (value != action.default or action.dest in always):
            if isinstance(value, (list, tuple)):
                text = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
            else:
                text = f"{value:g}" if isinstance(value, float) else str(value)
            words += [action.option_strings[0], text]
    return " ".join(words)


def show_passing_command(args, command: str, result) -> None:
    """Turn the hint of the convention search into the one complete command that passes."""
    setting, hint = getattr(result, "passing", None), getattr(result, "passing_hint", None)
    if setting is None or hint not in result.hints:
        return
    cmd = command_line(args, command, setting.overrides())
    words = hint.split(": ", 1)[0] if hint.startswith("your class agrees") else hint
    result.hints[result.hints.index(hint)] = f"{words}; this command passes (rerun for real): {cmd}"
