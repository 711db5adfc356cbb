"""Training side by side on identical batches: trajectories, their judge, witnesses, cross-validation, plausibility."""
