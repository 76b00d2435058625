"""`python -m papers.traac --preset quick` — GRPO with TRAAC and its baselines on the reasoning world, claims last."""

import sys

from common.cli import main
from papers.traac import claims, experiment

if __name__ == "__main__":
    sys.exit(
        main(
            paper="traac",
            config_cls=experiment.Config,
            presets=experiment.PRESETS,
            run=experiment.run,
            claims=claims.check,
            figure=experiment.figure,
            table=experiment.table,
        )
    )
