"""Meta-gradients added to each weight's .grad as each use of the weight delivers them, not summed by autograd first.

The outer backward of a second-order step reaches a weight from several places: the adapted forward (the query), the
context pass's forward, and the context pass's backward, which create_graph kept (δ_l = W_{l+1}ᵀ δ_{l+1}). Autograd
sums a leaf's contributions in a buffer the size of the leaf and hands the sum to .grad when the last one arrives,
the context forward's, near the end of the backward; the adapted forward's arrive first, for every layer. So while
the backward runs, every weight holds a partial sum, and from the second pass of an outer step on .grad is resident
beside it: one more copy of the model's weights than batch 1 needs (`results/benchmarks.md`, "The allocator").

Here every use gets its own sink, an identity whose backward adds the contribution to .grad at once and hands
autograd nothing, and a Linear's backward reads its weight through a second sink of its own, so no weight is reached
twice through one node. The gradient is the same sum, in another order (tests/test_gradient_sinks.py).

Only for the implicit inner update of full-rank, unsharded weights: the explicit update differentiates the context
loss with respect to the leaves themselves, which a sink would answer with nothing; FSDP2 reduces gradients in hooks
that a sink bypasses; LoRA's merged weights are not leaves and pass through untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F


class _Sink(torch.autograd.Function):
    """Identity on a leaf; its backward adds the incoming gradient to the leaf's .grad and returns nothing."""

    @staticmethod
    def forward(ctx, leaf: torch.Tensor) -> torch.Tensor:
        ctx.leaf = leaf
        ctx.set_materialize_grads(False)  # a use whose gradient is never computed must not add a tensor of zeros
        return leaf.view_as(leaf)

    @staticmethod
    def backward(ctx, grad: torch.Tensor | None) -> None:
        if grad is not None:
            leaf = ctx.leaf
            if leaf.grad is None:
                leaf.grad = grad.detach().clone(memory_format=torch.contiguous_format)
            else:
                leaf.grad.add_(grad)
        return None


class _TwoWayLinear(torch.autograd.Function):
    """y = x Wᵀ + b computed with `w_forward`, whose backward reads W as `w_backward`: the same values, another node.

    With create_graph (the context pass), the δ's it propagates are a function of `w_backward`, so the outer backward
    reaches W through the two sinks separately. The weight gradient x-by-δ is computed only when the engine will use
    it: the context pass's own backward asks for δ's alone, and computing it there would double that backward's cost."""

    @staticmethod
    def forward(ctx, x, w_forward, w_backward, bias):
        ctx.save_for_backward(x, w_backward)
        ctx.w_forward_node = w_forward.grad_fn
        return F.linear(x, w_forward, bias)

    @staticmethod
    def backward(ctx, grad_y):
        x, w_backward = ctx.saved_tensors
        grad_x = grad_y @ w_backward if ctx.needs_input_grad[0] else None
        grad_w = None
        # The engine's own test (torch.autograd.graph.register_multi_grad_hook uses it): no public equivalent.
        if torch._C._will_engine_execute_node(ctx.w_forward_node):
            grad_w = grad_y.reshape(-1, grad_y.shape[-1]).transpose(0, 1) @ x.reshape(-1, x.shape[-1])
        grad_b = grad_y.reshape(-1, grad_y.shape[-1]).sum(0) if ctx.needs_input_grad[3] else None
        return grad_x, grad_w, None, grad_b


def _sinkable(t: torch.Tensor | None) -> bool:
    return t is not None and t.is_leaf and t.requires_grad


@contextmanager
def gradient_sinks(model: torch.nn.Module) -> Iterator[None]:
    """Within it, every nn.Linear and nn.Embedding of `model` (those classes exactly) whose weight is a leaf that
    requires grad (as functional_call hands them the trainable dict's tensors) reaches it through sinks; others run
    as before. Only the forward is patched: a backward after the block still delivers into .grad."""
    patched = []
    for module in model.modules():
        # Exact types: a subclass (a quantised Linear, a scaled Embedding) computes something else in its forward.
        if type(module) is torch.nn.Linear:
            patched.append((module, module.__dict__.get("forward"), _linear_forward(module)))
        elif type(module) is torch.nn.Embedding:
            patched.append((module, module.__dict__.get("forward"), _embedding_forward(module)))
    for module, _, forward in patched:
        module.forward = forward
    try:
        yield
    finally:
        for module, previous, _ in patched:
            if previous is None:
                del module.forward
            else:
                module.forward = previous


def _linear_forward(module: torch.nn.Linear):
    def forward(x: torch.Tensor) -> torch.Tensor:
        w, b = module.weight, module.bias
        if not _sinkable(w):
            return F.linear(x, w, b)
        return _TwoWayLinear.apply(x, _Sink.apply(w), _Sink.apply(w), _Sink.apply(b) if _sinkable(b) else b)

    return forward


def _embedding_forward(module: torch.nn.Embedding):
    def forward(ids: torch.Tensor) -> torch.Tensor:
        w = _Sink.apply(module.weight) if _sinkable(module.weight) else module.weight
        m = module
        return F.embedding(ids, w, m.padding_idx, m.max_norm, m.norm_type, m.scale_grad_by_freq, m.sparse)

    return forward
