"""Tiny stand-ins for the ReBalance and TRAAC `full` tests, in the real formats (`save_pretrained`, `save_to_disk`).

A Qwen2-architecture model with a byte-level BPE tokenizer trained here, a Qwen-style chat template whose generation
prompt opens `<think>`, briefly fitted to a few reasoning traces ("steps" separated by blank lines, TRAAC's discourse
markers, `</think>`, then an "Answer: 2" / `\\boxed{2}` line) so that its samples have steps, close the thinking and
are often correct; MATH-500 and DAPO-Math-17k (verl) datasets whose answers are all 2.
"""

from __future__ import annotations

from pathlib import Path

TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)
QUESTIONS = ["What is 1 + 1?", "What is 4 / 2?", "What is 6 - 4?"]
THOUGHT = "Okay, add them.\n\nSo the sum is 2.\n\nWait, check again\n\nHmm maybe verify\n\nSo 2\n\n"
ANSWER = "The answer is $\\boxed{2}$.\nAnswer: 2"  # both conventions: \boxed{} (MATH-500) and "Answer:" (DAPO)
# Qwen2's pre-tokenizer pattern: blank lines become their own pieces ("ĊĊ", ".ĊĊ"), as in the real vocabulary
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


DAPO_PROMPT = "Solve step by step. The last line of your response should be of the form Answer: $Answer.\n\n{q}"


def chats(q: str) -> list[list[dict[str, str]]]:
    """The prompts a question reaches the model with: plain, MATH-500's (boxed system prompt), DAPO's."""
    from reprozoo.common.data.math import BOXED_INSTRUCTION

    user = {"role": "user", "content": q}
    dapo = {"role": "user", "content": DAPO_PROMPT.format(q=q)}
    return [[user], [{"role": "system", "content": BOXED_INSTRUCTION}, user], [dapo]]


def traces() -> list[tuple[list[dict[str, str]], str]]:
    """(chat prompt, assistant text after the opened thinking) pairs the tiny model is fitted to."""
    return [(c, THOUGHT + "</think>\n" + ANSWER + "<|im_end|>") for q in QUESTIONS for c in chats(q)]


def build_tokenizer(folder: Path):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AddedToken, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    corpus = [" ".join(m["content"] for m in c) + "\n" + a for c, a in traces()] + ["system user assistant"]
    trainer = trainers.BpeTrainer(
        vocab_size=500, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|endoftext|>"]
    )
    tok.train_from_iterator(corpus * 8, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=TEMPLATE
    )
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    fast.add_tokens([AddedToken("<think>", special=False), AddedToken("</think>", special=False)])
    fast.save_pretrained(folder)
    return fast


def build_model(folder: Path, *, fit_steps: int = 150, seed: int = 0) -> Path:
    """Tokenizer + Qwen2 model (2 layers, width 64) fitted to `traces()`, saved to `folder`; returns `folder`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    tok = build_tokenizer(folder)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = Qwen2ForCausalLM(cfg)
    prompts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c, _ in traces()]
    batch = tok([p + a for p, (_, a) in zip(prompts, traces(), strict=True)], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    for i, p in enumerate(prompts):  # fit the assistant text only
        labels[i, : len(tok(p)["input_ids"])] = -100
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(fit_steps):
        loss = model(**batch, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.save_pretrained(folder)
    return folder


def build_datasets(folder: Path, n: int = 6) -> dict[str, Path]:
    """MATH-500 (split test) and DAPO-Math-17k (verl format, split train) stand-ins saved with save_to_disk."""
    import datasets

    qs = (QUESTIONS * n)[:n]
    math500 = datasets.DatasetDict(
        test=datasets.Dataset.from_dict(
            {
                "problem": qs,
                "solution": ["$\\boxed{2}$"] * n,
                "answer": ["2"] * n,
                "subject": ["Algebra"] * n,
                "level": [1 + i % 5 for i in range(n)],
                "unique_id": [f"test/algebra/{i}.json" for i in range(n)],
            }
        )
    )
    dapo = datasets.DatasetDict(
        train=datasets.Dataset.from_dict(
            {
                "data_source": ["math_dapo"] * n,
                "prompt": [[{"role": "user", "content": DAPO_PROMPT.format(q=q)}] for q in qs],
                "ability": ["MATH"] * n,
                "reward_model": [{"ground_truth": "2", "style": "rule-lighteval/MATH_v2"}] * n,
                "extra_info": [{"index": str(i)} for i in range(n)],
            }
        )
    )
    paths = {"math500": folder / "math500", "dapo": folder / "dapo"}
    math500.save_to_disk(paths["math500"])
    dapo.save_to_disk(paths["dapo"])
    return paths
