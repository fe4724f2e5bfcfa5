"""Conditional steering: apply a behaviour vector only to the rows whose hidden state says so.

A :class:`Condition` is a unit direction at one layer plus a threshold on a score of the hidden
state there (CAST, Lee et al. 2024, arXiv 2409.05907; the scores are described in
:mod:`steering.conditions.rules`). While ``steer(..., when=condition)`` is active, each row's
condition is evaluated as the model runs; once it fires for a row, the behaviour vector is applied
to that row from then on (per row, under padding and the KV cache):

- ``check="prompt"``: decided once, on the prompt pass, at ``position`` (``"prompt_last"`` or
  ``"prompt_mean"``);
- ``check="step"``: re-checked at every new token (the prompt's last token first);
- ``check=Tokens(...)``: re-checked wherever a marker ends (e.g. at each step end).

Rules combine conditions: ``c1 | c2``, ``c1 & c2``, ``~c1``. A decision made at layer ``c`` reaches
the behaviour layers *after* ``c`` in the same forward pass, and every layer in later passes: put
the condition at or before the behaviour's layers when the behaviour acts on the prompt.

:func:`steering.fit_condition` (:mod:`steering.conditions.fit`) picks the layer and threshold by F1
on labelled prompts and stores them in the condition's metadata; ``condition.to_vector()`` makes it
a registry artefact like any vector.

Modules: ``rules.py`` (values), ``gate.py`` (the per-row state during ``steer``), ``fit.py`` (reads
activations, so it is not imported here: applying a condition never loads the extraction side).
"""

from .gate import Gate
from .rules import CHECKS, POSITIONS, SCORES, Condition, Rule, score

__all__ = ["CHECKS", "POSITIONS", "SCORES", "Condition", "Gate", "Rule", "score"]
