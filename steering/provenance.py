"""The metadata that pins an artefact (vector, condition, soft thoughts) to the model it was made on."""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .backends import Backend, backend_for
from .sites import LAYER_CONVENTION, POINT


def provenance(model: Any, *, layer_path: str | None = None, remote: bool = False, **extra: Any) -> dict[str, Any]:
    """Model id, revision, architecture, sizes, site, basis, weights fingerprint, backend and library version.

    ``remote=True`` leaves the fingerprint out (a hosted model's weights stay where they are).
    """
    backend: Backend = backend_for(model)
    info = backend.info(model, layer_path)
    return {
        "model": info.name,
        "revision": info.revision,
        "architecture": info.architecture,
        "model_type": info.model_type,
        "hidden_size": info.hidden_size,
        "n_layers": info.n_layers,
        "site": POINT,
        "layer_convention": LAYER_CONVENTION,
        "basis": backend.basis(model),
        "fingerprint": None if remote else backend.fingerprint(model),
        "backend": backend.NAME,
        "library_version": __version__,
        **extra,
    }
