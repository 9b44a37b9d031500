"""FT over a stream (mode `ft_stream`): the documents of a split absorbed one after another into one model, each
update starting from the previous one's θ', and every question asked at the end, as a user who stores a corpus in
the weights would ask it (CaMeLS and MAC measure the same; a fresh copy per document, mode `ft`, is the upper bound).

The order is seeded (eval.stream_seed); eval.stream_mode=at_theta takes every update at θ and applies them all
together instead (their sum). Beside the usual metrics the summary gets a `stream` section: the metrics of
each quarter of the stream by position, and those of the first 10 documents' questions asked after 10, 100, 1,000
documents (eval.stream_probes) and at the end, i.e. how early knowledge fares as more follows; and a `locality`
section: before and after the stream, the per-token NLL of held-out text (eval.locality_corpus) and the accuracy on
the known facts (data/builtin/known_facts.json) that the start model answers right without context. Every update is
explicit (a materialised θ', guarded as inner.guard says), since the next one starts from it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources

import torch
from tqdm.auto import tqdm

from promptgd.config import ConfigError, EvalConfig, FormatConfig, InnerConfig
from promptgd.data.encoding import Encoder
from promptgd.data.lm_corpus import read_corpus
from promptgd.data.triples import Triple
from promptgd.evaluate.answer_metrics import exact_match
from promptgd.evaluate.decode import score_and_generate, stop_token_ids
from promptgd.lm import Forward, Params, TokenBatch, sequence_losses
from promptgd.report.retention import quarter_of
from promptgd.update.explicit import ExplicitUpdate
from promptgd.update.step_sizes import StepSizes

PROBED_DOCUMENTS = 10  # the first documents whose questions are asked again as the stream goes on
LOCALITY_CHUNKS, LOCALITY_TOKENS = 32, 128  # held-out text: this many chunks of this many tokens


@dataclass
class StreamResult:
    records: list[dict]  # one per question, asked at the end of the stream, with its document's `position` (1-based)
    sections: dict  # "stream" and "locality", for summary.json
    params: Params  # the weights at the end of the stream, which mode prompt_stream asks


# The modes that read the stream's documents: they ask the questions of the first eval.stream of them (`streamed`).
STREAM_MODES = ("ft_stream", "prompt_stream", "finetuned", "prompt_bm25", "prompt_all")


def documents(triples: list[Triple]) -> list[list[int]]:
    """The indices of each distinct context's triples, contexts in order of first appearance."""
    grouped: dict[str, list[int]] = {}
    for i, triple in enumerate(triples):
        grouped.setdefault(triple.context, []).append(i)
    return list(grouped.values())


def stream_documents(triples: list[Triple], seed: int, n: int) -> list[list[int]]:
    """The first `n` documents (0: all) in an order seeded by `seed`, each as the indices of its triples."""
    order = documents(triples)
    random.Random(f"stream:{seed}").shuffle(order)
    return order[: n or None]


def streamed(triples: list[Triple], eval_cfg: EvalConfig) -> list[Triple]:
    """What an evaluation with a stream mode asks, in every mode alike: the questions of the first eval.stream
    documents, in the stream's seeded order; the triples as they are when no mode of eval.modes is a stream's."""
    if not set(eval_cfg.modes) & set(STREAM_MODES):
        return triples
    return [triples[i] for doc in stream_documents(triples, eval_cfg.stream_seed, eval_cfg.stream) for i in doc]


