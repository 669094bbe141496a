"""EnsemblePredictor: members' label scores normalised and averaged, one member in memory at a time."""

from __future__ import annotations

import pytest
import torch

from ftframe.engine.ensemble import EnsemblePredictor

PROMPTS = [[{"role": "user", "content": "first"}], [{"role": "user", "content": "second"}],
           [{"role": "user", "content": "third"}]]


class FixedScores:
    """A member whose scores are given (the ensemble's input, not the thing under test)."""

    name = "fixed"

    def __init__(self, table: list[list[float]]):
        self.table = table

    def score(self, prompts, candidates, *, progress=None):
        assert len(prompts) == len(self.table) and all(len(r) == len(candidates) for r in self.table)
        if progress:
            progress(len(prompts))
        return self.table


def members(*tables, events):
    def opener(table, tag):
        def open_member():
            assert not events or events[-1].startswith("release"), "a member opened before the last was released"
            events.append(f"open {tag}")
            return FixedScores(table), lambda: events.append(f"release {tag}")
        return open_member
    return [opener(t, i) for i, t in enumerate(tables)]


def test_scores_are_the_mean_of_each_members_normalised_log_probabilities():
    head = [[-0.1, -2.5, -4.0], [-3.0, -0.2, -2.0], [-1.0, -1.2, -1.5]]  # a classification head's log-probs
    lm = [[-14.0, -11.0, -19.0], [-8.0, -9.5, -12.0], [-20.0, -22.0, -6.0]]  # LM-head sequence log-likelihoods
    events: list[str] = []
    ensemble = EnsemblePredictor(members(head, lm, events=events), ["a", "b", "c"], name="e")
    advanced: list[int] = []
    table = torch.tensor(ensemble.score(PROMPTS, ["a", "b", "c"], progress=advanced.append))
    expected = (torch.log_softmax(torch.tensor(head, dtype=torch.float64), -1)
                + torch.log_softmax(torch.tensor(lm, dtype=torch.float64), -1)) / 2
    assert torch.allclose(table, expected.float(), atol=1e-6)
    assert bool((table.exp().sum(-1) <= 1 + 1e-6).all())  # geometric means of probabilities: at most 1
    assert events == ["open 0", "release 0", "open 1", "release 1"]
    assert sum(advanced) == len(PROMPTS) and all(isinstance(n, int) for n in advanced)
    # Prompt 0 is 'a' for the head and 'b' for the LM; the mean decides.
    assert ensemble.generate(PROMPTS, max_new_tokens=1) == [["a", "b", "c"][i] for i in expected.argmax(-1)]


def test_three_members_progress_ends_exactly_at_the_prompt_count():
    tables = [[[0.0, -1.0]] * 3] * 3
    advanced: list[int] = []
    EnsemblePredictor(members(*tables, events=[]), ["x", "y"], name="e").score(PROMPTS, ["x", "y"],
                                                                              progress=advanced.append)
    assert sum(advanced) == 3


def test_a_member_that_fails_is_released():
    events: list[str] = []

    def broken():
        events.append("open")

        class Failing:
            name = "failing"

            def score(self, *a, **k):
                raise RuntimeError("out of memory")
        return Failing(), lambda: events.append("release")

    with pytest.raises(RuntimeError, match="out of memory"):
        EnsemblePredictor([broken], ["x"], name="e").score(PROMPTS, ["x"])
    assert events == ["open", "release"]
    with pytest.raises(ValueError, match="at least one member"):
        EnsemblePredictor([], ["x"], name="e")
