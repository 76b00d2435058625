"""PAR's PPO runs (Fu et al. 2025): each run type names the reward model it optimises, its reward shaping, M and k,
and the world it trains in; the methods, the ablations and the controls the experiment reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """One PPO run type: which reward model it optimises, how the reward is shaped, M and k."""

    rm: str  # proxy | warm | reg | odin | gold (the premise's control: no proxy error)
    shaping: str  # see baselines.SHAPINGS
    n_refs: int | None = None  # M (None: the config's n_refs)
    k: float = 1.0
    world: str = "main"  # main | control (Config.control_world: PAR's regime switched off)


VARIANTS: dict[str, Variant] = {
    "vanilla": Variant("proxy", "vanilla"),
    "warm": Variant("warm", "vanilla"),
    "odin": Variant("odin", "vanilla"),
    "reg": Variant("reg", "vanilla"),
    "meanstd": Variant("proxy", "meanstd"),
    "clip": Variant("proxy", "clip"),
    "minmax": Variant("proxy", "minmax"),
    "lsc": Variant("proxy", "lsc"),
    "par": Variant("proxy", "par"),
    # ablations
    "par_m1": Variant("proxy", "par", n_refs=1),
    "par_m3": Variant("proxy", "par", n_refs=3),
    "par_k2": Variant("proxy", "par", k=2.0),
    "par_k3": Variant("proxy", "par", k=3.0),
    "sigmoid": Variant("proxy", "sigmoid"),
    # control: Vanilla PPO on the gold reward itself (the premise, a proxy error, switched off)
    "vanilla_gold": Variant("gold", "vanilla"),
    # controls of premises 1b / 1c: Vanilla (which also records 1c's measurement there) and PAR on the control world
    # (PAR's regime switched off)
    "vanilla_ctrl": Variant("proxy", "vanilla", world="control"),
    "par_ctrl": Variant("proxy", "par", world="control"),
}
METHODS = ("vanilla", "warm", "odin", "reg", "meanstd", "clip", "minmax", "lsc", "par")
ABLATIONS = ("par_m1", "par_m3", "par_k2", "par_k3", "sigmoid")
CONTROLS = ("vanilla_gold",)
