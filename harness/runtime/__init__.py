"""The run's surroundings: the machine, thread counts, progress on stderr, JSON-safe values and integer validation."""
