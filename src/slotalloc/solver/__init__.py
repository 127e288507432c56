"""Solvers over compiled instances: first-come-first-served and the CP-SAT optimiser."""
