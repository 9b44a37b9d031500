"""FT over a stream: documents absorbed one after another into one model, every question asked at the end."""

import numpy as np
import pytest

from conftest import tiny_config
from promptgd.data.triples import Triple
from promptgd.evaluate.recipe import evaluate_model
from promptgd.evaluate.stream import stream_documents

DOCUMENTS = [
    Triple(f"The code of door {d} is {code}.", f"Door {d} opens with", f" {code}")
    for d, code in enumerate(["abc", "kpq", "zzt", "mno", "rst"])
]
STREAM = ("eval.modes=ft,ft_stream", "inner.lr=0.3", "eval.stream_probes=2,4", "eval.locality_corpus=builtin")


def test_the_order_is_seeded_and_keeps_each_documents_questions_together():
    triples = DOCUMENTS + [Triple(DOCUMENTS[0].context, "Door 0 is opened with", " abc")]
    a, b = stream_documents(triples, 0, 0), stream_documents(triples, 0, 0)
    assert a == b and sorted(i for doc in a for i in doc) == list(range(6)) and [0, 5] in a
    assert stream_documents(triples, 1, 0) != a or len(a) < 3
    assert len(stream_documents(triples, 0, 2)) == 2
    # A shorter stream is the start of a longer one (same seed): the 10-document stream's FT is the reference of the
    # 1,000-document stream's first 10 (experiments/stream_squad_test.sh).
    assert stream_documents(triples, 0, 2) == stream_documents(triples, 0, 0)[:2]


def test_a_stream_of_one_document_is_its_single_update(tiny):
    model, tokenizer = tiny
    result = evaluate_model(model, tokenizer, DOCUMENTS[:1], tiny_config(*STREAM), progress=False)
    ft, streamed = ([r for r in result.records if r["mode"] == m] for m in ("ft", "ft_stream"))
    assert streamed[0]["prediction"] == ft[0]["prediction"]
    assert streamed[0]["nll"] == pytest.approx(ft[0]["nll"], rel=1e-5)


def test_a_stream_reports_positions_quarters_probes_and_locality(tiny):
    model, tokenizer = tiny
    result = evaluate_model(model, tokenizer, DOCUMENTS, tiny_config(*STREAM), progress=False)
    streamed = [r for r in result.records if r["mode"] == "ft_stream"]
    assert sorted(r["position"] for r in streamed) == [1, 2, 3, 4, 5]
    stream, locality = result.sections["stream"], result.sections["locality"]
    assert stream["documents"] == 5 and [q["positions"] for q in stream["quarters"]] == [[1, 2], [3, 3], [4, 4], [5, 5]]
    assert set(stream["probed"]) == {"2", "4", "5"}  # after 2 and 4 documents, and at the end
    assert set(locality) == {"before", "after", "known_facts"} and "held_out_nll" in locality["after"]
    # The last document was absorbed last: at the end it is where its own single update left it, the first is not.
    ft = {r["index"]: r["nll"] for r in result.records if r["mode"] == "ft"}
    last = next(r for r in streamed if r["position"] == 5)
    first = next(r for r in streamed if r["position"] == 1)
    assert first["nll"] != pytest.approx(ft[first["index"]], rel=1e-6)
    assert set(result.summary("m", "t")) >= {"stream", "locality"} and last["mode"] == "ft_stream"


def test_prompt_after_the_stream_asks_the_streamed_model_with_the_document_in_the_prompt(tiny):
    model, tokenizer = tiny
    modes = "eval.modes=prompt,ft_stream,prompt_stream"
    result = evaluate_model(model, tokenizer, DOCUMENTS, tiny_config(*STREAM, modes), progress=False)
    prompt, after = ({r["index"]: r for r in result.records if r["mode"] == m} for m in ("prompt", "prompt_stream"))
    assert set(after) == set(prompt) and "prompt_stream" in result.modes
    # The streamed weights, not θ, answer: the same prompts score differently after five updates.
    assert any(after[i]["nll"] != pytest.approx(prompt[i]["nll"], rel=1e-4) for i in prompt)
    # With no update at all (η = 0) the streamed model is θ, and Prompt after the stream is Prompt.
    still = evaluate_model(model, tokenizer, DOCUMENTS, tiny_config(*STREAM, modes, "inner.lr=0"), progress=False)
    assert still.modes["prompt_stream"]["nll"] == pytest.approx(still.modes["prompt"]["nll"], rel=1e-6)


