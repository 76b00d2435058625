"""`python -m reprozoo.papers.bang --preset quick`:
Run (a) diversity, (b) WiSE-FT, (c) BANG; write results; print claims.
"""

import sys

from reprozoo.common.cli import main
from reprozoo.papers.bang import claims, experiment, report

if __name__ == "__main__":
    sys.exit(
        main(
            paper="bang",
            config_cls=experiment.Config,
            presets=experiment.PRESETS,
            run=experiment.run,
            claims=claims.check,
            figure=report.figure,
            table=report.table,
        )
    )
