import numpy as np
import pytest

from promptgd.report.intervals import bootstrap, by_context, difference, gap_share, mean


def test_interval_holds_the_estimate_and_narrows_with_more_contexts():
    rng = np.random.default_rng(1)
    small = {"a": {f"c{i}": list(rng.random(3)) for i in range(20)}}
    large = {"a": {f"c{i}": list(rng.random(3)) for i in range(400)}}
    i_small, i_large = bootstrap(small, mean("a")), bootstrap(large, mean("a"))
    for i in (i_small, i_large):
        assert i.low <= i.value <= i.high
    assert i_large.high - i_large.low < (i_small.high - i_small.low) / 2
    assert (i_small.contexts, i_small.draws) == (20, 10_000)


def test_paired_arms_resample_the_same_contexts():
    # b is a plus a constant on every question: every draw's difference is that constant exactly.
    rng = np.random.default_rng(2)
    a = {f"c{i}": list(rng.random(4)) for i in range(30)}
    b = {c: [v + 0.1 for v in vs] for c, vs in a.items()}
    d = bootstrap({"a": a, "b": b}, difference("b", "a"))
    assert d.value == pytest.approx(0.1) and d.low == pytest.approx(0.1) and d.high == pytest.approx(0.1)


def test_gap_share_weights_contexts_by_their_questions():
    arms = {
        "prompt": {"p": [1.0, 1.0, 1.0], "q": [1.0]},
        "ft": {"p": [0.0, 0.0, 0.0], "q": [0.0]},
        "after": {"p": [1.0, 1.0, 0.0], "q": [0.0]},
    }
    assert bootstrap(arms, gap_share("after", "prompt", "ft")).value == pytest.approx(0.5)


def test_unpaired_arms_are_refused():
    with pytest.raises(ValueError, match="other contexts"):
        bootstrap({"a": {"x": [1.0]}, "b": {"y": [1.0]}}, mean("a"))


def test_by_context_groups_one_mode():
    records = [
        {"mode": "ft", "context": "x", "f1": 1.0},
        {"mode": "ft", "context": "x", "f1": 0.0},
        {"mode": "nc", "context": "x", "f1": 0.5},
    ]
    assert by_context(records, "f1", "ft") == {"x": [1.0, 0.0]}
