"""Publish a vector into a registry: a local folder, or a Hugging Face Hub repository (``hf://org/repo``).

For the Hub, the current ``index.json`` is fetched, the new entry is written beside it in a
temporary folder (exactly as :meth:`Registry.save` writes a local one), and the changed files plus
the new index go up in one commit through ``huggingface_hub`` (token from ``HF_TOKEN`` or its login).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import DownloadError, RegistryError
from ..scopes import ScopeSpec
from ..vector import SteeringVector
from .index import Entry
from .local import Registry
from .sources import HUB_PREFIX, HubSpec, hub_kwargs


def push(
    vector: SteeringVector,
    name: str,
    to: str | os.PathLike[str],
    *,
    model: str | None = None,
    card: str | None = None,
    recommended_strength: float | None = None,
    recommended_scope: ScopeSpec | None = None,
    overwrite: bool = False,
    token: str | None = None,
) -> Entry:
    """Add ``vector`` as ``name`` to the registry ``to`` (a folder or ``hf://org/repo``); returns its entry."""
    to = str(to)
    save: dict[str, Any] = dict(
        model=model,
        card=card,
        recommended_strength=recommended_strength,
        recommended_scope=recommended_scope,
        overwrite=overwrite,
    )
    if to.startswith(("http://", "https://")):
        raise RegistryError(
            f"Cannot push to {to!r}: a static HTTPS registry is read-only. Push into the folder your server "
            "serves (a local path), or to a Hub repository (hf://org/repo)."
        )
    if not to.startswith(HUB_PREFIX):
        return Registry(to).save(vector, name, **save)

    from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    hub = HubSpec.parse(to)
    env = hub_kwargs()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            current = hf_hub_download(
                hub.repo, "index.json", revision=hub.revision, force_download=True, token=token, **env
            )
            shutil.copyfile(current, Path(tmp) / "index.json")
        except EntryNotFoundError:
            pass  # an empty repository: this push creates the registry
        except (HfHubHTTPError, OSError, ValueError) as e:  # HTTP errors; no connection (after retries)
            raise DownloadError(f"hf://{hub.repo}: could not read index.json ({e}).") from None
        entry = Registry(tmp).save(vector, name, **save)
        paths = [rec["path"] for rec in entry.files.values()]
        paths += [entry.card["path"]] if entry.card else []
        ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(Path(tmp) / p)) for p in [*paths, "index.json"]]
        try:
            HfApi(endpoint=env["endpoint"], token=token).create_commit(
                hub.repo, ops, commit_message=f"Add steering vector {entry.model}/{name}", revision=hub.revision
            )
        except HfHubHTTPError as e:
            raise DownloadError(f"hf://{hub.repo}: the commit was refused ({e}).") from None
    return entry
