"""Tables 4 and 5 from hand-made predictions."""

import json

import pytest

from promptgd.cli import main
from promptgd.report.diagnostics import read_predictions, update_effect


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def rec(mode, index, correct):
    return {"mode": mode, "index": index, "correct": correct, "f1": float(correct), "nll": 1.0}


def test_update_effect_shares(tmp_path):
    nc = [True, True, False, False, False]
    ft = [True, False, True, False, True]
    write(
        tmp_path / "predictions.jsonl",
        [rec("nc", i, c) for i, c in enumerate(nc)] + [rec("ft", i, c) for i, c in enumerate(ft)],
    )
    shares = update_effect(read_predictions(tmp_path / "predictions.jsonl"))
    assert shares == {
        "always wrong": 0.2,
        "always right": 0.2,
        "right without the update only": 0.2,
        "right only with the update": 0.4,
    }


def test_cli_writes_both_tables(tmp_path):
    write(tmp_path / "predictions.jsonl", [rec(m, 0, True) for m in ("nc", "ft", "ft_irrelevant")])
    main(["diagnose", str(tmp_path), "--out", str(tmp_path / "d")])
    text = (tmp_path / "d" / "diagnostics.md").read_text()
    assert "| always right | 100.0 |" in text and "| FT, irrelevant context | 100.0 | 100.0 | 1.00 |" in text


def test_bad_predictions_name_the_line(tmp_path):
    (tmp_path / "predictions.jsonl").write_text(json.dumps(rec("nc", 0, True)) + "\n{broken\n")
    with pytest.raises(ValueError, match=r"predictions\.jsonl:2"):
        read_predictions(tmp_path / "predictions.jsonl")
