"""L2 regularisation in the loss, (lambda/2) * sum ||W||^2, instead of weight decay in the
optimizer: ``Net`` penalises weights only, ``WithBiases`` every parameter."""

from tests.gallery.base import Net as _Base


class Net(_Base):
    penalise = ("W",)

    def penalty(self):
        lam = self.opt.weight_decay
        keys = [k for k in self.params if k[0] in self.penalise]
        loss = 0.5 * lam * sum((self.params[k] ** 2).sum() for k in keys)
        return loss, {k: lam * self.params[k] for k in keys}

    def decays(self, key):
        return False  # the penalty is in the loss already


class WithBiases(Net):
    penalise = ("W", "b")
