"""Channel (i)'s cost shape r (`WorldConfig.feature_cost_power`, calibration round 8) and the rule that keeps a field
added later out of cache keys, recorded configs and checkpoint fingerprints while it holds its default."""

import dataclasses
import hashlib
import json

import pytest
import torch

from reprozoo.common.cache import config_hash, recorded_fields
from reprozoo.common.checkpoint import setup_of
from reprozoo.common.reproduce import _setup
from reprozoo.common.results import _jsonable
from reprozoo.common.worlds import preference_demo as demo
from reprozoo.common.worlds.preference import SMOKE_WORLD, WORLD_V2, GoldReward, WorldConfig, world_key


@pytest.mark.parametrize("r", [2.0, 1.0, 0.5])
def test_bonus_follows_the_power(r):
    cfg = dataclasses.replace(SMOKE_WORLD, feature_penalty=0.3, feature_cost_power=r)
    c = torch.arange(0, 13)
    expected = [0.7 * min(k, 2) - 0.3 * max(k - 2, 0) ** r for k in range(13)]
    assert GoldReward(cfg).bonus(c).tolist() == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_default_is_the_quadratic_cost():
    assert WorldConfig().feature_cost_power == 2.0 == WORLD_V2.feature_cost_power


@pytest.mark.parametrize("r", [0.0, -1.0, 2.5])
def test_power_outside_its_range_is_refused(r):
    with pytest.raises(ValueError, match="feature_cost_power"):
        WorldConfig(feature_cost_power=r)


def _before_the_field(cfg) -> dict:
    """What a config recorded before the field existed looked like: asdict without it (nor the later round-9 field
    `proxy_bias_threshold`), at any depth."""
    later = ("feature_cost_power", "proxy_bias_threshold")

    def drop(d):
        return {k: drop(v) if isinstance(v, dict) else v for k, v in d.items() if k not in later}

    return drop(dataclasses.asdict(cfg))


def test_default_power_keeps_keys_records_and_fingerprints():
    # v2.2's cache entry (README_preference.md) and config_hash as it was computed before the field
    assert world_key(WORLD_V2) == "408c0dd43974"
    old_hash = hashlib.sha256(json.dumps(_before_the_field(WORLD_V2), sort_keys=True, default=str).encode())
    assert config_hash(WORLD_V2) == old_hash.hexdigest()[:12]
    cfg = demo.PRESETS["quick"]
    assert _setup(_jsonable(cfg)) == _setup(_jsonable(_before_the_field(cfg)))
    assert "feature_cost_power" not in setup_of(cfg)["world"]


def test_other_power_is_recorded_and_keyed():
    cfg = dataclasses.replace(demo.PRESETS["quick"], world=dataclasses.replace(WORLD_V2, feature_cost_power=1.0))
    assert recorded_fields(cfg)["world"]["feature_cost_power"] == 1.0
    assert _setup(_jsonable(cfg)) != _setup(_jsonable(_before_the_field(cfg)))
    assert world_key(cfg.world) != world_key(WORLD_V2)
    assert config_hash(cfg.world) != config_hash(WORLD_V2)
