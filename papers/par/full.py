"""PAR in the paper's own setting on real models, through TRL (`--preset full`, or any preset with --model).

Stages (each a checkpoint unit; models are saved under `<out>/models/`), following the official scripts
(PorUna-byte/PAR `auto_sh/gemma2-2b_ultrafb_bin.sh`, `configs/config.py`):
1. SFT of --model on the chosen responses (TRL SFTTrainer).
2. The proxy reward model from --model with a new head (TRL RewardTrainer), unless --reward-model gives one.
3. References: M responses of the SFT policy per training prompt, scored once, offline, by the proxy.
4. Per shaping method and seed: GRPO from the SFT policy (TRL GRPOTrainer) against the shaped proxy reward. The
   reward function is a thin adapter (`ShapedReward`) that scores the completions with the proxy RM and calls
   `papers/par/baselines.RewardShaper` — hence `method.par_reward` — with the prompt's reference rewards, which
   TRL passes from the dataset column `ref_rewards`. The official repository runs PAR with PPO and with GRPO
   (`--loss_name grpo`, group size 5, global batch 16, lr 3e-7, 2 epochs, k3 KL in the loss with KL_coef 0.005):
   this is that GRPO experiment. PPO (critic initialised from the RM) is not run: TRL 1.16 has no PPO trainer.
5. Evaluation on held-out prompts: one response of the trained policy and one of the SFT policy per prompt, both
   scored by the gold RM (--gold-reward-model; official `autorating/skywork.py` uses Skywork-Reward-Gemma-2-27B as
   the oracle); win-rate = P(gold(policy) > gold(SFT)) with ties ½; also proxy and gold means and length.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from reprozoo.common import checkpoint, hf
from reprozoo.common import hf_stages as st
from reprozoo.common.config import ConfigError
from reprozoo.common.data import preference
from reprozoo.common.results import Claim, record, select
from reprozoo.papers.par.baselines import RewardShaper
from reprozoo.papers.par.variants import VARIANTS

PAPER = "par"
SFT = {"lr": 5e-6, "global_batch": 64, "epochs": 2, "max_grad_norm": 10.0}
"""Official SFT: --global_batch_size 64 --learning_rate 5e-6 --max_grad_norm 10.0 --n_epoch 2."""
RM = {"lr": 5e-6, "global_batch": 32, "epochs": 1, "max_grad_norm": 5.0}
"""Official reward model: --global_batch_size 32 --learning_rate 5e-6 --max_grad_norm 5.0 --n_epoch 1."""
GRPO = {"lr": 3e-7, "prompts_per_step": 16, "epochs": 2, "max_grad_norm": 5.0, "group": 5, "clip": 0.2}
"""Official GRPO: --global_batch_size 16 --learning_rate 3e-7 --max_grad_norm 5.0 --n_epochs 2; config.py
group_size 5, cliprange 0.2."""
SAMPLING = {"temperature": 0.9, "top_p": 0.9, "top_k": 50, "max_new_tokens": 512}
"""Official config.py: --temperature 0.9 --top_p 0.9 --top_k 50 --max_new_tokens 512 (prompts ≤ 512 tokens)."""


def _rows(cfg, n: int | None = None) -> int | None:
    return cfg.max_samples or n or None


class ShapedReward:
    """TRL reward function: r_RL = RewardShaper(method)(r(x, y), |y|, r(x, y_ref,1..M)) with r the proxy RM.

    PAR: (1/M) Σ_m σ(k (r − r_ref,m)) after the length penalty (paper Eq. 3, `method.par_reward`)."""

    def __init__(self, rm, rm_tok, method: str, k: float, n_refs: int, valid_len: int, len_penalty: float):
        self.rm, self.rm_tok, self.n_refs = rm, rm_tok, n_refs
        self.shaper = RewardShaper(method, k=k, valid_len=valid_len, len_penalty=len_penalty)
        self.__name__ = f"{method}_reward"  # TRL logs each reward function under its name
        self.proxy: list[float] = []

    def __call__(self, prompts, completions, completion_ids, ref_rewards, **_):
        answers = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        prompts = [p if isinstance(p, list) else [{"role": "user", "content": p}] for p in prompts]
        r = hf.score(self.rm, self.rm_tok, prompts, answers)
        self.proxy += r.tolist()
        length = torch.tensor([float(len(ids)) for ids in completion_ids])
        refs = torch.tensor(ref_rewards, dtype=torch.float32)
        refs = refs[:, : self.n_refs] if self.shaper.method == "par" else refs
        return self.shaper(r, length, refs).tolist()


def _sft(cfg, models: Path, train_pairs) -> str:
    return st.train_sft(cfg, train_pairs, models / "sft", seed=cfg.first_seed, **SFT)


def _proxy(cfg, models: Path, train_pairs) -> str:
    if cfg.reward_model:
        hf.load_reward_model(cfg.reward_model)  # refuses a missing head before any training
        return cfg.reward_model
    return st.train_reward_model(cfg, cfg.model, train_pairs, models / "rm", seed=cfg.first_seed, **RM)


def _references(cfg, sft: str, proxy: str, train_prompts, seed: int) -> list[list[float]]:
    """Proxy rewards of M SFT references per training prompt (official `gen_refs` stage), scored once."""
    policy, tok = hf.load_policy(sft, train=False)
    rm, rm_tok = hf.load_reward_model(proxy)
    prompts = train_prompts["prompt"]
    refs = st.generate(policy, tok, prompts, n=cfg.n_refs, seed=10_000 + seed, **SAMPLING)
    scores = st.score(rm, rm_tok, [p for p in prompts for _ in range(cfg.n_refs)], refs)
    return scores.view(len(prompts), cfg.n_refs).tolist()


def _sft_eval(cfg, sft: str, gold: str, eval_prompts, seed: int) -> list[float]:
    policy, tok = hf.load_policy(sft, train=False)
    grm, gtok = hf.load_reward_model(gold)
    answers = st.generate(policy, tok, eval_prompts, seed=50_000 + seed, **SAMPLING)
    return st.score(grm, gtok, eval_prompts, answers).tolist()


def grpo_run(cfg, name: str, seed: int, sft: str, proxy: str, train, eval_prompts, sft_gold, models: Path):
    """GRPO against run `name`'s shaped reward, then the win-rate evaluation; the records of one (run, seed)."""
    from transformers import set_seed
    from trl import GRPOConfig, GRPOTrainer

    v = VARIANTS[name]
    set_seed(seed)  # LoRA initialisation
    policy, tok = hf.load_policy(sft, lora=cfg.lora, gradient_checkpointing=cfg.gradient_checkpointing)
    before = hf.snapshot(policy)
    rm, rm_tok = hf.load_reward_model(proxy)
    reward = ShapedReward(rm, rm_tok, v.shaping, v.k, v.n_refs or cfg.n_refs, cfg.valid_len, cfg.len_penalty)
    prompts_per_step = min(GRPO["prompts_per_step"], len(train))
    args = GRPOConfig(
        per_device_train_batch_size=GRPO["group"],
        gradient_accumulation_steps=st.per_device(prompts_per_step, "GRPO"),
        num_generations=GRPO["group"],
        epsilon=GRPO["clip"],
        beta=cfg.kl_coef,
        loss_type="bnpo",  # official: masked mean over the tokens of the (micro-)batch
        scale_rewards="group",  # official: (r − mean_group) / (std_group + 1e-8)
        max_completion_length=SAMPLING["max_new_tokens"],
        temperature=SAMPLING["temperature"],
        top_p=SAMPLING["top_p"],
        top_k=SAMPLING["top_k"],
        **st.common_args(
            models / f"grpo-{name}-s{seed}",
            lr=GRPO["lr"],
            epochs=GRPO["epochs"],
            max_grad_norm=GRPO["max_grad_norm"],
            max_steps=cfg.max_steps,
            seed=seed,
            cfg=cfg,
        ),
    )
    trainer = GRPOTrainer(model=policy, reward_funcs=[reward], args=args, train_dataset=train, processing_class=tok)
    if cfg.fused_logprob:  # after TRL installed its own fused LM head (the extension point it replaces)
        hf.use_fused_logprob(trainer.model, temperature=SAMPLING["temperature"])
    trainer.train()
    train_kl = st.log_value(trainer, "kl")
    folder = st.save(trainer, tok, models / f"grpo-{name}-s{seed}")
    del trainer, policy
    # evaluation: the trained policy against the SFT responses, judged by the gold RM
    policy, tok = hf.load_policy(folder, train=False)
    changed = hf.changed_fraction(before, policy)
    answers = st.generate(policy, tok, eval_prompts, seed=60_000 + seed, **SAMPLING)
    grm, gtok = hf.load_reward_model(cfg.gold_reward_model)
    gold = st.score(grm, gtok, eval_prompts, answers)
    proxy_eval = st.score(rm, rm_tok, eval_prompts, answers)
    lengths = [float(len(tok(a, add_special_tokens=False)["input_ids"])) for a in answers]
    rows = [
        record(name, seed, "winrate_final", st.win_rate(gold, torch.tensor(sft_gold))),
        record(name, seed, "gold_final", float(gold.mean())),
        record(name, seed, "proxy_final", float(proxy_eval.mean())),
        record(name, seed, "length_final", sum(lengths) / len(lengths)),
        record(name, seed, "weights_changed", changed),
        record(name, seed, "train_proxy_mean", sum(reward.proxy) / max(len(reward.proxy), 1)),
    ]
    if train_kl is not None:
        rows.append(record(name, seed, "train_kl_final", train_kl))
    return rows


