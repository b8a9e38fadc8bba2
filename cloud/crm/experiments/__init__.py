"""Experiments: assignment, sample size and analysis (issue 18)."""
