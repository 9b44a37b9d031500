"""The meta-gradient is the true gradient: central finite differences in float64 on a tiny model."""

import pytest
import torch

from conftest import DEVICE, tiny_config
from promptgd.config import InnerConfig
from promptgd.data.encoding import Encoder
from promptgd.lm import functional_forward, lm_loss
from promptgd.models.loading import load_model
from promptgd.objectives.answer_loss import answer_logprobs, answer_loss
from promptgd.objectives.lc import lc_task, teacher_answers
from promptgd.objectives.lg import lg_task
from promptgd.train.metastep import meta_loss
from promptgd.update.explicit import ExplicitUpdate, inner_update
from promptgd.update.step_sizes import StepSizes

pytestmark = pytest.mark.usefixtures("float64_exact")

# A large η makes the second-order term big enough that a first-order gradient would fail the check.
ETA = 2.0


@pytest.fixture
def setup(triples):
    model, tokenizer = load_model("tiny:llama-1l", dtype="float64", device=DEVICE)
    model.set_attn_implementation("sdpa")
    encoder = Encoder(tokenizer, tiny_config().format)
    teacher = functional_forward(model)
    teacher_params = {k: v.detach().clone() for k, v in model.named_parameters()}
    answers = teacher_answers(
        teacher, teacher_params, encoder, triples[:1], max_new_tokens=3, batch_size=1, device=DEVICE
    )
    tasks = {
        "lc": lc_task(teacher, teacher_params, encoder, triples[:1], answers, DEVICE),
        "lg": lg_task(encoder, triples[:1], DEVICE),
    }
    return model, tasks


def _directional_fd(f, params, direction, eps=1e-6):
    plus = {k: p.detach() + eps * direction[k] for k, p in params.items()}
    minus = {k: p.detach() - eps * direction[k] for k, p in params.items()}
    return (f(plus) - f(minus)).item() / (2 * eps)


@pytest.mark.parametrize("objective", ["lc", "lg"])
@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_matches_central_differences(setup, objective, first_order):
    model, tasks = setup
    task = tasks[objective]
    forward = functional_forward(model)
    params = dict(model.named_parameters())
    inner = InnerConfig(lr=ETA)
    loss = meta_loss(forward, params, task, ExplicitUpdate(), StepSizes(ETA), inner, first_order)
    grads = torch.autograd.grad(loss, list(params.values()))

    if first_order:
        # First order differentiates L(θ − η·g₀) with the inner gradient g₀ frozen at the current θ.
        g0 = dict(zip(params, torch.autograd.grad(lm_loss(forward, params, task.contexts[0]), list(params.values()))))

        def f(p):
            adapted = {k: p[k] - ETA * g0[k].detach() for k in p}
            return answer_loss(answer_logprobs(forward, adapted, task.queries), task.target, 1)
    else:

        def f(p):
            leaves = {k: v.detach().requires_grad_() for k, v in p.items()}
            return meta_loss(forward, leaves, task, ExplicitUpdate(), StepSizes(ETA), inner, first_order=False).detach()

    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        direction = {k: torch.randn(v.shape, generator=g, dtype=v.dtype).to(v.device) for k, v in params.items()}
        norm = sum(d.pow(2).sum() for d in direction.values()).sqrt()
        direction = {k: d / norm for k, d in direction.items()}  # unit length, so eps is the actual step
        analytic = sum((gr * direction[k]).sum() for gr, k in zip(grads, params)).item()
        numeric = _directional_fd(f, params, direction)
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_second_order_term_matters_at_this_eta(setup):
    model, tasks = setup
    forward, params = functional_forward(model), dict(model.named_parameters())
    full = torch.autograd.grad(
        meta_loss(forward, params, tasks["lc"], ExplicitUpdate(), StepSizes(ETA), InnerConfig(lr=ETA), False),
        list(params.values()),
    )
    first = torch.autograd.grad(
        meta_loss(forward, params, tasks["lc"], ExplicitUpdate(), StepSizes(ETA), InnerConfig(lr=ETA), True),
        list(params.values()),
    )
    difference = sum((a - b).norm() ** 2 for a, b in zip(full, first)).sqrt()
    assert difference > 1e-3 * sum(a.norm() ** 2 for a in full).sqrt()


def test_lc_with_zero_eta_is_plain_distillation_without_context(setup):
    model, tasks = setup
    task = tasks["lc"]
    forward, params = functional_forward(model), dict(model.named_parameters())
    meta = torch.autograd.grad(
        meta_loss(forward, params, task, ExplicitUpdate(), StepSizes(0.0), InnerConfig(lr=0.0), False),
        list(params.values()),
    )
    plain = torch.autograd.grad(
        answer_loss(answer_logprobs(forward, params, task.queries), task.target, 1), list(params.values())
    )
    for a, b in zip(meta, plain):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)


def test_inner_update_sequential_k1_equals_batched_k1(setup):
    model, tasks = setup
    forward, params = functional_forward(model), dict(model.named_parameters())
    contexts = tasks["lc"].contexts
    a = inner_update(forward, params, contexts, StepSizes(0.1), steps=2, mode="batched")
    b = inner_update(forward, params, contexts, StepSizes(0.1), steps=2, mode="sequential")
    assert all(torch.equal(a[k], b[k]) for k in a)
