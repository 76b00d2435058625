"""`python -m reprozoo.papers.subgm --preset quick` — run the SubGM sweeps, write results, print the claims."""

import sys

from reprozoo.common.cli import main
from reprozoo.papers.subgm import claims, experiment

if __name__ == "__main__":
    sys.exit(
        main(
            paper="subgm",
            config_cls=experiment.Config,
            presets=experiment.PRESETS,
            run=experiment.run,
            claims=claims.check,
            figure=experiment.figure,
        )
    )
