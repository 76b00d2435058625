"""papers.grpo_guard `full` (full.py): SD3 + LoRA + a CLIP-type reward on text prompts, trained on CPU with a tiny
SD3 pipeline and a tiny reward model built here from configs and saved with save_pretrained (nothing downloaded)."""

from __future__ import annotations

import json

import pytest
import torch


def _tokenizer(words: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<s>", "<pad>", "</s>", "<unk>", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        model_max_length=16,
    )  # fmt: skip


WORDS = "a photo of cat dog red blue car tree house".split()


def _clip_text(projection: int):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(
        vocab_size=64, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        projection_dim=projection, max_position_embeddings=16, bos_token_id=0, pad_token_id=1, eos_token_id=2,
    )  # fmt: skip
    return CLIPTextModelWithProjection(cfg)


@pytest.fixture(scope="module")
def tiny_sd3(tmp_path_factory):
    """A save_pretrained SD3 pipeline (1-layer MMDiT, 1-block VAE, 2 CLIPs, T5), a CLIP reward, a prompt file."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPConfig, CLIPModel, T5Config, T5EncoderModel

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny_sd3")
    tok = _tokenizer(WORDS)
    pipe = StableDiffusion3Pipeline(
        transformer=SD3Transformer2DModel(
            sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=1, attention_head_dim=8,
            num_attention_heads=2, joint_attention_dim=64, caption_projection_dim=16, pooled_projection_dim=32,
            pos_embed_max_size=8,
        ),
        vae=AutoencoderKL(
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",),
            up_block_types=("UpDecoderBlock2D",), block_out_channels=(8,), layers_per_block=1, latent_channels=4,
            norm_num_groups=4, sample_size=16, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.06,
            scaling_factor=1.5,
        ),
        text_encoder=_clip_text(16),
        text_encoder_2=_clip_text(16),
        text_encoder_3=T5EncoderModel(T5Config(vocab_size=64, d_model=64, d_kv=8, d_ff=32, num_layers=1, num_heads=2)),
        tokenizer=tok,
        tokenizer_2=tok,
        tokenizer_3=tok,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )  # fmt: skip
    pipe.save_pretrained(root / "sd3")
    reward = CLIPModel(
        CLIPConfig(
            text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                             num_attention_heads=4, max_position_embeddings=16, eos_token_id=2),
            vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
                               image_size=16, patch_size=8),
            projection_dim=16,
        )
    )  # fmt: skip
    reward.save_pretrained(root / "reward")
    tok.save_pretrained(root / "reward")
    (root / "prompts.txt").write_text("a photo of a cat\na red car\n\na blue house\na dog\n")
    return root


def test_full_preset_trains_the_lora_of_a_tiny_sd3(tiny_sd3, run_cli, tmp_path, monkeypatch):
    """`--preset full` on the tiny pipeline: 2 optimiser steps (2 minibatches of one epoch, Guard) change the LoRA
    weights, the reward is scored, the adapter is saved, and the base weights stay as they were."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = [
        "--preset", "full", "--model", str(tiny_sd3 / "sd3"), "--reward-model", str(tiny_sd3 / "reward"),
        "--reward-tokenizer", "", "--prompts", str(tiny_sd3 / "prompts.txt"), "--max-samples", "3",
        "--max-steps", "2", "--methods", "grpo_guard", "flow_grpo_kl", "--prompts-per-epoch", "2", "--group", "2",
        "--steps", "3", "--eval-steps", "2", "--eval-prompts", "2", "--resolution", "16", "--sample-batch", "2",
        "--train-batch", "1", "--device", "cpu", "--lora-rank", "4", "--lora-alpha", "8", "--clip", "matched",
        "--lr", "1e-3", "--out", str(tmp_path),
    ]  # fmt: skip
    run_cli("reprozoo.papers.grpo_guard", *args)
    rows = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    for method in ("grpo_guard", "flow_grpo_kl"):
        got = {r["metric"]: r["value"] for r in rows if r["method"] == method and r["metric"] != "eval_reward"}
        assert got["optimiser_steps"] == 2 and got["processes"] == 1
        assert got["lora_change_norm"] > 0
        assert {r["step"] for r in rows if r["method"] == method and r["metric"] == "eval_reward"} == {0, 1}
        assert all(torch.isfinite(torch.tensor(r["value"])) for r in rows if r["method"] == method)
    from peft import PeftModel
    from safetensors.torch import load_file

    lora = load_file(str(tmp_path / "lora-grpo_guard-seed0" / "adapter_model.safetensors"))
    assert any(k.endswith("attn.to_q.lora_B.weight") for k in lora)
    assert any(v.abs().sum() > 0 for k, v in lora.items() if "lora_B" in k)  # B starts at 0: it has moved
    assert PeftModel is not None


def test_full_rejects_missing_prompts_and_unknown_rewards(tiny_sd3, run_cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = ["--preset", "full", "--model", str(tiny_sd3 / "sd3"), "--device", "cpu"]
    bad = run_cli("reprozoo.papers.grpo_guard", *base, expect_rc=2)
    assert "--prompts" in bad.stderr
    bad = run_cli("reprozoo.papers.grpo_guard", *base, "--prompts", "x.txt", "--reward", "ocr", expect_rc=2)
    assert "--reward" in bad.stderr
    bad = run_cli("reprozoo.papers.grpo_guard", *base, "--prompts", str(tiny_sd3 / "none.txt"), expect_rc=2)
    assert "--prompts" in bad.stderr and "no such file" in bad.stderr


def test_prompts_from_a_dataset_file(tmp_path, monkeypatch):
    """--prompts as a data file (the `prompt` column, or --prompt-column), cut by --max-samples; clear errors."""
    from reprozoo.common.config import ConfigError
    from reprozoo.papers.grpo_guard.experiment import Config
    from reprozoo.papers.grpo_guard.full import load_prompts

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"text": f"a photo of {w}"}) + "\n" for w in WORDS[3:8]))
    cfg = Config(preset="full", model="sd3", prompts=str(path), prompt_column="text", max_samples=3)
    cfg.prompts_per_epoch = 2
    assert load_prompts(cfg) == ["a photo of cat", "a photo of dog", "a photo of red"]
    with pytest.raises(ConfigError, match="--prompts.*missing columns"):
        load_prompts(Config(preset="full", model="sd3", prompts=str(path), prompts_per_epoch=2))
    with pytest.raises(ConfigError, match="fewer than prompts_per_epoch"):
        load_prompts(Config(preset="full", model="sd3", prompts=str(path), prompt_column="text", prompts_per_epoch=9))
