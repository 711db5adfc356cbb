"""The run's surroundings.

The machine, thread counts, progress on stderr, JSON-safe values and integer validation.
"""
