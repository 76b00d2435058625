"""common/hf.py: policies and reward models by folder, fp32 master weights, refused random heads and bf16 Adam."""

import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

from reprozoo.common import hf, hf_stages  # noqa: E402
from reprozoo.common.config import ConfigError  # noqa: E402
from reprozoo.common.data import standins  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    tok = standins.tokenizer()
    standins.policy(tok).to(torch.bfloat16).save_pretrained(root / "policy")
    standins.reward_model(tok).save_pretrained(root / "rm")
    standins.reward_model(tok).model.save_pretrained(root / "headless")  # a backbone with no score head
    for name in ("policy", "rm", "headless"):
        tok.save_pretrained(root / name)
    return root


def test_policy_loads_fp32_master_weights_from_a_bf16_checkpoint(models):
    model, tok = hf.load_policy(str(models / "policy"))
    assert model.dtype == torch.float32 and tok.padding_side == "left" and tok.pad_token is not None
    frozen, _ = hf.load_policy(str(models / "policy"), train=False)
    assert not any(p.requires_grad for p in frozen.parameters())
    assert frozen.dtype == hf.frozen_dtype()


def test_lora_and_gradient_checkpointing(models):
    model, _ = hf.load_policy(str(models / "policy"), lora=4, gradient_checkpointing=True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)
    assert model.base_model.model.is_activation_checkpointing


def test_reward_model_keeps_its_trained_head_and_refuses_a_random_one(models):
    rm, tok = hf.load_reward_model(str(models / "rm"))
    saved = standins.reward_model(standins.tokenizer()).score.weight
    assert torch.equal(rm.score.weight, saved)  # the checkpoint's head, not a fresh one
    prompts = [[{"role": "user", "content": "w1 w2"}]] * 3
    r = hf.score(rm, tok, prompts, ["w3", "w4 w5", "w3"], batch_size=2)
    assert r.shape == (3,) and torch.allclose(r[0], r[2], atol=1e-5) and abs(r[0] - r[1]) > 1e-4  # padding-invariant
    with pytest.raises(ConfigError, match="no trained reward head"):
        hf.load_reward_model(str(models / "headless"))
    hf.load_reward_model(str(models / "headless"), new_head=True, train=True)  # allowed when it is to be trained
    with pytest.raises(ConfigError, match="one label"):
        hf.load_reward_model(str(models / "policy"))


def test_bf16_adam_is_refused_and_would_not_move():
    w = torch.full((1000,), 0.02, dtype=torch.bfloat16, requires_grad=True)
    opt = torch.optim.Adam([w], lr=1e-6)
    w.grad = torch.ones_like(w)
    before = w.detach().clone()
    opt.step()
    assert torch.equal(w.detach(), before)  # the measured failure: the update rounds away
    with pytest.raises(ValueError, match="no fp32 master weights"):
        hf.refuse_bf16_training([w], "test loop")
    hf.refuse_bf16_training([w.detach().float().requires_grad_()], "test loop")


def test_render_falls_back_to_costes_format_without_a_chat_template():
    tok = standins.tokenizer()
    assert hf.render(tok, [{"role": "user", "content": "w1"}], "w2") == "<|user|> w1 <eos> <|assistant|> w2 <eos> "
    tok.chat_template = None
    assert hf.render(tok, [{"role": "user", "content": "w1"}], "w2") == hf.OA_PROMPT.format(prompt="w1", answer="w2")


def test_fused_logprob_in_trls_extension_point_matches_trls_own_numbers():
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=5000, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    model = LlamaForCausalLM(cfg)
    add_fused_lm_head(model, temperature=0.7)  # what TRL's trainers install
    ids = torch.randint(0, 5000, (3, 12))
    labels = ids.masked_fill(torch.rand(3, 12) < 0.3, -100)
    want = model(input_ids=ids, labels=labels, fused_lm_head=True).log_probs
    (want.sum()).backward()
    g_want = model.lm_head.weight.grad.clone()
    model.zero_grad()
    hf.use_fused_logprob(model, temperature=0.7, backend="torch")
    got = model(input_ids=ids, labels=labels, fused_lm_head=True)
    got.log_probs.sum().backward()
    assert torch.allclose(got.log_probs, want, atol=1e-5) and (want != 0).any()
    assert torch.allclose(model.lm_head.weight.grad, g_want, atol=1e-5)
    assert model(input_ids=ids).logits.shape == (3, 12, 5000)  # generation keeps the model's own forward
    gemma = standins.policy(standins.tokenizer())
    with pytest.raises(ConfigError, match="final_logit_softcapping"):
        hf.use_fused_logprob(gemma)


MEMORY_SCRIPT = """
import resource, sys, time, torch
from transformers import LlamaConfig, LlamaForCausalLM
from trl.trainer.utils import add_fused_lm_head
from reprozoo.common import hf
torch.manual_seed(0)
V, N = 131072, 1024
model = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
    num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048))
ids = torch.randint(0, V, (1, N))
mode = sys.argv[1]
if mode != "naive":
    add_fused_lm_head(model)
if mode == "ours":
    hf.use_fused_logprob(model, backend="torch")
base, t = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
if mode == "naive":
    lp = torch.log_softmax(model(input_ids=ids).logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
else:
    lp = model(input_ids=ids, labels=ids, fused_lm_head=True).log_probs
lp.sum().backward()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024, time.perf_counter() - t, float(lp.sum()))
"""


@pytest.mark.slow
def test_fused_logprob_memory_at_a_large_vocabulary():
    """Peak host memory of one forward + backward of the log-probs at V = 131,072, 1,023 tokens (CPU, one thread):
    materialised logits vs TRL's chunked LM head vs the project's kernel in TRL's extension point (README)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = {}
    for mode in ("naive", "trl", "ours"):
        res = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, mode], capture_output=True, text=True, env=env)
        out[mode] = [float(x) for x in res.stdout.split()]
        print(mode, "peak RSS +{:.0f} MB, {:.2f} s, sum {:.3f}".format(*out[mode]))
    assert out["ours"][2] == pytest.approx(out["trl"][2], abs=1e-2) == out["naive"][2]
    assert out["ours"][0] < out["trl"][0] < out["naive"][0]


SHARD_SCRIPT = """
import json, sys
from reprozoo.common import hf_stages
out = hf_stages.sharded(lambda xs: [x * 10 for x in xs], list(range(7)))
print(json.dumps(out))
"""


def test_evaluation_stages_are_sharded_over_processes_and_gathered_in_order():
    import json
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = {**os.environ, "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank), "MASTER_PORT": str(port)}
        env |= {"MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", SHARD_SCRIPT], env=env, stdout=subprocess.PIPE, text=True))
    outs = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]
    assert outs == [[x * 10 for x in range(7)]] * 2
    assert hf_stages.sharded(lambda xs: [x + 1 for x in xs], [1, 2]) == [2, 3]  # one process: fn itself


def test_missing_models_are_clear_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="--model"):
        hf.load_policy(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="--reward-model"):
        hf.load_reward_model(str(tmp_path / "missing"))
