"""`python -m reprozoo.papers.ensembles --preset quick`:
Best-of-n and PPO against reward-model ensembles; print claims.
"""

import sys

from reprozoo.common.cli import main
from reprozoo.papers.ensembles import claims, experiment

if __name__ == "__main__":
    sys.exit(
        main(
            paper="ensembles",
            config_cls=experiment.Config,
            presets=experiment.PRESETS,
            run=experiment.run,
            claims=claims.check,
            figure=experiment.figure,
            table=experiment.table,
        )
    )
