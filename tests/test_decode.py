"""Scoring-then-decoding gives exactly plain greedy decoding, whatever the gold draft is."""

import torch

from conftest import DEVICE
from promptgd.evaluate.decode import score_and_generate
from promptgd.lm import functional_forward


def plain_greedy(model, prefix, stop_ids, max_new_tokens):
    tokens = list(prefix)
    out = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = int(model(torch.tensor([tokens], device=model.device)).logits[0, -1].argmax())
            if token in stop_ids:
                return out, True
            out.append(token)
            tokens.append(token)
    return out, False


def test_matches_plain_greedy_for_full_partial_and_wrong_drafts(tiny):
    model, tokenizer = tiny
    forward, params = functional_forward(model), dict(model.named_parameters())
    prefixes = [tokenizer(t)["input_ids"] for t in ["The code is", "A much longer prefix here:", "Hi", "x y z"]]
    # "\n", EOS and "z": the untrained tiny model repeats the prefix's last byte, so "x y z" stops at once.
    stop_ids = frozenset({10, tokenizer.eos_token_id, ord("z")})
    max_new = 7
    expected = [plain_greedy(model, p, stop_ids, max_new) for p in prefixes]
    drafts = [
        expected[0][0],  # the exact greedy answer: accepted whole, no decoding needed for it
        expected[1][0][:2] + [120, 121, 122],  # right for two tokens, then wrong
        [33, 34],  # wrong from the start
        [],  # no gold at all (LC teacher answers)
    ]
    scored = score_and_generate(
        forward, params, prefixes, drafts, tokenizer.pad_token_id, stop_ids, max_new, torch.device(DEVICE)
    )
    assert scored.generated == [e[0] for e in expected]
    assert scored.stopped == [e[1] for e in expected]


def test_correct_answers_cost_no_decoding_step(tiny):
    model, tokenizer = tiny
    forward, params = functional_forward(model), dict(model.named_parameters())
    prefixes = [tokenizer("The code is")["input_ids"], tokenizer("x y z")["input_ids"]]
    stop_ids = frozenset({ord("z")})
    answers = [plain_greedy(model, p, stop_ids, 5) for p in prefixes]  # 5 tokens of "s"; an immediate stop
    scored = score_and_generate(
        forward, params, prefixes, [a for a, _ in answers], tokenizer.pad_token_id, stop_ids, 5, torch.device(DEVICE)
    )
    assert scored.generated == [a for a, _ in answers] and scored.stopped == [False, True]
    assert scored.decode_steps == 0


def test_token_accuracy_counts_teacher_forced_argmax_hits(tiny):
    model, tokenizer = tiny
    forward, params = functional_forward(model), dict(model.named_parameters())
    prefixes = [tokenizer("The code is")["input_ids"], tokenizer("A much longer prefix here:")["input_ids"]]
    greedy, _ = plain_greedy(model, prefixes[1], frozenset(), 4)
    golds = [[33, 34, 35], greedy[:2] + [120, greedy[3]]]
    scored = score_and_generate(
        forward, params, prefixes, golds, tokenizer.pad_token_id, frozenset(), 4, torch.device(DEVICE)
    )
    with torch.no_grad():
        expected = [
            sum(
                int(model(torch.tensor([p + g[:j]], device=model.device)).logits[0, -1].argmax()) == g[j]
                for j in range(len(g))
            )
            / len(g)
            for p, g in zip(prefixes, golds)
        ]
    assert scored.token_accuracy == expected and expected[1] >= 0.5  # the first two gold tokens are greedy's own
