"""Alias of :mod:`steering.registry.push`, kept for existing imports."""

from .registry.push import push

__all__ = ["push"]
