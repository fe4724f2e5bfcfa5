"""Alias of :mod:`steering.backends.nnsight_remote` (steered generation on hosted nnsight models)."""

from .backends.nnsight_remote import SCOPES, generate

__all__ = ["SCOPES", "generate"]
