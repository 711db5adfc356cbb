"""forward returns the softmax probabilities (what predict_proba would) instead of logits."""

from tests.gallery.base import Net as _Base


class Net(_Base):
    def output(self, logits):
        return self.softmax(logits)
