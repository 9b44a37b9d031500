"""The run report shows SQuAD's headline metric, token F1, in its table and in the share of the gap closed."""

from promptgd.report.figure import write_report
from promptgd.report.tables import mode_table


def metrics(accuracy: float, f1: float, nll: float) -> dict:
    return {"accuracy": accuracy, "prefix_match": accuracy, "f1": f1, "token_accuracy": accuracy, "nll": nll}


def test_the_table_has_an_f1_column_per_mode():
    table = mode_table({"base": {"nc": metrics(0.1, 0.25, 4.0), "ft": metrics(0.2, 0.5, 3.0)}})
    header, _, row = table.splitlines()
    assert header == (
        "| model | NC acc | NC prefix | NC F1 | NC tok | NC NLL | FT acc | FT prefix | FT F1 | FT tok | FT NLL |"
    )
    assert row == "| base | 10.0 | 10.0 | 25.0 | 10.0 | 4.00 | 20.0 | 20.0 | 50.0 | 20.0 | 3.00 |"


def test_the_report_states_the_gap_closed_in_f1(tmp_path):
    base = {"prompt": metrics(0.5, 0.6, 1.0), "ft": metrics(0.1, 0.2, 4.0)}
    lg = {"prompt": metrics(0.5, 0.6, 1.0), "ft": metrics(0.1, 0.3, 3.0)}  # F1 0.2 -> 0.3 of a 0.4 gap
    summary = {"command": "promptgd run", "model": "m", "task": "squad", "n": 2, "rows": {"base": base, "lg": lg}}
    report = write_report(summary, tmp_path)
    assert "- LG meta-trained: closes 0% (accuracy), 25% (F1), 0% (token accuracy), 33% (NLL)" in report
