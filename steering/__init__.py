"""steering: activation steering for reasoning language models.

Examples:
    >>> import steering
    >>> steering.Pair("Q: 2+2?", positive=" 4", negative=" Let me think. 2+2 is 4.").positive
    ' 4'
"""

from ._version import __version__
from .apply import Steering, attach, steer
from .build_pairs import build_pairs, own_pairs
from .calibrate import calibrate
from .conditions import Condition
from .conditions.fit import fit_condition
from .errors import SteeringError
from .evaluate import compare, measure, sweep
from .extract import extract
from .hooks import detach_all
from .markers import Tokens
from .pairs import Pair, load_pairs, save_pairs
from .registry import Registry, pull, push
from .scopes import Span, Window
from .vector import SteeringVector

__all__ = [
    "Condition",
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
    "compare",
    "detach_all",
    "extract",
    "fit_condition",
    "load_pairs",
    "measure",
    "own_pairs",
    "pull",
    "push",
    "save_pairs",
    "steer",
    "sweep",
]
