"""An optimizer's settings under the names the code gives them, and what it lacks.

The harness describes an optimizer with torch.optim's meanings
(:class:`~harness.model.specs.OptimizerSpec`: ``lr``, ``momentum``, ``weight_decay``,
...). Published code takes some of them under its own keyword names
(``learning_rate``, ``reg``, ``eta``) and has no others. :func:`code_settings` reads the
spec through a name map and refuses, in one line that names the setting, its value and
what the code has, every setting the code cannot follow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from harness.errors import ConfigError

#: the value of each setting that asks nothing of the code (a setting left at it is fine)
NEUTRAL = {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0, "lr_schedule": "none",
           "clip_grad_norm": None, "clip_grad_value": None}


def code_settings(optimizer, names: Mapping[str, str | tuple[str, Callable]],
                  optimizers=("sgd",), *, decay_in: str | tuple = "optimizer",
                  decay_on: str | tuple = "all") -> dict:
    """The code's keyword arguments for ``optimizer``.

    Parameters
    ----------
    optimizer : OptimizerSpec
    names : mapping
        Setting -> the code's name (``{"lr": "learning_rate", "weight_decay": "reg"}``),
        or -> ``(name, function)`` when the code's value is another number
        (``{"weight_decay": ("lmbda", lambda wd: wd * n)}``).
    optimizers : tuple of str
        The optimizers the code implements.
    decay_in, decay_on : str or tuple of str
        Where the code's weight decay acts (``"loss"`` or ``"optimizer"``) and on what
        (``"all"`` or ``"weights"``), or the places it can follow; a spec asking another
        place is refused.

    Raises
    ------
    ConfigError
        The optimizer, or a setting the code has not (not in ``names`` and not at its
        neutral value), or weight decay in another place than the code's.
    """
    if optimizer.name not in optimizers:
        raise ConfigError(f"this code has no {optimizer.name} optimizer (it has "
                          f"{', '.join(optimizers)})")
    lacking = [f"{key}={getattr(optimizer, key)!r}" for key, neutral in NEUTRAL.items()
               if key not in names and getattr(optimizer, key) != neutral]
    if lacking:
        has = ", ".join(names) or "none"
        raise ConfigError(f"this code has no setting for {', '.join(lacking)} (it takes "
                          f"{has})")
    if optimizer.weight_decay and "weight_decay" in names:
        ins = (decay_in,) if isinstance(decay_in, str) else tuple(decay_in)
        ons = (decay_on,) if isinstance(decay_on, str) else tuple(decay_on)
        if optimizer.weight_decay_in not in ins or optimizer.weight_decay_on not in ons:
            raise ConfigError(f"this code's weight decay is in the {' or '.join(ins)} on "
                              f"{' or '.join(ons)} parameters, not in the "
                              f"{optimizer.weight_decay_in} on {optimizer.weight_decay_on} "
                              f"(give --weight-decay-in {ins[0]} --weight-decay-on {ons[0]})")
    out = {}
    for key, target in names.items():
        value = getattr(optimizer, key)
        if isinstance(target, tuple):
            target, convert = target
            value = convert(value)
        out[target] = value
    return out
