"""common/data/preference.py: every real schema maps to TRL's conversational preference format."""

import pytest

datasets = pytest.importorskip("datasets")

from reprozoo.common.data import preference, standins  # noqa: E402
from reprozoo.common.data.core import DatasetError  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("schemas")
    out = {}
    for name, dd in standins.datasets_in_real_schemas(n=3).items():
        dd.save_to_disk(str(root / name))
        out[name] = str(root / name)
    return out


@pytest.mark.parametrize("fmt", preference.PAIR_FORMATS)
def test_pairs_are_trl_conversational_with_the_right_winner(folders, fmt):
    split = {"ultrafeedback": "train_prefs", "hh_rlhf": "train", "alpacafarm": "preference", "coste_pref": "train"}
    raw = datasets.load_from_disk(folders[fmt])[split[fmt]]
    out = preference.pairs(folders[fmt], split[fmt])
    assert out.column_names == ["prompt", "chosen", "rejected"]
    assert preference.detect_format(raw.column_names) == fmt
    for r, o in zip(raw, out, strict=True):
        assert o["prompt"][-1]["role"] == "user" and o["chosen"][0]["role"] == o["rejected"][0]["role"] == "assistant"
        assert len(o["chosen"]) == len(o["rejected"]) == 1
        if fmt == "ultrafeedback":  # the pitfall: the user turn is in chosen; it must end up in prompt only
            assert o["prompt"] == r["chosen"][:-1] and o["chosen"][0]["content"] == r["chosen"][-1]["content"]
        if fmt == "alpacafarm":
            assert o["chosen"][0]["content"] == r[f"output_{r['preference']}"]
        if fmt == "coste_pref":
            assert o["chosen"][0]["content"] == r["answers"][r["preference"]]
        if fmt == "hh_rlhf":
            assert r["chosen"].endswith(o["chosen"][0]["content"]) and r["rejected"].endswith(
                o["rejected"][0]["content"]
            )


def test_prompts_generations_and_parquet_read_alike(folders, tmp_path):
    dd = datasets.load_from_disk(folders["coste_gold"])
    dd["validation"].to_parquet(tmp_path / "g.parquet")
    a = preference.generations(folders["coste_gold"], "validation")
    b = preference.generations(str(tmp_path / "g.parquet"))
    assert a["prompt"] == b["prompt"] and a["gold_scores"] == b["gold_scores"]
    row = dd["validation"][1]
    assert a[1]["prompt"][0]["content"] == f"{row['instruction']}\n{row['input']}"
    uf = preference.prompts(folders["ultrafeedback"], "test_prefs", max_rows=2)
    assert len(uf) == 2 and uf[0]["prompt"][0]["role"] == "user"


def test_bad_inputs_fail_clearly(folders):
    with pytest.raises(DatasetError, match="match none"):
        preference.detect_format(["text"])
    with pytest.raises(DatasetError, match="unknown dataset format"):
        preference.pairs(folders["hh_rlhf"], "train", fmt="nope")
    with pytest.raises(DatasetError, match="missing columns"):
        preference.pairs(folders["hh_rlhf"], "train", fmt="ultrafeedback")
    with pytest.raises(DatasetError, match="holds no preference pairs"):
        preference.pairs(folders["coste_gold"], "validation")
    with pytest.raises(DatasetError, match="gold-labelled"):
        preference.generations(folders["hh_rlhf"], "train")
    with pytest.raises(DatasetError, match="not an HH-RLHF transcript"):
        preference.hh_turns("Human: no leading blank lines")


def test_train_and_eval_splits_of_each_layout(folders, tmp_path):
    assert preference.train_eval_splits(folders["ultrafeedback"]) == ("train_prefs", "test_prefs")
    assert preference.train_eval_splits(folders["hh_rlhf"]) == ("train", "test")
    with pytest.raises(DatasetError, match="training and an evaluation split"):
        preference.train_eval_splits(folders["alpacafarm"])
    with pytest.raises(DatasetError, match="no such file"):
        preference.train_eval_splits(str(tmp_path / "missing"))
