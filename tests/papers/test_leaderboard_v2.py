"""Leaderboard (issue 31): the ensembles' PPO rows carry the single proxy's reward (member 0's logged z)."""

from __future__ import annotations

from reprozoo.common.results import record
from reprozoo.papers.leaderboard.families import from_ensembles


def test_ensemble_ppo_rows_report_member0_as_the_single_proxy():
    rows = [
        record("ppo_wco", 0, "proxy", 2.0, step=3),  # the optimised (aggregated) reward: not the single proxy's
        record("ppo_wco", 0, "member0_z", 1.5, step=3),
        record("ppo_wco", 0, "gold", 0.4, step=3),
        record("ppo_single", 0, "proxy", 0.7, step=3),
        record("ppo_single", 0, "member0_z", 0.7, step=3),
    ]
    ens = {r["metric"]: r["value"] for r in from_ensembles(rows, "wco", 0)}
    assert ens == {"proxy_z": 1.5, "gold": 0.4}
    single = from_ensembles(rows, "single", 0)
    assert [(r["method"], r["metric"], r["value"]) for r in single] == [("ppo_single_z", "proxy_z", 0.7)]


def test_premise_only_seeds_feed_the_premise_but_not_the_ranking():
    import dataclasses

    from reprozoo.papers.leaderboard import claims, ranking
    from reprozoo.papers.leaderboard.experiment import PRESETS, scalar_rows

    cfg = dataclasses.replace(PRESETS["smoke"], seeds=2, premise_seeds=2)
    assert cfg.seed_list() == [0, 1] and cfg.premise_seed_list() == [2, 3]
    rise_fall = [0.0, 0.5, 1.0, 1.0, 0.6, 0.3, 0.2]
    rows = [record("sft", 0, "gold", 0.0)]
    metrics = (("winrate", 0.5), ("gold", 0.0), ("kl", 0.0))
    rows += [record("bon_single", s, m, v, step=1) for s in (0, 1) for m, v in metrics]
    for method, seeds in (("ppo_vanilla", (0, 1)), ("ppo_vanilla_extra", (2, 3)), ("ppo_par", (0, 1))):
        for s in seeds:
            for x, g in enumerate(rise_fall):
                rows += [record(method, s, "gold", g + 0.01 * s, step=x), record(method, s, "kl", float(x), step=x)]
                rows.append(record(method, s, "proxy_z", float(x), step=x))
    rows += scalar_rows(rows, {"gold": 0.0, "features": 0.0, "length": 0.0})
    premise = next(c for c in claims.check(rows, cfg) if c.id == "0-premise-vanilla-overoptimises")
    assert premise.observed["n_seeds"] == 4  # main + premise-only seeds
    table = ranking.ranked_table(rows)
    assert "ppo_vanilla_extra" not in table and "| ppo_vanilla |" in table.replace("**", "")
