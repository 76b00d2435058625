"""Tiny stand-ins for the `full` presets' models and datasets, in the real formats (tests and offline smoke runs).

`build(folder)` writes, in a few seconds on a CPU:
- `tokenizer`-compatible word-level tokenizer with a chat template, saved inside each model folder;
- `policy/`: a Gemma2-architecture causal LM (final-logit soft-capping on), saved in **bf16** as hub checkpoints are;
- `reward/` and `gold/`: Llama sequence-classification reward models with `num_labels=1` (trained heads included);
- `ultrafeedback/`, `hh_rlhf/`, `alpacafarm/`, `coste_pref/`, `coste_gold/`: `DatasetDict.save_to_disk` folders in
  each dataset's real schema and split names (see `common/data/preference.py`).
Nothing is downloaded. The returned dict maps each name to its folder.
"""

from __future__ import annotations

import random
from pathlib import Path

WORDS = [f"w{i}" for i in range(60)]
SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<|user|>", "<|assistant|>", "<|prompter|>", "<|endoftext|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|> ' + m['content'] + ' <eos> ' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|> ' }}{% endif %}"
)


def tokenizer():
    """A word-level `PreTrainedTokenizerFast` over `WORDS` with pad/eos/bos tokens and a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIAL + WORDS + ["user", "assistant", "system"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def policy(tok, seed: int = 0):
    """A 2-layer Gemma2 causal LM (hidden 32) with Gemma2's final-logit soft-capping (30.0)."""
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(seed)
    cfg = Gemma2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=1024,
        final_logit_softcapping=30.0,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
    )
    model = Gemma2ForCausalLM(cfg)
    with torch.no_grad():  # large logits, so that the soft-capping matters
        model.lm_head.weight.mul_(400.0)
    return model


def reward_model(tok, seed: int = 0):
    """A 1-layer Llama sequence-classification model with one label (its head saved with it)."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    return LlamaForSequenceClassification(cfg)


def datasets_in_real_schemas(n: int = 12, seed: int = 0) -> dict:
    """One `DatasetDict` per supported schema, n rows per split, with the real column names and split names."""
    import datasets

    rng = random.Random(seed)

    def conv(p, a):
        return [{"role": "user", "content": p}, {"role": "assistant", "content": a}]

    def split(rows_fn):
        return datasets.Dataset.from_list([rows_fn(i) for i in range(n)])

    def uf(i):
        p, c, r = _sentence(rng, 4), _sentence(rng, 3), _sentence(rng, 5)
        return {
            "prompt": p,
            "prompt_id": f"id{i}",
            "chosen": conv(p, c),
            "rejected": conv(p, r),
            "messages": conv(p, c),
            "score_chosen": 8.0,
            "score_rejected": 3.0,
        }

    def hh(i):
        p, c, r = _sentence(rng, 4), _sentence(rng, 3), _sentence(rng, 5)
        return {"chosen": f"\n\nHuman: {p}\n\nAssistant: {c}", "rejected": f"\n\nHuman: {p}\n\nAssistant: {r}"}

    def af(i):
        return {
            "instruction": _sentence(rng, 3),
            "input": _sentence(rng, 2) if i % 2 else "",
            "output_1": _sentence(rng, 3),
            "output_2": _sentence(rng, 4),
            "preference": 1 + i % 2,
        }

    def cp(i):
        return {
            "instruction": _sentence(rng, 3),
            "input": "",
            "answers": [_sentence(rng, 3), _sentence(rng, 4)],
            "preference": i % 2,
        }

    def cg(i):
        k = 8
        return {
            "instruction": _sentence(rng, 3),
            "input": _sentence(rng, 2) if i % 2 else "",
            "answers": [_sentence(rng, 2 + j % 4) for j in range(k)],
            "gold_scores": [rng.gauss(0, 1) for _ in range(k)],
        }

    dd = datasets.DatasetDict
    return {
        "ultrafeedback": dd(train_prefs=split(uf), test_prefs=split(uf)),
        "hh_rlhf": dd(train=split(hh), test=split(hh)),
        "alpacafarm": dd(preference=split(af)),
        "coste_pref": dd(train=split(cp), test=split(cp)),
        "coste_gold": dd(validation=split(cg)),
    }


def build(folder: Path | str, seed: int = 0) -> dict[str, str]:
    """Write every stand-in under `folder`; return {name: path}."""
    import torch

    folder = Path(folder)
    tok = tokenizer()
    out = {}
    pol = policy(tok, seed).to(torch.bfloat16)  # hub checkpoints are bf16
    for name, model in (
        ("policy", pol),
        ("reward", reward_model(tok, seed + 1)),
        ("gold", reward_model(tok, seed + 2)),
    ):
        path = folder / name
        model.save_pretrained(path)
        tok.save_pretrained(path)
        out[name] = str(path)
    for name, data in datasets_in_real_schemas(seed=seed).items():
        path = folder / name
        data.save_to_disk(str(path))
        out[name] = str(path)
    return out
