import pytest

datasets = pytest.importorskip("datasets")

from reprozoo.common.data.core import DatasetError, load_any, require_columns  # noqa: E402


@pytest.fixture
def dd():
    return datasets.DatasetDict(
        train=datasets.Dataset.from_dict({"q": ["a", "b", "c"], "a": [1, 2, 3]}),
        test=datasets.Dataset.from_dict({"q": ["d"], "a": [4]}),
    )


def test_save_to_disk_folder_and_files_read_alike(tmp_path, dd):
    dd.save_to_disk(tmp_path / "dd")
    dd["train"].to_parquet(tmp_path / "t.parquet")
    dd["train"].to_json(tmp_path / "t.jsonl")
    from_disk = load_any(str(tmp_path / "dd"), "train")
    assert from_disk["q"] == load_any(str(tmp_path / "t.parquet"))["q"] == load_any(str(tmp_path / "t.jsonl"))["q"]
    assert load_any(str(tmp_path / "dd"), "train", max_rows=2)["a"] == [1, 2]


def test_bad_inputs_fail_clearly(tmp_path, dd):
    dd.save_to_disk(tmp_path / "dd")
    with pytest.raises(DatasetError, match="name one"):
        load_any(str(tmp_path / "dd"))
    with pytest.raises(DatasetError, match="no split 'dev'"):
        load_any(str(tmp_path / "dd"), "dev")
    with pytest.raises(DatasetError, match="no such file"):
        load_any(str(tmp_path / "missing.parquet"))
    with pytest.raises(DatasetError, match="missing columns"):
        require_columns(dd["train"], ["q", "prompt"], "x", "toy")
