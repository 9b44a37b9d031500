import gzip
import json

import numpy as np
import pytest

from promptgd.report.diagnostics import update_effect
from promptgd.report.intervals import (
    Interval,
    bootstrap,
    by_context,
    contexts_per_update,
    difference,
    evaluation_records,
    gap_share,
    mean,
    metric_interval,
    note,
    predictions_file,
    ratio,
    read_records,
    resampling_units,
    share_interval,
)


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


def write_predictions(path, records):
    text = "".join(json.dumps(r) + "\n" for r in records)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def record(mode, index, context, correct, **extra):
    return {"mode": mode, "index": index, "context": context, "correct": correct, "nll": 1.0, **extra}


def test_a_committed_rows_gzipped_predictions_read_as_the_plain_file(tmp_path):
    records = [record("ft", i, f"c{i // 2}", i % 2 == 0) for i in range(6)]
    (tmp_path / "run").mkdir()
    (tmp_path / "row").mkdir()
    write_predictions(tmp_path / "run" / "predictions.jsonl", records)
    write_predictions(tmp_path / "row" / "predictions.jsonl.gz", records)
    assert predictions_file(tmp_path / "row") == tmp_path / "row" / "predictions.jsonl.gz"
    assert predictions_file(tmp_path) is None  # a summary alone
    assert read_records(tmp_path / "row" / "predictions.jsonl.gz") == read_records(
        tmp_path / "run" / "predictions.jsonl"
    )
    assert evaluation_records(tmp_path / "row") == records and evaluation_records(tmp_path) is None


def test_a_summarys_accuracy_is_the_records_correct_field():
    records = [record("ft", i, f"c{i}", i < 3) for i in range(10)] + [record("nc", 0, "c0", True)]
    interval = metric_interval(records, "ft", "accuracy")
    assert interval.value == pytest.approx(0.3) and interval.contexts == 10
    assert interval.format(100) == f"30.0 ({100 * interval.low:.1f}–{100 * interval.high:.1f})"
    assert Interval(0.38, 0.315, 0.445, 200, 10).format(100, 0, "%") == "38% (32–44%)"


def test_a_table4_share_is_bootstrapped_from_the_same_per_item_classification():
    nc = [record("nc", i, f"c{i // 2}", i in (0, 1)) for i in range(8)]
    ft = [record("ft", i, f"c{i // 2}", i in (1, 2, 3)) for i in range(8)]
    shares = update_effect({"nc": {r["index"]: r for r in nc}, "ft": {r["index"]: r for r in ft}})
    for share, value in shares.items():
        interval = share_interval(nc + ft, share)
        assert interval.value == pytest.approx(value) and interval.low <= value <= interval.high
    assert share_interval(nc + ft, "right only with the update").contexts == 4


def test_questions_answered_after_one_shared_update_resample_together(tmp_path):
    # k = 2: triples 0-1 share an update, 2-3 another; triple 3 shares its context with triple 4 (of the next update).
    records = [record("ft", i, c, True) for i, c in enumerate(["a", "b", "c", "d", "d", "e"])]
    units = [r["context"] for r in resampling_units(records, 2)]
    assert units[0] == units[1] and units[2] == units[3] == units[4] == units[5] and units[0] != units[2]
    assert resampling_units(records, 1) is records
    (tmp_path / "config.yaml").write_text("inner:\n  contexts: 2\n  mode: batched\n")
    write_predictions(tmp_path / "predictions.jsonl", records)
    assert contexts_per_update(tmp_path) == 2 and contexts_per_update(tmp_path / "none") == 1
    assert {r["context"] for r in evaluation_records(tmp_path)} == set(units)


def test_a_ratio_is_undefined_where_its_reference_is_zero():
    arms = {"row": {"x": [1.0], "y": [0.0]}, "reference": {"x": [1.0], "y": [1.0]}}
    assert bootstrap(arms, ratio("row", "reference")).value == pytest.approx(0.5)
    assert np.isnan(ratio("row", "reference")({"row": np.array([1.0]), "reference": np.array([0.0])})[0])


def test_a_share_undefined_in_every_draw_has_no_interval_rather_than_an_error():
    # FT no better than NC on any context (a plain step on invented people): retention has no gap to divide by.
    arms = {"stream": {"x": [0.0], "y": [0.0]}, "ft": {"x": [0.0], "y": [0.0]}, "nc": {"x": [0.0], "y": [0.0]}}
    share = bootstrap(arms, gap_share("stream", "ft", "nc"))
    assert np.isnan(share.value) and np.isnan(share.low) and np.isnan(share.high) and share.draws == 0


def test_the_note_says_what_each_interval_resamples():
    line = note({"squad test": 101, "wikitext test": 500})
    assert (
        "10,000 bootstrap draws (seed 0)" in line and "Units per test set: squad test 101; wikitext test 500." in line
    )
    assert "one training run" in line
