import pytest

from promptgd.evaluate.answer_metrics import exact_match, normalize_answer, prefix_match, token_f1


@pytest.mark.parametrize(
    "raw, normalized",
    [
        ("The Cat!", "cat"),
        ("  Denver   Broncos. ", "denver broncos"),
        ("an apple a day", "apple day"),
        ("Theodore another", "theodore another"),  # articles only as whole words
        ("Levi's Stadium", "levis stadium"),  # punctuation removed before articles: no space left
        ("the-cat", "thecat"),
    ],
)
def test_normalize_answer_matches_official_script(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_exact_match_takes_best_gold():
    assert exact_match("the Denver Broncos", ["Carolina Panthers", "Denver Broncos"])
    assert not exact_match("Denver", ["Denver Broncos"])
    assert exact_match("Broncos", "broncos.")  # a bare string is one gold, not its characters


def test_token_f1_official_cases():
    assert token_f1("the cat sat", ["a cat sat down"]) == pytest.approx(0.8)  # p=1, r=2/3
    assert token_f1("Denver Broncos", ["Denver Broncos"]) == 1.0
    assert token_f1("Panthers", ["Denver Broncos"]) == 0.0
    assert token_f1("", ["Denver"]) == 0.0
    # max over golds; Counter overlap counts repeated tokens at most as often as in both
    assert token_f1("cat cat", ["cat", "dog"]) == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_prefix_match():
    assert prefix_match("Denver Broncos won the game", ["Denver Broncos"])
    assert prefix_match("The Denver Broncos.", ["Carolina", "denver"])
    assert not prefix_match("Denver", ["Denver Broncos"])
    assert not prefix_match("anything", ["the"])  # a gold empty after normalization is no free pass
    assert prefix_match("a", ["the"])


def test_no_golds_is_an_error():
    with pytest.raises(ValueError):
        token_f1("x", [])
