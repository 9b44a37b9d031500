"""`model.tf32`: TF32 matrix products keep the second-order meta-gradient close to the exact one.

On CUDA (`PROMPTGD_TEST_DEVICE=cuda`, results/checks/tests_cuda/run.sh) this is the check the flag needs before use: the
meta-gradient of a float32 model under TF32 against the float64 meta-gradient of the same weights, which
tests/test_metagrad.py holds to central finite differences. On CPU TF32 does nothing and the same assertions hold
with float32 rounding alone.
"""

import pytest
import torch

from conftest import DEVICE, tiny_config
from promptgd.config import ConfigError, InnerConfig, load_config
from promptgd.data.encoding import Encoder
from promptgd.lm import functional_forward
from promptgd.models.loading import load_model, set_tf32
from promptgd.objectives.lc import lc_task, teacher_answers
from promptgd.objectives.lg import lg_task
from promptgd.train.metastep import meta_loss
from promptgd.update.explicit import ExplicitUpdate
from promptgd.update.step_sizes import StepSizes

# Large enough that the second-order term is a sizeable part of the meta-gradient (test_metagrad.py checks that
# at this η), so TF32's error in differentiating the inner step is measured, not hidden behind the first-order part.
ETA = 2.0


@pytest.fixture(autouse=True)
def exact_afterwards():
    yield
    set_tf32(False)  # the setting is process-wide; later tests expect exact float32


def _meta_gradient(model, objective: str, triples) -> torch.Tensor:
    encoder = Encoder(model.tokenizer, tiny_config().format)
    forward, params = functional_forward(model), dict(model.named_parameters())
    if objective == "lc":
        teacher_params = {k: v.detach().clone() for k, v in params.items()}
        answers = teacher_answers(
            forward, teacher_params, encoder, triples, max_new_tokens=3, batch_size=1, device=DEVICE
        )
        task = lc_task(forward, teacher_params, encoder, triples, answers, DEVICE)
    else:
        task = lg_task(encoder, triples, DEVICE)
    loss = meta_loss(forward, params, task, ExplicitUpdate(), StepSizes(ETA), InnerConfig(lr=ETA), first_order=False)
    return torch.cat([g.flatten().double() for g in torch.autograd.grad(loss, list(params.values()))])


def _model(dtype: str, tf32: bool, weights: dict | None = None):
    model, tokenizer = load_model("tiny:llama", dtype=dtype, device=DEVICE, tf32=tf32)
    if weights is not None:
        model.load_state_dict({k: v.to(model.dtype) for k, v in weights.items()})
    model.tokenizer = tokenizer
    return model


@pytest.mark.parametrize("objective", ["lc", "lg"])
def test_tf32_meta_gradient_stays_close_to_the_exact_one(triples, objective):
    exact = _model("float64", tf32=False)
    reference = _meta_gradient(exact, objective, triples[:1])
    tf32 = _model("float32", tf32=True, weights=exact.state_dict())
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    approximate = _meta_gradient(tf32, objective, triples[:1])
    assert torch.isfinite(approximate).all()
    relative_error = ((approximate - reference).norm() / reference.norm()).item()
    cosine = torch.nn.functional.cosine_similarity(approximate, reference, dim=0).item()
    assert relative_error < 2e-2, relative_error
    assert cosine > 0.999, cosine


def test_every_load_sets_tf32_either_way():
    load_model("tiny:llama", dtype="float32", device=DEVICE, tf32=True)
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    load_model("tiny:llama", dtype="float32", device=DEVICE)
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"


def test_tf32_is_refused_for_weights_that_are_not_float32():
    with pytest.raises(ConfigError, match="model.tf32=true is for float32 weights, got model.dtype=bfloat16"):
        load_config(None, ["model.tf32=true", "model.dtype=bfloat16"])
