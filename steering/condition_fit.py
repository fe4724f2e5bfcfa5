"""Alias of :mod:`steering.conditions.fit`, kept for existing imports."""

from .conditions.fit import best_threshold, fit_condition

__all__ = ["best_threshold", "fit_condition"]
