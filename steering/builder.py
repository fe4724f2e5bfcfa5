"""Alias of :mod:`steering.build_pairs`, kept for existing imports."""

from .build_pairs import build_pairs
from .pairs import save_pairs

__all__ = ["build_pairs", "save_pairs"]
