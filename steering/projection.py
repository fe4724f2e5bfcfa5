"""Alias of :mod:`steering.evaluate.projection`, kept for existing imports."""

from .evaluate.projection import Projection, plot_projection, project

__all__ = ["Projection", "plot_projection", "project"]
