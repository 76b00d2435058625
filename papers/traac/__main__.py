"""`python -m reprozoo.papers.traac --preset quick`:
GRPO with TRAAC and its baselines on the reasoning world, claims last.
"""

import sys

from reprozoo.common.cli import main
from reprozoo.papers.traac import claims, experiment

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
