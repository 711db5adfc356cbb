"""Training side by side on identical batches.

Trajectories, their judge, witnesses, cross-validation, plausibility.
"""
