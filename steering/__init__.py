"""steering: activation steering for reasoning language models.

Examples:
    >>> import steering
    >>> steering.Pair("Q: 2+2?", positive=" 4", negative=" Let me think. 2+2 is 4.").positive
    ' 4'
"""

from ._version import __version__
from .apply import steer
from .builder import build_pairs
from .calibrate import calibrate
from .errors import SteeringError
from .extract import extract
from .hub import pull
from .markers import Tokens
from .pairs import Pair, load_pairs
from .registry import Registry
from .scopes import Span, Window
from .sweep import sweep
from .vector import SteeringVector

__all__ = [
    "Pair",
    "Registry",
    "Span",
    "SteeringError",
    "SteeringVector",
    "Tokens",
    "Window",
    "__version__",
    "build_pairs",
    "calibrate",
    "extract",
    "load_pairs",
    "pull",
    "steer",
    "sweep",
]
