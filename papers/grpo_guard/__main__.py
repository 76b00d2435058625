"""`python -m reprozoo.papers.grpo_guard --preset quick` — Flow-GRPO vs GRPO-Guard on the generative digits world;
`--preset full` (any `--model` but "world"): SD3 with LoRA on text prompts (full.py)."""

import sys

from reprozoo.common.cli import main
from reprozoo.papers.grpo_guard import claims, experiment, full, report

if __name__ == "__main__":
    sys.exit(
        main(
            paper="grpo_guard",
            config_cls=experiment.Config,
            presets=experiment.PRESETS,
            run=lambda cfg: (experiment.run if cfg.model == "world" else full.run_sd3)(cfg),
            claims=claims.check,
            figure=report.figure,
            table=report.table,
        )
    )
