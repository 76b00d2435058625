"""power_dl --preset full on tiny stand-ins (TRL DPOTrainer with the paper's losses, CPU), and parity: one update
through the framework path equals one update of the project's own loop (papers/power_dl/world.py) on one batch."""

import json

import pytest

pytest.importorskip("trl")
import torch  # noqa: E402

from reprozoo.common import hf  # noqa: E402
from reprozoo.common.data import standins  # noqa: E402
from reprozoo.papers.power_dl import full  # noqa: E402
from reprozoo.papers.power_dl.baselines import Hyper, pair_loss  # noqa: E402
from reprozoo.papers.power_dl.method import power_margin, update_labels  # noqa: E402
from reprozoo.papers.power_dl.world import _seq_logp  # noqa: E402


def test_full_cli_end_to_end(stand, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    args = ["--preset", "full", "--model", stand["policy"], "--dataset", stand["ultrafeedback"]]
    args += ["--gold-reward-model", stand["gold"], "--max-steps", "2", "--max-samples", "4", "--seeds", "1"]
    args += ["--methods", "dpo", "power", "power_dl", "--workers", "1", "--out", str(out)]
    run_cli("reprozoo.papers.power_dl", *args, timeout=600)
    summary = json.loads((out / "summary.json").read_text())
    assert [c["verdict"] for c in summary["claims"]] == ["UNTESTED"]
    for name in ("dpo", "power", "power_dl"):
        assert summary["methods"][name]["weights_changed"]["mean"] > 0
    assert summary["methods"]["power_dl"]["label_mean"]["mean"] < 1  # the dynamic labels moved from l_0 = 1
    for f in ("records.jsonl", "table.md", "figure.png"):
        assert (out / f).is_file()


@pytest.mark.parametrize(("method", "fused"), [("dpo", False), ("power_dl", False), ("power_dl", True)])
def test_one_framework_update_equals_the_own_loop(method, fused, tmp_path):
    """SGD, so that the update is −lr·∇ (Adam's first step is lr·sign(∇), which would amplify float noise)."""
    import datasets
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = standins.tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    model = LlamaForCausalLM(cfg)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    rows = {"prompt": ["w1 w2 w3", "w4 w5 w6", "w7 w8 w9"], "chosen": [" w10", " w11 w12", " w13 w14 w15"]}
    rows["rejected"] = [" w16 w17", " w18", " w19 w20 w21 w22"]
    data = datasets.Dataset.from_dict(rows | {"pair_index": [0, 1, 2]})
    hp, lr = Hyper(), 0.5
    trainer_cls, collator_cls = full._trainer_class()

    class Cfg:  # the HubConfig fields dpo_config reads
        max_steps, gradient_checkpointing = 1, False

    args = full.dpo_config(
        Cfg, tmp_path, 0, 3, optim="sgd", learning_rate=lr, lr_scheduler_type="constant", warmup_steps=0,
        max_grad_norm=1e9, per_device_train_batch_size=3,
    )  # fmt: skip
    trainer = trainer_cls(
        model=model, args=args, train_dataset=data, processing_class=tok,
        data_collator=collator_cls(pad_token_id=tok.pad_token_id), method=method, hp=hp, n_pairs=3,
    )  # fmt: skip
    if fused:  # --fused-logprob: the project's kernel in TRL's log-prob extension point
        hf.use_fused_logprob(trainer.model, backend="torch")
    tokd = trainer.train_dataset  # TRL's own tokenisation (EOS appended to the completions)
    trainer.train()
    framework = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    # the project's own loop on the same token ids: _seq_logp (response_logprobs) + pair_loss + the optimiser step
    own = LlamaForCausalLM(cfg)
    own.load_state_dict(start)
    prompts = torch.tensor(list(tokd["prompt_ids"]))
    chosen_ids, rejected_ids = list(tokd["chosen_ids"]), list(tokd["rejected_ids"])
    pad = max(len(r) for r in chosen_ids + rejected_ids)

    def padded(seqs):
        ids = torch.tensor([s + [tok.pad_token_id] * (pad - len(s)) for s in seqs])
        return ids, torch.tensor([[1.0] * len(s) + [0.0] * (pad - len(s)) for s in seqs])

    (y_w, m_w), (y_l, m_l) = padded(chosen_ids), padded(rejected_ids)
    with torch.no_grad():
        ref_w, ref_l = _seq_logp(own, prompts, y_w, m_w), _seq_logp(own, prompts, y_l, m_l)
    assert torch.allclose(ref_w, torch.tensor(list(tokd["ref_chosen_logps"])), atol=1e-5)  # TRL's reference log-probs
    opt = torch.optim.SGD(own.parameters(), lr=lr)
    pol_w, pol_l = _seq_logp(own, prompts, y_w, m_w), _seq_logp(own, prompts, y_l, m_l)
    labels = torch.ones(3) if method == "power_dl" else None
    pair_loss(method, pol_w, pol_l, ref_w, ref_l, m_w.sum(-1), m_l.sum(-1), hp, labels).mean().backward()
    opt.step()
    moved = max((framework[k] - start[k]).abs().max() for k in start)
    assert moved > 1e-3  # the update is not trivially zero
    for k, v in own.state_dict().items():
        assert torch.allclose(framework[k], v, atol=1e-6, rtol=0), k
    if method == "power_dl":  # the label store took the same (P6) step
        delta = power_margin(pol_w.detach(), pol_l.detach(), m_w.sum(-1), m_l.sum(-1), beta=hp.power_beta)
        assert torch.allclose(trainer.labels, update_labels(labels, delta, hp.dl_gamma), atol=1e-6)
    assert hf.changed_fraction(start, own) > 0


def test_full_cli_with_lora_and_gradient_checkpointing(stand, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "lora"
    args = ["--preset", "full", "--model", stand["policy"], "--dataset", stand["ultrafeedback"], "--seeds", "1"]
    args += ["--gold-reward-model", stand["gold"], "--max-steps", "2", "--max-samples", "4", "--workers", "1"]
    args += ["--methods", "dpo", "power", "power_dl", "--lora", "4", "--gradient-checkpointing", "--out", str(out)]
    run_cli("reprozoo.papers.power_dl", *args, timeout=600)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"]["power_dl"]["weights_changed"]["mean"] > 0  # the merged adapter moved the weights
    merged, _ = hf.load_policy(str(out / "models" / "power_dl-s0"), train=False)
    assert not any("lora" in k for k in merged.state_dict())  # saved as a plain model
