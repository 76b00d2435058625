"""`python -m papers.rebalance --preset quick` — run base / static / ReBalance / ablations, write results, claims."""

import sys

from common.cli import main
from papers.rebalance import claims, experiment

if __name__ == "__main__":
    sys.exit(
        main(
            paper="rebalance",
            config_cls=experiment.Config,
            presets=experiment.PRESETS,
            run=experiment.run,
            claims=claims.check,
            figure=experiment.figure,
        )
    )
