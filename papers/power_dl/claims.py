"""The paper's headline claims as checks over the run records (thresholds fixed before the quick run; README)."""

from __future__ import annotations

import numpy as np
from reprozoo.common.results import Claim, values
from reprozoo.papers.power_dl.experiment import Config

SUBSTANTIAL = 0.3  # claim 1: "substantial mass" on the lucky bad arm (uniform π_ref gives it 1/K = 0.2)
SMALL = 0.1  # claim 1: POWER's mass on it "does not" become substantial
CONTROL = 0.05  # premise: with the rare arm well covered, DPO's mass on the bad arm stays below this
RECOVER = 0.02  # claim 2: POWER-DL keeps at least this much more mass on the unlucky good arm than POWER
MARGIN = 0.05  # claim 3: "by a clear margin" in gold win-rate over SFT


def _mean(rows: list[dict], **match) -> float:
    return float(np.mean(values(rows, **match)))


def check(rows: list[dict], cfg: Config) -> list[Claim]:
    claims = []
    b = dict(part="bandit")

    def bandit(method: str, metric: str, kind: str, coverage: str = "rare") -> float:
        return _mean(rows, method=method, metric=metric, kind=kind, coverage=coverage, **b)

    # premise: Type I hacking is a coverage effect (DPO hacks the rare arm, not the same arm when well covered)
    rare, covered = bandit("dpo", "rare_mass", "type1"), bandit("dpo", "rare_mass", "type1", "covered")
    claims.append(
        Claim(
            "0-premise-type1",
            f"bandit premise: DPO's mass on the lucky bad arm is >= {SUBSTANTIAL} when it is seen once (and won), "
            f"<= {CONTROL} when it is covered by {cfg.bandit_cover} honest comparisons (control)",
            {"dpo_mass_rare": rare, "dpo_mass_covered": covered},
            rare >= SUBSTANTIAL and covered <= CONTROL,
        )
    )

    # 1. Type I: DPO / IPO / SimPO put substantial mass on the lucky bad arm; POWER does not and earns more
    mass = {m: bandit(m, "rare_mass", "type1") for m in ("dpo", "ipo", "simpo", "power")}
    reward = {m: bandit(m, "true_reward", "type1") for m in ("dpo", "ipo", "simpo", "power")}
    others = ("dpo", "ipo", "simpo")
    claims.append(
        Claim(
            "1-type1-power",
            f"Type I bandit: DPO, IPO and SimPO each put >= {SUBSTANTIAL} mean mass on the lucky bad arm, POWER "
            f"<= {SMALL}, and POWER's true expected reward exceeds each of theirs",
            {"rare_mass": mass, "true_reward": reward},
            all(mass[m] >= SUBSTANTIAL and reward["power"] > reward[m] for m in others) and mass["power"] <= SMALL,
        )
    )

    # 2. Type II: dynamic labels recover the unlucky good arm better than POWER without them
    m_dl, m_p = bandit("power_dl", "rare_mass", "type2"), bandit("power", "rare_mass", "type2")
    r_dl, r_p = bandit("power_dl", "true_reward", "type2"), bandit("power", "true_reward", "type2")
    claims.append(
        Claim(
            "2-type2-dl",
            f"Type II bandit (initial policy {'softmax(r*)' if cfg.aligned_init else 'uniform'}): POWER-DL's mean mass "
            f"on the unlucky good arm >= POWER's + {RECOVER}, and its true expected reward >= POWER's",
            {"mass_power_dl": m_dl, "mass_power": m_p, "reward_power_dl": r_dl, "reward_power": r_p},
            m_dl >= m_p + RECOVER and r_dl >= r_p,
        )
    )

    # 3. world: POWER-DL's final gold win-rate over SFT beats DPO's by a clear margin, clean and noisy labels
    w = dict(part="world_summary", metric="win_rate_final")
    obs, ok = {}, True
    for noise in cfg.label_noises:
        dl, dpo = _mean(rows, method="power_dl", noise=noise, **w), _mean(rows, method="dpo", noise=noise, **w)
        obs[f"noise={noise:g}"] = {"power_dl": dl, "dpo": dpo, "difference": dl - dpo}
        ok = ok and dl >= dpo + MARGIN
    claims.append(
        Claim(
            "3-world-win-rate",
            f"preference world: POWER-DL's gold win-rate over SFT at the end of training >= DPO's + {MARGIN} "
            f"(mean over seeds) at every label-flip rate {cfg.label_noises}",
            obs,
            ok,
        )
    )
    return claims
