import shutil
from pathlib import Path

import pytest

from promptgd.data import acquire, wikitext
from promptgd.data.triples import Triple

FIXTURES = Path(__file__).parent / "fixtures" / "wikitext"


pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.mark.parametrize(
    "tokenized, clean",
    [
        (" Robert Louis Stevenson 's 1886 novella . ", "Robert Louis Stevenson's 1886 novella."),
        ("weigh 0 @.@ 7 – 2 @.@ 2 kg", "weigh 0.7 – 2.2 kg"),
        ("cost $ 1 @,@ 200 ( 30 % over )", "cost $1,200 (30% over)"),
        ("a long @-@ haul shoot ; it didn 't end : no", "a long-haul shoot; it didn't end: no"),
        ('becoming " lobster red " on cooking , " they " said', 'becoming "lobster red" on cooking, "they" said'),
        ('an unpaired " quote stays', 'an unpaired " quote stays'),
        ("the <unk> ' Stone", "the <unk> ' Stone"),
    ],
)
def test_clean_release_artefacts(tokenized, clean):
    assert wikitext.clean(tokenized) == clean


def test_articles_drop_headings_and_blank_lines():
    arts = wikitext.articles((FIXTURES / "wiki.valid.tokens").read_text())
    assert [len(a) for a in arts] == [4, 1]  # "= = Production = =" is a section, not a new article
    assert not any("=" in p for a in arts for p in a)


def test_split_valid_exact_triples_and_counts():
    triples, counts = wikitext.split_triples((FIXTURES / "wiki.valid.tokens").read_text())
    assert triples == [
        Triple(
            context="It is adapted from Robert Louis Stevenson's 1886 novella Strange Case of Dr Jekyll and Mr Hyde."
            " The story focuses on",
            query="the",
            response=" respected London doctor Henry Jekyll",
            source="test:0",  # split_triples' default split name; the builder passes the real one
        ),
        Triple(
            context='Filming took 0.7 years and cost $1,200 (30% over budget); the crew called it "the long-haul shoot":',
            query="the",
            response=" name stuck, and it stuck",
            source="test:1",
        ),
    ]
    assert counts == {
        "articles": 2,
        "paragraphs": 5,
        "kept": 2,
        "dropped": {"too_short": 1, "no_trigger": 1, "unk_in_response": 1},
    }


def test_rule_parameters_change_the_cut():
    text = (FIXTURES / "wiki.valid.tokens").read_text()
    triples, _ = wikitext.split_triples(
        text, wikitext.WikiTextRule(min_context_words=0, max_context_words=10, response_words=2)
    )
    assert triples[0].context.endswith("cost $1,200 (30% over budget);") and triples[0].response == " crew called"
    triples, _ = wikitext.split_triples(
        text, wikitext.WikiTextRule(trigger="and", min_context_words=1, response_words=1)
    )
    context = "It is adapted from Robert Louis Stevenson's 1886 novella Strange Case of Dr Jekyll"
    assert triples[0] == Triple(context, "and", " Mr", source="test:0")


def test_training_takes_several_triples_per_paragraph_and_keeps_them_together():
    text = (FIXTURES / "wiki.valid.tokens").read_text()
    rule = wikitext.WikiTextRule(min_context_words=0)
    triples, counts = wikitext.split_triples(text, rule, per_paragraph=3, split="valid")
    # The second paragraph gives two: "the crew ..." and, further on, "the name ..." (whose context holds the first's
    # response); both carry that paragraph's source, so no split cut falls between them.
    assert [(t.source, t.response) for t in triples] == [
        ("valid:0", " respected London doctor Henry Jekyll"),
        ("valid:1", ' crew called it "the long-haul'),
        ("valid:1", " name stuck, and it stuck"),
    ]
    assert triples[2].context.startswith(triples[1].context + " the" + triples[1].response)
    assert counts["kept"] == 3
    assert wikitext.split_triples(text, rule, per_paragraph=1)[0] == [
        t for t in wikitext.split_triples(text, rule, per_paragraph=3)[0] if t.response != " name stuck, and it stuck"
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"trigger": "of the"},
        {"trigger": ""},
        {"min_context_words": 9, "max_context_words": 3},
        {"response_words": 0},
        {"train_per_paragraph": 0},
    ],
)
def test_invalid_rules(kwargs):
    with pytest.raises(ValueError, match="WikiTextRule"):
        wikitext.WikiTextRule(**kwargs)


def test_builder_trains_on_valid_when_no_train_split(monkeypatch):
    monkeypatch.setenv("PROMPTGD_DATA", str(FIXTURES))
    splits = wikitext.build_wikitext(0, 0, seed=0)
    assert [t.response for t in splits.train] == [" respected London doctor Henry Jekyll", " name stuck, and it stuck"]
    assert splits.test == [
        Triple(
            "The test paragraph needs at least sixteen words before its first lowercase trigger appears,"
            " which happens right here at",
            "the",
            " end of the line, as",
            source="test:0",
        )
    ]
    assert [t.source for t in splits.train] == ["valid:0", "valid:1"]
    manifest = wikitext.prepare()
    assert manifest["counts"]["train"]["from"] == "valid"
    assert manifest["source"] == f"PROMPTGD_DATA={FIXTURES}"
    assert set(manifest["source_checksums"]) == {"wiki.valid.tokens", "wiki.test.tokens"}


def test_train_split_used_when_present_in_release_layout(tmp_path):
    release = tmp_path / "wikitext-103"
    release.mkdir()
    shutil.copy(FIXTURES / "wiki.valid.tokens", release / "wiki.valid.tokens")
    shutil.copy(FIXTURES / "wiki.test.tokens", release / "wiki.test.tokens")
    shutil.copy(FIXTURES / "wiki.test.tokens", release / "wiki.train.tokens")
    manifest = wikitext.prepare(tmp_path)  # a PROMPTGD_DATA-like root: its wikitext-103/ is found
    assert manifest["counts"]["train"]["from"] == "train"
    assert manifest["counts"]["train"]["kept"] == 1
    assert set(manifest["source_checksums"]) == {"wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"}


def test_rule_version_bump_rebuilds(monkeypatch):
    monkeypatch.setenv("PROMPTGD_DATA", str(FIXTURES))
    first = wikitext.prepare()
    monkeypatch.setenv("PROMPTGD_DATA", str(FIXTURES / "missing"))  # a rebuild now would fail...
    assert wikitext.prepare() == first  # ...so this came from the cache
    monkeypatch.setattr(wikitext, "RULE_VERSION", wikitext.RULE_VERSION + 1)
    with pytest.raises(acquire.AcquireError, match="missing"):
        wikitext.prepare()


def test_lm_corpus_leaves_out_the_paragraphs_of_validation_contexts(monkeypatch):
    from promptgd.data.lm_corpus import read_corpus, without_held_out

    monkeypatch.setenv("PROMPTGD_DATA", str(FIXTURES))
    text = read_corpus("wikitext:")
    first, second = wikitext.build_wikitext(0, 0, seed=0).train
    kept = without_held_out(text, [first.context])
    assert (
        "Henry Jekyll" in text and "Henry Jekyll" not in kept
    )  # the held-out context's paragraph and its continuation
    assert "the name stuck" in kept  # the other training paragraph stays
    assert without_held_out(text, []) == text
