"""The evaluation modes over a list of triples.

- nc:            the query alone, base weights
- prompt:        context ⊕ separator ⊕ query, base weights
- ft:            the query alone, after the inner update on the triple's own context
- ft_irrelevant: the query alone, after the inner update on the next triple's context (a control: what
                 a gradient step on unrelated text of the same kind does)
- ft_stream:     the query alone, after every context of the split was absorbed one after another into one
                 model (evaluate/stream.py)
- prompt_stream: context ⊕ separator ⊕ query, at the weights ft_stream left (the streamed model still reads?)
- finetuned:     the query alone, after ordinary fine-tuning on those contexts (the streams' baseline)
- prompt_bm25:   the document BM25 retrieves for the query among those contexts, ⊕ query (evaluate/retrieval.py)
- prompt_all:    all those contexts ⊕ query

With `inner.contexts = k > 1`, FT absorbs k consecutive contexts in one update and then asks all k queries.
With k = 1, triples that share a context (SQuAD has ~5 questions per paragraph) share one inner update and
are answered in one batch: the update is the expensive part, and it depends on the context alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from promptgd import distributed
from promptgd.config import EvalConfig, FormatConfig, InnerConfig
from promptgd.data.encoding import Encoder
from promptgd.data.triples import Triple
from promptgd.evaluate.answer_metrics import exact_match, prefix_match, token_f1
from promptgd.evaluate.decode import score_and_generate, stop_token_ids
from promptgd.evaluate.retrieval import with_all, with_retrieved
from promptgd.evaluate.stream import documents, evaluate_finetuned, evaluate_stream, streamed
from promptgd.lm import Forward, Params, TokenBatch, sequence_losses
from promptgd.update.explicit import InnerUpdate
from promptgd.update.step_sizes import StepSizes

MODES = ("nc", "prompt", "ft", "ft_irrelevant", "ft_stream", "prompt_stream", "finetuned", "prompt_bm25", "prompt_all")
PROMPTED = ("prompt", "prompt_stream", "prompt_bm25", "prompt_all")  # modes that put a context before the query


@dataclass
class EvalResult:
    records: list[dict]  # one per (triple, mode)
    modes: dict[str, dict[str, float]]  # mode -> metric -> mean
    seconds: dict[str, float]  # mode -> wall time
    sections: dict = field(default_factory=dict)  # ft_stream's "stream" and "locality" (evaluate/stream.py)

    def summary(self, model: str, task: str) -> dict:
        n = len({r["index"] for r in self.records})
        return {"model": model, "task": task, "n": n, "modes": self.modes} | self.sections


def evaluate(
    forward: Forward,
    params: Params,
    tokenizer,
    triples: list[Triple],
    eval_cfg: EvalConfig,
    inner_cfg: InnerConfig,
    format_cfg: FormatConfig,
    device: torch.device,
    update: InnerUpdate,
    step: StepSizes,
    progress: bool = True,
) -> EvalResult:
    """`update`: the inner update FT applies (update/explicit.py); an implicit one answers the triples of many
    contexts in one batch. `step`: the inner step's size, inner_cfg.lr everywhere or meta-learned
    (update/step_sizes.py)."""
    unknown = set(eval_cfg.modes) - set(MODES)
    if unknown:
        raise ValueError(f"eval.modes: unknown mode(s) {sorted(unknown)}; choose from {', '.join(MODES)}")
    triples = streamed(triples[: eval_cfg.limit or None], eval_cfg)
    records, modes, seconds, sections = [], {}, {}, {}
    streamed_params = None  # the weights ft_stream leaves, which prompt_stream asks (config: ft_stream comes first)
    for mode in eval_cfg.modes:
        start = time.perf_counter()
        if mode == "ft_stream":  # one sequence of updates: every process runs it whole
            args = (forward, params, tokenizer, triples, eval_cfg, inner_cfg, format_cfg, step, device, progress)
            stream_result = evaluate_stream(*args, _record, _means)
            mode_records, sections = stream_result.records, stream_result.sections
            streamed_params = stream_result.params
        elif mode == "finetuned":
            args = (forward, params, tokenizer, triples, eval_cfg, format_cfg, device, progress, _record)
            mode_records = evaluate_finetuned(*args)
        else:
            args = (
                forward,
                streamed_params if mode == "prompt_stream" else params,
                tokenizer,
                triples,
                eval_cfg,
                inner_cfg,
                format_cfg,
                device,
                update,
                step,
                progress,
            )
            mode_records = _answered(mode, *args)
        seconds[mode] = time.perf_counter() - start
        records += mode_records
        modes[mode] = _means(mode_records)
    return EvalResult(records=records, modes=modes, seconds=seconds, sections=sections)


def _answered(
    mode, forward, params, tokenizer, triples, eval_cfg, inner_cfg, format_cfg, device, update, step, progress
):
    """The records of one mode that answers unit by unit (all but the streams): NC, the Prompt modes, FT."""
    encoder, stop_ids = Encoder(tokenizer, format_cfg), stop_token_ids(tokenizer)
    mode_triples, own = _prompted_contexts(mode, triples, eval_cfg)
    bar = tqdm(total=len(triples), desc=f"eval {mode}", unit="ex", disable=not progress or not distributed.is_main())
    mode_records = []
    # Under torchrun each rank answers its share of the units (a unit is what shares one inner update, e.g.
    # the questions of one absorbed paragraph); the batches are the ones one process would form, so the
    # gathered records are that process's.
    for batches, make_answerer in distributed.share(
        _units(mode, forward, params, encoder, mode_triples, eval_cfg, inner_cfg, step, device, update)
    ):
        answerer = make_answerer()
        for indices in batches:
            prefix = encoder.prompt if mode in PROMPTED else encoder.query
            scored = score_and_generate(
                *answerer(indices),
                [prefix(mode_triples[i]) for i in indices],
                [encoder.response(triples[i]) for i in indices],
                pad_id=tokenizer.pad_token_id,
                stop_ids=stop_ids,
                max_new_tokens=eval_cfg.max_new_tokens,
                device=device,
            )
            for i, nll, token_accuracy, gen in zip(indices, scored.nll, scored.token_accuracy, scored.generated):
                record = _record(mode, i, triples[i], tokenizer.decode(gen), nll, token_accuracy)
                if answerer.diverged:  # which update answered it (its first question), and whether it diverged
                    record |= {"update": answerer.update_of[i], "diverged": answerer.diverged[i]}
                mode_records.append(record | ({"retrieved_own": own[i]} if own else {}))
            bar.update(len(indices) * distributed.world())
    bar.close()
    return sorted(distributed.gather(mode_records), key=lambda r: r["index"])


@dataclass
class Answerer:
    answer: Callable[[list[int]], tuple[Forward, Params]]  # triple indices -> the model that answers them
    diverged: dict[int, bool]  # triple index -> whether the update it is answered after raised the loss of the contexts
    # that update absorbed (its own context in mode ft, another in ft_irrelevant); {} without an update
    update_of: dict[int, int] = field(default_factory=dict)  # triple index -> its update's first answered triple

    def __call__(self, indices: list[int]) -> tuple[Forward, Params]:
        return self.answer(indices)


Unit = tuple[list[list[int]], Callable[[], Answerer]]  # batches of triple indices, and a function that prepares them


def _units(mode, forward, params, encoder, triples, eval_cfg, inner_cfg, step, device, update) -> list[Unit]:
    """The work of one mode: batches of triple indices and a function giving what answers them. The inner update,
    the expensive part, runs only when the unit's owner calls that function."""
    n, size = len(triples), eval_cfg.batch_size
    if mode in ("nc", *PROMPTED):
        return [
            ([batch], lambda: Answerer(lambda _: (forward, params), {})) for batch in _batches(list(range(n)), size)
        ]
    encoded: dict[int, list[int]] = {}  # each context tokenized once: pass sizes and the passes read it

    def context_ids(j: int) -> list[int]:
        if j not in encoded:
            encoded[j] = encoder.context(triples[j])
        return encoded[j]

    def absorbing(group: list[tuple[list[int], list[int]]]) -> Callable[[], Answerer]:
        task_of = {i: t for t, (answered, _) in enumerate(group) for i in answered}

        def prepare() -> Answerer:
            contexts = [
                TokenBatch.from_lists([context_ids(j)], encoder.tokenizer.pad_token_id, device=device)
                for _, sources in group
                for j in sources
            ]
            with torch.enable_grad():
                leaves = {name: p.detach().requires_grad_() for name, p in params.items()}
                absorbed = update.absorb(forward, leaves, contexts, len(group), step, inner_cfg.steps, inner_cfg.mode)

            def answer(indices: list[int]) -> tuple[Forward, Params]:
                rows = torch.tensor([task_of[i] for i in indices], device=device)
                return update.adapted(forward, params, absorbed, rows)

            owner = [t for t, (_, sources) in enumerate(group) for _ in sources]
            rose = _raised_context_loss(forward, params, update, absorbed, contexts, owner, device)
            rose_of = {i: rose[t] for t, (answered, _) in enumerate(group) for i in answered}
            return Answerer(answer, rose_of, {i: answered[0] for answered, _ in group for i in answered})

        return prepare

    passes = _passes(_absorptions(mode, triples, inner_cfg.contexts), context_ids, eval_cfg, update.tasks_per_pass)
    return [(_batches([i for answered, _ in group for i in answered], size), absorbing(group)) for group in passes]


