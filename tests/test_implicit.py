"""The implicit inner update (per-task low-rank terms in forward hooks) is the explicit one, exactly: same logits,
same FT predictions, same meta-gradient, in float64 on tiny models; unsupported modules are named."""

import types
import warnings

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM, Qwen2Config, Qwen2ForCausalLM
from transformers.models.llama.modeling_llama import LlamaRMSNorm
from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm

from conftest import DEVICE, tiny_config
from promptgd.config import InnerConfig, LoraConfig
from promptgd.data.encoding import Encoder
from promptgd.data.triples import Triple
from promptgd.evaluate.recipe import evaluate_model
from promptgd.lm import TokenBatch, functional_forward, lm_loss
from promptgd.models.loading import load_model
from promptgd.models.lora import init_factors, lora_inner, lora_outer
from promptgd.models.parameterization import full_rank, with_lr_scales
from promptgd.objectives.answer_loss import answer_logprobs, answer_loss
from promptgd.objectives.lg import lg_task
from promptgd.objectives.meta_task import MetaTask
from promptgd.train.metastep import meta_loss
from promptgd.update.explicit import ExplicitUpdate, inner_update
from promptgd.update.implicit import LowRankUpdate, UnsupportedModule
from promptgd.update.implicit_lora import LoraTaskUpdate
from promptgd.update.step_sizes import StepSizes

pytestmark = pytest.mark.usefixtures("float64_exact")

# Mixed lengths on purpose: padding inside a pass must not leak into any task's update.
CONTEXTS = [
    "The first person to walk on Mars was Evan Armstrong.",
    "Mia Chen.",
    "The inventor of the glass kettle, a tool of some renown in the north, was Mia Chen of Oslo.",
    "Rain falls on Bergen.",
    "Ola Berg painted the Blue Harbour in 1901, and sold it at once.",
    "Zed.",
]
QUERIES = ["Who walked on Mars first?", "Mia", "The glass kettle was invented by", "Rain", "Blue Harbour:", "Z"]
LR = 0.7  # large, so that an update that is slightly wrong moves the logits visibly


def float64_model(name: str = "tiny:llama"):
    model, tokenizer = load_model(name, dtype="float64", device=DEVICE)
    model.set_attn_implementation("sdpa")  # SDPA's math kernel (float64_exact): exact and twice differentiable
    return model, tokenizer


def rows(tokenizer, texts: list[str]) -> TokenBatch:
    return TokenBatch.from_lists([tokenizer(t)["input_ids"] for t in texts], tokenizer.pad_token_id, device=DEVICE)


def one_each(tokenizer, texts: list[str]) -> list[TokenBatch]:
    """Contexts as the inner updates take them: one batch each."""
    return [rows(tokenizer, [t]) for t in texts]


