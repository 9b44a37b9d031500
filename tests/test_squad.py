import json
from pathlib import Path

import pytest

from promptgd.data import acquire, squad
from promptgd.data.triples import Triple

FIXTURES = Path(__file__).parent / "fixtures" / "squad"


@pytest.fixture(autouse=True)
def offline(offline_data, monkeypatch):
    """Offline, and the fixture files' checksums accepted as the official ones."""
    sums = {name: acquire.sha256_hex((FIXTURES / name).read_bytes()) for name in acquire.SQUAD_FILES.values()}
    monkeypatch.setattr(acquire, "SQUAD_SHA256", sums)


def load(name):
    return json.loads((FIXTURES / name).read_text())


def test_parse_official_schema_counts_drops_by_rule():
    triples, counts = squad.parse_squad(
        load("train-v1.1.json"), squad.SquadRule(max_context_words=12), "train-v1.1.json"
    )
    assert counts == {
        "total": 4,
        "kept": 2,
        "dropped": {"empty_answer": 1, "context_over_words": 1, "context_over_chars": 0},
    }
    assert triples[0] == Triple(
        context="The Denver Broncos won Super Bowl 50 against the Carolina Panthers.",
        query="Question: Who won Super Bowl 50?\nAnswer:",
        response=" Denver Broncos",
        answers=("Denver Broncos",),
    )
    assert triples[1].response == " Saint Bernadette Soubirous"


def test_character_budget_and_no_budget():
    _, counts = squad.parse_squad(
        load("train-v1.1.json"), squad.SquadRule(max_context_words=None, max_context_chars=70)
    )
    assert counts["dropped"] == {"empty_answer": 1, "context_over_words": 0, "context_over_chars": 1}
    _, counts = squad.parse_squad(load("train-v1.1.json"), squad.SquadRule(max_context_words=None))
    assert counts["kept"] == 3


def test_gold_answers_are_stripped_and_deduplicated_in_order():
    (triple,), _ = squad.parse_squad(load("dev-v1.1.json"))
    assert triple.response == " Levi's Stadium"
    assert triple.answers == ("Levi's Stadium", "Santa Clara, California")


def test_schema_errors_name_file_and_key():
    bad = load("train-v1.1.json")
    del bad["data"][1]["paragraphs"][0]["qas"][0]["question"]
    where = r"train-v1.1.json: data\[1\].paragraphs\[0\].qas\[0\]"
    with pytest.raises(squad.SquadFormatError, match=where + ": missing key 'question'"):
        squad.parse_squad(bad, name="train-v1.1.json")
    with pytest.raises(squad.SquadFormatError, match=r"x.json.data: expected list, got str"):
        squad.parse_squad({"data": "nope"}, name="x.json")


def test_query_template_must_hold_the_question():
    with pytest.raises(ValueError, match="query_template"):
        squad.SquadRule(query_template="Answer:")


def test_builder_reads_path_from_env_and_samples_deterministically(monkeypatch):
    monkeypatch.setenv("PROMPTGD_DATA", str(FIXTURES))
    splits = squad.build_squad(0, 0, seed=0)
    assert len(splits.train) == 3 and len(splits.test) == 1  # default budget keeps the long paragraph
    assert [t.response for t in splits.train] == [" Denver Broncos", " deliberately", " Saint Bernadette Soubirous"]
    a = squad.build_squad(2, 1, seed=7)
    assert a == squad.build_squad(2, 1, seed=7)
    assert len(a.train) == 2 and set(a.train) <= set(splits.train)
    with pytest.raises(ValueError, match="squad train: asked for 4 triples, only 3 available"):
        squad.build_squad(4, 0, seed=0)


def test_manifest_records_source_counts_and_rule():
    manifest = squad.prepare(FIXTURES)
    assert manifest["source"] == f"path {FIXTURES}"
    assert manifest["source_checksums"] == acquire.SQUAD_SHA256
    no_drops = {"empty_answer": 0, "context_over_words": 0, "context_over_chars": 0}
    assert manifest["counts"]["test"] == {"total": 1, "kept": 1, "dropped": no_drops}
    assert manifest["rule_version"] == squad.RULE_VERSION
    rule = {"max_context_words": 200, "max_context_chars": None, "query_template": "Question: {question}\nAnswer:"}
    assert manifest["rule"] == rule
    on_disk = json.loads((acquire.processed_dir("squad") / "manifest.json").read_text())
    assert on_disk == manifest


def test_cache_reused_then_rebuilt_on_rule_version_or_parameter_change(monkeypatch):
    calls = []
    real = acquire.acquire_squad

    def counting(path=None):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(acquire, "acquire_squad", counting)
    monkeypatch.setenv("PROMPTGD_DATA", str(FIXTURES))
    squad.prepare()
    squad.prepare()
    assert len(calls) == 1  # same rule: the cache is used

    monkeypatch.setattr(squad, "RULE_VERSION", squad.RULE_VERSION + 1)
    manifest = squad.prepare()
    assert len(calls) == 2 and manifest["rule_version"] == squad.RULE_VERSION

    manifest = squad.prepare(rule=squad.SquadRule(max_context_words=12))
    assert len(calls) == 3 and manifest["counts"]["train"]["kept"] == 2
    assert len(acquire.read_processed("squad")["train"]) == 2

    squad.prepare(FIXTURES, rule=squad.SquadRule(max_context_words=12))
    assert len(calls) == 4  # an explicit path always reprocesses


def many_paragraphs(tmp_path, monkeypatch, train: int, dev: int):
    """SQuAD files with `train` and `dev` paragraphs of three questions each, accepted as the official ones."""
    blobs = {}
    for split, count in (("train", train), ("dev", dev)):
        paragraphs = [
            {
                "context": f"{split} paragraph {p} about the harbour.",
                "qas": [
                    {"id": f"{split}{p}-{q}", "question": f"What is {q} of {p}?", "answers": [{"text": "it"}]}
                    for q in range(3)
                ],
            }
            for p in range(count)
        ]
        blobs[acquire.SQUAD_FILES[split]] = json.dumps({"data": [{"title": "t", "paragraphs": paragraphs}]}).encode()
    for name, blob in blobs.items():
        (tmp_path / name).write_bytes(blob)
    monkeypatch.setattr(acquire, "SQUAD_SHA256", {n: acquire.sha256_hex(b) for n, b in blobs.items()})
    monkeypatch.setenv("PROMPTGD_DATA", str(tmp_path))


def test_dev_ranges_never_share_a_paragraph_and_test_is_the_test_samples(tmp_path, monkeypatch):
    many_paragraphs(tmp_path, monkeypatch, train=10, dev=150)
    ranges = {name: squad.dev_paragraphs(name) for name in squad.DEV_RANGES}
    contexts = {name: {p[0].context for p in paragraphs} for name, paragraphs in ranges.items()}
    assert len(contexts["test"]) == 101 and len(contexts["confirm"]) == 49 and not contexts["stream"]
    assert not contexts["test"] & contexts["confirm"]
    sample = squad.build_squad(0, 300, 0).test  # the 300-question test sample reads the test range's paragraphs
    assert {t.context for t in sample} <= contexts["test"]


def test_a_validation_stream_is_whole_training_paragraphs_no_training_triple_comes_from(tmp_path, monkeypatch):
    many_paragraphs(tmp_path, monkeypatch, train=60, dev=5)
    stream = squad.validation_stream_paragraphs(20, n_train=30, seed=0)
    sampled = {t.context for t in squad.build_squad(30, 0, 0).train}
    assert len(stream) == 20 and all(len(p) == 3 for p in stream)
    assert not {p[0].context for p in stream} & sampled
