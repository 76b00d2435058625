"""`python -m papers.bang --preset quick` — run (a) diversity, (b) WiSE-FT, (c) BANG; write results; print claims."""

import sys

from common.cli import main
from papers.bang import claims, experiment

if __name__ == "__main__":
    sys.exit(
        main(
            paper="bang",
            config_cls=experiment.Config,
            presets=experiment.PRESETS,
            run=experiment.run,
            claims=claims.check,
            figure=experiment.figure,
            table=experiment.table,
        )
    )
