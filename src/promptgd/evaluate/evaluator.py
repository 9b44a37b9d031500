"""The four evaluation modes over a list of triples.

- nc:            the query alone, base weights
- prompt:        context ⊕ separator ⊕ query, base weights
- ft:            the query alone, after the inner update on the triple's own context
- ft_irrelevant: the query alone, after the inner update on the next triple's context (a control: what
                 a gradient step on unrelated text of the same kind does)

With `inner.contexts = k > 1`, FT absorbs k consecutive contexts in one update and then asks all k queries.
With k = 1, triples that share a context (SQuAD has ~5 questions per paragraph) share one inner update and
are answered in one batch: the update is the expensive part, and it depends on the context alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from promptgd import distributed
from promptgd.config import EvalConfig, FormatConfig, InnerConfig
from promptgd.data.encoding import Encoder
from promptgd.data.triples import Triple
from promptgd.evaluate.answer_metrics import exact_match, prefix_match, token_f1
from promptgd.evaluate.decode import score_and_generate, stop_token_ids
from promptgd.lm import Forward, Params, TokenBatch
from promptgd.update.implicit import LowRankUpdate
from promptgd.update.implicit_lora import LoraTaskUpdate
from promptgd.update.inner import inner_update
from promptgd.update.step_sizes import StepSizes

MODES = ("nc", "prompt", "ft", "ft_irrelevant")


@dataclass
class EvalResult:
    records: list[dict]  # one per (triple, mode)
    modes: dict[str, dict[str, float]]  # mode -> metric -> mean
    seconds: dict[str, float]  # mode -> wall time

    def summary(self, model: str, task: str) -> dict:
        n = len({r["index"] for r in self.records})
        return {"model": model, "task": task, "n": n, "modes": self.modes}


def evaluate(
    forward: Forward,
    params: Params,
    tokenizer,
    triples: list[Triple],
    eval_cfg: EvalConfig,
    inner_cfg: InnerConfig,
    format_cfg: FormatConfig,
    device: torch.device,
    progress: bool = True,
    update: LowRankUpdate | LoraTaskUpdate | None = None,
    lr: float | StepSizes | None = None,
) -> EvalResult:
    """`update`: the implicit inner update (update/implicit.py), which answers the triples of many contexts in one
    batch; None: the explicit one, a copy of the weights per context. `lr`: the inner step's size, inner_cfg.lr when
    None, or a meta-learned one (update/step_sizes.py)."""
    lr = inner_cfg.lr if lr is None else lr
    unknown = set(eval_cfg.modes) - set(MODES)
    if unknown:
        raise ValueError(f"eval.modes: unknown mode(s) {sorted(unknown)}; choose from {', '.join(MODES)}")
    if eval_cfg.limit:
        triples = triples[: eval_cfg.limit]
    encoder = Encoder(tokenizer, format_cfg)
    stop_ids = stop_token_ids(tokenizer)
    records, modes, seconds = [], {}, {}
    for mode in eval_cfg.modes:
        start = time.perf_counter()
        bar = tqdm(
            total=len(triples), desc=f"eval {mode}", unit="ex", disable=not progress or not distributed.is_main()
        )
        mode_records = []
        # Under torchrun each rank answers its share of the units (a unit is what shares one inner update, e.g.
        # the questions of one absorbed paragraph); the batches are the ones one process would form, so the
        # gathered records are that process's.
        for batches, make_answerer in distributed.share(
            _units(mode, forward, params, encoder, triples, eval_cfg, inner_cfg, lr, device, update)
        ):
            answerer = make_answerer()
            for indices in batches:
                prefix = encoder.prompt if mode == "prompt" else encoder.query
                scored = score_and_generate(
                    *answerer(indices),
                    [prefix(triples[i]) for i in indices],
                    [encoder.response(triples[i]) for i in indices],
                    pad_id=tokenizer.pad_token_id,
                    stop_ids=stop_ids,
                    max_new_tokens=eval_cfg.max_new_tokens,
                    device=device,
                )
                for i, nll, token_accuracy, gen in zip(indices, scored.nll, scored.token_accuracy, scored.generated):
                    mode_records.append(_record(mode, i, triples[i], tokenizer.decode(gen), nll, token_accuracy))
                bar.update(len(indices) * distributed.world())
        bar.close()
        mode_records = sorted(distributed.gather(mode_records), key=lambda r: r["index"])
        seconds[mode] = time.perf_counter() - start
        records += mode_records
        modes[mode] = _means(mode_records)
    return EvalResult(records=records, modes=modes, seconds=seconds)


Answerer = Callable[[list[int]], tuple[Forward, Params]]  # triple indices -> the model that answers them
Unit = tuple[list[list[int]], Callable[[], Answerer]]  # batches of triple indices, and a function that prepares them


def _units(mode, forward, params, encoder, triples, eval_cfg, inner_cfg, lr, device, update) -> list[Unit]:
    """The work of one mode: batches of triple indices and a function giving what answers them. The inner update,
    the expensive part, runs only when the unit's owner calls that function."""
    n, size = len(triples), eval_cfg.batch_size
    if mode in ("nc", "prompt"):
        return [([batch], lambda: lambda _: (forward, params)) for batch in _batches(list(range(n)), size)]
    # Absorptions: (the triples answered, the triples whose contexts one inner update absorbs for them).
    k = inner_cfg.contexts
    if k == 1:
        groups = _group_by_context(triples)
        # The control takes the next group's context (wrapping), never the group's own.
        absorptions = [
            (indices, [indices[0] if mode == "ft" else groups[(g + 1) % len(groups)][0]])
            for g, indices in enumerate(groups)
        ]
    else:
        chunks = [list(range(start, min(start + k, n))) for start in range(0, n, k)]
        absorptions = [(c, c if mode == "ft" else [(i + k) % n for i in c]) for c in chunks]  # control: next group's

    encoded: dict[int, list[int]] = {}  # each context tokenized once: pass sizes and the passes read it

    def context_ids(j: int) -> list[int]:
        if j not in encoded:
            encoded[j] = encoder.context(triples[j])
        return encoded[j]

    def context(j: int) -> TokenBatch:
        return TokenBatch.from_lists([context_ids(j)], encoder.tokenizer.pad_token_id, device=device)

    if update is None:
        absorb = Absorber(forward, params, inner_cfg, lr)

        def explicit(sources: list[int]) -> Callable[[], Answerer]:
            def prepare() -> Answerer:
                adapted = absorb([context(j) for j in sources])
                return lambda _: (forward, adapted)

            return prepare

        return [(_batches(answered, size), explicit(sources)) for answered, sources in absorptions]

    def implicit(group: list[tuple[list[int], list[int]]]) -> Callable[[], Answerer]:
        task_of = {i: t for t, (answered, _) in enumerate(group) for i in answered}

        def prepare() -> Answerer:
            with torch.enable_grad():
                leaves = {name: p.detach().requires_grad_() for name, p in params.items()}
                contexts = TokenBatch.concat([context(j) for _, sources in group for j in sources])
                updates = update.absorb(forward, leaves, contexts, len(group), lr, inner_cfg.steps, inner_cfg.mode)
            return lambda indices: (
                update.adapted(forward, updates, torch.tensor([task_of[i] for i in indices], device=device)),
                params,
            )

        return prepare

    # Many absorptions per pass, up to eval.batch_size questions and eval.pass_tokens context tokens (the pass keeps
    # every context token's factors: 16 SQuAD paragraphs in one pass held 12.7 GB at SmolLM2-135M), each batch one
    # pass; an absorption with more questions or tokens than that is a pass of its own. A pass holds absorptions of
    # equal k.
    passes: list[list[tuple[list[int], list[int]]]] = []
    questions = tokens = 0  # in the last pass
    for answered, sources in absorptions:
        more_tokens = sum(len(context_ids(j)) for j in sources)
        last = passes[-1] if passes else []
        fits = questions + len(answered) <= size and tokens + more_tokens <= eval_cfg.pass_tokens
        if last and fits and len(last[0][1]) == len(sources):
            last.append((answered, sources))
            questions, tokens = questions + len(answered), tokens + more_tokens
        else:
            passes.append([(answered, sources)])
            questions, tokens = len(answered), more_tokens
    return [(_batches([i for answered, _ in group for i in answered], size), implicit(group)) for group in passes]