def assert_same_logits(model, tokenizer, params, forward, contexts, queries, k, steps, mode, step=None):
    """Implicit logits of every task's k queries == the logits after that task's own explicit update (`step`: the
    step sizes, the plain step of LR by default)."""
    update, step = LowRankUpdate(model, list(params)), step or StepSizes(LR)
    n_tasks = len(contexts) // k
    updates = update.absorb(forward, params, one_each(tokenizer, contexts), n_tasks, step, steps, mode)
    batch = rows(tokenizer, queries)
    adapted, shared = update.adapted(forward, params, updates, torch.arange(len(queries), device=DEVICE) // k)
    implicit = adapted(shared, input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    moved = 0.0
    for task in range(n_tasks):
        own = [rows(tokenizer, [c]) for c in contexts[task * k : (task + 1) * k]]
        explicit = inner_update(forward, params, own, step, steps, mode)
        for row in range(task * k, (task + 1) * k):
            mine = batch.rows([row])
            reference = forward(explicit, input_ids=mine.input_ids, attention_mask=mine.attention_mask).logits[0]
            base = forward(params, input_ids=mine.input_ids, attention_mask=mine.attention_mask).logits[0]
            real = mine.attention_mask[0].bool()
            assert (implicit[row][real] - reference[real]).abs().max() < 1e-10
            moved = max(moved, float((base[real] - reference[real]).abs().max().detach()))
    assert moved > 1e-2  # the update is not a no-op, so the comparison means something


@pytest.mark.parametrize(
    "steps,mode,k", [(1, "batched", 1), (2, "batched", 1), (1, "batched", 2), (2, "sequential", 2), (1, "batched", 3)]
)
def test_implicit_update_gives_the_explicit_updates_logits(steps, mode, k):
    model, tokenizer = float64_model()
    params = dict(model.named_parameters())
    assert_same_logits(model, tokenizer, params, functional_forward(model), CONTEXTS, QUERIES, k, steps, mode)


def test_lora_outer_weights_update_implicitly_too():
    model, tokenizer = float64_model()
    cfg = LoraConfig(rank=2, alpha=4.0)
    factors = init_factors(model, cfg)
    with torch.no_grad():
        for factor in factors.values():
            factor.normal_(0, 0.05)  # a delta that is not zero
    param = lora_outer(model, factors, cfg)
    assert_same_logits(model, tokenizer, param.fast(), param.forward, CONTEXTS, QUERIES, 1, 1, "batched")


def tiny_other(architecture: str, vocab: int):
    """Other HF families built from configs: Qwen2 (biases on q/k/v), GPT-NeoX (LayerNorm with bias, untied head)."""
    torch.manual_seed(0)
    common = dict(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    if architecture == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common, num_key_value_heads=1, tie_word_embeddings=True))
    else:
        model = GPTNeoXForCausalLM(GPTNeoXConfig(**common, tie_word_embeddings=False))
    model.set_attn_implementation("sdpa")
    return model.to(DEVICE, torch.float64).eval()


@pytest.mark.parametrize("sizes", ["plain", "factored"])
@pytest.mark.parametrize("architecture", ["qwen2", "gpt_neox"])
def test_other_architectures_update_implicitly_and_exactly(architecture, sizes, monkeypatch):
    # Qwen2's RMSNorm, like Llama's, computes in float32 whatever the model's dtype (see conftest.float64_exact).
    monkeypatch.setattr(Qwen2RMSNorm, "forward", LlamaRMSNorm.forward)
    _, tokenizer = load_model("tiny:llama-1l")
    model = tiny_other(architecture, len(tokenizer))
    param = with_lr_scales(full_rank(model), "factored", freeze_weights=False)
    with torch.no_grad():  # every η different (biases, LayerNorm shifts, an untied head included)
        generator = torch.Generator().manual_seed(0)
        for v in param.lr_scales.values():
            v.copy_(0.5 * torch.randn(v.shape, generator=generator, dtype=v.dtype))
    step = param.step_size(InnerConfig(lr=LR, lr_scales=sizes if sizes == "factored" else "none"), detach=True)
    params = dict(model.named_parameters())
    assert_same_logits(model, tokenizer, params, functional_forward(model), CONTEXTS, QUERIES, 1, 2, "batched", step)


def test_an_unsupported_module_is_named_and_the_explicit_update_is_used():
    _, tokenizer = load_model("tiny:llama-1l")
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2)).eval()
    with pytest.raises(UnsupportedModule, match=r"transformer\.h\.0\.attn\.c_attn \(Conv1D\)"):
        LowRankUpdate(gpt2, [n for n, _ in gpt2.named_parameters()])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert isinstance(full_rank(gpt2).inner_update("implicit"), ExplicitUpdate)
    assert "c_attn" in str(caught[0].message) and "explicit" in str(caught[0].message)


