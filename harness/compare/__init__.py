"""Comparing two implementations: element-wise closeness, tolerances, the equivalence check, counts and HTML forms."""
