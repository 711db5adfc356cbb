"""Comparing two implementations.

Element-wise closeness, tolerances, the equivalence check, counts and HTML forms.
"""
