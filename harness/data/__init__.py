"""Data and weights: data sets, weight files, and writes that are never half-written."""