def test_a_run_evaluates_prompt_after_the_stream_with_its_stream_and_keeps_both(tiny, tmp_path):
    # promptgd run and reproduce write one mode at a time (evaluate_into); prompt_stream needs the stream's weights.
    from promptgd.evaluate.recipe import evaluate_into

    model, tokenizer = tiny
    out = tmp_path / "eval"
    streams = tiny_config(*STREAM, "eval.modes=ft_stream,prompt_stream")
    first = evaluate_into(out, streams, model, tokenizer, DOCUMENTS, progress=False)
    assert set(first["modes"]) == {"ft_stream", "prompt_stream"}
    more = tiny_config(*STREAM, "eval.modes=nc,ft_stream,prompt_stream")
    again = evaluate_into(out, more, model, tokenizer, DOCUMENTS, progress=False)
    assert again["modes"]["prompt_stream"] == first["modes"]["prompt_stream"]  # kept, not redone
    modes = [line.split('"mode": "')[1].split('"')[0] for line in (out / "predictions.jsonl").open()]
    assert sorted(modes) == sorted(["nc", "ft_stream", "prompt_stream"] * len(DOCUMENTS))


def test_prompt_after_the_stream_needs_the_stream_first():
    with pytest.raises(ValueError, match="list ft_stream before it"):
        tiny_config("eval.modes=prompt_stream,ft_stream")


def test_bm25_puts_the_questions_own_document_in_the_prompt_when_its_words_match():
    from promptgd.evaluate.retrieval import with_all, with_retrieved

    documents = [t.context for t in DOCUMENTS]
    retrieved, own = with_retrieved(DOCUMENTS, documents)
    assert all(own) and [t.context for t in retrieved] == documents  # "door 3" names its own document
    assert all(t.context.count("The code of door") == 5 for t in with_all(DOCUMENTS, documents))


def test_the_retrieval_baselines_ask_the_streams_questions_and_report_retrieval_accuracy(tiny):
    model, tokenizer = tiny
    cfg = tiny_config("eval.modes=prompt,prompt_bm25,prompt_all", "eval.stream=3")
    result = evaluate_model(model, tokenizer, DOCUMENTS, cfg, progress=False)
    assert {r["mode"]: 0 for r in result.records} and len(result.records) == 9  # the 3 streamed documents, each mode
    assert result.modes["prompt_bm25"]["retrieval_accuracy"] == 1.0
    prompt, bm25 = ({r["index"]: r for r in result.records if r["mode"] == m} for m in ("prompt", "prompt_bm25"))
    hits = [i for i, r in bm25.items() if r["retrieved_own"]]
    assert all(bm25[i]["nll"] == pytest.approx(prompt[i]["nll"], rel=1e-5) for i in hits)


def test_the_fine_tuning_baseline_learns_the_stream_documents(tiny):
    model, tokenizer = tiny
    cfg = tiny_config("eval.modes=nc,finetuned", "eval.finetune_epochs=3", "eval.finetune_lr=1e-2")
    result = evaluate_model(model, tokenizer, DOCUMENTS, cfg, progress=False)
    assert result.modes["finetuned"]["nll"] < result.modes["nc"]["nll"]  # the codes were learnt, as LM text
    assert {r["mode"] for r in result.records} == {"nc", "finetuned"}