def run(cfg) -> list[dict]:
    """Every stage, each a checkpoint unit; the records of the evaluation (one row per run, seed and metric)."""
    if not cfg.gold_reward_model:
        raise ConfigError("gold_reward_model", "the win-rate evaluation needs a gold reward model")
    unsupported = [r for r in cfg.runs if VARIANTS[r].rm != "proxy"]
    if unsupported:
        raise ConfigError(
            "runs",
            f"{unsupported} need their own reward models (WARM, ODIN, Reg) or the synthetic gold: the full "
            "path runs the shapings of one proxy RM",
        )
    with st.clear_errors():
        fmt = cfg.dataset_format or None
        train_split, eval_split = preference.train_eval_splits(cfg.dataset)
        train_pairs = preference.pairs(cfg.dataset, train_split, fmt, _rows(cfg))
        train_prompts = preference.prompts(cfg.dataset, train_split, fmt, _rows(cfg))
        eval_prompts = preference.prompts(cfg.dataset, eval_split, fmt, _rows(cfg))["prompt"]
    models = cfg.out_dir(PAPER) / "models"
    sft = checkpoint.unit(("sft",), lambda: _sft(cfg, models, train_pairs))
    proxy = checkpoint.unit(("rm",), lambda: _proxy(cfg, models, train_pairs))
    rows: list[dict] = []
    for seed in cfg.seed_list():
        refs = checkpoint.unit(("refs", seed), lambda s=seed: _references(cfg, sft, proxy, train_prompts, s))
        train = train_prompts.add_column("ref_rewards", refs)
        sft_gold = checkpoint.unit(
            ("sft_eval", seed), lambda s=seed: _sft_eval(cfg, sft, cfg.gold_reward_model, eval_prompts, s)
        )
        for name in cfg.runs:
            res = checkpoint.unit(
                ("grpo", name, seed),
                functools.partial(grpo_run, cfg, name, seed, sft, proxy, train, eval_prompts, sft_gold, models),
            )
            rows += res
            fin = {r["metric"]: r["value"] for r in res}
            print(
                f"[par] {name} seed {seed}: win-rate {fin['winrate_final']:.3f}, gold {fin['gold_final']:.3f}",
                flush=True,
            )
    return rows