def passes(tokenizer, k: int) -> tuple[list[MetaTask], MetaTask]:
    """LG tasks of k contexts each over CONTEXTS, alone and merged into one pass."""
    encoder = Encoder(tokenizer, tiny_config().format)
    triples = [Triple(c, q, " " + c.split()[-1]) for c, q in zip(CONTEXTS, QUERIES)]
    tasks = [lg_task(encoder, triples[i : i + k], DEVICE) for i in range(0, len(triples), k)]
    return tasks, MetaTask.merge(tasks)


@pytest.mark.parametrize("variant", ["full", "lora_outer"])
@pytest.mark.parametrize("first_order", [False, True])
def test_implicit_meta_gradient_is_the_explicit_one_and_matches_central_differences(variant, first_order):
    model, tokenizer = float64_model("tiny:llama-1l")
    if variant == "full":
        param = full_rank(model)
    else:
        cfg = LoraConfig(rank=1, alpha=2.0)
        factors = init_factors(model, cfg)
        with torch.no_grad():
            for factor in factors.values():
                factor.normal_(0, 0.05)
        param = lora_outer(model, factors, cfg)
    update = LowRankUpdate(model, list(param.fast()))
    inner = InnerConfig(lr=2.0, contexts=2)  # large η: the second-order term is big (tests/test_metagrad.py)
    alone, merged = passes(tokenizer, k=2)
    trainable = list(param.trainable.values())

    explicit = torch.autograd.grad(
        sum(
            meta_loss(param.forward, param.fast(), t, ExplicitUpdate(), StepSizes(inner.lr), inner, first_order)
            for t in alone
        ),
        trainable,
    )
    implicit_loss = meta_loss(param.forward, param.fast(), merged, update, StepSizes(inner.lr), inner, first_order)
    implicit = torch.autograd.grad(implicit_loss, trainable)
    scale = max(float(g.abs().max()) for g in explicit)
    assert max(float((a - b).abs().max()) for a, b in zip(implicit, explicit)) < 1e-10 * max(scale, 1.0)

    if first_order:
        # First order: θ'_i = θ − η g_i with each task's inner gradient g_i frozen at the current θ.
        frozen = []
        for task in alone:
            p = param.fast()
            grads = torch.autograd.grad(_context_loss(param, p, task), list(p.values()))
            frozen.append({name: g.detach() for name, g in zip(p, grads)})

        def loss_now():
            return sum(
                _answer_loss(param, {name: v - inner.lr * g[name] for name, v in param.fast().items()}, task)
                for task, g in zip(alone, frozen)
            )
    else:

        def loss_now():
            return meta_loss(param.forward, param.fast(), merged, update, StepSizes(inner.lr), inner, False)

    def loss_at(values):
        with torch.no_grad():
            for name, v in param.trainable.items():
                v.copy_(values[name])
        return float(loss_now().detach())

    generator = torch.Generator().manual_seed(0)
    base = {k: v.detach().clone() for k, v in param.trainable.items()}
    direction = {k: torch.randn(v.shape, generator=generator, dtype=v.dtype).to(v.device) for k, v in base.items()}
    norm = sum(d.pow(2).sum() for d in direction.values()).sqrt()
    direction = {k: d / norm for k, d in direction.items()}
    eps = 1e-6
    numeric = (
        loss_at({k: base[k] + eps * direction[k] for k in base})
        - loss_at({k: base[k] - eps * direction[k] for k in base})
    ) / (2 * eps)
    loss_at(base)
    analytic = sum(float((g * direction[k]).sum()) for g, k in zip(implicit, param.trainable))
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def _context_loss(param, params, task: MetaTask):
    return sum(lm_loss(param.forward, params, c) for c in task.contexts) / len(task.contexts)


def _answer_loss(param, params, task: MetaTask):
    return answer_loss(answer_logprobs(param.forward, params, task.queries), task.target, task.contexts_per_task)


