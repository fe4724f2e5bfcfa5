"""Alias of :mod:`steering.registry.pull` (pulling shared vectors), kept for existing imports."""

from .registry.pull import StaleCacheWarning, fetch_index, pull, pull_card
from .registry.sources import cache_dir, is_offline

__all__ = ["StaleCacheWarning", "cache_dir", "fetch_index", "is_offline", "pull", "pull_card"]
