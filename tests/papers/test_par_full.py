"""par --preset full on tiny stand-ins of the real models and dataset (TRL path, CPU): every stage runs, weights
change, the run's files are written, capped claims are UNTESTED; the shaped reward TRL sees is method.par_reward."""

import json

import pytest

pytest.importorskip("trl")
import torch  # noqa: E402

from reprozoo.common import hf  # noqa: E402
from reprozoo.papers.par.full import ShapedReward  # noqa: E402
from reprozoo.papers.par.method import par_reward  # noqa: E402


def test_full_cli_end_to_end(stand, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    args = ["--preset", "full", "--model", stand["policy"], "--dataset", stand["ultrafeedback"]]
    args += ["--gold-reward-model", stand["gold"], "--max-steps", "2", "--max-samples", "4", "--seeds", "1"]
    args += ["--runs", "vanilla", "par", "--n-refs", "2", "--workers", "1", "--out", str(out)]
    run_cli("reprozoo.papers.par", *args, timeout=600)
    summary = json.loads((out / "summary.json").read_text())
    assert {c["verdict"] for c in summary["claims"]} == {"UNTESTED"}  # capped stages decide nothing
    for name in ("vanilla", "par"):
        m = summary["methods"][name]
        assert m["weights_changed"]["mean"] > 0  # GRPO moved the SFT policy
        assert 0 <= m["winrate_final"]["mean"] <= 1
    for f in ("records.jsonl", "table.md", "figure.png"):
        assert (out / f).is_file()
    # the reward model was trained here (no --reward-model): its head differs from a fresh one's
    sft, _ = hf.load_policy(str(out / "models" / "sft"), train=False)
    base, _ = hf.load_policy(stand["policy"], train=False)
    assert hf.changed_fraction(base.state_dict(), sft) > 0
    rm, _ = hf.load_reward_model(str(out / "models" / "rm"))
    assert rm.config.num_labels == 1


def test_reward_adapter_is_the_papers_shaping(stand):
    rm, tok = hf.load_reward_model(stand["reward"])
    prompts = [[{"role": "user", "content": "w1 w2"}], [{"role": "user", "content": "w3"}]]
    completions = [[{"role": "assistant", "content": "w4 w5"}], [{"role": "assistant", "content": "w6"}]]
    refs = [[0.1, -0.2, 0.3], [0.0, 0.5, -0.1]]
    shaped = ShapedReward(rm, tok, "par", k=1.0, n_refs=2, valid_len=300, len_penalty=0.01)
    got = shaped(prompts, completions, [[1, 2], [3]], ref_rewards=refs)
    r = hf.score(rm, tok, prompts, ["w4 w5", "w6"])
    want = par_reward(r, torch.tensor(refs)[:, :2], 1.0)  # M = 2 of the 3 references, no length penalty < 300
    assert torch.allclose(torch.tensor(got), want, atol=1e-6)
    long = shaped(prompts, completions, [list(range(310)), [3]], ref_rewards=refs)  # 10 tokens over: −0.1 first
    assert torch.allclose(torch.tensor(long[0]), par_reward(r[:1] - 0.1, torch.tensor(refs)[:1, :2], 1.0)[0], atol=1e-6)
