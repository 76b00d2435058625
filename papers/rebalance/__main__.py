"""`python -m reprozoo.papers.rebalance --preset quick`:
Run base / static / ReBalance / ablations, write results, claims.
"""

import sys

from reprozoo.common.cli import main
from reprozoo.papers.rebalance import claims, experiment

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
