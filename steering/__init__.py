"""steering: activation steering for reasoning language models.

Examples:
    >>> import steering
    >>> steering.Pair("Q: 2+2?", positive=" 4", negative=" Let me think. 2+2 is 4.").positive
    ' 4'
"""

from . import sweep as _sweep_alias  # noqa: F401  (loaded first, so the name below stays the function)
from ._version import __version__
from .apply import Steering, attach, steer
from .build_pairs import build_pairs
from .calibrate import calibrate
from .errors import SteeringError
from .evaluate.sweep import sweep
from .extract import extract
from .markers import Tokens
from .pairs import Pair, load_pairs, save_pairs
from .registry import Registry, pull, push
from .scopes import Span, Window
from .vector import SteeringVector

__all__ = [
    "Pair",
    "Registry",
    "Span",
    "Steering",
    "SteeringError",
    "SteeringVector",
    "Tokens",
    "Window",
    "__version__",
    "attach",
    "build_pairs",
    "calibrate",
    "extract",
    "load_pairs",
    "pull",
    "push",
    "save_pairs",
    "steer",
    "sweep",
]
