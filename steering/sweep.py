"""Alias of :mod:`steering.evaluate.sweep`, kept for existing imports."""

from .evaluate.sweep import plot_sweep, sweep

__all__ = ["plot_sweep", "sweep"]
