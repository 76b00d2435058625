"""`python -m reprozoo.papers.rebalance --preset quick`:
Run base / static / ReBalance / ablations, write results, claims.
"""

import sys

from reprozoo.common.cli import main
from reprozoo.papers.rebalance import claims, experiment, full, report

if __name__ == "__main__":
    sys.exit(
        main(
            paper="rebalance",
            config_cls=experiment.Config,
            presets=experiment.PRESETS,
            run=experiment.run,
            claims=full.for_preset(claims.check, full.claims),
            figure=full.for_preset(report.figure, full.figure),
        )
    )
