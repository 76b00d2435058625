"""The PPO fields the preference-world experiments share (common/worlds/preference_ppo.py): defaults, checks, the
trainer settings they make, and the CLI options they give every Config that inherits them."""

from __future__ import annotations

import dataclasses

import pytest

from reprozoo.common.config import ConfigError, parse
from reprozoo.common.worlds.preference_ppo import (
    OPTIMISER,
    PROMPT_SET_BUDGET,
    FreshPromptsPPO,
    PPOFields,
    PromptSetPPO,
    budget,
)


def test_ppo_config_carries_the_optimiser_fields():
    cfg = PPOFields(ppo_lr=1e-3, ppo_epochs=3, ppo_minibatch=16)
    pcfg = cfg.ppo_config(0.05, 12, clip=0.3)
    assert (pcfg.lr, pcfg.epochs, pcfg.minibatch_size) == (1e-3, 3, 16)
    assert (pcfg.kl_coef, pcfg.max_new_tokens, pcfg.clip) == (0.05, 12, 0.3)


@pytest.mark.parametrize("name", ["ppo_batch", "ppo_lr", "ppo_epochs", "ppo_minibatch", "threads", "workers"])
def test_optimiser_fields_must_be_positive(name):
    with pytest.raises(ConfigError, match=f"--{name.replace('_', '-')}"):
        dataclasses.replace(FreshPromptsPPO(), **{name: 0}).validate()


def test_fresh_prompts_log_every_divides_steps():
    FreshPromptsPPO(ppo_steps=10, log_every=5).validate()
    with pytest.raises(ConfigError, match="--log-every: must divide ppo_steps"):
        FreshPromptsPPO(ppo_steps=10, log_every=3).validate()


def test_prompt_set_iterations_and_premise_seeds():
    cfg = PromptSetPPO(
        seeds=3, first_seed=2, premise_seeds=4, train_prompts=96, prompt_epochs=2, ppo_batch=32, eval_every=3
    )
    cfg.validate()
    assert cfg.iterations == 6
    assert cfg.premise_seed_list() == [5, 6, 7, 8]
    with pytest.raises(ConfigError, match="--train-prompts: must be a multiple of ppo_batch"):
        dataclasses.replace(cfg, train_prompts=100).validate()
    with pytest.raises(ConfigError, match="--eval-every"):
        dataclasses.replace(cfg, eval_every=4).validate()
    with pytest.raises(ConfigError, match="--kl-coef"):
        dataclasses.replace(cfg, kl_coef=-0.1).validate()


def test_inherited_fields_are_options_with_help(capsys):
    """A Config that inherits the fields gets their options; an override keeps the option and takes its default."""

    @dataclasses.dataclass
    class Paper(PromptSetPPO):
        """A paper."""

        ppo_batch: int = 16
        """This paper's batch."""

    smoke = Paper(preset="smoke", train_prompts=32, eval_every=2)
    presets = {"smoke": smoke, "quick": Paper(), "full": Paper(preset="full")}
    cfg = parse(Paper, presets, ["--preset", "smoke", "--ppo-lr", "0.001", "--kl-coef", "0.01"])
    assert (cfg.ppo_lr, cfg.kl_coef, cfg.ppo_batch, cfg.train_prompts) == (0.001, 0.01, 16, 32)
    with pytest.raises(SystemExit):
        parse(Paper, presets, ["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "This paper's batch" in text and "PPO learning rate" in text and "--premise-seeds" in text


def test_budget_hands_the_named_fields_to_another_config():
    mine = PromptSetPPO(ppo_lr=5e-4, ppo_minibatch=16, kl_coef=0.02, train_prompts=640, seeds=4, workers=3)
    other = dataclasses.replace(FreshPromptsPPO(), **budget(mine, OPTIMISER))
    assert (other.ppo_lr, other.ppo_minibatch, other.ppo_batch) == (5e-4, 16, mine.ppo_batch)
    assert (other.seeds, other.workers) == (FreshPromptsPPO().seeds, FreshPromptsPPO().workers)  # not budget
    same = dataclasses.replace(PromptSetPPO(), **budget(mine, PROMPT_SET_BUDGET))
    assert same.iterations == mine.iterations and (same.kl_coef, same.seeds) == (0.02, PromptSetPPO().seeds)
