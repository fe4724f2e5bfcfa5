"""steering: activation steering for reasoning language models.

>>> import steering
>>> steering.Pair("Q: 2+2?", positive=" 4", negative=" Let me think. 2+2 is 4.").positive
' 4'
"""

from ._version import __version__
from .apply import steer
from .errors import SteeringError
from .extract import extract
from .markers import Tokens
from .pairs import Pair, load_pairs
from .scopes import Span, Window
from .vector import SteeringVector

__all__ = [
    "Pair",
    "Span",
    "SteeringError",
    "SteeringVector",
    "Tokens",
    "Window",
    "__version__",
    "extract",
    "load_pairs",
    "steer",
]