def _absorptions(mode: str, triples: list[Triple], k: int) -> list[tuple[list[int], list[int]]]:
    """(the triples answered, the triples whose contexts one inner update absorbs for them), in order. With k = 1,
    triples that share a context share its update; the control (ft_irrelevant) takes the next group's contexts."""
    n = len(triples)
    if k == 1:
        groups = _group_by_context(triples)
        return [
            (indices, [indices[0] if mode == "ft" else groups[(g + 1) % len(groups)][0]])
            for g, indices in enumerate(groups)
        ]
    chunks = [list(range(start, min(start + k, n))) for start in range(0, n, k)]
    return [(c, c if mode == "ft" else [(i + k) % n for i in c]) for c in chunks]


def _passes(absorptions, context_ids, eval_cfg: EvalConfig, tasks_per_pass: int | None) -> list[list[tuple]]:
    """Absorptions grouped into passes, up to eval.batch_size questions and eval.pass_tokens context tokens (a pass
    keeps every context token's factors, so its memory grows with their number) and
    `tasks_per_pass` absorptions (the explicit update: one); each batch one pass. An absorption with more questions or
    tokens than that is a pass of its own. A pass holds absorptions of equal k."""
    passes: list[list[tuple[list[int], list[int]]]] = []
    questions = tokens = 0  # in the last pass
    for answered, sources in absorptions:
        more_tokens = sum(len(context_ids(j)) for j in sources)
        last = passes[-1] if passes else []
        fits = questions + len(answered) <= eval_cfg.batch_size and tokens + more_tokens <= eval_cfg.pass_tokens
        fits = fits and (tasks_per_pass is None or len(last) < tasks_per_pass)
        if last and fits and len(last[0][1]) == len(sources):
            last.append((answered, sources))
            questions, tokens = questions + len(answered), tokens + more_tokens
        else:
            passes.append([(answered, sources)])
            questions, tokens = len(answered), more_tokens
    return passes


