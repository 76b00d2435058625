"""The preference world: a tiny-LM RLHF setting whose proxy reward models can be over-optimised.

Tokens: content ids 0..V−1 (the first `n_features` are "feature" tokens), EOS = V, SEP = V + 1.
- Prompts x: `prompt_len` uniform content tokens followed by SEP.
- SFT corpus: responses from a hidden generator (a random bigram chain that also copies prompt tokens; each
  position is a feature token with probability `feature_prob`; EOS with probability `eos_prob` once the response
  has `min_response_len` tokens). The base policy π_SFT, a tiny Llama, is SFT-trained on it.
- Gold reward (plays the human): R*(x, y) = T(x, y) + b(c(y)), with T a frozen random transformer much larger than
  the proxies (standardised to mean 0, std 1 under π_SFT), c(y) the number of feature tokens and
  b(c) = g · min(c, c₀) − p · max(c − c₀, 0)^r (r = 2 unless set): a few feature tokens help, many hurt. In
  base-policy data "more features" usually wins, so proxies learn a monotone feature preference; the gold penalty
  lives in the tail that optimisation reaches (see shared/papers/preference_world.md).
- Proxy reward models: small transformers trained with Bradley–Terry on gold-labelled pairs of base-policy
  samples, with optional label flips; random init, or a backbone LM-pre-trained on the corpus with its own seed
  ("pretrain-seed" ensembles) and a separate fine-tune seed.
- Opt-in labeller quirks (`ProxyConfig.quirk_token`): the same pairs labelled by R* + γ · (count of one content
  token), a token of the member's own. Giving each ensemble member its own quirk plants member-specific proxy
  errors (members disagree where a member is wrong: the premise of Coste et al.'s conservative ensembles); without
  quirks every member learns the same error from the same labels (the control: Eisenstein et al.'s herding).
  `ensemble_disagreement` measures that premise.
- World v2 (`WORLD_V2`; the default `WorldConfig()` is v1, with unchanged cache keys) adds two explicit error
  channels (see common/worlds/README_preference.md, "API for papers"):
  (ii) quirk cost κ: R* −= κ · Σ_{t∈Q} (n_t(y) − 1)₊ over the quirk tokens Q, so a labeller quirk that pays its
  labeller linearly costs gold when overused; (iii) a proxy bias λ · n_b(y) on one token b that every proxy scored
  through `PreferenceWorld.proxy_reward` carries (unbounded in the count, like a real RM's length bias; b ∈ Q, so
  its overuse costs gold): the error that keeps paying far past the SFT references (PAR's regime); with a count
  threshold t = `proxy_bias_threshold` it is λ · (n_b(y) − t)₊ (0 unless set: the first t copies pay nothing).
  Channel (i), the shared feature error, is v1's b(c); its gold cost is the knob p = `feature_penalty`, its shape
  r = `feature_cost_power` (2: quadratic, every world up to v2.2).
- Best-of-n evaluator: `bon_curve` (unbiased estimator, KL_BoN = log n − (n − 1)/n).

World artefacts (SFT policy, gold teacher and its normalisation, pre-trained backbones, proxies) are cached under
`.cache/preference_world/<config hash>/`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from reprozoo.common.cache import OMIT_AT_DEFAULT, cache_root, config_hash, recorded_fields, save_atomic
from reprozoo.common.lm import generate, sft, tiny_lm
from reprozoo.common.reward import RewardModel, best_of_n, kl_bon, score, train_bradley_terry


@dataclass(frozen=True)
class WorldConfig:
    """Everything that defines a preference world (its hash keys the cache)."""

    vocab: int = 32
    """Number of content tokens (EOS and SEP are added)."""
    n_features: int = 3
    """How many content tokens are "feature" tokens."""
    prompt_len: int = 6
    """Content tokens per prompt (a SEP token follows)."""
    max_response_len: int = 12
    """Response length limit (tokens, EOS included)."""
    min_response_len: int = 3
    """The hidden generator emits no EOS before this many tokens."""
    eos_prob: float = 0.15
    """Per-position EOS probability of the hidden generator (after the minimum length)."""
    feature_prob: float = 0.05
    """Per-position feature-token probability of the hidden generator."""
    copy_prob: float = 0.3
    """Probability that the generator copies a prompt token instead of following its bigram chain."""
    corpus_size: int = 16384
    """SFT corpus size (sequences)."""
    policy_d: int = 64
    """Base-policy width."""
    policy_layers: int = 2
    """Base-policy depth."""
    sft_steps: int = 500
    """SFT steps."""
    sft_batch: int = 128
    """SFT batch size."""
    sft_lr: float = 3e-3
    """SFT learning rate."""
    gold_d: int = 128
    """Gold teacher width (much larger than the proxies)."""
    gold_layers: int = 4
    """Gold teacher depth."""
    gold_init_std: float = 0.04
    """Initialiser std of the random gold teacher (larger = a less smooth function of the tokens)."""
    feature_gain: float = 0.7
    """g in b(c) = g·min(c, c₀) − p·max(c − c₀, 0)^r."""
    feature_cap: int = 2
    """c₀ in b(c)."""
    feature_penalty: float = 1.0
    """p in b(c): the gold cost of the shared proxy error, error channel (i)."""
    feature_cost_power: float = field(default=2.0, metadata=OMIT_AT_DEFAULT)
    """r in b(c), the shape of channel (i)'s gold cost: 2, quadratic (every world so far); 1, linear; < 1, concave
    (a milder tail: calibration round 8 in README_preference.md tried r ∈ {1, 0.75, 0.5}; no world uses them). Left
    out of cache keys and recorded configs while 2, so every earlier world keeps its key and results still compare."""
    seed: int = 0
    """World seed (generator, policy init, gold teacher)."""
    quirk_cost: float = 0.0
    """κ (v2, channel ii): gold R* −= κ · Σ_{t∈Q} (n_t(y) − 1)₊^q over the tokens Q = `quirk_tokens` (a labeller
    quirk on one of them pays its labeller linearly and costs gold when overused; 0: v1)."""
    quirk_cost_power: float = 1.0
    """q (v2.2): the quirk cost is κ · Σ_{t∈Q} (n_t(y) − 1)₊^q; 1: linear (v2), < 1: concave — gold falls about in
    proportion to d = √KL under RL instead of to KL (Gao et al.'s d(α − β log d)); not in the cache key while 1."""
    quirk_tokens: tuple[int, ...] = ()
    """Q (v2): content tokens whose overuse costs gold (κ); the labeller-quirk and proxy-bias tokens live here."""
    proxy_bias_token: int | None = None
    """b (v2, channel iii): every proxy scored through `PreferenceWorld.proxy_reward` gets + λ · n_b(y), an error
    unbounded in the count of token b (like a real RM's length bias); None: no bias (v1). Not in the cache key
    (no cached artefact depends on it)."""
    proxy_bias_gain: float = 0.0
    """λ of the proxy bias (per occurrence of `proxy_bias_token` beyond the threshold t)."""
    proxy_bias_threshold: int = field(default=0, metadata=OMIT_AT_DEFAULT)
    """t of the proxy bias λ · (n_b(y) − t)₊: the first t copies of b pay nothing, so PPO finds the bias later
    (calibration round 9 in README_preference.md); 0: λ · n_b, every world so far. Left out of cache keys (no cached
    artefact depends on it) and, while 0, of recorded configs, so every earlier key and result still compares."""

    def __post_init__(self):
        for name in (
            "vocab",
            "prompt_len",
            "max_response_len",
            "corpus_size",
            "policy_d",
            "policy_layers",
            "sft_steps",
            "sft_batch",
            "gold_d",
            "gold_layers",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"WorldConfig.{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.n_features < self.vocab:
            raise ValueError(f"WorldConfig.n_features must lie in (0, vocab), got {self.n_features}")
        for name in ("eos_prob", "feature_prob", "copy_prob"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"WorldConfig.{name} must lie in [0, 1), got {getattr(self, name)}")
        for name in ("quirk_cost", "proxy_bias_gain", "feature_penalty"):
            if getattr(self, name) < 0:
                raise ValueError(f"WorldConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.proxy_bias_threshold < 0:
            raise ValueError(f"WorldConfig.proxy_bias_threshold must be >= 0, got {self.proxy_bias_threshold}")
        for name in ("quirk_cost_power", "feature_cost_power"):
            if not 0 < getattr(self, name) <= 2:
                raise ValueError(f"WorldConfig.{name} must lie in (0, 2], got {getattr(self, name)}")
        content = range(self.n_features, self.vocab)
        bad = [t for t in self.quirk_tokens if t not in content]
        if bad or len(set(self.quirk_tokens)) != len(self.quirk_tokens):
            raise ValueError(
                f"WorldConfig.quirk_tokens must be distinct non-feature content tokens in [{self.n_features}, "
                f"{self.vocab}), got {self.quirk_tokens}"
            )
        if self.proxy_bias_token is not None and self.proxy_bias_token not in content:
            raise ValueError(
                f"WorldConfig.proxy_bias_token must be a non-feature content token in [{self.n_features}, "
                f"{self.vocab}), got {self.proxy_bias_token}"
            )


V2_FIELDS = ("quirk_cost", "quirk_cost_power", "quirk_tokens", "proxy_bias_token", "proxy_bias_gain")
UNCACHED_FIELDS = ("proxy_bias_token", "proxy_bias_gain", "proxy_bias_threshold")


def world_key(cfg: WorldConfig) -> str:
    """Cache key of a world: `config_hash` of its fields, without the proxy-bias fields (no cached artefact depends
    on them), without the quirk-cost fields while κ = 0 (so every v1 world keeps its key), without q while it is 1
    (so every v2 world keeps its key) and without r while it is 2 (`recorded_fields`)."""
    drop = set(UNCACHED_FIELDS) | (set(V2_FIELDS) if cfg.quirk_cost == 0 else set())
    drop |= {"quirk_cost_power"} if cfg.quirk_cost_power == 1 else set()
    fields = {k: v for k, v in recorded_fields(cfg).items() if k not in drop}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ProxyConfig:
    """One proxy reward model: size, data, label noise and seeds."""

    d_model: int = 32
    """Proxy width."""
    n_layers: int = 2
    """Proxy depth."""
    n_pairs: int = 1536
    """Gold-labelled comparison pairs it is trained on."""
    label_noise: float = 0.0
    """Fraction of labels flipped."""
    data_seed: int = 0
    """Seed of the comparison data (prompts, samples, flips)."""
    seed: int = 0
    """Fine-tuning seed (head init, minibatch order); also the init seed without pre-training."""
    pretrain_seed: int | None = None
    """If set, the backbone is first LM-pre-trained on the SFT corpus with this seed ("pretrain-seed" ensembles)."""
    pretrain_steps: int = 300
    """LM pre-training steps of the backbone."""
    steps: int = 150
    """Bradley–Terry training steps (≈ 12 epochs of 1.5k pairs; longer runs over-fit)."""
    batch_size: int = 128
    """Pairs per step."""
    lr: float = 1e-3
    """Learning rate."""
    eta: float = 0.0
    """Centring coefficient η of η·(r⁺ + r⁻)²."""
    label_smoothing: float = 0.0
    """Label smoothing ε of the Bradley–Terry loss."""
    quirk_token: int | None = None
    """Labeller quirk (opt-in): labels come from R* + quirk_gain · (count of this content token) instead of R*
    (a member-specific error; None: the shared gold labeller)."""
    quirk_gain: float = 0.5
    """γ of the labeller quirk (used only with `quirk_token`)."""

    def __post_init__(self):
        if self.quirk_token is not None and self.quirk_token < 0:
            raise ValueError(f"ProxyConfig.quirk_token must be a content token id >= 0, got {self.quirk_token}")


QUIRK_FIELDS = ("quirk_token", "quirk_gain")


def proxy_key(pc: ProxyConfig) -> str:
    """Cache key of a proxy: `config_hash`, with the quirk fields left out when there is no quirk (so proxies cached
    before the fields existed keep their keys)."""
    if pc.quirk_token is not None:
        return config_hash(pc)
    fields = {k: v for k, v in dataclasses.asdict(pc).items() if k not in QUIRK_FIELDS}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class Pairs:
    """Comparison data: sequences a/b (prompt ⊕ response) with attention masks, gold preference P(a ≻ b)."""

    ids_a: torch.Tensor
    mask_a: torch.Tensor
    ids_b: torch.Tensor
    mask_b: torch.Tensor
    labels: torch.Tensor  # after flips
    gold_labels: torch.Tensor  # before flips
    feat_a: torch.Tensor
    feat_b: torch.Tensor


# --- the hidden generator (SFT corpus) ---


def _generator_tables(cfg: WorldConfig) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(cfg.seed + 1000)
    plain = cfg.vocab - cfg.n_features
    bigram = torch.softmax(2.0 * torch.randn(plain + 1, plain, generator=g), -1)  # row `plain` = start state
    return bigram, g.get_state()


def sample_corpus_responses(cfg: WorldConfig, prompts: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Responses (B, max_response_len) of the hidden generator (EOS-padded)."""
    bigram, _ = _generator_tables(cfg)
    B, L, F = prompts.shape[0], cfg.max_response_len, cfg.n_features
    eos = cfg.vocab
    content = prompts[:, : cfg.prompt_len]
    out = torch.full((B, L), eos, dtype=torch.long)
    prev = torch.full((B,), bigram.shape[0] - 1, dtype=torch.long)  # start state
    done = torch.zeros(B, dtype=torch.bool)
    for t in range(L):
        u = torch.rand(B, 3, generator=gen)
        nxt = torch.multinomial(bigram[prev], 1, generator=gen).squeeze(1) + F
        pick = torch.randint(0, cfg.prompt_len, (B,), generator=gen)
        copied = content[torch.arange(B), pick]
        copied = torch.where(copied < F, nxt, copied)  # copies never produce feature tokens
        tok = torch.where(u[:, 0] < cfg.copy_prob, copied, nxt)
        feat = torch.randint(0, F, (B,), generator=gen)
        tok = torch.where(u[:, 1] < cfg.feature_prob, feat, tok)
        stop = (u[:, 2] < cfg.eos_prob) & (t >= cfg.min_response_len)
        if t == L - 1:
            stop = torch.ones_like(stop)
        tok = torch.where(stop | done, torch.full_like(tok, eos), tok)
        out[:, t] = tok
        prev = torch.where((tok >= F) & (tok < eos), tok - F, prev)
        done = done | stop
    return out


# --- the world ---


class GoldReward(nn.Module):
    """R*(x, y) = (T(x ⊕ y) − μ)/σ + b(c(y)) − κ · Σ_{t∈Q} (n_t(y) − 1)₊^q, T a frozen random transformer, b the
    feature bonus/penalty, the last term the quirk cost (v2; 0 in v1)."""

    def __init__(self, cfg: WorldConfig):
        super().__init__()
        self.cfg = cfg
        vocab = cfg.vocab + 2
        self.teacher = RewardModel.tiny(
            vocab,
            d_model=cfg.gold_d,
            n_layers=cfg.gold_layers,
            n_heads=4,
            max_len=cfg.prompt_len + 1 + cfg.max_response_len,
            seed=cfg.seed + 7,
        )
        torch.manual_seed(cfg.seed + 8)
        for name, p in self.teacher.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=cfg.gold_init_std if "head" not in name else 1.0 / cfg.gold_d**0.5)
        self.register_buffer("mu", torch.zeros(()))
        self.register_buffer("sigma", torch.ones(()))
        self.requires_grad_(False)

    def bonus(self, c: torch.Tensor) -> torch.Tensor:
        """b(c) = g · min(c, c₀) − p · max(c − c₀, 0)^r (r = `feature_cost_power`)."""
        cfg = self.cfg
        c = c.float()
        return (
            cfg.feature_gain * c.clamp_max(cfg.feature_cap)
            - cfg.feature_penalty * (c - cfg.feature_cap).clamp_min(0) ** cfg.feature_cost_power
        )

    def quirk_penalty(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """κ · Σ_{t∈Q} (n_t(y) − 1)₊^q, n_t counted over the response part of x ⊕ y (q = `quirk_cost_power`)."""
        cfg = self.cfg
        out = torch.zeros(ids.shape[0], device=ids.device)
        if cfg.quirk_cost == 0:
            return out
        y, m = ids[:, cfg.prompt_len + 1 :], mask[:, cfg.prompt_len + 1 :].bool()
        for t in cfg.quirk_tokens:
            n_t = ((y == t) & m).sum(-1).float()
            out = out + (n_t - 1).clamp_min(0) ** cfg.quirk_cost_power
        return cfg.quirk_cost * out

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return (self.teacher(ids, mask) - self.mu) / self.sigma + self.bonus(features) - self.quirk_penalty(ids, mask)


class PreferenceWorld:
    """A built world: base policy `policy` (SFT), `gold` reward, and helpers to sample, label and evaluate."""

    def __init__(self, cfg: WorldConfig, policy: nn.Module, gold: GoldReward, cache_dir: Path):
        self.cfg, self.policy, self.gold, self.cache_dir = cfg, policy.eval(), gold.eval(), cache_dir
        self.eos_id, self.sep_id, self.vocab_size = cfg.vocab, cfg.vocab + 1, cfg.vocab + 2
        self.prompt_width = cfg.prompt_len + 1
        self.max_len = cfg.prompt_len + 1 + cfg.max_response_len
        self._pairs: dict[tuple[int, int], dict[str, torch.Tensor]] = {}

    # prompts / sampling
    def sample_prompts(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """x = (x_1..x_P, SEP), x_i uniform over content tokens."""
        x = torch.randint(0, self.cfg.vocab, (n, self.cfg.prompt_len), generator=gen)
        return torch.cat([x, torch.full((n, 1), self.sep_id)], 1)

    def sample(
        self,
        prompts: torch.Tensor,
        gen: torch.Generator,
        policy: nn.Module | None = None,
        temperature: float = 1.0,
        batch_size: int = 2048,
    ):
        """Responses of `policy` (default: the base policy) to `prompts` → `common.lm.Generation`."""
        return generate(
            self.policy if policy is None else policy,
            prompts,
            max_new_tokens=self.cfg.max_response_len,
            temperature=temperature,
            eos_id=self.eos_id,
            generator=gen,
            batch_size=batch_size,
        )

    def sequences(self, prompts: torch.Tensor, responses: torch.Tensor, mask: torch.Tensor):
        """RM inputs: ids = x ⊕ y, attention mask 1 on the prompt and on the response up to its EOS."""
        ids = torch.cat([prompts, responses], 1)
        am = torch.cat([torch.ones_like(prompts), mask.long()], 1)
        return ids, am

    def feature_count(self, responses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """c(y): feature tokens in the response."""
        return ((responses < self.cfg.n_features).long() * mask.long()).sum(-1)

    def token_count(self, responses: torch.Tensor, mask: torch.Tensor, token: int) -> torch.Tensor:
        """n_t(y): occurrences of content token `token` in the response (quirk and proxy-bias counts)."""
        return ((responses == token) & mask.bool()).sum(-1)

    @torch.no_grad()
    def gold_reward(self, prompts: torch.Tensor, responses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ids, am = self.sequences(prompts, responses, mask)
        feats = self.feature_count(responses, mask)
        return torch.cat(
            [self.gold(ids[i : i + 4096], am[i : i + 4096], feats[i : i + 4096]) for i in range(0, ids.shape[0], 4096)]
        )

    def proxy_reward(
        self, rm: nn.Module, prompts: torch.Tensor, responses: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """r(x, y) = rm(x ⊕ y) + λ · (n_b(y) − t)₊: the RM's score plus the world's proxy bias (channel iii; 0 in v1;
        t = `proxy_bias_threshold`, 0 unless set)."""
        ids, am = self.sequences(prompts, responses, mask)
        r = score(rm, ids, am)
        if self.cfg.proxy_bias_token is None:
            return r
        n_b = self.token_count(responses, mask, self.cfg.proxy_bias_token)
        return r + self.cfg.proxy_bias_gain * (n_b - self.cfg.proxy_bias_threshold).clamp_min(0).float()

    def insert_tokens(self, responses: torch.Tensor, mask: torch.Tensor, token: int, k: int):
        """(responses, mask) with k copies of `token` put in front of each response (the response is cut to
        max_response_len − 1 tokens, then EOS): the probe of what exploiting one token does to a reward."""
        L, eos = self.cfg.max_response_len, self.eos_id
        n = ((responses != eos) & mask.bool()).sum(-1)  # content tokens of each response
        out = torch.full_like(responses, eos)
        new_mask = torch.zeros_like(mask)
        for i in range(responses.shape[0]):
            body = ([token] * k + responses[i, : int(n[i])].tolist())[: L - 1]
            out[i, : len(body)] = torch.tensor(body)
            new_mask[i, : len(body) + 1] = 1
        return out, new_mask

    # comparison data
    @torch.no_grad()
    def _pair_samples(self, n_pairs: int, seed: int) -> dict[str, torch.Tensor]:
        """Pairs of base-policy samples with their gold rewards and the uniforms of the tie coins and flips
        (memoised per (n_pairs, seed): every labeller of the same data sees the same pairs)."""
        key = (n_pairs, seed)
        if key not in self._pairs:
            gen = torch.Generator().manual_seed(10_000 + seed)
            prompts = self.sample_prompts(n_pairs, gen).repeat_interleave(2, 0)
            g = self.sample(prompts, gen)
            ids, am = self.sequences(prompts, g.tokens, g.mask)
            feats = self.feature_count(g.tokens, g.mask)
            gold = self.gold(ids, am, feats).view(n_pairs, 2)
            tie_u = torch.rand(n_pairs, generator=gen)
            flip_u = torch.rand(n_pairs, generator=gen)
            self._pairs[key] = dict(
                ids=ids, am=am, feats=feats, tokens=g.tokens, mask=g.mask, gold=gold, tie_u=tie_u, flip_u=flip_u
            )
        return self._pairs[key]

    def comparisons(
        self,
        n_pairs: int,
        *,
        label_noise: float = 0.0,
        seed: int = 0,
        quirk_token: int | None = None,
        quirk_gain: float = 0.0,
    ) -> Pairs:
        """Pairs of base-policy samples for the same prompt, labelled by the gold reward (ties → coin flip),
        then a `label_noise` fraction of labels flipped.

        With a labeller quirk the labeller's utility is u(x, y) = R*(x, y) + γ · n_t(y), n_t the count of
        `quirk_token` in the response; `gold_labels` always come from R* alone."""
        d = self._pair_samples(n_pairs, seed)
        gold, tie = d["gold"], d["tie_u"] < 0.5
        gold_label = torch.where(gold[:, 0] == gold[:, 1], tie, gold[:, 0] > gold[:, 1]).float()
        label = gold_label
        if quirk_token is not None:
            n_t = ((d["tokens"] == quirk_token) & d["mask"].bool()).sum(-1).view(n_pairs, 2)
            u = gold + quirk_gain * n_t  # u = R* + γ · n_t(y)
            label = torch.where(u[:, 0] == u[:, 1], tie, u[:, 0] > u[:, 1]).float()
        flip = d["flip_u"] < label_noise
        labels = torch.where(flip, 1 - label, label)
        ids, am, feats = d["ids"], d["am"], d["feats"]
        return Pairs(ids[0::2], am[0::2], ids[1::2], am[1::2], labels, gold_label, feats[0::2], feats[1::2])

    # proxies
    def pretrained_backbone(self, d_model: int, n_layers: int, seed: int, steps: int) -> nn.Module:
        """A tiny LM pre-trained on the SFT corpus with `seed` (cached)."""
        path = self.cache_dir / f"backbone-d{d_model}-l{n_layers}-s{seed}-t{steps}.pt"
        lm = tiny_lm(self.vocab_size, d_model=d_model, n_layers=n_layers, max_len=self.max_len, seed=seed)
        if path.exists():
            lm.load_state_dict(torch.load(path, weights_only=True))
            return lm
        ids, loss_mask = build_corpus(self.cfg, seed=seed + 1)
        sft(
            lm,
            ids,
            loss_mask,
            steps=steps,
            batch_size=128,
            lr=3e-3,
            seed=seed,
            description=f"pre-train backbone {seed}",
        )
        save_atomic(lm.state_dict(), path)
        return lm

    def train_proxy(self, pc: ProxyConfig) -> RewardModel:
        """Train (or load from the cache) the proxy RM described by `pc`."""
        path = self.cache_dir / f"proxy-{proxy_key(pc)}.pt"
        if pc.pretrain_seed is None:
            rm = RewardModel.tiny(
                self.vocab_size, d_model=pc.d_model, n_layers=pc.n_layers, max_len=self.max_len, seed=pc.seed
            )
        else:
            lm = self.pretrained_backbone(pc.d_model, pc.n_layers, pc.pretrain_seed, pc.pretrain_steps)
            rm = RewardModel.from_lm(lm, seed=pc.seed)
        if path.exists():
            rm.load_state_dict(torch.load(path, weights_only=True))
            return rm.eval()
        data = self.comparisons(
            pc.n_pairs,
            label_noise=pc.label_noise,
            seed=pc.data_seed,
            quirk_token=pc.quirk_token,
            quirk_gain=pc.quirk_gain,
        )
        train_bradley_terry(
            rm,
            data.ids_a,
            data.mask_a,
            data.ids_b,
            data.mask_b,
            data.labels,
            steps=pc.steps,
            batch_size=pc.batch_size,
            lr=pc.lr,
            eta=pc.eta,
            label_smoothing=pc.label_smoothing,
            seed=pc.seed,
        )
        save_atomic(rm.state_dict(), path)
        return rm.eval()

    @torch.no_grad()
    def accuracy(self, rm: nn.Module, pairs: Pairs) -> float:
        """Fraction of pairs where the proxy orders a/b as the (un-flipped) gold reward does."""
        ra = score(rm, pairs.ids_a, pairs.mask_a)
        rb = score(rm, pairs.ids_b, pairs.mask_b)
        return float(((ra > rb).float() == pairs.gold_labels).float().mean())

    # best-of-n
    @torch.no_grad()
    def bon_samples(self, n_prompts: int, n_samples: int, seed: int):
        """(prompts, Generation) with `n_samples` base-policy responses per prompt, rows grouped by prompt."""
        gen = torch.Generator().manual_seed(20_000 + seed)
        prompts = self.sample_prompts(n_prompts, gen).repeat_interleave(n_samples, 0)
        return prompts, self.sample(prompts, gen)


def bon_curve(proxy: torch.Tensor, gold: torch.Tensor, ns: list[int]) -> list[dict[str, float]]:
    """Best-of-n by `proxy` for each n: mean over prompts of the unbiased estimates of gold and proxy reward.

    proxy, gold: (prompts, N). Returns [{n, kl_bon, gold, proxy}].
    """
    return [
        {
            "n": n,
            "kl_bon": kl_bon(n),
            "gold": float(best_of_n(proxy, gold, n).mean()),
            "proxy": float(best_of_n(proxy, proxy, n).mean()),
        }
        for n in ns
    ]


def standardise(scores: torch.Tensor) -> torch.Tensor:
    """z = (s − mean)/std over every sample (last two dims: prompts × samples), per leading index (member)."""
    flat = scores.flatten(-2)
    mu, sd = flat.mean(-1), flat.std(-1)
    return (scores - mu[..., None, None]) / sd[..., None, None]


def _ranks(x: torch.Tensor) -> torch.Tensor:
    return x.argsort().argsort().double()


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two flat tensors (no ties expected: continuous scores)."""
    ra, rb = _ranks(a.flatten()), _ranks(b.flatten())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


@torch.no_grad()
def ensemble_disagreement(members: torch.Tensor, gold: torch.Tensor) -> dict[str, float]:
    """The ensembles premise, measured on a best-of-n pool: do members disagree where a member is wrong?

    members: (k, prompts, N) member rewards, gold: (prompts, N), both standardised here over the pool (z-scores).
    - `var_ratio`: ensemble variance Var_k(z_k) on the samples best-of-N selects (each member's argmax per prompt),
      averaged over members and prompts, divided by its mean over all samples;
    - `gap_corr`: Spearman correlation over all samples between Var_k(z_k) and the ensemble's over-estimate
      (1/k) Σ_j z_j − z_gold (a single member's gap would be diluted by design: the variance is high wherever
      any member is wrong).
    """
    z, zg = standardise(members.double()), standardise(gold.double()[None])[0]
    var = z.var(0, correction=0)  # (prompts, N)
    picked = z.argmax(-1)  # (k, prompts): best-of-N choice of each member
    var_sel = var.gather(-1, picked.T).mean()  # (prompts, k) → mean
    return {
        "var_ratio": float(var_sel / var.mean()),
        "gap_corr": spearman(var, z.mean(0) - zg),
    }


def self_minus_others(z: torch.Tensor) -> float:
    """Member error independence at the top picks: mean over members i and prompts of z_i(ŷ_i) − mean_{j≠i} z_j(ŷ_i),
    ŷ_i = member i's best-of-N pick (argmax over the prompt's N samples of its standardised reward z_i).

    Since z_i − z_j = (z_i − z_gold) − (z_j − z_gold), it is how much more member i over-rates its own pick than the
    other members do: large when the errors best-of-n selects are member-specific (Coste et al.'s premise), ≈ 0 when
    every member picks for the same reason (herding). z: (k, prompts, N), standardised members."""
    k = z.shape[0]
    pick = z.argmax(-1)  # (k, prompts)
    idx = pick[None, :, :, None].expand(k, -1, -1, 1)  # (j, i, prompts, 1)
    at_pick = z[:, None].expand(-1, k, -1, -1).gather(-1, idx)[..., 0]  # at_pick[j, i, p] = z_j(ŷ_i on prompt p)
    own = at_pick.diagonal(dim1=0, dim2=1).T  # (k, prompts): z_i(ŷ_i)
    others = (at_pick.sum(0) - own) / (k - 1)  # (k, prompts): mean_{j≠i} z_j(ŷ_i)
    return float((own - others).mean())


# --- building and caching ---


def build_corpus(cfg: WorldConfig, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """SFT corpus: ids (N, P + 1 + L) and a loss mask on the response tokens up to and including the first EOS."""
    gen = torch.Generator().manual_seed(cfg.seed * 1_000 + seed)
    x = torch.randint(0, cfg.vocab, (cfg.corpus_size, cfg.prompt_len), generator=gen)
    prompts = torch.cat([x, torch.full((cfg.corpus_size, 1), cfg.vocab + 1)], 1)
    y = sample_corpus_responses(cfg, prompts, gen)
    is_eos = (y == cfg.vocab).long()
    resp_mask = ((is_eos.cumsum(-1) - is_eos) == 0).long()
    ids = torch.cat([prompts, y], 1)
    return ids, torch.cat([torch.zeros_like(prompts), resp_mask], 1)


POLICY_FIELDS = (
    "vocab",
    "n_features",
    "prompt_len",
    "max_response_len",
    "min_response_len",
    "eos_prob",
    "feature_prob",
    "copy_prob",
    "corpus_size",
    "policy_d",
    "policy_layers",
    "sft_steps",
    "sft_batch",
    "sft_lr",
    "seed",
)


def build_world(cfg: WorldConfig = WorldConfig(), *, cache: bool = True, verbose: bool = False) -> PreferenceWorld:
    """Build the world (SFT the base policy, make the gold reward and standardise it) or load it from the cache.

    The base policy is cached by the fields it depends on (`POLICY_FIELDS`), the rest by the whole config.
    """
    cache_dir = cache_root() / "preference_world" / world_key(cfg)
    policy_key = hashlib.sha256(json.dumps({k: getattr(cfg, k) for k in POLICY_FIELDS}).encode()).hexdigest()[:12]
    policy_path = cache_root() / "preference_world" / f"policy-{policy_key}.pt"
    vocab = cfg.vocab + 2
    max_len = cfg.prompt_len + 1 + cfg.max_response_len
    policy = tiny_lm(vocab, d_model=cfg.policy_d, n_layers=cfg.policy_layers, max_len=max_len, seed=cfg.seed)
    gold = GoldReward(cfg)
    path = cache_dir / "gold.pt"
    if cache and policy_path.exists():
        policy.load_state_dict(torch.load(policy_path, weights_only=True))
    else:
        ids, loss_mask = build_corpus(cfg)
        losses = sft(
            policy, ids, loss_mask, steps=cfg.sft_steps, batch_size=cfg.sft_batch, lr=cfg.sft_lr, seed=cfg.seed
        )
        if verbose:
            print(f"[preference world] SFT loss {losses[0]:.3f} -> {sum(losses[-20:]) / 20:.3f}", flush=True)
        if cache:
            save_atomic(policy.state_dict(), policy_path)
    world = PreferenceWorld(cfg, policy, gold, cache_dir)
    if cache and path.exists():
        gold.load_state_dict(torch.load(path, weights_only=True))
        return world
    # standardise the teacher under the base policy
    gen = torch.Generator().manual_seed(cfg.seed + 99)
    prompts = world.sample_prompts(2048, gen)
    g = world.sample(prompts, gen)
    ids_s, am = world.sequences(prompts, g.tokens, g.mask)
    t = score(gold.teacher, ids_s, am)
    gold.mu.fill_(float(t.mean()))
    gold.sigma.fill_(float(t.std()))
    if cache:
        save_atomic(gold.state_dict(), path)
        fields = {k: v for k, v in recorded_fields(cfg).items() if k not in UNCACHED_FIELDS}
        (cache_dir / "config.json").write_text(json.dumps(fields, indent=2))
    return world


# The seconds-long world of every smoke preset built on this world (papers and demo share its cache entry).
SMOKE_WORLD = WorldConfig(corpus_size=512, policy_d=32, sft_steps=20, sft_batch=64, gold_d=32, gold_layers=2)

# World v2 (issue 31): v1's policy and teacher (same SFT cache entry), three explicit error channels — (i) the
# shared feature error, its gold cost p = feature_penalty lowered from 1.0; (ii) quirk cost κ on the tokens Q,
# for member-specific labeller quirks (`ProxyConfig.quirk_token` ∈ Q, one per member; control: one shared); (iii) the
# proxy bias λ · n_b(y), b = 5 ∈ Q (PAR's regime; control: proxy_bias_gain = 0). Values from the dev-seed pilots
# (README_preference.md, "World v2: calibration"): v2.1 (linear quirk cost, the papers' results of 2026-12-07 up to
# the third session) and v2.2 (round 6: a concave cost, q = 0.5, and λ = 1.4, where Vanilla PPO fits Gao's RL form).
WORLD_V2_1 = WorldConfig(
    feature_penalty=0.1,
    quirk_cost=0.2,
    quirk_tokens=(3, 7, 8, 13, 14, 18, 23, 27, 9, 5),
    proxy_bias_token=5,
    proxy_bias_gain=1.0,
)
WORLD_V2 = dataclasses.replace(WORLD_V2_1, quirk_cost=0.3, quirk_cost_power=0.5, proxy_bias_gain=1.4)
SMOKE_WORLD_V2 = dataclasses.replace(
    WORLD_V2, corpus_size=512, policy_d=32, sft_steps=20, sft_batch=64, gold_d=32, gold_layers=2
)


def member_quirks(cfg: WorldConfig) -> list[int]:
    """The quirk tokens available to ensemble members (Q without the proxy-bias token), in order: member m's own."""
    return [t for t in cfg.quirk_tokens if t != cfg.proxy_bias_token]


def copy_policy(world: PreferenceWorld) -> nn.Module:
    """A trainable copy of the base policy (for RL / DPO): train mode, every parameter requiring gradients."""
    return copy.deepcopy(world.policy).train().requires_grad_(True)


if __name__ == "__main__":  # the world is a library; its demo imports it, never the reverse
    raise SystemExit("error: the preference world demo runs as `python -m reprozoo.common.worlds.preference_demo`")
