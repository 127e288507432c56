"""Primal search: LP rounding, CP-SAT runs and large-neighbourhood search."""