@torch.no_grad()
def _raised_context_loss(forward, params, update, absorbed, contexts, owner: list[int], device) -> list[bool]:
    """Per absorbed task, whether its update raised the mean loss of its own contexts (a diverging update, which
    answers in degenerate text): one forward at θ and one at θ' over the pass's contexts."""
    batch = TokenBatch.concat(contexts)
    rows = torch.tensor(owner, device=device)
    before = sequence_losses(forward, params, batch)
    after = sequence_losses(*update.adapted(forward, params, absorbed, rows), batch)
    tasks = max(owner) + 1
    total = lambda losses: torch.zeros(tasks, dtype=losses.dtype, device=device).index_add(0, rows, losses)  # noqa: E731
    return (total(after) > total(before)).tolist()


def _prompted_contexts(mode: str, triples: list[Triple], eval_cfg: EvalConfig) -> tuple[list[Triple], list[bool]]:
    """The triples as `mode` puts them in the prompt: the retrieval baselines (evaluate/retrieval.py) over the stream's
    documents (`triples` are the stream's, `streamed`), with whether BM25 found each triple's own; else as they are."""
    if mode not in ("prompt_bm25", "prompt_all"):
        return triples, []
    texts = [triples[doc[0]].context for doc in documents(triples)]
    if mode == "prompt_all":
        return with_all(triples, texts), []
    return with_retrieved(triples, texts)


def _batches(indices: list[int], size: int) -> list[list[int]]:
    return [indices[start : start + size] for start in range(0, len(indices), size)]


def _group_by_context(triples: list[Triple]) -> list[list[int]]:
    """Triple indices grouped by identical context, groups in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, triple in enumerate(triples):
        groups.setdefault(triple.context, []).append(i)
    return list(groups.values())


def _record(mode: str, index: int, triple: Triple, generation: str, nll: float, token_accuracy: float) -> dict:
    answer = generation.split("\n", 1)[0].strip()
    em = exact_match(answer, triple.gold_answers)
    return {
        "mode": mode,
        "index": index,
        "context": triple.context,
        "query": triple.query,
        "gold": triple.response.strip(),
        "prediction": answer,
        "correct": em,
        "exact_match": em,
        "prefix_match": prefix_match(answer, triple.gold_answers),
        "f1": token_f1(answer, triple.gold_answers),
        "token_accuracy": token_accuracy,
        "nll": nll,
    }


def _means(records: list[dict]) -> dict[str, float]:
    """Each metric's mean over the records; for a mode with an update, also the share of its absorbed contexts whose
    update diverged (`diverged_share`, over updates, not questions)."""
    n = max(len(records), 1)
    mean = lambda key: sum(float(r[key]) for r in records) / n  # noqa: E731
    diverged = {r["update"]: r["diverged"] for r in records if "diverged" in r}
    shares = {"diverged_share": sum(diverged.values()) / len(diverged)} if diverged else {}
    if any("retrieved_own" in r for r in records):
        shares["retrieval_accuracy"] = sum(r["retrieved_own"] for r in records) / n
    return {
        "accuracy": mean("correct"),
        "exact_match": mean("exact_match"),
        "prefix_match": mean("prefix_match"),
        "f1": mean("f1"),
        "token_accuracy": mean("token_accuracy"),
        "nll": mean("nll"),
    } | shares