def test_ft_evaluation_gives_the_explicit_predictions_for_every_triple():
    model, tokenizer = float64_model()
    # Two questions share a context (one update, two rows of one task), contexts of mixed lengths.
    triples = [Triple(c, q, " " + c.split()[-1]) for c, q in zip(CONTEXTS, QUERIES)]
    triples.insert(1, Triple(CONTEXTS[0], "Mars was first walked on by", " Evan Armstrong."))
    results = {
        implementation: evaluate_model(
            model,
            tokenizer,
            triples,
            tiny_config(
                "eval.modes=ft,ft_irrelevant",
                "inner.lr=0.7",
                "eval.batch_size=4",
                f"inner.implementation={implementation}",
            ),
            progress=False,
        ).records
        for implementation in ("explicit", "implicit")
    }
    assert len(results["implicit"]) == 2 * len(triples)
    for a, b in zip(results["explicit"], results["implicit"]):
        assert (a["mode"], a["index"], a["prediction"]) == (b["mode"], b["index"], b["prediction"])
        assert a["nll"] == pytest.approx(b["nll"], abs=1e-10)


@pytest.mark.parametrize("steps", [1, 2])
def test_ft_evaluation_absorbs_several_steps_with_the_explicit_update(steps, monkeypatch, triples):
    """The implicit update's memory grows with steps × context tokens, so evaluation takes it for one step only."""
    absorbed = []
    real_absorb = LowRankUpdate.absorb
    monkeypatch.setattr(LowRankUpdate, "absorb", lambda *a, **k: absorbed.append(1) or real_absorb(*a, **k))
    model, tokenizer = load_model("tiny:llama", device=DEVICE)
    cfg = tiny_config("eval.modes=ft", f"inner.steps={steps}", "inner.implementation=implicit")
    result = evaluate_model(model, tokenizer, triples, cfg, progress=False)
    assert len(result.records) == len(triples) and bool(absorbed) == (steps == 1)


def test_ft_evaluation_passes_are_bounded_by_context_tokens_with_the_same_results(monkeypatch, triples):
    calls = []
    model, tokenizer = load_model("tiny:llama", device=DEVICE)
    full_rank(model).inner_update("implicit")  # the update's one probe of the model runs here, uncounted
    real_absorb = LowRankUpdate.absorb
    monkeypatch.setattr(LowRankUpdate, "absorb", lambda *a, **k: calls.append(len(a[3])) or real_absorb(*a, **k))
    results = {}
    for budget in (1024, 1):  # all three contexts in one pass; one context per pass
        calls.clear()
        cfg = tiny_config("eval.modes=ft", f"eval.pass_tokens={budget}", "inner.lr=0.5")
        results[budget] = evaluate_model(model, tokenizer, triples, cfg, progress=False).records
        assert len(calls) == (1 if budget == 1024 else len(triples))
    for a, b in zip(results[1024], results[1]):
        assert a["prediction"] == b["prediction"] and a["nll"] == pytest.approx(b["nll"], rel=1e-5)


def lora_inner_param(model, rank: int = 2):
    cfg = LoraConfig(rank=rank, alpha=4.0)
    factors = init_factors(model, cfg)
    with torch.no_grad():
        for factor in factors.values():
            factor.normal_(0, 0.05)  # B ≠ 0, so both factors move
    return lora_inner(model, factors, cfg)


