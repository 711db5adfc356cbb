"""Calibration: how far the harness's verdicts can be trusted, measured both ways.

False alarms over random correct configurations, detection of a catalogue of
injected bugs, and the smallest single-entry gradient error the equivalence check
catches (:mod:`harness.calibrate.run`); ``nn-harness calibrate`` runs them all.
"""
