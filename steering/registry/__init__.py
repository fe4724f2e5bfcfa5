"""Vector registries: a local folder (:class:`Registry`), and sharing over HTTPS or the Hugging Face Hub.

- :mod:`~steering.registry.index`: the ``index.json`` schema, names, and checks of what it lists;
- :mod:`~steering.registry.local`: :class:`Registry`, a folder written atomically under a lock;
- :mod:`~steering.registry.sources`: folder / HTTPS / ``hf://`` sources and the environment;
- :mod:`~steering.registry.download`: bounded HTTP downloads;
- :mod:`~steering.registry.pull`: :func:`pull` (verified, cached, offline) and :func:`fetch_index`;
- :mod:`~steering.registry.push`: :func:`push` to a folder or a Hub repository (one commit).
"""

from ..cache import cache_dir
from .index import SCHEMA, SCHEMA_VERSION, Entry, find_entry, model_slug, sha256_file
from .local import Registry
from .pull import StaleCacheWarning, fetch_index, pull, pull_card
from .push import push
from .sources import is_offline

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "Entry",
    "Registry",
    "StaleCacheWarning",
    "cache_dir",
    "fetch_index",
    "find_entry",
    "is_offline",
    "model_slug",
    "pull",
    "pull_card",
    "push",
    "sha256_file",
]
