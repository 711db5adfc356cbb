"""A multi-class MLP written from scratch on NumPy (no torch anywhere in here).

Modules, one concept each: :mod:`scratch.activations`, :mod:`scratch.losses`,
:mod:`scratch.optimizers`, :mod:`scratch.params` (the parameter layout),
:mod:`scratch.reference` (the plain model, to read first), :mod:`scratch.model`.
"""

from scratch.model import MLP
from scratch.optimizers import SGD, Adam, AdamW

__all__ = ["MLP", "SGD", "Adam", "AdamW"]
