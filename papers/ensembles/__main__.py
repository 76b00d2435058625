"""`python -m papers.ensembles --preset quick` — best-of-n and PPO against reward-model ensembles; print claims."""

import sys

from common.cli import main
from papers.ensembles import claims, experiment

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