def evaluate_stream(
    forward: Forward,
    params: Params,
    tokenizer,
    triples: list[Triple],
    eval_cfg: EvalConfig,
    inner_cfg: InnerConfig,
    format_cfg: FormatConfig,
    step: StepSizes,
    device: torch.device,
    progress: bool,
    record,  # evaluator's record maker: (mode, index, triple, generation, nll, token_accuracy) -> dict
    means,  # evaluator's metric means over records
) -> StreamResult:
    """`triples`: in stream order (`streamed`)."""
    if eval_cfg.stream_mode == "at_theta" and any(name.endswith(".lora_A") for name in params):
        # Summed factor moves are not summed updates: the merged weight would gain cross terms s·ΔB_i·ΔA_j.
        raise ConfigError(
            "eval.stream_mode=at_theta sums full-rank updates; a LoRA-inner model takes them sequentially"
        )
    encoder = Encoder(tokenizer, format_cfg)
    ask = _Asker(forward, tokenizer, encoder, eval_cfg, device, record, "ft_stream")
    stream = documents(triples)
    probed = [i for doc in stream[:PROBED_DOCUMENTS] for i in doc]
    locality = _Locality(forward, tokenizer, eval_cfg, device, params)
    update, current, early = ExplicitUpdate(guard=inner_cfg.guard), dict(params), {}
    for position, doc in enumerate(tqdm(stream, desc="stream", unit="doc", disable=not progress), 1):
        context = [TokenBatch.from_lists([encoder.context(triples[doc[0]])], tokenizer.pad_token_id, device=device)]
        # sequential: from the previous document's θ'; at_theta: every document's update taken at θ, all of them
        # applied together (summed), so no update is taken at weights another has moved.
        start = current if eval_cfg.stream_mode == "sequential" else params
        with torch.enable_grad():
            leaves = {name: p.detach().requires_grad_() for name, p in start.items()}
            adapted = update.absorb(forward, leaves, context, 1, step, inner_cfg.steps, inner_cfg.mode)
        if eval_cfg.stream_mode == "sequential":
            current = {name: p.detach() for name, p in adapted.items()}
        else:
            current = {name: current[name] + (p.detach() - params[name]) for name, p in adapted.items()}
        if position in eval_cfg.stream_probes and position < len(stream):
            early[str(position)] = means(ask(current, triples, probed))
    records = ask(current, triples, [i for doc in stream for i in doc])
    position_of = {i: position for position, doc in enumerate(stream, 1) for i in doc}
    for r in records:
        r["position"] = position_of[r["index"]]
    early[str(len(stream))] = means([r for r in records if r["position"] <= PROBED_DOCUMENTS])
    summary = {"documents": len(stream), "probed_documents": min(PROBED_DOCUMENTS, len(stream))}
    summary |= {"quarters": _quarters(records, len(stream), means), "probed": early}
    return StreamResult(records, {"stream": summary, "locality": locality.after(current)}, current)


def evaluate_finetuned(
    forward: Forward,
    params: Params,
    tokenizer,
    triples: list[Triple],
    eval_cfg: EvalConfig,
    format_cfg: FormatConfig,
    device: torch.device,
    progress: bool,
    record,
) -> list[dict]:
    """Mode `finetuned`, the baseline of stream evaluations (CaMeLS, MAC): the stream's documents (`triples` in stream
    order, `streamed`) learnt by ordinary fine-tuning, eval.finetune_epochs passes of AdamW at eval.finetune_lr on
    their LM loss (one document a step, in the stream's order), then every question asked."""
    encoder = Encoder(tokenizer, format_cfg)
    stream = documents(triples)
    tuned = {name: p.detach().clone().requires_grad_() for name, p in params.items()}
    optimizer = torch.optim.AdamW(tuned.values(), lr=eval_cfg.finetune_lr, weight_decay=0.0)
    batches = [
        TokenBatch.from_lists([encoder.context(triples[doc[0]])], tokenizer.pad_token_id, device=device)
        for doc in stream
    ]
    for _ in tqdm(range(eval_cfg.finetune_epochs), desc="fine-tune", unit="epoch", disable=not progress):
        for batch in batches:
            with torch.enable_grad():
                optimizer.zero_grad(set_to_none=True)
                sequence_losses(forward, tuned, batch).mean().backward()
            optimizer.step()
    ask = _Asker(forward, tokenizer, encoder, eval_cfg, device, record, "finetuned")
    return ask({k: v.detach() for k, v in tuned.items()}, triples, [i for doc in stream for i in doc])


def _quarters(records: list[dict], documents: int, means) -> list[dict]:
    """The metrics of each quarter of the stream by document position (first to last); a quarter that holds no
    document (a stream of fewer than 4) is left out."""
    out = []
    for q in range(4):
        inside = [r for r in records if quarter_of(r["position"], documents) == q]
        if inside:
            positions = [r["position"] for r in inside]
            out.append({"positions": [min(positions), max(positions)], **means(inside)})
    return out


