"""What a model says about how it is defined: its hidden activation and its loss conventions.

The gradient checks recompute or re-evaluate a model's loss, so they must know what
that loss is. Built-in models name it: the scratch classes (``scratch.MLP``,
``scratch.reference.ReferenceMLP``) carry ``activation``, ``loss_reduction``, ``l2`` and
``l2_on``; ``torch_impl.TorchClassifier`` keeps its ``spec``
(:class:`harness.model.specs.ModelSpec`) and ``optimizer_spec``
(:class:`harness.model.specs.OptimizerSpec`). A user's class may define the same attributes;
one that does not is taken to use the defaults: a mean cross-entropy over the batch,
no L2 term in the loss.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from harness.errors import ConfigError

LOSS_REDUCTIONS = ("mean", "sum")
L2_ON = ("all", "weights")


@dataclass(frozen=True)
class LossConventions:
    """How a model's loss is defined beyond the cross-entropy of its logits.

    Attributes
    ----------
    loss_reduction : {"mean", "sum"}
        How the per-sample cross-entropies are combined over the batch.
    l2 : float
        Coefficient of the L2 term in the loss, ``0.5 * l2 * sum ||p||^2`` (0: none).
    l2_on : {"all", "weights"}
        The parameters the term covers: every one, or the weights ``W{i}`` only.
    loss, loss_outputs, mse_half
        The loss function and its conventions, as :class:`harness.model.specs.ModelSpec`.
    """

    loss_reduction: str = "mean"
    l2: float = 0.0
    l2_on: str = "all"
    loss: str = "cross_entropy"
    loss_outputs: str = "mean"
    mse_half: bool = False

    def penalised(self, name: str) -> bool:
        """Whether the parameter ``name`` (``W{i}`` or ``b{i}``) is in the L2 term."""
        return bool(self.l2) and (self.l2_on == "all" or name.startswith("W"))


def activation_of(model) -> str | None:
    """The hidden activation's name, when the model says (``.activation`` or ``.spec``)."""
    act = getattr(model, "activation", None)
    if not isinstance(act, str):
        act = getattr(getattr(model, "spec", None), "activation", None)
    return act if isinstance(act, str) else None


def loss_conventions(model) -> LossConventions:
    """The loss conventions ``model`` names, defaults for what it does not name.

    Read from the model's own ``loss_reduction``, ``l2`` and ``l2_on``, else from its
    ``spec.loss_reduction`` and ``optimizer_spec`` (``weight_decay`` when
    ``weight_decay_in`` is ``"loss"``, ``weight_decay_on``).

    Raises
    ------
    ConfigError
        A named convention is not one of the allowed choices.
    """
    spec = getattr(model, "spec", None)
    opt = getattr(model, "optimizer_spec", None)
    reduction = getattr(model, "loss_reduction", None)
    if reduction is None:
        reduction = getattr(spec, "loss_reduction", "mean")
    l2 = getattr(model, "l2", None)
    if l2 is None:  # torch.optim's reading of a spec: decay in the loss only when named so
        in_loss = getattr(opt, "weight_decay_in", "optimizer") == "loss"
        l2 = getattr(opt, "weight_decay", 0.0) if in_loss else 0.0
    l2_on = getattr(model, "l2_on", None)
    if l2_on is None:
        l2_on = getattr(opt, "weight_decay_on", "all")
    name = type(model).__name__
    if reduction not in LOSS_REDUCTIONS:
        raise ConfigError(f"`loss_reduction` of {name} must be one of "
                          f"{', '.join(LOSS_REDUCTIONS)}, got {reduction!r}")
    if l2_on not in L2_ON:
        raise ConfigError(f"`l2_on` of {name} must be one of {', '.join(L2_ON)}, got {l2_on!r}")
    if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not l2 >= 0:
        raise ConfigError(f"`l2` of {name} must be a number >= 0, got {l2!r}")
    loss, outputs, half = _loss_function(model, spec)
    return LossConventions(str(reduction), float(l2), str(l2_on), loss, outputs, half)


def _loss_function(model, spec) -> tuple[str, str, bool]:
    """``(loss, loss_outputs, mse_half)`` the model (or its spec) names; cross-entropy
    for a model that names none."""
    from harness.model.specs import LOSS_NAMES

    for source in (model, spec):
        loss = getattr(source, "loss", None)
        if isinstance(loss, str) and loss in LOSS_NAMES:
            return (loss, str(getattr(source, "loss_outputs", "mean")),
                    bool(getattr(source, "mse_half", False)))
    return "cross_entropy", "mean", False