def _batches(indices: list[int], size: int) -> list[list[int]]:
    return [indices[start : start + size] for start in range(0, len(indices), size)]


def _group_by_context(triples: list[Triple]) -> list[list[int]]:
    """Triple indices grouped by identical context, groups in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, triple in enumerate(triples):
        groups.setdefault(triple.context, []).append(i)
    return list(groups.values())


class Absorber:
    """The explicit inner update for evaluation: no graph kept, `params` untouched, θ' written into one set of
    buffers reused for every triple (the returned dict is overwritten by the next call)."""

    def __init__(self, forward: Forward, params: Params, inner_cfg: InnerConfig, lr: float | StepSizes):
        self.forward, self.params, self.inner_cfg, self.lr = forward, params, inner_cfg, lr
        self.buffers = {name: torch.empty_like(p).requires_grad_() for name, p in params.items()}

    def __call__(self, contexts: list[TokenBatch]) -> Params:
        cfg = self.inner_cfg
        with torch.enable_grad():
            leaves = {name: p.detach().requires_grad_() for name, p in self.params.items()}
            adapted = inner_update(self.forward, leaves, contexts, self.lr, cfg.steps, cfg.mode, out=self.buffers)
        return {name: p.detach() for name, p in adapted.items()}


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
    n = max(len(records), 1)
    mean = lambda key: sum(float(r[key]) for r in records) / n  # noqa: E731
    return {
        "accuracy": mean("correct"),
        "exact_match": mean("exact_match"),
        "prefix_match": mean("prefix_match"),
        "f1": mean("f1"),
        "token_accuracy": mean("token_accuracy"),
        "nll": mean("nll"),
    }