@dataclass
class _Asker:
    """Greedy answers and teacher-forced scores of triples' queries at given weights, in batches."""

    forward: Forward
    tokenizer: object
    encoder: Encoder
    eval_cfg: EvalConfig
    device: torch.device
    record: object
    mode: str  # the records' mode

    def __call__(self, params: Params, triples: list[Triple], indices: list[int]) -> list[dict]:
        records = []
        for start in range(0, len(indices), self.eval_cfg.batch_size):
            batch = indices[start : start + self.eval_cfg.batch_size]
            scored = score_and_generate(
                self.forward,
                params,
                [self.encoder.query(triples[i]) for i in batch],
                [self.encoder.response(triples[i]) for i in batch],
                self.tokenizer.pad_token_id,
                stop_token_ids(self.tokenizer),
                self.eval_cfg.max_new_tokens,
                self.device,
            )
            for i, nll, accuracy, gen in zip(batch, scored.nll, scored.token_accuracy, scored.generated):
                records.append(self.record(self.mode, i, triples[i], self.tokenizer.decode(gen), nll, accuracy))
        return records


class _Locality:
    """What the stream costs the model's other knowledge: held-out text NLL and known facts, before and after."""

    def __init__(self, forward: Forward, tokenizer, eval_cfg: EvalConfig, device, params: Params):
        self.forward, self.tokenizer, self.eval_cfg, self.device = forward, tokenizer, eval_cfg, device
        self.chunks = _held_out_chunks(tokenizer, eval_cfg.locality_corpus, device)
        facts = json.loads(resources.files("promptgd.data").joinpath("builtin/known_facts.json").read_text())["facts"]
        answered = self._answers(params, [f["query"] for f in facts])
        self.known = [f for f, a in zip(facts, answered) if exact_match(a, (f["response"].strip(),))]
        self.before = self._measure(params)  # known facts: 1.0 by their choice

    def after(self, params: Params) -> dict:
        return {"before": self.before, "after": self._measure(params), "known_facts": len(self.known)}

    def _measure(self, params: Params) -> dict:
        answers = self._answers(params, [f["query"] for f in self.known])
        right = sum(exact_match(a, (f["response"].strip(),)) for f, a in zip(self.known, answers))
        measured = {"known_facts_accuracy": right / len(self.known) if self.known else None}
        if self.chunks is not None:
            with torch.no_grad():
                measured["held_out_nll"] = float(sequence_losses(self.forward, params, self.chunks).mean())
        return measured

    def _answers(self, params: Params, queries: list[str]) -> list[str]:
        ids = [self.tokenizer(q)["input_ids"] for q in queries]
        stop = stop_token_ids(self.tokenizer)
        answers = []
        for start in range(0, len(ids), self.eval_cfg.batch_size):
            batch = ids[start : start + self.eval_cfg.batch_size]
            scored = score_and_generate(
                self.forward, params, batch, [[] for _ in batch], self.tokenizer.pad_token_id, stop, 12, self.device
            )
            answers += [self.tokenizer.decode(g).split("\n", 1)[0].strip() for g in scored.generated]
        return answers


def _held_out_chunks(tokenizer, source: str, device) -> TokenBatch | None:
    """LOCALITY_CHUNKS chunks of LOCALITY_TOKENS tokens of `source` (eval.locality_corpus; `wikitext:<dir>` reads the
    release's test split, which no λ corpus reads), or None when it is "none"."""
    if source == "none":
        return None
    text = read_corpus(source, split="test")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    chunks = [ids[i : i + LOCALITY_TOKENS] for i in range(0, len(ids) - LOCALITY_TOKENS + 1, LOCALITY_TOKENS)]
    if not chunks:
        raise ValueError(f"eval.locality_corpus={source!r} holds fewer than {LOCALITY_TOKENS} tokens")
    return TokenBatch.from_lists(chunks[:LOCALITY_CHUNKS], tokenizer.pad_token_id, device=device)
