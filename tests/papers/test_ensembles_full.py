"""ensembles --preset full on tiny stand-ins (TRL reward trainer for the members, best-of-n on generations in the
released schema, CPU), and parity: one TRL reward-trainer update equals one update of the project's own
Bradley–Terry loss (common/reward.py) on the same pairs."""

import json

import pytest

pytest.importorskip("trl")
import torch  # noqa: E402

from reprozoo.common import hf  # noqa: E402
from reprozoo.common.data import standins  # noqa: E402
from reprozoo.common.reward import best_of_n, bradley_terry_loss  # noqa: E402
from reprozoo.papers.ensembles import full  # noqa: E402
from reprozoo.papers.ensembles.method import aggregate  # noqa: E402


def test_full_cli_trains_members_and_runs_best_of_n(stand, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    args = ["--preset", "full", "--model", stand["policy"], "--dataset", stand["coste_gold"]]
    args += ["--reward-dataset", stand["coste_pref"], "--max-steps", "2", "--max-samples", "4", "--members", "2"]
    args += ["--workers", "1", "--out", str(out)]
    run_cli("reprozoo.papers.ensembles", *args, timeout=600)
    summary = json.loads((out / "summary.json").read_text())
    assert {c["verdict"] for c in summary["claims"]} == {"UNTESTED"}
    assert set(summary["methods"]) == set(full.CURVES)
    base, _ = hf.load_reward_model(stand["policy"], new_head=True)
    for noise in ("0", "0.25"):
        trained, _ = hf.load_reward_model(str(out / "models" / f"rm-noise{noise}-seed1"))
        assert hf.changed_fraction(base.model.state_dict(), trained.model) > 0  # the backbone trained too
    for f in ("records.jsonl", "table.md", "figure.png"):
        assert (out / f).is_file()


def test_best_of_n_of_given_members_matches_the_estimator(stand, tmp_path):
    """--reward-model with a {seed} template: the curves are common.reward.best_of_n of method.aggregate."""
    import datasets

    for s in (1, 2):  # two trained members rm1, rm2
        rm = standins.reward_model(standins.tokenizer(), seed=10 + s)
        rm.save_pretrained(tmp_path / f"rm{s}")
        standins.tokenizer().save_pretrained(tmp_path / f"rm{s}")

    class Cfg:
        max_samples, reward_model, dataset, dataset_format = 3, str(tmp_path / "rm{seed}"), stand["coste_gold"], ""
        members, label_noises, first_seed, max_steps = 2, [0.0, 0.25], 0, 0
        capped = True

        def out_dir(self, paper):
            return tmp_path / "out"

    rows = full.run(Cfg())
    gens = datasets.load_from_disk(stand["coste_gold"])["validation"].select(range(3))
    gold = torch.tensor(gens["gold_scores"], dtype=torch.float64)
    scores = torch.tensor([full.member_scores(str(tmp_path / f"rm{s}"), full.preference.generations(
        stand["coste_gold"], "validation", None, 3)) for s in (1, 2)], dtype=torch.float64)  # fmt: skip
    want = best_of_n(aggregate(scores, "wco", stage="bon"), gold, 4).mean()
    got = [r["value"] for r in rows if r["method"] == "wco" and r["metric"] == "gold" and r.get("step") == 4]
    assert got == [pytest.approx(float(want))]
    assert {r.get("noise") for r in rows} == {0.0}  # trained members: no label-noise variants


def test_one_reward_trainer_update_equals_the_own_bradley_terry_loss(stand, tmp_path):
    from trl import RewardConfig, RewardTrainer

    tok = standins.tokenizer()
    model = standins.reward_model(tok, seed=3)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    pairs = full.preference.pairs(stand["coste_pref"], "train", None, 4)
    lr = 0.5
    args = RewardConfig(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, learning_rate=lr, optim="sgd",
        lr_scheduler_type="constant", max_grad_norm=1e9, center_rewards_coefficient=full.CENTER, report_to="none",
        save_strategy="no", disable_tqdm=True, bf16=False,
    )  # fmt: skip
    trainer = RewardTrainer(model=model, args=args, train_dataset=pairs, processing_class=tok)
    tokd = trainer.train_dataset
    trainer.train()
    own = standins.reward_model(tok, seed=3)
    own.load_state_dict(start)

    def r(ids):
        return own(input_ids=torch.tensor([ids])).logits[0, 0]

    rc = torch.stack([r(ids) for ids in tokd["chosen_ids"]])
    rr = torch.stack([r(ids) for ids in tokd["rejected_ids"]])
    opt = torch.optim.SGD(own.parameters(), lr=lr)
    bradley_terry_loss(rc, rr, eta=full.CENTER).backward()  # −log σ(r⁺ − r⁻) + η (r⁺ + r⁻)²
    opt.step()
    moved = max((trainer.model.state_dict()[k] - start[k]).abs().max() for k in start)
    assert moved > 1e-4
    for k, v in own.state_dict().items():
        assert torch.allclose(trainer.model.state_dict()[k], v, atol=1e-6, rtol=0), k


def test_full_resume_reuses_finished_stages(stand, tmp_path, run_cli, monkeypatch):
    """An interrupted full run (SIGTERM after 2 units) resumes from its checkpoints to the same records."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["--preset", "full", "--model", stand["policy"], "--dataset", stand["coste_gold"], "--members", "2"]
    args += ["--reward-dataset", stand["coste_pref"], "--max-steps", "1", "--max-samples", "3", "--workers", "1"]
    args += ["--label-noises", "0.25", "--ppo-label-noise", "0.25"]
    monkeypatch.setenv("REPROZOO_STOP_AFTER_UNITS", "2")
    run_cli("reprozoo.papers.ensembles", *args, "--out", str(tmp_path / "a"), expect_rc=143)
    assert (tmp_path / "a" / "models" / "rm-noise0.25-seed1").is_dir()
    monkeypatch.delenv("REPROZOO_STOP_AFTER_UNITS")
    run_cli("reprozoo.papers.ensembles", *args, "--out", str(tmp_path / "a"), "--resume")
    run_cli("reprozoo.papers.ensembles", *args, "--out", str(tmp_path / "b"))
    assert (tmp_path / "a" / "records.jsonl").read_text() == (tmp_path / "b" / "records.jsonl").read_text()
