"""Offline preference optimisation of the preference world's tiny LM (`common/worlds/preference.py`).

Data: pairs of SFT-policy samples for the same prompt, labelled by the gold reward, optionally with label flips.
Each method fine-tunes a copy of the SFT policy (the reference π_ref) with Adam on minibatches of pairs; every
`eval_every` steps it samples responses to held-out prompts and records the gold reward, the gold win-rate against
the SFT policy's responses to the same prompts, and the KL(π‖π_ref) estimate Σ_t log π/π_ref on its samples.
"""

from __future__ import annotations

import torch

from reprozoo.common.lm import response_logprobs
from reprozoo.common.results import record
from reprozoo.common.worlds.preference import PreferenceWorld, copy_policy
from reprozoo.papers.power_dl.baselines import Hyper, pair_loss
from reprozoo.papers.power_dl.method import power_margin, update_labels


def preference_data(world: PreferenceWorld, n_pairs: int, label_noise: float, seed: int) -> dict[str, torch.Tensor]:
    """Chosen / rejected responses (token ids, masks, lengths) and their reference log-probs."""
    pairs = world.comparisons(n_pairs, label_noise=label_noise, seed=seed)
    P = world.prompt_width
    a_wins = pairs.labels.bool()[:, None]
    ids_w = torch.where(a_wins, pairs.ids_a, pairs.ids_b)
    ids_l = torch.where(a_wins, pairs.ids_b, pairs.ids_a)
    mask_w = torch.where(a_wins, pairs.mask_a, pairs.mask_b)[:, P:].float()
    mask_l = torch.where(a_wins, pairs.mask_b, pairs.mask_a)[:, P:].float()
    data = {"prompts": ids_w[:, :P], "y_w": ids_w[:, P:], "y_l": ids_l[:, P:], "mask_w": mask_w, "mask_l": mask_l}
    data["correct"] = (pairs.labels == pairs.gold_labels).float()  # 0 where the label was flipped
    with torch.no_grad():
        data["ref_w"], data["ref_l"] = (
            _seq_logp(world.policy, data["prompts"], data[f"y_{s}"], data[f"mask_{s}"]) for s in "wl"
        )
        for s in "wl":  # gold of each side (the labels' source)
            data[f"gold_{s}"] = world.gold_reward(data["prompts"], data[f"y_{s}"], data[f"mask_{s}"])
    return data


def pair_types(data: dict[str, torch.Tensor], quantile: float = 0.25) -> dict[str, float]:
    """Fractions of the data set's pairs that carry the paper's two kinds of statistical fluctuation, with coverage
    read as the SFT policy's probability of the response (log π_SFT(y) below the `quantile` of all the data set's
    responses = poorly covered):

    Type I  = the chosen response is the gold-worse one and poorly covered (a subpar choice that looks favourable),
    Type II = the rejected response is the gold-better one and poorly covered (a decent choice that looks worse).

    Also: the fraction of pairs whose label disagrees with gold (`mislabelled`)."""
    logp = torch.cat([data["ref_w"], data["ref_l"]])
    cut = torch.quantile(logp, quantile)
    wrong = data["gold_w"] < data["gold_l"]
    return {
        "type1": float((wrong & (data["ref_w"] < cut)).float().mean()),
        "type2": float((wrong & (data["ref_l"] < cut)).float().mean()),
        "mislabelled": float(wrong.float().mean()),
    }


def _seq_logp(policy: torch.nn.Module, prompts: torch.Tensor, responses: torch.Tensor, mask: torch.Tensor):
    """log π(y|x) = Σ_t log π(y_t | x, y_<t) over the response tokens (EOS included)."""
    return (response_logprobs(policy, prompts, responses) * mask).sum(-1)


@torch.no_grad()
def evaluate(world: PreferenceWorld, policy: torch.nn.Module, prompts: torch.Tensor, sft_gold: torch.Tensor, seed: int):
    """Gold reward, win-rate vs the SFT responses (ties count ½), KL estimate, length and feature count."""
    policy.eval()
    g = world.sample(prompts, torch.Generator().manual_seed(seed), policy=policy)
    gold = world.gold_reward(prompts, g.tokens, g.mask)
    ref = (response_logprobs(world.policy, prompts, g.tokens) * g.mask).sum(-1)
    kl = (g.logprobs * g.mask).sum(-1) - ref
    win = (gold > sft_gold).float() + 0.5 * (gold == sft_gold).float()
    policy.train()
    return {
        "gold": float(gold.mean()),
        "win_rate": float(win.mean()),
        "kl": float(kl.mean()),
        "length": float(g.lengths.float().mean()),
        "features": float(world.feature_count(g.tokens, g.mask).float().mean()),
    }


def train_method(
    world: PreferenceWorld,
    data: dict[str, torch.Tensor],
    method: str,
    hp: Hyper,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    eval_every: int,
    eval_prompts: torch.Tensor,
    sft_gold: torch.Tensor,
    seed: int,
    setting: dict,
) -> list[dict]:
    """Fine-tune a copy of the SFT policy with `method`; one record per (evaluation step, metric)."""
    torch.manual_seed(seed)
    policy = copy_policy(world)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    n = data["y_w"].shape[0]
    labels = torch.ones(n) if method == "power_dl" else None
    len_w, len_l = data["mask_w"].sum(-1), data["mask_l"].sum(-1)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen)
    rows, pos = [], 0
    for step in range(steps + 1):
        if step % eval_every == 0:
            stats = evaluate(world, policy, eval_prompts, sft_gold, seed=50_000 + seed)
            if labels is not None:  # mean dynamic label of the flipped and of the correctly labelled pairs
                flipped = data["correct"] == 0
                if flipped.any():
                    stats["label_flipped"] = float(labels[flipped].mean())
                stats["label_clean"] = float(labels[~flipped].mean())
            rows += [
                record(method, seed, k, v, step=step, epoch=step * batch_size / n, **setting) for k, v in stats.items()
            ]
        if step == steps:
            break
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        batch = order[pos : pos + batch_size]
        pos += batch_size
        pol_w = _seq_logp(policy, data["prompts"][batch], data["y_w"][batch], data["mask_w"][batch])
        pol_l = _seq_logp(policy, data["prompts"][batch], data["y_l"][batch], data["mask_l"][batch])
        lab = None if labels is None else labels[batch]
        ref_w, ref_l = data["ref_w"][batch], data["ref_l"][batch]
        per = pair_loss(method, pol_w, pol_l, ref_w, ref_l, len_w[batch], len_l[batch], hp, lab)
        opt.zero_grad()
        per.mean().backward()
        opt.step()
        if labels is not None:  # (P6) on the pairs just visited, with the margin of the step's model
            delta = power_margin(pol_w.detach(), pol_l.detach(), len_w[batch], len_l[batch], beta=hp.power_beta)
            labels[batch] = update_labels(labels[batch], delta, hp.dl_gamma)
    return rows
