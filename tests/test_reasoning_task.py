"""The reasoning job's problems and parsing: reasoning-gym's GSM-Symbolic, its verifier, boxed answers."""

from __future__ import annotations

import pytest

from steering.demo.gsm import Problem, problems, right, splits
from steering.demo.reasoning import concise_reference
from steering.demo.reasoning_checks import steps
from steering.demo.reasoning_report import sampled_md
from steering.errors import InvalidArgumentError
from steering.evaluate import Generation, measure_generations, parse_boxed


def test_splits_are_disjoint_and_repeatable():
    pairs, val, test = splits(12, 6, 20)
    qs = [p.question for p in pairs + val + test]
    assert len(set(qs)) == len(qs) == 38
    assert [p.question for p in splits(12, 6, 20)[2]] == [p.question for p in test]


def test_the_verifier_reads_the_last_box():
    p = problems("test", 1)[0]
    assert right(f"first \\boxed{{{int(float(p.answer)) + 1}}}, no: \\boxed{{{p.answer}}}", p)
    assert not right(f"\\boxed{{{p.answer}}} but then \\boxed{{{int(float(p.answer)) + 1}}}", p)
    assert not right(f"the answer is {p.answer}", p)  # no box, no answer
    assert right(concise_reference(p), p)  # the reference solution used as the concise side is right


def test_thousands_separators_are_not_misread():
    p = Problem("q", "1200", {"answer": "1200", "metadata": {"source_dataset": "gsm_symbolic"}})
    assert right("\\boxed{1,200}", p) and right("\\boxed{\\$1,200}", p)
    assert parse_boxed("\\boxed{12") is None  # a cut reply has no answer


def test_an_unknown_split_is_refused():
    with pytest.raises(InvalidArgumentError, match="Unknown split"):
        problems("train", 3)


def test_a_chain_splits_into_steps_without_its_answer():
    chain = "First, 3 + 4 = 7.\n\nThen 7 * 2 = 14.\nThus the answer is \\boxed{14}."
    assert steps(chain) == ["First, 3 + 4 = 7.\n", "Then 7 * 2 = 14.\n"]
    assert steps("just \\boxed{3}") == ["just "]


def test_measure_generations_uses_the_verifier():
    p = problems("test", 2)
    gens = [
        Generation(f"so \\boxed{{{p[0].answer}}}", 5, [1, 2, 3, 4, 5]),
        Generation("\\boxed{-1}", 3, [1, 2, 3], False),
    ]
    m = measure_generations(gens, 2.0, gold=p, check=right)
    assert m.correct == [True, False] and m.tokens == 4.0 and m.unfinished == 0.5
    with pytest.raises(InvalidArgumentError, match="pair up"):
        measure_generations(gens, 1.0, gold=p[:1], check=right)


def test_a_template_without_chat_roles_is_refused():
    from transformers import AutoTokenizer

    from steering.models import smollm2_path  # any tokenizer; its template replaced by one that ignores messages
    from steering.prompts import encode

    tok = AutoTokenizer.from_pretrained(smollm2_path().parent, gguf_file=smollm2_path().name)
    tok.chat_template = "Answer the question."
    with pytest.raises(InvalidArgumentError, match="no slot for chat roles"):
        encode(tok, [{"role": "user", "content": "What is 2 + 2?"}])
    tok.chat_template = None
    with pytest.raises(InvalidArgumentError, match="chat template"):
        encode(tok, [{"role": "user", "content": "What is 2 + 2?"}])


def test_the_pick_never_falls_back_to_the_most_destructive_setting():
    from steering.demo.real import pick_setting

    base = measure_generations([Generation("\\boxed{1}", 300, list(range(300)))] * 6, 1.0)
    base = type(base)(**{**base.__dict__, "accuracy": 0.17})
    rows = [
        {"fraction": 0.25, "chain_tokens": 186, "accuracy": 0.0, "degeneration": 0.0},
        {"fraction": 0.4, "chain_tokens": 101, "accuracy": 0.0, "degeneration": 0.0},
        {"fraction": 0.25, "chain_tokens": 207, "accuracy": 0.08, "degeneration": 0.0},
    ]
    assert pick_setting(rows, base, "chain_tokens")["chain_tokens"] == 207  # none within the slack: most accurate
    rows.append({"fraction": 0.15, "chain_tokens": 250, "accuracy": 0.17, "degeneration": 0.0})
    assert pick_setting(rows, base, "chain_tokens")["chain_tokens"] == 250  # within the slack beats any cut


def test_the_report_shows_the_sampled_rows_only_when_they_ran():
    assert sampled_md({"note": "not run; pass --sampled"}) == []
    row = {"accuracy": 0.15, "accuracy_ci95": [0.1, 0.2], "chain_tokens": 281.3, "degeneration": 0.2, "seconds": 60}
    rows = {"baseline": row, "steered": {**row, "chain_tokens": 201.5}, "prompting": row}
    lines = sampled_md({**rows, "reduction": 0.284, "accuracy_diff": -0.093, "accuracy_diff_ci95": [-0.14, -0.047]})
    assert "| steered | 0.150 | [0.100, 0.200] | 201.5 | 0.200 | 60 |" in lines
    assert lines[-1].endswith("28.4% fewer chain tokens, paired accuracy change -0.093 [-0.140, -0.047].")
