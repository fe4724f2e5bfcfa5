"""Measurement: generation, sweeps, projections, and measures of reasoning itself, not only the answer.

- :func:`measure` / :func:`compare`: accuracy (bootstrap CI), tokens and thinking tokens, wall time,
  degeneration on any model; a paired comparison of a steered run with its baseline;
- :func:`generate`: batched generation with token ids, lengths and wall time; :func:`measure_generations`
  measures replies from another engine (llama-server); :func:`parse_boxed` reads a `\\boxed{}` answer;
- :func:`sweep` / :func:`best` / :func:`plot_sweep`: a metric over strengths and layers, the best row
  under bounds (e.g. fewest sampled tokens at accuracy within 2 points);
- :func:`project` / :func:`plot_projection`: which tokens a direction lights up on;
- :func:`early_answering` (Lanham et al. 2023): truncate the chain, force an answer; AOC.
- :func:`substitution` with :func:`filler`, a paraphraser, or :func:`add_mistake` (Lanham et al.;
  Lobo et al. 2024): how often the answer survives a changed chain.
- :func:`information_gain` (arXiv 2506.02126): log-probability of the gold answer per step.
- :class:`ThoughtSwitchPenalty` and :func:`underthinking_score` (TIP, arXiv 2501.18585).
- :func:`length_curve`: accuracy against chain length.
"""

from .answers import parse_boxed
from .faithfulness import EarlyAnswering, Substitution, add_mistake, early_answering, filler, substitution
from .generation import Generation, generate
from .information import InformationGain, information_gain
from .length import length_curve
from .measure import Comparison, Measurement, compare, degeneration, measure, measure_generations, wilson
from .projection import Projection, plot_projection, project
from .sweep import best, plot_sweep, sweep
from .tip import ThoughtSwitchPenalty, underthinking_score

__all__ = [
    "Comparison",
    "EarlyAnswering",
    "Generation",
    "InformationGain",
    "Measurement",
    "Projection",
    "Substitution",
    "ThoughtSwitchPenalty",
    "add_mistake",
    "best",
    "compare",
    "degeneration",
    "early_answering",
    "filler",
    "generate",
    "information_gain",
    "length_curve",
    "measure",
    "measure_generations",
    "parse_boxed",
    "plot_projection",
    "plot_sweep",
    "project",
    "substitution",
    "sweep",
    "underthinking_score",
    "wilson",
]
