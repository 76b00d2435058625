"""`python -m reprozoo.papers.grpo_guard --preset quick` — Flow-GRPO vs GRPO-Guard on the generative digits world."""

import sys

from reprozoo.common.cli import main
from reprozoo.papers.grpo_guard import claims, experiment

if __name__ == "__main__":
    sys.exit(
        main(
            paper="grpo_guard",
            config_cls=experiment.Config,
            presets=experiment.PRESETS,
            run=experiment.run,
            claims=claims.check,
            figure=experiment.figure,
            table=experiment.table,
        )
    )
