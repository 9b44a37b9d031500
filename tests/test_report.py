"""The run report shows SQuAD's headline metric, token F1, in its table and in the share of the gap closed; every
table promptgd makes gives each number its 95% interval over contexts where the predictions behind it are there, and
the committed tables are re-rendered with theirs (experiments/table_intervals.py)."""

import gzip
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from promptgd.report.figure import write_report
from promptgd.report.intervals import FIELDS, Interval
from promptgd.report.tables import METRICS, mode_table
from promptgd.reproduce.experiments import experiments
from promptgd.reproduce.runner import NO_INTERVALS, Reproduction, cell_places, cell_value, table_lines
from test_benchmarks import ROOT, run_script
from test_reproduce import CONFIGS, run


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


def write_evaluation(directory: Path, modes: list[str], correct, gz: bool = False) -> None:
    """An evaluation directory of 10 contexts × 2 questions: `correct(mode, index)` says which are right."""
    records = [
        {
            "mode": m,
            "index": i,
            "context": f"c{i // 2}",
            "correct": correct(m, i),
            "token_accuracy": 0.5 * correct(m, i),
        }
        for m in modes
        for i in range(20)
    ]
    for r in records:
        r |= {"exact_match": r["correct"], "prefix_match": r["correct"], "f1": float(r["correct"]), "nll": 2.0}
    means = {
        m: {k: sum(float(r[FIELDS.get(k, k)]) for r in records if r["mode"] == m) / 20 for k in METRICS} for m in modes
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.json").write_text(json.dumps({"modes": means}))
    text = "".join(json.dumps(r) + "\n" for r in records)
    if gz:
        (directory / "predictions.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    else:
        (directory / "predictions.jsonl").write_text(text)


def right(share: float):
    """The first `share` of the 20 questions right in FT-like modes, all right in Prompt, none in NC."""
    return lambda mode, i: mode == "prompt" or (mode.startswith("ft") and i < 20 * share)


def fill(places, correct, gz=False) -> dict[str, dict[str, float]]:
    """Write every evaluation the cells read (each with all its cells' modes); return the table's values."""
    modes: dict[Path, list[str]] = {}
    for place in places.values():
        modes.setdefault(place.eval_dir, []).append(place.metric)
    for directory, listed in modes.items():
        write_evaluation(directory, listed, correct(directory), gz)
    values: dict[str, dict[str, float]] = {}
    for (label, header), place in places.items():
        values.setdefault(label, {})[header] = cell_value(place.eval_dir, place.metric, place.task)
    return values


def test_a_run_report_gives_each_metric_and_gap_share_its_interval(tmp_path):
    write_evaluation(tmp_path / "base", ["nc", "prompt", "ft"], right(0.0))  # a `promptgd run` directory's layout
    write_evaluation(tmp_path / "lc" / "eval", ["nc", "prompt", "ft"], right(0.5))
    rows = {"base": modes_of(tmp_path / "base"), "lc": modes_of(tmp_path / "lc" / "eval")}
    summary = {"command": "promptgd run", "model": "m", "task": "character_descriptions", "n": 20, "rows": rows}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    report = write_report(summary, tmp_path)
    ft_accuracy, ft_nll = cells_of(report, "LC meta-trained")[-5], cells_of(report, "LC meta-trained")[-1]
    low, high = bounds(ft_accuracy, "50.0")
    assert 0 < low < 50 < high < 100 and ft_nll == "2.00 (2.00–2.00)"
    assert "Units per test set: character_descriptions test 10." in report  # 10 contexts of 2 questions each
    # Base Prompt 100 and FT 0 on every context: the gap share's draws are LC's FT draws.
    assert f"- LC meta-trained: closes 50% (accuracy; 95% interval {low:.0f}–{high:.0f}%)" in report


def modes_of(directory: Path) -> dict:
    return json.loads((directory / "summary.json").read_text())["modes"]


def cells_of(markdown: str, label: str) -> list[str]:
    row = next(line for line in markdown.splitlines() if line.startswith(f"| {label} |"))
    return row.strip("| ").split(" | ")[1:]


def bounds(cell: str, value: str) -> tuple[float, float]:
    """'50.0 (25.0–75.0)' -> (25.0, 75.0), checking the value; a unit (%) after the numbers is dropped."""
    shown, interval = cell.split(" (")
    assert shown.rstrip("%") == value
    low, high = interval.rstrip(")%").split("–")
    return float(low), float(high)


def test_a_run_report_from_summaries_alone_says_it_has_no_intervals(tmp_path):
    summary = {"command": "c", "model": "m", "task": "squad", "n": 2, "rows": {"base": {"ft": metrics(0.1, 0.2, 3.0)}}}
    report = write_report(summary, tmp_path)
    assert "| base (warmed up) | 10.0 | 10.0 | 20.0 | 10.0 | 3.00 |" in report
    assert "No intervals: made from summaries alone" in report


def test_mode_table_shows_an_interval_beside_its_value():
    bounds = {"base": {"ft": {"accuracy": Interval(0.2, 0.1, 0.3, 50, 10_000), "nll": Interval(3.0, 2.5, 3.5, 50, 10)}}}
    table = mode_table({"base": {"ft": metrics(0.2, 0.5, 3.0)}}, bounds)
    assert table.splitlines()[2] == "| base | 20.0 (10.0–30.0) | 20.0 | 50.0 | 20.0 | 3.00 (2.50–3.50) |"


def test_reproduce_tables_pair_the_gap_closed_and_retention_cells(tmp_path):
    rep = Reproduction(CONFIGS, tmp_path / "work", "small", progress=False)
    figure2 = replace(experiments("small")["figure2"], rows=experiments("small")["figure2"].rows[:3])
    places = cell_places(figure2, rep)
    values = fill(places, lambda d: right(0.0 if d.parent.name == "character_descriptions" else 0.5))
    table = "\n".join(table_lines(figure2, values, places))
    nc, prompt, ft, ft_ood, gap = cells_of(table, "character_descriptions: LC")
    assert (nc, prompt) == ("0.0 (0.0–0.0)", "100.0 (100.0–100.0)") and ft == ft_ood
    low, high = bounds(ft, "50.0")
    assert gap == f"50% ({low:.0f}–{high:.0f}%)"  # base Prompt 100 and FT 0 everywhere: the share is LC's FT
    assert table.splitlines()[-1].startswith("Intervals: 95% percentile intervals of 10,000 bootstrap draws (seed 0)")
    assert "character_descriptions test 10; character_descriptions ood 10." in table
    table3 = experiments("small")["table3"]
    places = cell_places(table3, Reproduction(CONFIGS, tmp_path / "work3", "small", progress=False))
    shares = {"lc": 0.5, "lc-then-reversal": 0.25, "lc-joint-reversal": 0.75}
    values = fill(places, lambda d: right(shares.get(d.parent.name, 0.0)))
    table = "\n".join(table_lines(table3, values, places))
    retention = [cells_of(table, label)[-1] for label, _ in table3.rows]
    assert retention[:3] == ["–", "–", "1.00 (1.00–1.00)"]
    assert bounds(retention[3], "0.50")[0] < 0.5 < bounds(retention[3], "0.50")[1]
    assert bounds(retention[4], "1.50")[0] < 1.5 < bounds(retention[4], "1.50")[1]


def test_a_reproduce_table_without_predictions_says_so(tmp_path):
    rep = Reproduction(CONFIGS, tmp_path / "work", "small", progress=False)
    table5 = experiments("small")["table5"]
    values = {"squad": {"base NC": 0.1, "FT, irrelevant context": 0.2, "FT, own context": 0.3}}
    table = table_lines(table5, values, cell_places(table5, rep))
    assert table[2] == "| squad | 10.0 | 20.0 | 30.0 |" and table[-1] == NO_INTERVALS


COMMITTED = """# Table 5 — scale `small`

Wall time: a while.

{table}

Accuracy in %: exact match.

## Reading (added by hand)

| model | FT EM % |
|---|---:|
| squad | 30.0 |
"""


def committed_table5(tmp_path) -> tuple[Path, dict]:
    """results/paper/table5_small.md with its rows in table5_small/, as `promptgd reproduce` commits them."""
    paper = tmp_path / "results" / "paper"
    table5 = experiments("small")["table5"]
    places = cell_places(table5, Reproduction(CONFIGS, paper / "table5_small", "small", progress=False))
    values = fill(places, lambda d: right(0.3 if d.name == "eval" else 0.1), gz=True)
    rows = [
        f"| {label} | " + " | ".join(f"{100 * v:.1f}" for v in row.values()) + " |" for label, row in values.items()
    ]
    header = "| model | base NC | FT, irrelevant context | FT, own context |\n|---|---:|---:|---:|\n"
    path = paper / "table5_small.md"
    path.write_text(COMMITTED.format(table=header + "\n".join(rows)))
    return path, values


@pytest.mark.integration
def test_committed_tables_are_rerendered_with_intervals_and_nothing_else_changes(tmp_path):
    path, _ = committed_table5(tmp_path)
    before = path.read_text()
    figures = run_script("experiments/table_intervals.py", "--out", str(tmp_path / "out"), str(path))
    after = (tmp_path / "out" / "table5_small.md").read_text()
    assert figures[str(path)]["mismatches"] == [] and figures[str(path)]["changed"] == 6
    assert path.read_text() == before  # --out leaves the committed file as it is
    lines, new = before.split("\n"), after.split("\n")
    squad = cells_of(after, "squad")
    assert squad[0] == "0.0 (0.0–0.0)" and squad[1] == squad[2] and bounds(squad[1], "30.0")[0] < 30
    assert new[8] == "" and new[9].startswith("Intervals: ") and new[10] == "Accuracy in %: exact match."
    assert new[:4] == lines[:4] and new[10:] == lines[9:]  # every other line, the table added by hand too
    run_script("experiments/table_intervals.py", "--in-place", str(path))
    assert path.read_text() == after
    run_script("experiments/table_intervals.py", "--in-place", str(path))  # a second run keeps one intervals line
    assert path.read_text() == after


@pytest.mark.integration
def test_a_recomputed_value_that_differs_from_the_table_stops_the_rerendering(tmp_path):
    path, _ = committed_table5(tmp_path)
    path.write_text(path.read_text().replace("| squad | 0.0 |", "| squad | 0.5 |"))
    before = path.read_text()
    done = subprocess.run(
        [sys.executable, "experiments/table_intervals.py", "--in-place", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and path.read_text() == before
    mismatches = json.loads(done.stdout.splitlines()[-1])[str(path)]["mismatches"]
    assert mismatches == ["squad / base NC: 0.5 in the table, 0.0 (0.0–0.0) recomputed"]


@pytest.mark.integration
def test_a_reproduced_table_shows_each_cells_interval(tmp_path):
    markdown = run(tmp_path, "table4")
    shares = cells_of(markdown, "squad, LG")
    assert len(shares) == 8 and all(re.fullmatch(r"\d+\.\d \(\d+\.\d–\d+\.\d\)", cell) for cell in shares)
    assert "10,000 bootstrap draws (seed 0)" in markdown and "Each row is one draw (one training run)" in markdown
