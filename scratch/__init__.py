"""A multi-class MLP written from scratch on NumPy (no torch anywhere in here).

Modules, one concept each: :mod:`scratch.activations`, :mod:`scratch.losses`,
:mod:`scratch.optimizers` (fast, in place) beside :mod:`scratch.optimizers_reference`
(the update rules as their formulas, to read first), :mod:`scratch.schedules` (learning-rate
schedules and gradient clipping), :mod:`scratch.params` (the parameter layout),
:mod:`scratch.reference` (the plain model, to read first), :mod:`scratch.model`.
"""

from scratch.model import MLP
from scratch.optimizers import SGD, Adagrad, Adam, AdamW, RMSprop

__all__ = ["MLP", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]
