"""Alias of :mod:`steering.evaluate.generation`, kept for existing imports."""

from .evaluate.generation import Generation, generate

__all__ = ["Generation", "generate"]
