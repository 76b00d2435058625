"""TRAAC's claims read the premise's own records, never `gate_diagnosis`'s per-layer or counterfactual ones."""

import math

import pytest

from reprozoo.common.results import record
from reprozoo.papers.traac.claims import per_seed


def test_counterfactual_sink_rows_are_not_the_premise():
    """The counterfactual gate (END's attention on the first token set to 0.8) shares the metric name; the premise's
    A2 is the real gate's value (a claim once read whichever row came last: 0.92 instead of 0.0)."""
    rows = [
        record("premise", 0, "gate_evict_rate", 0.0, input="official"),
        record("premise", 0, "gate_evict_rate", 0.92, input="official", sink=0.8),
        record("premise", 0, "think_mass", 0.03, input="official", layer=1),
    ]
    assert per_seed(rows, "premise", "gate_evict_rate", input="official") == {0: 0.0}
    assert per_seed(rows, "premise", "think_mass", input="official") == {}


def test_two_rows_for_one_seed_is_an_error_and_null_is_nan():
    rows = [record("premise", 0, "redundant_auc", 0.8), record("premise", 0, "redundant_auc", 0.7)]
    with pytest.raises(ValueError, match="two premise redundant_auc rows"):
        per_seed(rows, "premise", "redundant_auc")
    loaded = [{"method": "premise", "seed": 1, "metric": "evicted_loop_share", "value": None}]  # NaN in records.jsonl
    assert math.isnan(per_seed(loaded, "premise", "evicted_loop_share")[1])
