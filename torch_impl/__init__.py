"""The PyTorch side: torch.nn model, autograd gradients, torch.optim optimizers."""

from torch_impl.model import TorchClassifier, TorchMLP, build_torch_optimizer

__all__ = ["TorchClassifier", "TorchMLP", "build_torch_optimizer"]
