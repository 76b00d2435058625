"""TRAAC's premise in a reasoning world, measured on the frozen base model (world v3's acceptance properties A0–A5,
`common/worlds/README_reasoning.md`; claims 0, 0f and 0g of `claims.py`).

At TRAAC's training decoding (T = 1, top-p 1), `PREMISE_PROMPTS` training prompts × `group_size` rollouts per seed:
- A0 `tf_answer_accuracy`: teacher-forced answer accuracy at END on complete traces of the world's process (read
  first: without it the attention numbers describe a model that has not learned the task);
- A1 `redundant_auc`: P(a redundant step's importance < a necessary step's), over the correct rollouts;
- A2 `gate_evict_rate`: correct rollouts whose uniformity gate opens *and* that lose ≥ 1 step at target 0.6
  (`gate_open_rate`: the gate alone; `gate_evict_ideal`: the same under an ideal END, uniform on the necessary
  steps and blind to the loops);
- A3 `evicted_loop_share`: evicted steps that are redundant (post-answer), pooled; `chain_loss_rate`: compressed
  rollouts that lose a necessary step;
- A4 `compression_acc_delta`: accuracy of the answer the base model regenerates after the compressed thinking minus
  after the full thinking, on the same compressed rows with the same sampling stream;
- A5 `hard_share`: prompts whose group pass rate is < 0.3 (TRAAC's hard bucket).
A1–A4 are recorded for the official scorer input (`input="official"`) and the project's (`input="project"`);
the official first-half readout decides, and every single layer's AUC is recorded beside it (`layer=`).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import mannwhitneyu

from reprozoo.common.results import record
from reprozoo.common.worlds.reasoning import ReasoningWorld, roles, sample_trace, segments, verify
from reprozoo.papers.traac import method as M
from reprozoo.papers.traac.compression import (
    SCORER_INPUTS,
    format_flags,
    importances,
    official_attentions,
    official_steps,
    regenerate_answers,
)

PREMISE_PROMPTS = 64  # prompts per seed (× group_size rollouts)
PREMISE_TARGET = M.TARGET_REDUCTION["easy"]  # 0.6: the easy bucket's target, and the no-difficulty ablation's
TF_TRACES = 512  # complete process traces per seed for A0
SINK_MASSES = (0.4, 0.6, 0.8)  # gate_diagnosis: counterfactual END attention on THINK (an LLM's attention sink)
LEAK = 0.1  # gate_diagnosis: an ideal END whose loops keep a tenth of a necessary step's importance


def auc_low_for_redundant(redundant: list[float], chain: list[float]) -> float:
    """P(a redundant step scores lower than a chain step) (Mann-Whitney AUC; 0.5 = no signal)."""
    if not redundant or not chain:
        return float("nan")
    u = mannwhitneyu(-np.asarray(redundant), -np.asarray(chain), alternative="two-sided").statistic
    return float(u / (len(redundant) * len(chain)))


@torch.no_grad()
def teacher_forced_accuracy(world: ReasoningWorld, n: int, seed: int) -> float:
    """A0: share of complete (not truncated) process traces whose argmax next token after END is the answer."""
    rng = np.random.default_rng(seed)
    problems = world.problems(n, world.cfg.k_train, seed=seed)
    traces = [sample_trace(p, world.cfg, rng) for p in problems]
    keep = [i for i, t in enumerate(traces) if not t.truncated]
    problems = [problems[i] for i in keep]
    responses = torch.full((len(keep), world.cfg.max_new_tokens), world.v.eos, dtype=torch.long)
    for row, i in enumerate(keep):
        responses[row, : len(traces[i].tokens)] = torch.tensor(traces[i].tokens)
    _, _, logits = world.states(problems, responses)
    P = world.cfg.max_prompt_len
    ends = [P + r.index(world.v.end) for r in responses.tolist()]
    pred = [int(logits[b, e].argmax()) for b, e in enumerate(ends)]
    return float(np.mean([x == p.answer for x, p in zip(pred, problems, strict=True)]))


def premise(world: ReasoningWorld, cfg, seed: int, method: str = "premise") -> list[dict]:
    """A0–A5 for one seed (module docstring), recorded under `method`; `cfg`: the experiment's Config (train_ks,
    group_size, decoding)."""
    n = cfg.group_size
    prompts = world.problems(PREMISE_PROMPTS, cfg.train_ks, seed=90_000 + seed)
    rep = [p for p in prompts for _ in range(n)]
    gen = world.sample(rep, temperature=cfg.rollout_temperature, top_p=cfg.rollout_top_p, seed=91_000 + seed)
    rows = gen.tokens.tolist()
    correct = [verify(p, r, world.v) for p, r in zip(rep, rows, strict=True)]
    pass_rates = [np.mean(correct[g * n : (g + 1) * n]) for g in range(len(prompts))]
    out = [
        record(method, seed, "tf_answer_accuracy", teacher_forced_accuracy(world, TF_TRACES, 92_000 + seed)),
        record(method, seed, "hard_share", float(np.mean([M.difficulty_bucket(r) == "hard" for r in pass_rates]))),
        record(method, seed, "base_accuracy_t1", float(np.mean(correct))),
    ]
    keep = [i for i, r in enumerate(rows) if correct[i] and all(format_flags(r, world))]
    if not keep:
        return out
    problems, responses = [rep[i] for i in keep], gen.tokens[keep]
    step_roles = [
        roles(segments(r, world.v)[0], p.k, world.v) for p, r in zip(problems, responses.tolist(), strict=True)
    ]
    for scorer_input in SCORER_INPUTS:
        for layers in [None] + [[layer] for layer in range(world.cfg.n_layers)]:
            imps = importances(
                world,
                problems,
                responses,
                scorer=world.model,
                kind="attention",
                scorer_input=scorer_input,
                layers=layers,
            )
            pairs = [
                (x, r) for imp, rl in zip(imps, step_roles, strict=True) for x, r in zip(imp.tolist(), rl, strict=True)
            ]
            redundant = [x for x, r in pairs if r == "redundant"]
            chain = [x for x, r in pairs if r != "redundant"]
            setting = {"input": scorer_input} | ({} if layers is None else {"layer": layers[0]})
            out.append(record(method, seed, "redundant_auc", auc_low_for_redundant(redundant, chain), **setting))
            if layers is None:
                out += compression_rows(world, problems, responses, imps, step_roles, cfg, seed, setting, method)
    return out + gate_diagnosis(world, responses, step_roles, seed, method)


def compression_rows(
    world, problems, responses, imps, step_roles, cfg, seed: int, setting: dict, method: str = "premise"
) -> list[dict]:
    """A2–A4 of the official readout: gate, eviction at target 0.6, what is evicted, and the accuracy it keeps."""
    gate, evicted_roles, rows, kept = [], [], [], []
    for b, (imp, rl) in enumerate(zip(imps, step_roles, strict=True)):
        evicted, u, _ = M.compress(imp, PREMISE_TARGET)
        gate.append(u <= M.UNIFORMITY_GATE)
        if evicted:
            evicted_roles.append([rl[j] for j in evicted])
            segs, _ = segments(responses[b].tolist(), world.v)
            rows.append(b)
            kept.append([t for j, s in enumerate(segs) if j not in evicted for t in s])
    ideal = [M.compress(ideal_importance(rl), PREMISE_TARGET)[0] != [] for rl in step_roles]
    out = [
        record(method, seed, "gate_evict_ideal", float(np.mean(ideal)), **setting),
        record(method, seed, "gate_open_rate", float(np.mean(gate)), **setting),
        *eviction_rows(method, seed, evicted_roles, len(imps), **setting),
    ]
    if rows:
        probs = [problems[b] for b in rows]
        full = [segments(responses[b].tolist(), world.v)[0] for b in rows]
        full = [[t for s in segs for t in s] for segs in full]
        acc = {}
        for name, thinking in (("compressed", kept), ("full", full)):
            regen = regenerate_answers(
                world,
                probs,
                thinking,
                world.model,
                temperature=cfg.rollout_temperature,
                top_p=cfg.rollout_top_p,
                generator=torch.Generator().manual_seed(93_000 + seed),
            )
            acc[name] = float(np.mean([verify(p, r, world.v) for p, r in zip(probs, regen.tolist(), strict=True)]))
        out += [
            record(method, seed, "compression_acc_delta", acc["compressed"] - acc["full"], **setting),
            record(method, seed, "compressed_accuracy", acc["compressed"], **setting),
        ]
    return out


def gate_diagnosis(world, responses, step_roles, seed: int, method: str = "premise") -> list[dict]:
    """Why the uniformity gate stays shut, on the correct rollouts (official input, first-half layers):
    `think_mass`, END's attention on the input's first token (THINK, or BOS in a world with one: an LLM's attention
    sink; a flat row gives it ≈ 1/length), first-half layers and each layer (`layer=`, heads averaged);
    `loop_leak`, the median over rollouts with loops of (median loop importance / median necessary-step importance);
    `gate_evict_ideal` with `leak=0.1`, an ideal END whose loops keep a tenth of a necessary step's importance; and,
    per sink mass m in `SINK_MASSES` (a counterfactual: END's attention on the first token set to m, the rest of its row
    rescaled to 1 − m), `gate_evict_rate`, `evicted_loop_share` and `chain_loss_rate` with setting `sink=m` (A2, A3
    and the compressed rollouts that would lose a necessary step)."""
    attentions = official_attentions(world, responses, world.model)
    rows, think, ends = [], [], []
    for b, resp in enumerate(responses.tolist()):
        steps, end = official_steps(resp, world)
        scores = M.trigger_attention([a[b] for a in attentions], query=end)[: end + 1].double()
        rows.append((scores, steps, step_roles[b]))
        think.append(float(scores[0]))
        ends.append((b, end))
    leak = [
        float(np.median([x for x, r in zip(i.tolist(), rl, strict=True) if r == "redundant"]))
        / float(np.median([x for x, r in zip(i.tolist(), rl, strict=True) if r != "redundant"]))
        for i, rl in ((M.step_importance(s, st), rl) for s, st, rl in rows)
        if "redundant" in rl
    ]
    leaky = [ideal_importance(rl).clamp(min=LEAK) for rl in step_roles]
    setting = {"input": "official"}
    out = [
        record(method, seed, "think_mass", float(np.mean(think)), **setting),
        *[
            record(method, seed, "think_mass", float(np.mean([float(a[b, :, e, 0].mean()) for b, e in ends])), layer=l)
            for l, a in enumerate(attentions)
        ],
        record(method, seed, "loop_leak", float(np.median(leak)) if leak else float("nan"), **setting),
        record(
            method,
            seed,
            "gate_evict_ideal",
            float(np.mean([M.compress(i, PREMISE_TARGET)[0] != [] for i in leaky])),
            leak=LEAK,
            **setting,
        ),  # fmt: skip
    ]
    for m in SINK_MASSES:
        evicted_roles = []
        for scores, steps, rl in rows:
            sunk = torch.cat([scores.new_tensor([m]), scores[1:] * (1 - m) / (1 - scores[0])])
            evicted_roles.append([rl[j] for j in M.compress(M.step_importance(sunk, steps), PREMISE_TARGET)[0]])
        out += eviction_rows(method, seed, [e for e in evicted_roles if e], len(rows), sink=m, **setting)
    return out


def eviction_rows(method: str, seed: int, evicted: list[list[str]], n: int, **setting) -> list[dict]:
    """A2 `gate_evict_rate` (rollouts that lost a step, of `n`), A3 `evicted_loop_share` (evicted steps that are
    loops) and `chain_loss_rate` (compressed rollouts that lost a necessary step), from the roles of the steps each
    compressed rollout lost (`evicted`: one non-empty list per compressed rollout)."""
    lost_chain = [any(r != "redundant" for r in e) for e in evicted]
    return [
        record(method, seed, "gate_evict_rate", len(evicted) / n, **setting),
        record(method, seed, "evicted_loop_share", _share([r for e in evicted for r in e], "redundant"), **setting),
        record(method, seed, "chain_loss_rate", _share(lost_chain, True), **setting),
    ]


def ideal_importance(step_roles: list[str]) -> torch.Tensor:
    """The importances of an ideal END for this world: uniform over the necessary steps, 0 on the redundant ones
    (`gate_evict_ideal`: the share of rollouts whose gate would open and evict under it, an upper bound of A2 for an
    aggregate that needs every step)."""
    return torch.tensor([0.0 if r == "redundant" else 1.0 for r in step_roles], dtype=torch.float64)


def _share(items: list, value) -> float:
    return float(np.mean([x == value for x in items])) if items else float("nan")
