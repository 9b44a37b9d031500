"""JSONL triples: round trip, and malformed files fail with file, line and problem."""

import pytest

from promptgd.config import ConfigError
from promptgd.data.tasks import load_task
from promptgd.data.triples import Triple, TripleFileError, read_jsonl, write_jsonl


def test_round_trip(tmp_path, triples):
    path = tmp_path / "t.jsonl"
    extra = [Triple("c", "q", " a", ("a", "b")), Triple("c d", "q", " a", source="passage 7")]
    write_jsonl(triples + extra, path)
    assert read_jsonl(path) == triples + extra


@pytest.mark.parametrize(
    "line, problem",
    [
        ("{not json", "not valid JSON"),
        ('["a"]', "expected a JSON object"),
        ('{"context": "c", "query": "q"}', "missing field 'response'"),
        ('{"context": "c", "query": 3, "response": " r"}', "field 'query' must be a string"),
        ('{"context": "c", "query": "q", "response": " r", "extra": 1}', "unknown field"),
        ('{"context": "c", "query": "q", "response": "  "}', "'response' is empty"),
        ('{"context": "c", "query": "q", "response": " r", "source": 7}', "field 'source' must be a string"),
    ],
)
def test_malformed_lines_name_file_line_and_problem(tmp_path, line, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"context": "c", "query": "q", "response": " r"}\n' + line + "\n")
    with pytest.raises(TripleFileError, match=rf"bad\.jsonl:2: .*{problem}"):
        read_jsonl(path)


def test_jsonl_task_uses_sibling_train_file(tmp_path, triples):
    write_jsonl(triples[:1], tmp_path / "mine.jsonl")
    write_jsonl(triples[1:], tmp_path / "mine.train.jsonl")
    splits = load_task(f"jsonl:{tmp_path / 'mine.jsonl'}", 0, 0, 0)
    assert splits.test == triples[:1] and splits.train == triples[1:]


def test_unknown_task_lists_known_ones():
    with pytest.raises(ConfigError, match="task.name='nosuch': unknown task; known: character_descriptions"):
        load_task("nosuch", 1, 1, 0)
