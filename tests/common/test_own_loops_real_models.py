"""The project's own RL loops on real-model features (issue 33 item 6): Gemma2's soft-capped logits reach the
log-probs used in training; bf16 weights without fp32 master weights are refused by PPOTrainer."""

import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

from reprozoo.common.data import standins  # noqa: E402
from reprozoo.common.lm import backbone, response_logprobs  # noqa: E402
from reprozoo.common.policy import logprobs_from_logits  # noqa: E402
from reprozoo.common.ppo import PPOConfig, PPOTrainer  # noqa: E402


def test_response_logprobs_apply_gemma2_soft_capping():
    tok = standins.tokenizer()
    model = standins.policy(tok).eval()  # lm_head scaled so that uncapped logits are far beyond the cap of 30
    prompts, responses = torch.randint(8, len(tok), (2, 3)), torch.randint(8, len(tok), (2, 4))
    with torch.no_grad():
        got = response_logprobs(model, prompts, responses)
        ids = torch.cat([prompts, responses], 1)
        want = logprobs_from_logits(model(input_ids=ids).logits[:, 2:-1], responses)  # the model's own forward
        hidden = backbone(model)(input_ids=ids).last_hidden_state[:, 2:-1]
        uncapped = logprobs_from_logits(hidden @ model.lm_head.weight.T, responses)  # the old backbone + head path
    assert torch.allclose(got, want, atol=1e-5)
    assert (got - uncapped).abs().max() > 0.1  # the cap matters here: skipping it is detectably wrong


def test_ppo_trainer_refuses_bf16_weights_without_master_copy():
    tok = standins.tokenizer()
    policy = standins.policy(tok).to(torch.bfloat16)
    with pytest.raises(ValueError, match="no fp32 master weights"):
        PPOTrainer(policy, standins.policy(tok), PPOConfig(), eos_id=tok.eos_token_id)
    PPOTrainer(standins.policy(tok), standins.policy(tok), PPOConfig(), eos_id=tok.eos_token_id)  # fp32 is fine
