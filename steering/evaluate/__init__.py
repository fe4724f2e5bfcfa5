"""Measure reasoning itself, not only the final answer.

- :func:`early_answering` (Lanham et al. 2023): truncate the chain, force an answer; AOC.
- :func:`substitution` with :func:`filler`, a paraphraser, or :func:`add_mistake` (Lanham et al.;
  Lobo et al. 2024): how often the answer survives a changed chain.
- :func:`information_gain` (arXiv 2506.02126): log-probability of the gold answer per step.
- :class:`ThoughtSwitchPenalty` and :func:`underthinking_score` (TIP, arXiv 2501.18585).
- :func:`length_curve`: accuracy against chain length.
"""

from .faithfulness import EarlyAnswering, Substitution, add_mistake, early_answering, filler, substitution
from .information import InformationGain, information_gain
from .length import length_curve
from .tip import ThoughtSwitchPenalty, underthinking_score

__all__ = [
    "EarlyAnswering",
    "InformationGain",
    "Substitution",
    "ThoughtSwitchPenalty",
    "add_mistake",
    "early_answering",
    "filler",
    "information_gain",
    "length_curve",
    "substitution",
    "underthinking_score",
]
