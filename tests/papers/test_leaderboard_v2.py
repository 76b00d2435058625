"""Leaderboard (issue 31): the ensembles' PPO rows carry the single proxy's reward (member 0's logged z)."""

from __future__ import annotations

from reprozoo.common.results import record
from reprozoo.papers.leaderboard.experiment import from_ensembles


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