def test_updates_taken_at_theta_and_applied_together_do_not_depend_on_the_order(tiny):
    model, tokenizer = tiny
    common = ("eval.modes=ft_stream", "inner.lr=0.3", "eval.stream_mode=at_theta")
    a = evaluate_model(model, tokenizer, DOCUMENTS, tiny_config(*common, "eval.stream_seed=0"), progress=False)
    b = evaluate_model(model, tokenizer, DOCUMENTS, tiny_config(*common, "eval.stream_seed=1"), progress=False)
    nll = lambda result: {r["query"]: r["nll"] for r in result.records}  # noqa: E731 (indices follow each order)
    assert nll(a) == pytest.approx(nll(b), rel=1e-4)  # a sum of the same updates, in another order


def test_the_retention_plot_draws_each_methods_stream_and_refuses_an_evaluation_without_one(tmp_path):
    from promptgd.report.retention import retention_figure

    quarters = [
        {"positions": [q, q], "nll": 2.0 + q} for q in range(1, 5)
    ]  # a stream section as evaluate_stream writes
    stream = {
        "documents": 4,
        "probed_documents": 4,
        "quarters": quarters,
        "probed": {"2": {"nll": 2.5}, "4": {"nll": 3.0}},
    }
    summary = {"modes": {"nc": {"nll": 6.0}, "ft": {"nll": 2.0}, "ft_stream": {"nll": 3.5}}, "stream": stream}
    retention_figure({"sequential": summary, "again": summary}, "nll", tmp_path / "r.png", "tiny")
    assert (tmp_path / "r.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="plain: its summary has no stream section"):
        retention_figure({"plain": {"modes": summary["modes"]}}, "nll", tmp_path / "s.png", "tiny")


def test_stream_figures_measure_retention_against_nc_and_single_document_ft(tmp_path):
    import json

    from promptgd.report.retention import json_ready, share_text, stream_figures

    def row(name: str, records: list[dict], summary: dict) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))

    people = ["a", "b", "c", "d"]  # FT answers all four, the stream keeps the first two (positions 1 and 2)
    record = lambda mode, i, ok, **more: {"mode": mode, "index": i, "context": people[i], "correct": ok, **more}  # noqa: E731
    row("nc", [record("nc", i, 0.0) for i in range(4)], {"modes": {"nc": {"accuracy": 0.0}}})
    stream = [record("ft_stream", i, float(i < 2), position=i + 1) for i in range(4)]
    locality = {
        "before": {"held_out_nll": 2.0, "known_facts_accuracy": 1.0},
        "after": {"held_out_nll": 2.2, "known_facts_accuracy": 0.5},
    }
    summary = {"modes": {"ft_stream": {"accuracy": 0.5}}, "stream": {"documents": 4}, "locality": locality}
    row("stream", [record("ft", i, 1.0) for i in range(4)] + stream, summary)
    figures = stream_figures(tmp_path / "stream", "accuracy", nc_dir=tmp_path / "nc")
    assert figures["retention"].value == 0.5 and figures["first_quarter_retention"] == 1.0
    assert figures["held_out_nll_ratio"] == pytest.approx(1.1) and figures["known_facts_after"] == 0.5
    assert json_ready(figures)["prompt_after_stream"] is None  # not asked
    assert share_text(float("nan")) == "none (FT ≤ NC)"
    # FT below NC: no gain to keep, so no retention (a ratio of two negatives would read as a positive share).
    row("worse", [record("ft", i, 0.0) for i in range(4)] + stream, summary)
    nc_right = tmp_path / "nc_right"
    row("nc_right", [record("nc", i, 1.0) for i in range(4)], {"modes": {"nc": {"accuracy": 1.0}}})
    assert np.isnan(stream_figures(tmp_path / "worse", "accuracy", nc_dir=nc_right)["retention"].value)


def test_a_choice_ties_what_is_less_than_its_margin_below_the_best_and_acts_on_the_margin_itself():
    from promptgd.report.retention import first_within

    # In order of preference; 0.56 − 0.46 is 0.10000000000000003 in floats: exactly the margin, so acted on.
    assert first_within({"preferred": 0.46, "best": 0.56}, 0.10) == "best"
    assert first_within({"preferred": 0.47, "best": 0.56}, 0.10) == "preferred"
    assert first_within({"preferred": 0.50, "best": 0.60}, 0.10) == "best"