@pytest.mark.parametrize("steps,mode,k", [(1, "batched", 1), (2, "batched", 1), (2, "sequential", 2)])
def test_lora_inner_implicit_update_gives_the_explicit_updates_logits(steps, mode, k):
    model, tokenizer = float64_model()
    param = lora_inner_param(model)
    update = param.inner_update("implicit")
    assert isinstance(update, LoraTaskUpdate)
    n_tasks = len(CONTEXTS) // k
    updates = update.absorb(
        param.forward, param.fast(), one_each(tokenizer, CONTEXTS), n_tasks, StepSizes(LR), steps, mode
    )
    batch = rows(tokenizer, QUERIES)
    adapted, shared = update.adapted(
        param.forward, param.fast(), updates, torch.arange(len(QUERIES), device=DEVICE) // k
    )
    implicit = adapted(shared, input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    for task in range(n_tasks):
        own = [rows(tokenizer, [c]) for c in CONTEXTS[task * k : (task + 1) * k]]
        explicit = inner_update(param.forward, param.fast(), own, StepSizes(LR), steps, mode)
        for row in range(task * k, (task + 1) * k):
            mine = batch.rows([row])
            reference = param.forward(explicit, input_ids=mine.input_ids, attention_mask=mine.attention_mask).logits
            real = mine.attention_mask[0].bool()
            assert (implicit[row][real] - reference[0][real]).abs().max() < 1e-10


@pytest.mark.parametrize("first_order", [False, True])
def test_lora_inner_implicit_meta_gradient_is_the_explicit_one(first_order):
    model, tokenizer = float64_model("tiny:llama-1l")
    param = lora_inner_param(model, rank=1)
    update = param.inner_update("implicit")
    inner = InnerConfig(lr=2.0, contexts=2)
    alone, merged = passes(tokenizer, k=2)
    trainable = list(param.trainable.values())
    explicit = torch.autograd.grad(
        sum(
            meta_loss(param.forward, param.fast(), t, ExplicitUpdate(), StepSizes(inner.lr), inner, first_order)
            for t in alone
        ),
        trainable,
    )
    implicit = torch.autograd.grad(
        meta_loss(param.forward, param.fast(), merged, update, StepSizes(inner.lr), inner, first_order), trainable
    )
    scale = max(float(g.abs().max()) for g in explicit)
    assert scale > 0
    assert max(float((a - b).abs().max()) for a, b in zip(implicit, explicit)) < 1e-10 * max(scale, 1.0)


class HeadOutsideItsModule(torch.nn.Module):
    """A causal LM whose output layer reuses the embedding matrix in the model's own forward (F.linear), outside any
    module: the implicit update sees only the embedding's own use of that weight."""

    def __init__(self, vocab: int = 64, dim: int = 16):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.mix = torch.nn.Linear(dim, dim)

    def forward(self, input_ids, attention_mask=None, **_):
        hidden = torch.tanh(self.mix(self.embed(input_ids)))
        return types.SimpleNamespace(logits=torch.nn.functional.linear(hidden, self.embed.weight))


class HeadInItsModule(HeadOutsideItsModule):
    """The same model with its output layer a module of its own: nothing for the probe to find."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(16, 64, bias=False)

    def forward(self, input_ids, attention_mask=None, **_):
        return types.SimpleNamespace(logits=self.head(torch.tanh(self.mix(self.embed(input_ids)))))


def test_an_unknown_model_that_uses_its_weights_in_their_modules_keeps_the_implicit_update():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(full_rank(HeadInItsModule().to(DEVICE).eval()).inner_update("implicit"), LowRankUpdate)


def test_a_weight_used_outside_its_module_is_caught_by_the_probe_and_the_explicit_update_is_used():
    torch.manual_seed(0)
    model = HeadOutsideItsModule().to(DEVICE).eval()
    LowRankUpdate(model, [n for n, _ in model.named_parameters()])  # no inspection of the modules can tell
    with pytest.warns(UserWarning, match="differs from the explicit one"):
        update = full_rank(model).inner_update("implicit")
    assert isinstance(update, ExplicitUpdate)


def test_a_linear_subclass_with_its_own_parameters_or_forward_is_not_taken_for_a_linear():
    class Gated(torch.nn.Linear):
        def __init__(self):
            super().__init__(4, 4)
            self.gate = torch.nn.Parameter(torch.ones(4))

        def forward(self, x):
            return super().forward(x) * self.gate

    model = torch.nn.Sequential(Gated())
    with pytest.raises(UnsupportedModule, match=r"0 \(Gated\)"):
        LowRankUpdate(model, [n for n, _ in model.named_parameters()])
