"""The exceptions this library raises.

Every error is a :class:`SteeringError`; each subclass also inherits the builtin that fits,
so ``except ValueError`` keeps working for callers who do not know this library.
"""

from __future__ import annotations


class SteeringError(Exception):
    """Base class of every error raised by ``steering``."""


class PairError(SteeringError, ValueError):
    """Contrastive pairs that cannot be used (empty, malformed, unreadable)."""


class ShapeMismatchError(SteeringError, ValueError):
    """A vector does not fit the model (hidden size, layer count) or another vector."""


class LayerNotFoundError(SteeringError, LookupError):
    """The model's decoder layers could not be located, or a layer index is out of range."""


class UnsupportedModelError(SteeringError, TypeError):
    """A model no backend adapter handles, or one whose backend lacks the feature asked for."""


class UnknownOptionError(SteeringError, ValueError):
    """A name that is not among the known choices (method, position, scope, operator, format)."""


class InvalidArgumentError(SteeringError, ValueError):
    """An argument of the wrong type, out of range, empty or not finite (a strength of ``nan``, ``k=0``)."""


class DegenerateVectorError(SteeringError, ValueError):
    """A direction too small to steer with (identical pairs give a zero vector)."""


class VectorFileError(SteeringError, ValueError):
    """A vector file that is not safetensors, or lacks this library's metadata."""


class ScopeError(SteeringError, RuntimeError):
    """A steering scope cannot be evaluated for the forward pass it was asked about."""


class VectorNotFoundError(SteeringError, LookupError):
    """A named vector is not in the registry."""


class RegistryError(SteeringError, ValueError):
    """A registry index or file that is malformed, unsafe, or does not match its checksum."""


class ListedFileMissingError(VectorNotFoundError):
    """A file the index lists is not there (a concurrent writer may have just replaced it)."""


class DownloadError(SteeringError, ConnectionError):
    """A remote registry could not be reached or served a bad response."""


class UnreachableError(DownloadError):
    """The server could not be reached, or stopped answering in time (a cached copy may stand in)."""


class OfflineError(SteeringError, ConnectionError):
    """Offline mode was asked for, and what is needed is not in the local cache."""


class CalibrationError(SteeringError, ValueError):
    """No strength meets the calibration target (e.g. the KL budget is out of the vector's reach)."""


class ModelFileError(SteeringError, OSError):
    """A model file that is missing, incomplete or not the pinned one (the message says how to fetch it)."""


class MissingDependencyError(SteeringError, ImportError):
    """An optional dependency a feature needs is not installed (the message names the extra)."""


def require(module: str, extra: str, feature: str) -> object:
    """Import ``module`` for ``feature``, or say which extra to install.

    Examples:
        >>> require("json", "none", "a doctest").__name__
        'json'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"{feature} needs the {module.split('.')[0]!r} package: pip install 'steering[{extra}]'."
        ) from None
