"""Gradient checks: finite differences, torch.autograd, and telling a kink from a wrong gradient."""