# --- claims, table, figure of the full path ---


def claims(rows: list[dict], cfg) -> list[Claim]:
    """The paper's headline on real models: PAR's final gold win-rate against SFT is above Vanilla's (paired over
    seeds, 95% CI above 0) and above ½. UNTESTED when a stage was capped (--max-steps / --max-samples)."""
    from reprozoo.common.stats import paired_diff

    def by_seed(method):
        return {r["seed"]: r["value"] for r in select(rows, method=method, metric="winrate_final")}

    out = []
    par = by_seed("par")
    verdict = "UNTESTED" if cfg.capped else None
    if par and by_seed("vanilla"):
        d = paired_diff(par, by_seed("vanilla"))
        out.append(
            Claim(
                "full-1",
                "PAR's final gold win-rate vs SFT exceeds Vanilla's (GRPO on the paper's models; CI above 0)",
                d.as_observed(),
                d.low > 0,
                verdict=verdict,
            )
        )
    if par:
        mean = sum(par.values()) / len(par)
        out.append(
            Claim(
                "full-2",
                "PAR's final gold win-rate vs SFT is above 0.5",
                {"winrate": mean},
                mean > 0.5,
                verdict=verdict,
            )
        )
    return out


def table(rows: list[dict], cfg) -> str:
    cols = ("winrate_final", "gold_final", "proxy_final", "length_final", "train_kl_final", "weights_changed")
    return st.methods_table(rows, cfg.runs, cols, label="run")


def figure(rows: list[dict], cfg, path: Path) -> None:
    st.winrate_figure(rows, cfg.runs, f"PAR full ({cfg.model})", path)
